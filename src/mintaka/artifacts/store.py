"""A content-addressed artifact store on the local file system.

Each artifact lives in ``<root>/sha256/<aa>/<hex>/`` beside its ``MANIFEST.json``. It is written
to a temporary directory, every file and directory fsync'd, and renamed into place in one atomic
step, before any store row refers to it: a crash leaves either no artifact or a whole one, and a
stray temporary directory that the next ingest sweeps away.

Whatever looks at, writes, repairs or takes out one digest's entry does so under that digest's
lock, ``<root>/locks/<hex>`` (an empty file, kept): ingests of the same bytes, in this process or
another, take turns, while ingests of different bytes never wait for each other; ``verify``
holds it shared. In a store where the lock file cannot be made (read-only), an ingest of bytes
stored already writes nothing and takes no lock; ``verify`` makes no lock file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from mintaka.artifacts.digest import Manifest, ManifestEntry, copy_hashed, manifest_of
from mintaka.errors import IntegrityError, NotFound, StoreError, ValidationError
from mintaka.files import (
    file_lock,
    fsync_directory,
    make_removable,
    newest_change,
    remove_entry,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "MANIFEST.json"
CONTENT_DIR = "content"
LOCKS_DIR = "locks"


@dataclass(frozen=True)
class StoredArtifact:
    digest: str
    path: Path
    manifest: Manifest

    @cached_property
    def uri(self) -> str:
        return self.path.as_uri()

    @cached_property
    def content(self) -> Path:
        """The directory holding the artifact's files under their original relative paths."""
        return self.path / CONTENT_DIR


def _place(tmp: Path, final: Path, attempts: int = 8) -> None:
    """Rename the verified copy ``tmp`` to ``final``, unless another writer stored the same bytes
    there first. An ingest repairing a damaged copy moves ``final`` aside for a moment, so a
    rename that failed on an existing ``final`` may find it gone: it is tried again."""
    for _ in range(attempts):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if final.exists():
                shutil.rmtree(tmp, ignore_errors=True)  # another writer stored the same bytes
                return
    os.rename(tmp, final)  # one last time, its error raised


def _copy_content(source: Path, content: Path, manifest: Manifest) -> None:
    """Copy the files of ``manifest`` from ``source`` (a file or directory) into ``content``.
    The bytes are hashed as they are written, so the copy is what was hashed: a source that
    changed since its manifest was taken (a file rewritten, removed, or replaced by a directory
    or a special file such as a named pipe) is an ``IntegrityError``."""
    changed = IntegrityError(
        f"artifact {source} changed while it was being copied; nothing was stored"
    )
    single = source.is_file()
    copied = []
    for entry in manifest.entries:
        target = content / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            size, sha = copy_hashed(source if single else source / entry.path, target)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValidationError):
            raise changed from None
        copied.append(ManifestEntry(entry.path, size, sha))
    if Manifest(tuple(copied)).digest != manifest.digest:
        raise changed


def _durable_mkdir(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each new entry made durable in the
    directory holding it: an artifact renamed into a new prefix directory must not be lost
    with that directory's entry in a crash."""
    created = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for new in created:
        fsync_directory(new.parent)


def _directories(content: Path, manifest: Manifest) -> list[Path]:
    """``content`` and every directory under it that holds a file of ``manifest``, directly or
    below: the directories whose entries must be made durable for the copy to survive a crash
    whole, deepest first."""
    found = {content}
    for entry in manifest.entries:
        depth = len(PurePosixPath(entry.path).parts) - 1  # the directories the file is under
        found.update((content / entry.path).parents[:depth])
    return sorted(found, key=lambda d: len(d.parts), reverse=True)


def _identity(path: str | Path) -> tuple[int, int] | None:
    """Which directory entry ``path`` is now (device and inode, links not followed), or None
    when nothing is there: a copy another writer renamed into place has a new identity."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = os.path.join(self.root, "sha256")

    @property
    def _staging(self) -> Path:
        """Where ingests copy and removals park bytes; what is left there, ``sweep`` removes."""
        return self.root / "tmp"

    def _final(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "sha256" / hexdigest[:2] / hexdigest

    def locked(
        self, digest: str, *, shared: bool = False, wait: bool = True, create: bool = True
    ) -> AbstractContextManager[bool]:
        """Hold the lock of ``digest``'s entry (see :func:`mintaka.files.file_lock`): an ingest
        holds it from its look at a stored copy until its own copy is in place, a sweep while
        it takes the entry out, ``verify`` (``shared``) while it reads the bytes. Yields whether
        it is held (without ``wait``: False while another holds it). Without ``create``, a lock
        file not made yet is FileNotFoundError: nobody holds it."""
        hexdigest = digest.removeprefix("sha256:")
        locks = self.root / LOCKS_DIR
        # One stat: a lock directory (or store root) made, or made again after it was removed,
        # is made durable as an ingest's directories are.
        if create and not os.path.isdir(locks):
            _durable_mkdir(locks)
        return file_lock(locks / hexdigest, shared=shared, wait=wait, create=create, mode=0o644)

    def stored_at(self, digest: str) -> float | None:
        """When ``digest`` was stored or last ingested (as ``objects`` says); None when it is
        not in the store."""
        try:
            return os.stat(self._final(digest)).st_mtime
        except FileNotFoundError:
            return None

    def ingest(self, source: Path, manifest: Manifest | None = None) -> StoredArtifact:
        """Copy ``source`` (a file or directory) into the store; idempotent per digest. An
        ingest of the same bytes under way, here or in another process, is waited for: its
        copy is then found stored (and checked) rather than copied again."""
        source = Path(source)
        manifest = manifest or manifest_of(source)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.locked(manifest.digest))
            except OSError as exc:  # NotALockFile included, raised: it has no errno
                if exc.errno not in (errno.EACCES, errno.EROFS):
                    raise
                return self._stored_in_a_store_not_written(manifest, exc)
            return self._ingest(source, manifest)

    def _stored_in_a_store_not_written(self, manifest: Manifest, cause: OSError) -> StoredArtifact:
        """The stored copy of ``manifest``'s bytes, for an ingest that cannot make the digest's
        lock file (a read-only store, one made before digests had locks): nothing is written,
        so none is needed, once the copy verifies. Bytes not stored, or not stored whole,
        cannot be stored here: a ``StoreError`` naming the store, before any write."""
        try:
            return self._verify(manifest.digest)
        except (IntegrityError, NotFound) as exc:
            problem = str(exc)
        raise StoreError(
            f"the artifact store at {self.root} cannot be written ({cause.strerror or cause}), "
            f"and it does not hold artifact {manifest.digest} whole: {problem}"
        ) from None

    def _ingest(self, source: Path, manifest: Manifest) -> StoredArtifact:
        """``ingest``, under the digest's lock."""
        hexdigest = manifest.digest.removeprefix("sha256:")
        existing = os.path.join(self._objects, hexdigest[:2], hexdigest)
        damaged: tuple[int, int] | None = None
        if os.path.exists(existing):
            # Stored already, perhaps as an orphan: its new age keeps ``sweep`` off it while
            # this ingest's registration commits. Swept away in between: stored again below.
            # Its bytes are checked first: a copy changed or damaged on disk is replaced with
            # the caller's, which match the digest, before any row can point at it.
            try:
                os.utime(existing)
                self._verify(manifest.digest)
                return StoredArtifact(manifest.digest, Path(existing), manifest)
            except (IntegrityError, NotFound) as exc:
                log.warning(
                    "replacing stored artifact %s with the bytes of %s: %s",
                    manifest.digest,
                    source,
                    exc,
                )
                damaged = _identity(existing)
            except FileNotFoundError:
                pass
        final = self._final(manifest.digest)
        staging = self._staging
        _durable_mkdir(staging)
        tmp = Path(tempfile.mkdtemp(prefix="ingest-", dir=staging))
        try:
            content = tmp / CONTENT_DIR
            _copy_content(source, content, manifest)
            (tmp / MANIFEST_NAME).write_text(
                json.dumps({"digest": manifest.digest, "files": manifest.to_json()}, indent=1)
            )
            with (tmp / MANIFEST_NAME).open("rb") as handle:
                os.fsync(handle.fileno())
            for directory in _directories(content, manifest):
                fsync_directory(directory)
            fsync_directory(tmp)
            _durable_mkdir(final.parent)
            if damaged is not None and not self._park_damaged(manifest.digest, damaged):
                shutil.rmtree(tmp, ignore_errors=True)
                return StoredArtifact(manifest.digest, final, manifest)
            _place(tmp, final)
            fsync_directory(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return StoredArtifact(manifest.digest, final, manifest)

    def _park_damaged(self, digest: str, damaged: tuple[int, int]) -> bool:
        """Move the damaged copy of ``digest`` (the entry ``damaged`` identifies) into the
        staging area, where ``sweep`` removes it; whether the caller's copy must be placed.

        The caller holds the digest's lock, so no other ingest of this Mintaka repairs it
        meanwhile; one that takes no lock (an older Mintaka sharing the store) may have: a copy
        with a new identity is that writer's, perhaps registered already, and is never moved
        away once it verifies (the caller's copy is not needed then)."""
        final = self._final(digest)
        current = _identity(final)
        if current is None:
            return True
        if current != damaged:
            with contextlib.suppress(IntegrityError, NotFound):
                self._verify(digest)
                return False
        parked: str | None = None
        try:
            make_removable(final)
            parked = tempfile.mkdtemp(prefix="damaged-", dir=self._staging)
            os.rename(final, parked)
        except OSError as exc:
            if parked is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(parked)
            if isinstance(exc, FileNotFoundError):  # taken away meanwhile: nothing to move
                return True
            raise IntegrityError(
                f"the damaged copy of artifact {digest} at {final} cannot be moved aside to be "
                f"replaced: {exc.strerror or exc}"
            ) from None
        return True

    def check(self, stored: StoredArtifact) -> StoredArtifact:
        """``stored`` (as ``ingest`` returned it), once it is known to be in this store under its
        digest: a stat, the bytes are not read again (``verify`` does that)."""
        hexdigest = stored.digest.removeprefix("sha256:")
        final = os.path.join(self._objects, hexdigest[:2], hexdigest)
        if stored.manifest.digest != stored.digest or os.fspath(stored.path) != final:
            raise ValidationError(f"artifact {stored.digest} is not one this store holds")
        if not self.exists(stored.digest):
            raise NotFound(f"artifact {stored.digest} is not in the store at {self.root}")
        return stored

    def get(self, digest: str) -> StoredArtifact:
        final = self._final(digest)
        manifest_file = final / MANIFEST_NAME
        try:
            present = manifest_file.exists()
        except OSError as exc:  # its directory cannot be searched: its bytes are not known
            raise IntegrityError(f"artifact {digest} cannot be read: {exc.strerror}") from None
        if not present:
            raise NotFound(f"artifact {digest} is not in the store at {self.root}")
        try:
            data = json.loads(manifest_file.read_text(encoding="utf-8"))
            manifest = Manifest(tuple(ManifestEntry(**entry) for entry in data["files"]))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IntegrityError(f"artifact {digest} has a malformed manifest: {exc}") from None
        return StoredArtifact(digest, final, manifest)

    def verify(self, digest: str) -> StoredArtifact:
        """Recompute the digest of the stored bytes; ``IntegrityError`` when they changed, are
        no longer plain files or cannot be read, ``NotFound`` when they are gone.

        It holds the digest's lock, shared, so it waits for an ingest storing or repairing the
        entry rather than find it half way; a lock file not made yet (a store made before
        digests had locks, perhaps read-only) is held by nobody, and none is made."""
        with contextlib.ExitStack() as held:
            with contextlib.suppress(FileNotFoundError):  # no lock file: nobody holds it
                held.enter_context(self.locked(digest, shared=True, create=False))
            return self._verify(digest)

    def _verify(self, digest: str) -> StoredArtifact:
        """``verify``, under the digest's lock (or where no lock file was ever made)."""
        stored = self.get(digest)
        if not os.path.lexists(stored.content):
            raise NotFound(f"artifact {digest} has lost its content at {stored.content}")
        try:
            actual = manifest_of(stored.content)
        except ValidationError as exc:  # emptied, a link or a special file put in its place
            raise IntegrityError(
                f"artifact {digest} does not match its stored bytes: {exc}"
            ) from None
        except OSError as exc:  # unreadable bytes are not known to be the artifact's
            raise IntegrityError(
                f"artifact {digest}'s stored bytes cannot be read: {exc}"
            ) from None
        # A single-file artifact is stored under its own name; compare entry by entry.
        if actual.to_json() != stored.manifest.to_json() or stored.manifest.digest != digest:
            raise IntegrityError(f"artifact {digest} does not match its stored bytes")
        return stored

    def objects(self) -> Iterator[tuple[str, float]]:
        """Every artifact in the store: its digest and when it was stored (or last ingested)."""
        if not os.path.isdir(self._objects):
            return
        for prefix in sorted(os.listdir(self._objects)):
            folder = os.path.join(self._objects, prefix)
            if len(prefix) != 2 or not os.path.isdir(folder):
                continue
            for hexdigest in sorted(os.listdir(folder)):
                if not hexdigest.startswith(prefix):
                    continue
                try:
                    modified = os.stat(os.path.join(folder, hexdigest)).st_mtime
                except FileNotFoundError:  # taken out of the store meanwhile
                    continue
                yield f"sha256:{hexdigest}", modified

    def exists(self, digest: str) -> bool:
        """Whether the store holds ``digest`` now (a stat: registration asks on its hot path)."""
        hexdigest = digest.removeprefix("sha256:")
        return os.path.exists(os.path.join(self._objects, hexdigest[:2], hexdigest, MANIFEST_NAME))

    def why_not_detachable(self, digest: str) -> str | None:
        """Why ``detach`` cannot take ``digest``'s entry out, or None when it can (or the entry
        is gone): the directory holding it (``sha256/<aa>``) or the staging area cannot be
        written, or its own directory lacks the write bit (which moving a directory needs) and
        belongs to another user. Nothing is written: a dry run asks it too."""
        final = self._final(digest)
        try:
            status = os.lstat(final)
        except FileNotFoundError:
            return None
        staging = self._staging
        holders = [final.parent, staging if os.path.isdir(staging) else self.root]
        for holder in holders:
            if not os.access(holder, os.R_OK | os.W_OK | os.X_OK):
                return f"{holder} cannot be written"
        if (
            stat.S_ISDIR(status.st_mode)
            and status.st_uid != os.geteuid()
            and not os.access(final, os.W_OK)
        ):
            return f"{final} cannot be written, and it belongs to another user"
        return None

    def detach(self, digest: str) -> Path | None:
        """Take an artifact out of the store in one step (it is whole or gone): renamed into the
        staging area; returns that directory for the caller to delete with
        :func:`mintaka.files.remove_entry` (what is left there, say after a crash, ``sweep``
        removes), or None when the artifact was not in the store. The caller holds the digest's
        lock (``locked``). An ``OSError`` (see ``why_not_detachable``) leaves the entry and the
        staging area as they were.

        A damaged copy locked down has its own directory given back its owner's write bit,
        which moving it needs; its tree is not walked here (the caller holds locks meanwhile),
        ``remove_entry`` gives the rest back when it deletes it."""
        final = self._final(digest)
        if not final.exists():
            return None
        problem = self.why_not_detachable(digest)
        if problem is not None:
            raise PermissionError(errno.EACCES, problem, str(final))
        staging = self._staging
        _durable_mkdir(staging)
        mode = stat.S_IMODE(os.lstat(final).st_mode)
        doomed: Path | None = None
        try:
            if mode & stat.S_IRWXU != stat.S_IRWXU:
                os.chmod(final, mode | stat.S_IRWXU)
            doomed = Path(tempfile.mkdtemp(prefix="remove-", dir=staging))
            os.rename(final, doomed / "object")
        except BaseException:
            if doomed is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(doomed)
            with contextlib.suppress(OSError):
                os.chmod(final, mode)
            raise
        fsync_directory(final.parent)
        return doomed

    def reattach(self, digest: str, detached: Path) -> None:
        """Put back what ``detach`` took out (a sweep that failed before it was recorded),
        under the digest's lock; unless an ingest stored the same bytes again meanwhile: that
        copy stays, and the detached one goes."""
        final = self._final(digest)
        with self.locked(digest):
            if not os.path.lexists(final):
                _durable_mkdir(final.parent)
                os.rename(detached / "object", final)
                fsync_directory(final.parent)
        remove_entry(detached)

    def sweep(self, min_age_seconds: float = 3600.0, *, dry_run: bool = False) -> int:
        """Remove what interrupted ingests left in the staging area (their directories, and any
        stray file or link, which goes by its own age: what it points at is never looked at);
        returns how many entries it removed, not counting one it could not, or (``dry_run``)
        how many are old enough to go, removing nothing.

        Only entries in which nothing changed for ``min_age_seconds`` go, so an ingest
        still running in another process keeps its staging directory: one copying a large file
        for longer than that touches only that file, not the directories above it. A file whose
        modification time lies in the future (copied in with a skewed clock's timestamps) is as
        old as its last status change instead, so it goes in time too.
        """
        staging = self._staging
        if not staging.exists():
            return 0
        removed = 0
        now = time.time()
        cutoff = now - min_age_seconds
        for child in staging.iterdir():
            try:
                newest = newest_change(child, now)
            except OSError as exc:  # one entry that cannot be read keeps no other from going
                log.warning("left %s in the staging area, its age cannot be read: %s", child, exc)
                continue
            if newest is None:  # renamed into place (or deleted) meanwhile
                continue
            if newest > cutoff:
                continue
            if dry_run or ((claimed := self._claim(child)) and remove_entry(claimed)):
                removed += 1
        return removed

    def _claim(self, entry: Path) -> Path | None:
        """Rename the staging ``entry`` to a new name of its own in the staging area, in one
        step, so that only one of several sweeps removes and counts it; its new path, or None
        when the entry is gone (another sweep took it) or cannot be moved.

        It gets a new modification time before it is renamed: a sweep that finds it under its
        new name finds it new, and leaves it, rather than claim it again (and both count it)
        from an age read in between. Nothing is created: a sweep run to free a full disk must
        be able to claim what it removes. A claimed entry left by a crash goes, as any staging
        entry, once it is old."""
        claim = self._staging / f"sweep-{secrets.token_hex(16)}"
        try:
            os.utime(entry, follow_symlinks=False)
            os.rename(entry, claim)
        except FileNotFoundError:  # taken by another sweep, before or after the new age
            return None
        except OSError as exc:
            log.warning("left %s in the staging area, it cannot be moved: %s", entry, exc)
            return None
        return claim
