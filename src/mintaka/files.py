"""Local files: the path a ``file:`` URI names, when a file tree last changed and how to remove
one whatever its permissions (what the sweeps of staging areas and checked copies judge age by
and remove with), a lock on a file that processes (and threads) take in turns, and writing a
file atomically, so that a reader sees the old content or the new, never a part of either.

The bytes go to a temporary file of a name of its own in the target's directory, which then
replaces the target in one ``os.replace``. Two writers of the same target never share a temporary
file (the last to finish wins); a write that fails leaves the old target as it was and no
temporary file behind. ``durable`` (the default) also fsyncs the file before the rename and the
directory after it, so the new content survives a crash once the call returns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO, overload
from urllib.parse import unquote, urlparse

from mintaka.errors import NotALockFile

FUTURE_SKEW_SECONDS = 60.0  # a modification time later than now by more is not a real one
_NAME_ATTEMPTS = 100
_STEM_BYTES = 200


def file_path(uri: str) -> Path | None:
    """The local path a ``file:`` URI names, its percent-encoding decoded (``Path.as_uri``
    writes a space as ``%20``); ``None`` for a URI of any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def write_atomic(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (text in the default encoding, or bytes) atomically."""
    if isinstance(data, bytes):
        with open_atomic(path, "wb", durable=durable) as binary:
            binary.write(data)
    else:
        with open_atomic(path, "w", durable=durable) as text:
            text.write(data)


@overload
def open_atomic(
    path: Path,
    mode: Literal["w"] = "w",
    *,
    durable: bool = True,
    encoding: str | None = None,
    newline: str | None = None,
) -> AbstractContextManager[TextIO]: ...


@overload
def open_atomic(
    path: Path, mode: Literal["wb"], *, durable: bool = True
) -> AbstractContextManager[BinaryIO]: ...


@contextmanager
def open_atomic(
    path: Path,
    mode: Literal["w", "wb"] = "w",
    *,
    durable: bool = True,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[Any]:
    """A file to write that replaces ``path`` atomically when the ``with`` block ends without
    an error, for output that is streamed rather than held whole (``write_atomic`` otherwise).

    An error in the block, or in writing, leaves ``path`` untouched and removes the temporary
    file. A missing parent directory is created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = _create_temporary(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """Make the entries of directory ``path`` (a file created, renamed or removed) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path`` under an unused random name, opened for writing.

    This is what ``tempfile.mkstemp`` does, except that the file is created with the usual
    permissions (``0o666`` less the umask) rather than ``0o600``, since it becomes ``path``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    # The target's name, cut so that the temporary one (22 bytes longer) still fits in a
    # directory entry of 255 bytes.
    stem = os.fsdecode(os.fsencode(path.name)[:_STEM_BYTES])
    for _ in range(_NAME_ATTEMPTS):
        candidate = path.with_name(f".{stem}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def _changed_at(status: os.stat_result, now: float) -> float:
    """When the entry ``status`` describes last changed: its modification time, unless that is
    later than ``now`` (beyond a clock's small skew), as a copy keeping a skewed clock's
    timestamps leaves it; then its status change time, which only the kernel sets."""
    if status.st_mtime <= now + FUTURE_SKEW_SECONDS:
        return status.st_mtime
    return status.st_ctime


def newest_change(path: Path, now: float) -> float | None:
    """When ``path`` or anything under it last changed (see ``_changed_at``; links not
    followed, ``path`` itself neither: a link's age is its own), or None when ``path`` is gone;
    an entry removed while it is looked at is left out. Any other error (a directory that
    cannot be listed or searched) is raised: the age of what is in it is not known."""

    def unknown(error: OSError) -> None:
        if not isinstance(error, FileNotFoundError | NotADirectoryError):
            raise error

    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    newest = _changed_at(status, now)
    if not stat.S_ISDIR(status.st_mode):
        return newest
    for directory, dirnames, filenames in os.walk(path, onerror=unknown):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(FileNotFoundError):
                found = os.lstat(os.path.join(directory, name))
                newest = max(newest, _changed_at(found, now))
    return newest


def make_removable(path: Path) -> None:
    """Give the directory ``path`` and every directory under it (links not followed) the
    owner's read, write and search permission, which moving it and removing its tree need: a
    tree made read-only or unsearchable (a damaged stored copy, a copy a tool locked down) must
    still go. Nothing when ``path`` is not a directory."""
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return
    _owner_rwx(path)
    for directory, dirnames, _ in os.walk(path):
        for name in dirnames:  # before os.walk goes into it
            with contextlib.suppress(FileNotFoundError):
                _owner_rwx(Path(directory, name))


def _owner_rwx(directory: Path) -> None:
    """Add the owner's read, write and search bits to ``directory`` (not a link) if missing."""
    status = os.lstat(directory)
    wanted = stat.S_IMODE(status.st_mode) | stat.S_IRWXU
    if stat.S_ISDIR(status.st_mode) and wanted != stat.S_IMODE(status.st_mode):
        os.chmod(directory, wanted)


def remove_entry(path: Path) -> bool:
    """Remove what is at ``path``, a directory (its tree, made removable first), a file or a
    link (never followed); whether it is gone now. The sweeps of staging areas and checked
    copies use it: what cannot be removed stays, uncounted, rather than fail the sweep."""
    if os.path.isdir(path) and not os.path.islink(path):
        with contextlib.suppress(OSError):  # like rmtree's: what stays is not counted
            make_removable(path)
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):  # like rmtree's: what stays is not counted
            os.unlink(path)
    return not os.path.lexists(path)


@contextmanager
def file_lock(
    path: Path,
    *,
    shared: bool = False,
    wait: bool = True,
    create: bool = True,
    mode: int = 0o600,
) -> Iterator[bool]:
    """Hold an ``flock`` on the file ``path`` for the ``with`` block, exclusive (or ``shared``),
    against every other holder, in another process or another thread of this one. Yields
    whether the lock is held: always True when ``wait`` (the default: wait for the holders to
    let go); without waiting, False at once when another holds it, and the block runs unlocked.

    The lock file is created with ``mode`` (less the umask) and any missing parent directory,
    unless ``create`` is False (then a missing file is ``FileNotFoundError``). It is opened for
    writing when the lock is exclusive and this process may write it (see ``_open_lock_file``),
    else read-only, never through a symbolic link and without waiting on a named pipe; what is
    there but a plain file is ``NotALockFile``. The lock ends when the block does, an error in
    it included, or with the process holding it: a process that dies holds nothing off. Its
    descriptor is closed in a program a child process executes, but a child ``fork``ed while
    the block runs (``multiprocessing``'s fork start method) shares the lock, which ``flock``
    cannot prevent: it is held, past the block, until that child exits or executes another
    program.
    """
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    if create:
        flags |= os.O_CREAT
    try:
        try:
            descriptor = _open_lock_file(path, flags, shared=shared, mode=mode)
        except FileNotFoundError:
            if not create:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = _open_lock_file(path, flags, shared=shared, mode=mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotALockFile(f"the lock file {path} is a symbolic link") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # a directory; a socket (never opened)
            raise NotALockFile(f"the lock file {path} is not a plain file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotALockFile(f"the lock file {path} is not a plain file")
        operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(descriptor, operation if wait else operation | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:  # only without waiting
            held = False
        yield held
    finally:
        os.close(descriptor)


def _open_lock_file(path: Path, flags: int, *, shared: bool, mode: int) -> int:
    """Open the lock file ``path`` read-only for a shared lock and read-write for an exclusive
    one: where ``flock`` is emulated with ``fcntl`` locks (NFS, CIFS) an exclusive lock needs
    the file open for writing. A lock file this process may not write (another user's, or on
    a read-only file system) is opened read-only, which a local ``flock`` needs no more."""
    if shared:
        return os.open(path, flags | os.O_RDONLY, mode)
    try:
        return os.open(path, flags | os.O_RDWR, mode)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EROFS):
            raise
    return os.open(path, flags | os.O_RDONLY, mode)
