"""What the artifact store holds, checked against what the control-plane store records.

An artifact is *recorded* when a registration wrote its ``artifacts`` row or a model version
names its digest. ``verify`` re-reads and re-hashes the bytes of every recorded artifact (or of
the digests asked for) and reports each one that is missing or no longer matches its digest,
with the versions that use it. Bytes in the store that nothing records are *orphans*: a
registration refused after its artifact was stored, or an ``ingest`` never registered. They are
reported, and ``sweep(orphans=True)`` removes those older than a minimum age (so a registration
still on its way to committing keeps its bytes), under the store's write lock, with an audit
event naming every digest removed; one that an ingest is at, or that was ingested again since
the sweep chose it, stays (each is decided under its digest's lock).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from mintaka.errors import IntegrityError, NotFound, ValidationError
from mintaka.files import remove_entry

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mintaka.artifacts.store import ArtifactStore
    from mintaka.platform import Platform

log = logging.getLogger(__name__)

SWEEP_ACTION = "artifacts.sweep"
DEFAULT_MIN_AGE_SECONDS = 3600.0
STAGING_MIN_AGE_SECONDS = 3600.0  # interrupted ingests: never younger, whatever min_age says

Progress = Callable[[int, int, str], None]
"""Called after each artifact checked: ``(done, total, digest)``."""


class Problem(StrEnum):
    MISSING = "missing"  # recorded, but its bytes are not in the store
    CORRUPT = "corrupt"  # in the store, but its bytes no longer hash to its digest


@dataclass(frozen=True)
class RecordedArtifact:
    """An artifact the control-plane store records: its row (when registration wrote one) and
    the versions (``NAME:VERSION``) that use it."""

    digest: str
    size: int | None
    files: int | None
    created_at: str | None
    versions: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    digest: str
    problem: Problem
    detail: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    findings: tuple[Finding, ...]
    orphans: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class SweepReport:
    staging_removed: int  # interrupted ingests removed (in a dry run: that would go)
    orphans_removed: tuple[str, ...]
    orphans_kept: tuple[str, ...]  # too young, an ingest is at them, or they cannot be moved
    dry_run: bool


MIN_PREFIX = 12  # hex digits of a digest that name an artifact, as the CLI's tables show them


def _resolve(asked: str, known: Iterable[str]) -> str:
    """The recorded digest that ``asked`` names: the whole digest, or a unique prefix of at least
    ``MIN_PREFIX`` hex digits (``sha256:`` optional)."""
    hexdigest = asked.removeprefix("sha256:")
    well_formed = all(c in "0123456789abcdef" for c in hexdigest)
    if not well_formed or not MIN_PREFIX <= len(hexdigest) <= 64:
        raise ValidationError(
            f"not an artifact digest (sha256: and {MIN_PREFIX} to 64 lowercase hex digits): "
            f"{asked!r}"
        )
    found = [d for d in known if d.startswith("sha256:" + hexdigest)]
    if not found:
        raise NotFound(f"no artifact recorded with digest {asked}")
    if len(found) > 1:
        raise ValidationError(f"{asked} names {len(found)} artifacts; give more of the digest")
    return found[0]


def _recorded(conn: Connection) -> list[RecordedArtifact]:
    from mintaka.store.engine import Sql

    sql = Sql(conn)
    rows = {
        digest: (size, files, created_at)
        for digest, size, files, created_at in sql.rows(
            "SELECT digest, size, files, created_at FROM artifacts"
        )
    }
    versions: dict[str, list[tuple[str, int]]] = {}
    for name, version, digest in sql.rows(
        "SELECT name, version, artifact_digest FROM model_versions"
    ):
        versions.setdefault(digest, []).append((name, int(version)))
    return [
        RecordedArtifact(
            digest,
            *rows.get(digest, (None, None, None)),
            versions=tuple(f"{n}:{v}" for n, v in sorted(versions.get(digest, []))),
        )
        for digest in sorted(set(rows) | set(versions))
    ]


def recorded(platform: Platform) -> list[RecordedArtifact]:
    """Every recorded artifact, by digest."""
    with platform.store.read() as conn:
        return _recorded(conn)


def verify(
    platform: Platform, digests: Sequence[str] = (), progress: Progress | None = None
) -> VerifyReport:
    """Re-hash the bytes of ``digests`` (default: every recorded artifact) and report each one
    that is missing or changed. A digest may be given by a unique prefix; one that nothing records
    is ``NotFound``. Orphans are listed when every recorded artifact was checked."""
    with platform.store.read() as conn:
        everything = _recorded(conn)
    known = {a.digest: a for a in everything}
    asked = list(dict.fromkeys(_resolve(d, known) for d in digests))
    targets = [known[d] for d in asked] if asked else everything
    findings = []
    for done, artifact in enumerate(targets, 1):
        try:
            platform.artifacts.verify(artifact.digest)
        except NotFound as exc:
            findings.append(Finding(artifact.digest, Problem.MISSING, str(exc), artifact.versions))
        except IntegrityError as exc:
            findings.append(Finding(artifact.digest, Problem.CORRUPT, str(exc), artifact.versions))
        if progress is not None:
            progress(done, len(targets), artifact.digest)
    orphans: tuple[str, ...] = ()
    if not asked:
        orphans = tuple(d for d, _ in platform.artifacts.objects() if d not in known)
    return VerifyReport(len(targets), tuple(findings), orphans)


def _check_min_age(min_age_seconds: float) -> None:
    """Refuse a minimum age that is negative or not a finite number of seconds: a NaN cutoff
    compares false with every age, so it would take staging directories still being written
    and keep every orphan."""
    if not math.isfinite(min_age_seconds) or min_age_seconds < 0:
        raise ValidationError(
            f"the minimum age must be a finite, non-negative number of seconds, "
            f"got {min_age_seconds}"
        )


def sweep(
    platform: Platform,
    *,
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
    orphans: bool = False,
    dry_run: bool = False,
) -> SweepReport:
    """Remove staging directories left by interrupted ingests (older than an hour, or
    ``min_age_seconds`` when longer) and (``orphans``) stored bytes that nothing records, older
    than ``min_age_seconds``.

    Orphans are chosen again under the store's write lock, so no registration can commit a row
    for one while it goes, and their removal is audited in the same transaction; one an ingest
    is at, or ingested again since, stays (see ``_settle``). A dry run makes the same choice.
    """
    _check_min_age(min_age_seconds)
    store = platform.artifacts
    # A staging directory may be an ingest still copying in another process: an hour at least.
    staging = store.sweep(max(min_age_seconds, STAGING_MIN_AGE_SECONDS), dry_run=dry_run)
    if not orphans:
        return SweepReport(staging, (), (), dry_run)
    cutoff = time.time() - min_age_seconds
    if dry_run:  # the same choice as a real sweep's, the bytes left where they are
        with platform.store.read() as conn:
            old, young = _orphans(conn, store.objects(), cutoff)
            removed, kept = _settle(store, old, cutoff, take=None)
        return SweepReport(staging, removed, _sorted(young, kept), dry_run)
    # Under the write lock the orphans are only renamed aside (quick, whatever their size), so
    # registrations wait for no deletion; the bytes are deleted once the sweep is committed.
    # A sweep that fails before it is recorded puts everything back.
    detached: list[tuple[str, Path]] = []

    def take(digest: str) -> None:
        doomed = store.detach(digest)
        if doomed is not None:
            detached.append((digest, doomed))

    try:
        with platform.store.write() as conn:
            old, young = _orphans(conn, store.objects(), cutoff)
            removed, kept = _settle(store, old, cutoff, take)
            if not removed:
                return SweepReport(staging, (), _sorted(young, kept), dry_run)
            event = platform._audit(
                conn,
                SWEEP_ACTION,
                "artifacts",
                removed=list(removed),
                min_age_seconds=min_age_seconds,
            )
    except BaseException:
        for digest, doomed in detached:
            store.reattach(digest, doomed)
        raise
    platform._after_commit([event])
    for _digest, doomed in detached:
        remove_entry(doomed)
    return SweepReport(staging, removed, _sorted(young, kept), dry_run)


def _sorted(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(digest for group in groups for digest in group))


def _settle(
    store: ArtifactStore,
    old: Iterable[str],
    cutoff: float,
    take: Callable[[str], None] | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Of the orphans ``old`` (chosen by their age), those that go and those kept, each decided
    under its digest's lock, taken without waiting: one an ingest is at (storing, repairing or
    touching it for a registration) is kept, and so is one ingested again since it was chosen;
    one gone meanwhile is neither. ``take`` (None in a dry run) takes each one that goes out of
    the store while its lock is held. One that cannot be taken out (see
    ``ArtifactStore.why_not_detachable``) is kept, with a warning, in a dry run too. A dry run
    writes nothing, not even a lock file: one not made yet is one nobody holds."""
    removed: list[str] = []
    kept: list[str] = []
    for digest in old:
        with contextlib.ExitStack() as held:
            try:
                free = held.enter_context(store.locked(digest, wait=False, create=take is not None))
            except FileNotFoundError:  # only in a dry run
                free = True
            stored_at = store.stored_at(digest)
            if stored_at is None:
                continue
            if not free or stored_at > cutoff:
                kept.append(digest)
                continue
            problem = store.why_not_detachable(digest)
            if problem is None and take is not None:
                try:
                    take(digest)
                except OSError as exc:
                    problem = exc.strerror or str(exc)
            if problem is not None:
                log.warning("kept orphan %s, it cannot be taken out: %s", digest, problem)
                kept.append(digest)
                continue
            removed.append(digest)
    return tuple(removed), tuple(kept)


def _orphans(
    conn: Connection, objects: Iterable[tuple[str, float]], cutoff: float
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from mintaka.store.engine import Sql

    # Only the digests: this runs under the write lock.
    referenced = {
        digest
        for (digest,) in Sql(conn).rows(
            "SELECT digest FROM artifacts UNION SELECT artifact_digest FROM model_versions"
        )
    }
    old: list[str] = []
    young: list[str] = []
    for digest, modified in objects:
        if digest not in referenced:
            (old if modified <= cutoff else young).append(digest)
    return tuple(old), tuple(young)
