"""Artifact digests: sha256 over a manifest of every file's relative path, size and sha256.

A single file and a directory holding only that file under the same name have different
digests, because the manifest names the path. The digest is ``sha256:`` followed by the hex
sha256 of the manifest's RFC 8785 canonical JSON, so any tool can recompute it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import rfc8785

from mintaka.errors import ValidationError

CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in self.entries]

    def canonical(self) -> bytes:
        return bytes(rfc8785.dumps({"files": self.to_json(), "format": "mintaka-manifest/1"}))

    @cached_property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_of(path: Path) -> Manifest:
    """The manifest of a file or of every regular file under a directory, sorted by path."""
    path = Path(path)
    if path.is_symlink():
        raise ValidationError(f"artifact {path} is a symbolic link; pass the real path")
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        files = []
        for child in sorted(path.rglob("*")):
            if child.is_symlink():
                raise ValidationError(f"artifact contains a symbolic link: {child}")
            if child.is_file():
                files.append((child.relative_to(path).as_posix(), child))
    else:
        raise ValidationError(f"artifact path does not exist: {path}")
    if not files:
        raise ValidationError(f"artifact directory {path} holds no files")
    entries = tuple(
        ManifestEntry(rel, file.stat().st_size, file_sha256(file)) for rel, file in files
    )
    return Manifest(entries)
