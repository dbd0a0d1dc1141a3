"""The local registry's version bytes read back (``Capability.REGISTRY_FETCH``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from mintaka.domain.registry import BackendVersion
from mintaka.errors import NotFound
from mintaka.files import file_path
from mintaka.interfaces import ArtifactFetch


class LocalArtifactFetch(ArtifactFetch):
    """Copies the file or directory a local version's ``artifact_uri`` names."""

    get_version: Callable[[str, int], BackendVersion]  # the backend's registry provides it

    def fetch_artifact(self, name: str, version: int, into: Path) -> Path:
        uri = self.get_version(name, version).artifact_uri
        source = file_path(uri)
        if source is None:
            raise NotFound(f"the bytes of {name}:{version} are not on this machine: {uri}")
        if source.is_dir():
            target = into / "model"
            shutil.copytree(source, target, symlinks=True)
        elif source.is_file():
            target = into / source.name
            shutil.copy2(source, target)
        else:
            raise NotFound(f"the bytes of {name}:{version} are gone from {source}")
        return target
