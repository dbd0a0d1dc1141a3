"""A content-addressed artifact store on the local file system.

Each artifact lives in ``<root>/sha256/<aa>/<hex>/`` beside its ``MANIFEST.json``. It is written
to a temporary directory, every file and directory fsync'd, and renamed into place in one atomic
step, before any store row refers to it: a crash leaves either no artifact or a whole one, and a
stray temporary directory that the next ingest sweeps away.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mintaka.artifacts.digest import Manifest, ManifestEntry, file_sha256, manifest_of
from mintaka.errors import IntegrityError, NotFound

MANIFEST_NAME = "MANIFEST.json"
CONTENT_DIR = "content"


@dataclass(frozen=True)
class StoredArtifact:
    digest: str
    path: Path
    manifest: Manifest

    @property
    def uri(self) -> str:
        return self.path.as_uri()

    @property
    def content(self) -> Path:
        """The directory holding the artifact's files under their original relative paths."""
        return self.path / CONTENT_DIR


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _final(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "sha256" / hexdigest[:2] / hexdigest

    def ingest(self, source: Path, manifest: Manifest | None = None) -> StoredArtifact:
        """Copy ``source`` (a file or directory) into the store; idempotent per digest."""
        source = Path(source)
        manifest = manifest or manifest_of(source)
        final = self._final(manifest.digest)
        if final.exists():
            return StoredArtifact(manifest.digest, final, manifest)
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="ingest-", dir=staging))
        try:
            content = tmp / CONTENT_DIR
            for entry in manifest.entries:
                origin = source if source.is_file() else source / entry.path
                target = content / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target)
                with target.open("rb") as handle:
                    os.fsync(handle.fileno())
            copied = Manifest(
                tuple(
                    ManifestEntry(
                        entry.path,
                        (content / entry.path).stat().st_size,
                        file_sha256(content / entry.path),
                    )
                    for entry in manifest.entries
                )
            )
            if copied.digest != manifest.digest:
                raise IntegrityError(
                    f"artifact {source} changed while it was being copied; nothing was stored"
                )
            (tmp / MANIFEST_NAME).write_text(
                json.dumps({"digest": manifest.digest, "files": manifest.to_json()}, indent=1)
            )
            with (tmp / MANIFEST_NAME).open("rb") as handle:
                os.fsync(handle.fileno())
            for directory in sorted({(content / e.path).parent for e in manifest.entries}):
                _fsync_dir(directory)
            _fsync_dir(content)
            _fsync_dir(tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another writer stored the same bytes
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return StoredArtifact(manifest.digest, final, manifest)

    def get(self, digest: str) -> StoredArtifact:
        final = self._final(digest)
        manifest_file = final / MANIFEST_NAME
        if not manifest_file.exists():
            raise NotFound(f"artifact {digest} is not in the store at {self.root}")
        data = json.loads(manifest_file.read_text())
        manifest = Manifest(tuple(ManifestEntry(**entry) for entry in data["files"]))
        return StoredArtifact(digest, final, manifest)

    def verify(self, digest: str) -> StoredArtifact:
        """Recompute the digest of the stored bytes; ``IntegrityError`` when they changed."""
        stored = self.get(digest)
        actual = manifest_of(stored.content)
        # A single-file artifact is stored under its own name; compare entry by entry.
        if actual.to_json() != stored.manifest.to_json() or stored.manifest.digest != digest:
            raise IntegrityError(f"artifact {digest} does not match its stored bytes")
        return stored

    def sweep(self, min_age_seconds: float = 3600.0) -> int:
        """Remove temporary directories left by interrupted ingests; returns how many.

        Only directories older than ``min_age_seconds`` go, so an ingest still running in
        another process keeps its staging directory.
        """
        staging = self.root / "tmp"
        if not staging.exists():
            return 0
        removed = 0
        cutoff = time.time() - min_age_seconds
        for child in staging.iterdir():
            if child.stat().st_mtime <= cutoff:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed
