"""``artifacts sweep --dry-run`` says exactly what the same sweep would do: the same interrupted
ingests and the same orphans, whatever else the store holds (versions' bytes, damaged copies,
entries gone meanwhile)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from unprivileged import as_a_user

from mintaka import Platform
from mintaka.artifacts import inventory
from mintaka.files import remove_entry


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def _plan_and_run(platform: Platform) -> tuple[inventory.SweepReport, inventory.SweepReport]:
    planned = inventory.sweep(platform, orphans=True, dry_run=True)
    done = inventory.sweep(platform, orphans=True)
    return planned, done


def test_a_dry_run_names_what_the_sweep_then_removes_and_keeps(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    store = platform.artifacts
    used = platform.register_model("credit", make_artifact(b"used"))
    damaged_used = platform.register_model("credit", make_artifact(b"used, damaged"))
    old = store.ingest(make_artifact(b"old orphan"))
    young = store.ingest(make_artifact(b"young orphan"))
    no_manifest = store.ingest(make_artifact(b"orphan without its manifest"))
    no_content = store.ingest(make_artifact(b"orphan without its content"))
    (no_manifest.path / "MANIFEST.json").unlink()
    shutil.rmtree(no_content.path / "content")
    damaged = store.get(damaged_used.artifact_digest)
    os.chmod(damaged.content / "model.bin", 0o644)
    (damaged.content / "model.bin").write_bytes(b"changed")
    for stored in (used.artifact_digest, damaged_used.artifact_digest, old.digest):
        _age(store.get(stored).path, 7200)
    for stored in (no_manifest, no_content):
        _age(stored.path, 7200)
    staging = store.root / "tmp"
    (staging / "ingest-interrupted").mkdir(parents=True)
    (staging / "ingest-copying").mkdir()
    (staging / "stray").write_bytes(b"x")
    (staging / "link").symlink_to(staging / "nowhere")
    for entry in ("ingest-interrupted", "stray", "link"):
        _age(staging / entry, 7200)

    planned, done = _plan_and_run(platform)
    assert planned.dry_run
    assert not done.dry_run
    assert (planned.staging_removed, planned.orphans_removed, planned.orphans_kept) == (
        done.staging_removed,
        done.orphans_removed,
        done.orphans_kept,
    )
    assert done.staging_removed == 3
    assert set(done.orphans_removed) == {old.digest, no_manifest.digest, no_content.digest}
    assert done.orphans_kept == (young.digest,)
    assert sorted(p.name for p in staging.iterdir()) == ["ingest-copying"]
    assert {f.digest for f in inventory.verify(platform).findings} == {damaged_used.artifact_digest}


def test_an_orphan_gone_before_the_sweep_takes_it_is_neither_removed_nor_audited(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = platform.artifacts
    orphan = store.ingest(make_artifact(b"orphan"))
    _age(orphan.path, 7200)
    real_objects = store.objects

    def listed_then_removed():  # type: ignore[no-untyped-def]
        listing = list(real_objects())
        shutil.rmtree(orphan.path, ignore_errors=True)  # by hand, after the listing
        return iter(listing)

    monkeypatch.setattr(store, "objects", listed_then_removed)
    planned = inventory.sweep(platform, orphans=True, dry_run=True)
    done = inventory.sweep(platform, orphans=True)
    for report in (planned, done):
        assert report.orphans_removed == ()
        assert report.orphans_kept == ()
    assert platform.audit.events(subject="artifacts") == []


def test_a_damaged_orphan_that_lost_its_write_bits_is_removed_as_the_dry_run_said(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory is moved to another one only with its own write permission (its ``..``
    changes); a process that is not root is refused without it, as this ``rename`` is."""
    store = platform.artifacts
    source = make_artifact(b"orphan")
    (source / "sub").mkdir()
    (source / "sub" / "more.bin").write_bytes(b"more")
    orphan = store.ingest(source)
    real_rename = os.rename

    def rename_as_a_user(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        status = os.lstat(src)
        if stat.S_ISDIR(status.st_mode) and not status.st_mode & stat.S_IWUSR:
            raise PermissionError(13, "Permission denied", str(src))
        return real_rename(src, dst, *args, **kwargs)

    os.chmod(orphan.content / "sub", 0o500)
    os.chmod(orphan.content, 0o500)
    os.chmod(orphan.path, 0o500)  # locked down: a damaged copy
    _age(orphan.path, 7200)
    monkeypatch.setattr(os, "rename", rename_as_a_user)
    planned, done = _plan_and_run(platform)
    assert planned.orphans_removed == done.orphans_removed == (orphan.digest,)
    assert not store.exists(orphan.digest)
    assert list((store.root / "tmp").iterdir()) == []


def test_a_dry_run_writes_nothing_not_even_a_lock_file(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    store = platform.artifacts
    orphan = store.ingest(make_artifact(b"orphan stored before digests had locks"))
    _age(orphan.path, 7200)
    shutil.rmtree(store.root / "locks")

    def tree() -> list[str]:
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))

    before = tree()
    planned = inventory.sweep(platform, orphans=True, dry_run=True)
    assert planned.orphans_removed == (orphan.digest,)
    assert tree() == before
    assert inventory.sweep(platform, orphans=True).orphans_removed == (orphan.digest,)


def test_an_orphan_whose_prefix_directory_cannot_be_written_is_kept_as_the_dry_run_said(
    home: Path, make_artifact: MakeArtifact
) -> None:
    """Moving an entry out of ``sha256/<aa>`` needs that directory's write permission: an
    orphan there is kept, with a warning, and the other orphans still go."""
    with Platform(home, actor="alice") as platform:
        store = platform.artifacts
        stuck = store.ingest(make_artifact(b"orphan in a locked-down prefix"))
        free = store.ingest(make_artifact(b"another orphan"))
    assert stuck.path.parent != free.path.parent
    for orphan in (stuck, free):
        _age(orphan.path, 7200)
    bits = stat.S_IMODE(os.stat(stuck.path).st_mode)
    os.chmod(stuck.path.parent, 0o555)

    def plan_and_run() -> tuple[inventory.SweepReport, inventory.SweepReport]:
        with Platform(home, actor="alice") as platform:
            return _plan_and_run(platform)

    try:
        planned, done = as_a_user(plan_and_run)
    finally:
        os.chmod(stuck.path.parent, 0o755)
    for report in (planned, done):
        assert report.orphans_removed == (free.digest,)
        assert report.orphans_kept == (stuck.digest,)
    with Platform(home, actor="alice") as platform:
        assert platform.artifacts.verify(stuck.digest).digest == stuck.digest
        assert not platform.artifacts.exists(free.digest)
        assert list((platform.artifacts.root / "tmp").iterdir()) == []
        assert stat.S_IMODE(os.stat(stuck.path).st_mode) == bits  # as they were


def test_detach_moves_a_locked_down_orphan_without_walking_its_tree(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    """Under the store's write lock an orphan is only renamed aside, whatever its size; the
    bits its tree lacks are given back when it is deleted, after the sweep commits."""
    store = platform.artifacts
    source = make_artifact(b"orphan")
    (source / "sub").mkdir()
    (source / "sub" / "more.bin").write_bytes(b"more")
    orphan = store.ingest(source)
    os.chmod(orphan.content / "sub", 0o500)
    os.chmod(orphan.path, 0o500)
    with store.locked(orphan.digest):
        doomed = store.detach(orphan.digest)
    assert doomed is not None
    moved = doomed / "object"
    assert stat.S_IMODE(os.stat(moved / "content" / "sub").st_mode) == 0o500  # not walked
    assert remove_entry(doomed)
