"""Content-addressed artifacts and their digests."""

from __future__ import annotations

from mintaka.artifacts.digest import Manifest, ManifestEntry, manifest_of
from mintaka.artifacts.store import ArtifactStore, StoredArtifact

__all__ = ["ArtifactStore", "Manifest", "ManifestEntry", "StoredArtifact", "manifest_of"]
