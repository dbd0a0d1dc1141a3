"""Artifact digests: sha256 over a manifest of every file's relative path, size and sha256.

A single file and a directory holding only that file under the same name have the same digest:
the manifest names a directory's files by their paths relative to it, and a single file by its
name, so a directory fetched back from a cloud matches the file registered before. The digest is
``sha256:`` followed by the hex sha256 of the manifest's RFC 8785 canonical JSON, so any tool can
recompute it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

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
        from mintaka.audit.chain import canonical_bytes  # its module loads SQLAlchemy

        return canonical_bytes({"files": self.to_json(), "format": "mintaka-manifest/1"})

    @cached_property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical()).hexdigest()


def file_sha256(path: Path) -> str:
    return sized_sha256(path)[1]


def _open_regular(path: Path) -> int:
    """A descriptor reading the regular file ``path``. It is opened without waiting (a named
    pipe put in its place would block the open, and every read, for a writer that never comes)
    and checked to be a regular file: anything else is a ``ValidationError``, a directory an
    ``IsADirectoryError`` as for any read of one."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            raise ValidationError(f"{path} is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sized_sha256(path: Path) -> tuple[int, str]:
    """The size and sha256 of the bytes read from ``path``, in one pass.

    A file that fits in one chunk is read with one system call (a short read is the end of a
    regular file); a larger one, or one that grew since it was measured, chunk by chunk.
    """
    digest = hashlib.sha256()
    fd = _open_regular(path)
    try:
        expected = os.fstat(fd).st_size
        size = 0
        want = expected + 1 if expected < CHUNK else CHUNK
        while chunk := os.read(fd, want):
            digest.update(chunk)
            size += len(chunk)
            want = CHUNK
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def copy_hashed(origin: Path, target: Path, *, sync: bool = True) -> tuple[int, str]:
    """Copy ``origin`` to ``target`` (fsync'd when ``sync``); the size and sha256 of the bytes
    written, hashed as they are written: the copy holds exactly the bytes hashed, whatever
    happens to ``origin`` during or after the copy. An ``origin`` that is no longer a regular
    file is a ``ValidationError``, never waited on."""
    digest = hashlib.sha256()
    size = 0
    with (
        open(_open_regular(origin), "rb", buffering=0) as source,
        open(target, "wb", buffering=0) as sink,
    ):
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[sink.write(view) :]
            size += len(chunk)
        if sync:
            os.fsync(sink.fileno())
    return size, digest.hexdigest()


def _mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return 0


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _tree(root: Path) -> list[Path]:
    """Every path below the directory ``root`` (symbolic links listed, never followed). A
    directory that cannot be listed is a ValidationError: left out, its files would silently be
    missing from the artifact (``Path.rglob`` skips it)."""

    def refuse(error: OSError) -> None:
        raise ValidationError(
            f"artifact directory {error.filename} cannot be read: {error.strerror}"
        )

    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(root, onerror=refuse):
        found.extend(Path(directory, name) for name in (*dirnames, *filenames))
    return found


def manifest_of(path: Path) -> Manifest:
    """The manifest of a file or of every regular file under a directory, sorted by path."""
    path = Path(path)
    mode = _mode(path)
    if stat.S_ISLNK(mode):
        raise ValidationError(f"artifact {path} is a symbolic link; pass the real path")
    if stat.S_ISREG(mode):
        files = [(path.name, path)]
    elif stat.S_ISDIR(mode):
        files = []
        for child in sorted(_tree(path)):
            child_mode = _mode(child)
            if stat.S_ISLNK(child_mode):
                raise ValidationError(f"artifact contains a symbolic link: {child}")
            if stat.S_ISREG(child_mode):
                files.append((child.relative_to(path).as_posix(), child))
            elif not stat.S_ISDIR(child_mode):  # a FIFO, socket or device: no bytes to keep
                raise ValidationError(f"artifact contains {_kind(child_mode)}: {child}")
    elif mode == 0:
        raise ValidationError(f"artifact path does not exist: {path}")
    else:
        raise ValidationError(f"artifact {path} is {_kind(mode)}, not a file or directory")
    if not files:
        raise ValidationError(f"artifact directory {path} holds no files")
    for rel, file in files:
        try:
            rel.encode("utf-8")  # names are kept as UTF-8 text in the manifest
        except UnicodeEncodeError:
            raise ValidationError(
                f"artifact file name is not valid UTF-8: {os.fsencode(file)!r}; rename it"
            ) from None
    return Manifest(tuple(ManifestEntry(rel, *sized_sha256(file)) for rel, file in files))
