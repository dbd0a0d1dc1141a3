"""One digest's entry in the artifact store is looked at, written, repaired and taken out under
that digest's lock: an ingest and a repair or a sweep of the same bytes never interleave."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from unprivileged import as_a_user

import mintaka.artifacts.store as store_module
from mintaka import Platform
from mintaka.artifacts import ArtifactStore, inventory
from mintaka.artifacts.digest import Manifest, manifest_of
from mintaka.errors import StoreError


def _age(platform: Platform, digest: str, seconds: float) -> None:
    path = platform.artifacts.get(digest).path
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_an_ingest_holds_the_digest_lock_from_its_look_until_its_copy_is_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    store = ArtifactStore(tmp_path / "store")
    stored = store.ingest(source)
    (stored.content / "model.bin").write_bytes(b"damaged")
    free_at: dict[str, bool] = {}
    real_verify = store._verify
    real_copy, real_place = store_module._copy_content, store_module._place

    def free(step: str) -> None:
        with store.locked(stored.digest, wait=False) as held:
            free_at[step] = held

    def verify(digest: str) -> object:
        free("look")
        return real_verify(digest)

    def copy(source: Path, content: Path, manifest: Manifest) -> None:
        free("copy")
        real_copy(source, content, manifest)

    def place(tmp: Path, final: Path) -> None:
        free("place")
        real_place(tmp, final)

    monkeypatch.setattr(store, "_verify", verify)
    monkeypatch.setattr(store_module, "_copy_content", copy)
    monkeypatch.setattr(store_module, "_place", place)
    store.ingest(source)  # repairs the damaged copy
    assert free_at == {"look": False, "copy": False, "place": False}
    with store.locked(stored.digest, wait=False) as held:
        assert held  # and lets go once done


def test_an_ingest_of_bytes_being_repaired_waits_for_the_repair_and_keeps_its_copy(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_artifact(b"v1")
    stored = platform.artifacts.ingest(source)
    (stored.content / "model.bin").write_bytes(b"evil")  # damaged on disk
    damaged = os.stat(stored.path).st_ino
    real_copy, flock = store_module._copy_content, fcntl.flock
    second_waits = threading.Event()
    registered: list[object] = []

    def register() -> None:
        try:
            registered.append(platform.register_model("credit", source).artifact_digest)
        except Exception as exc:  # collected: the test says which
            registered.append(exc)

    second = threading.Thread(target=register)

    def flock_announced(descriptor: int, operation: int) -> None:
        if threading.current_thread() is second and operation == fcntl.LOCK_EX:
            second_waits.set()  # about to wait for the lock the repair holds
        flock(descriptor, operation)

    def copy_while_another_ingest_starts(*args):  # type: ignore[no-untyped-def]
        real_copy(*args)
        second.start()
        assert second_waits.wait(timeout=5)
        assert registered == []
        assert os.stat(stored.path).st_ino == damaged  # nobody else moved it meanwhile

    monkeypatch.setattr(fcntl, "flock", flock_announced)
    monkeypatch.setattr(store_module, "_copy_content", copy_while_another_ingest_starts)
    repaired = platform.artifacts.ingest(source)
    second.join(timeout=10)
    assert registered == [stored.digest]
    assert os.stat(repaired.path).st_ino != damaged  # the repair's copy, kept by the second
    report = inventory.verify(platform)
    assert report.ok, report.findings
    assert report.checked == 1


def test_an_orphan_an_ingest_is_at_is_kept_by_a_sweep_and_its_dry_run(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    orphan = platform.artifacts.ingest(make_artifact(b"never registered yet"))
    _age(platform, orphan.digest, 7200)
    with platform.artifacts.locked(orphan.digest):  # as an ingest of it holds it
        planned = inventory.sweep(platform, orphans=True, dry_run=True)
        done = inventory.sweep(platform, orphans=True)
    for report in (planned, done):
        assert report.orphans_removed == ()
        assert report.orphans_kept == (orphan.digest,)
    assert platform.artifacts.verify(orphan.digest).digest == orphan.digest
    assert platform.audit.events(subject="artifacts") == []
    assert inventory.sweep(platform, orphans=True).orphans_removed == (orphan.digest,)


def test_an_orphan_ingested_again_after_the_sweep_chose_it_is_kept(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_artifact(b"weights")
    orphan = platform.artifacts.ingest(source)
    _age(platform, orphan.digest, 7200)
    real_objects = platform.artifacts.objects
    ingested: list[object] = []

    def listed_then_ingested():  # type: ignore[no-untyped-def]
        listing = list(real_objects())  # chosen by its old age...
        ingested.append(platform.artifacts.ingest(source))  # ...then made young for a version
        return iter(listing)

    monkeypatch.setattr(platform.artifacts, "objects", listed_then_ingested)
    report = inventory.sweep(platform, orphans=True)
    assert report.orphans_removed == ()
    assert report.orphans_kept == (orphan.digest,)
    monkeypatch.undo()
    [again] = ingested
    assert platform.register_model("credit", again).artifact_digest == orphan.digest


def test_a_failed_sweep_keeps_the_copy_an_ingest_stored_again_meanwhile(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_artifact(b"weights")
    orphan = platform.artifacts.ingest(source)
    _age(platform, orphan.digest, 7200)

    def ingested_then_failed(*_args: object, **_kwargs: object) -> None:
        platform.artifacts.ingest(source)  # taken out: stored again
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(platform, "_audit", ingested_then_failed)
    with pytest.raises(RuntimeError, match="unavailable"):
        inventory.sweep(platform, orphans=True)
    assert platform.artifacts.verify(orphan.digest).digest == orphan.digest
    assert list((platform.artifacts.root / "tmp").iterdir()) == []


def _read_only(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o555)


def _writable(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o755)


def test_bytes_stored_already_are_ingested_from_a_read_only_store_that_has_no_locks(
    tmp_path: Path, make_artifact: MakeArtifact
) -> None:
    """A store made before digests had locks, then made read-only (a snapshot, a shared mount):
    an ingest of bytes it holds writes nothing, so it needs no lock; other bytes are refused
    with a StoreError naming the store, and nothing is written."""
    store = ArtifactStore(tmp_path / "store")
    known, new = make_artifact(b"known"), make_artifact(b"new")
    stored = store.ingest(known)
    shutil.rmtree(store.root / "locks")
    _read_only(store.root)

    def ingest_both() -> tuple[str, str]:
        again = ArtifactStore(store.root).ingest(known)
        try:
            ArtifactStore(store.root).ingest(new)
        except StoreError as exc:
            return again.digest, str(exc)
        raise AssertionError("new bytes were ingested into a read-only store")

    try:
        before = sorted(store.root.rglob("*"))
        digest, refusal = as_a_user(ingest_both)
        assert sorted(store.root.rglob("*")) == before
    finally:
        _writable(store.root)
    assert digest == stored.digest
    assert str(store.root) in refusal
    assert "cannot be written" in refusal


def test_damaged_bytes_in_a_read_only_store_are_refused_as_not_stored_whole(
    tmp_path: Path, make_artifact: MakeArtifact
) -> None:
    store = ArtifactStore(tmp_path / "store")
    source = make_artifact(b"known")
    stored = store.ingest(source)
    (stored.content / "model.bin").write_bytes(b"damaged")
    shutil.rmtree(store.root / "locks")
    _read_only(store.root)
    try:
        with pytest.raises(StoreError, match="does not match its stored bytes"):
            as_a_user(lambda: ArtifactStore(store.root).ingest(source))
    finally:
        _writable(store.root)


def test_a_repair_keeps_the_copy_a_writer_taking_no_lock_stored_meanwhile(
    tmp_path: Path, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older Mintaka sharing the store takes no digest lock: its repair may land while this
    one copies. Its copy (perhaps registered already) verifies, so it stays, and this one's
    copy is not placed."""
    source = make_artifact(b"v1")
    store = ArtifactStore(tmp_path / "store")
    stored = store.ingest(source)
    (stored.content / "model.bin").write_bytes(b"evil")  # damaged on disk
    real_copy = store_module._copy_content
    theirs: list[int] = []

    def a_writer_taking_no_lock_repairs_meanwhile(*args):  # type: ignore[no-untyped-def]
        real_copy(*args)
        monkeypatch.setattr(store_module, "_copy_content", real_copy)
        other = ArtifactStore(store.root)._ingest(source, manifest_of(source))  # no lock
        theirs.append(os.stat(other.path).st_ino)

    monkeypatch.setattr(store_module, "_copy_content", a_writer_taking_no_lock_repairs_meanwhile)
    again = store.ingest(source)
    assert [os.stat(again.path).st_ino] == theirs
    assert store.verify(stored.digest).digest == stored.digest
    assert [p.name[:8] for p in (store.root / "tmp").iterdir()] == ["damaged-"]
