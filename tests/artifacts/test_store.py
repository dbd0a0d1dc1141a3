from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mintaka.artifacts import ArtifactStore, manifest_of
from mintaka.artifacts.digest import sized_sha256
from mintaka.errors import IntegrityError, MintakaError, NotFound, ValidationError


def test_digest_is_stable_and_covers_paths_and_bytes(artifact: Path, tmp_path: Path) -> None:
    first = manifest_of(artifact).digest
    assert first == manifest_of(artifact).digest
    assert first.startswith("sha256:")
    assert len(first) == 71
    (artifact / "sub" / "config.json").rename(artifact / "sub" / "renamed.json")
    assert manifest_of(artifact).digest != first
    (artifact / "model.bin").write_bytes(b"weights-v2")
    assert manifest_of(artifact).digest != first


def test_single_file_and_directory_of_that_file_share_content(tmp_path: Path) -> None:
    single = tmp_path / "model.bin"
    single.write_bytes(b"x")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"x")
    assert manifest_of(single).digest == manifest_of(folder).digest


def test_ingest_copies_verifies_and_is_idempotent(artifact: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    stored = store.ingest(artifact)
    assert (stored.content / "sub" / "config.json").read_text() == '{"layers": 3}'
    assert store.ingest(artifact).path == stored.path
    assert store.verify(stored.digest).digest == stored.digest
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []


def test_verify_detects_changed_bytes(artifact: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    stored = store.ingest(artifact)
    target = stored.content / "model.bin"
    os.chmod(target, 0o644)
    target.write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        store.verify(stored.digest)


def test_unknown_digest_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ArtifactStore(tmp_path).get("sha256:" + "0" * 64)


def test_symlinks_and_empty_directories_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationError, match="no files"):
        manifest_of(empty)
    folder = tmp_path / "with-link"
    folder.mkdir()
    (folder / "real").write_bytes(b"x")
    (folder / "link").symlink_to(folder / "real")
    with pytest.raises(ValidationError, match="symbolic link"):
        manifest_of(folder)


def test_a_directory_that_cannot_be_listed_is_refused_not_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = tmp_path / "model"
    (artifact / "weights").mkdir(parents=True)
    (artifact / "config.json").write_text("{}")
    (artifact / "weights" / "shard-0.bin").write_bytes(b"w" * 10)
    real = os.scandir

    def scandir(path: str = ".") -> object:  # as for a mode 000 directory, which root can read
        if os.fspath(path) == os.fspath(artifact / "weights"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ValidationError, match=r"weights cannot be read: Permission denied"):
        manifest_of(artifact)


def test_special_files_are_refused_by_what_they_are(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="is a named pipe, not a file or directory"):
        manifest_of(fifo)
    folder = tmp_path / "with-pipe"
    folder.mkdir()
    (folder / "real").write_bytes(b"x")
    os.mkfifo(folder / "pipe")
    with pytest.raises(ValidationError, match="contains a named pipe"):
        manifest_of(folder)
    with pytest.raises(ValidationError, match="does not exist"):
        manifest_of(tmp_path / "missing")


def test_sweep_removes_only_stale_staging_directories(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    stale = tmp_path / "tmp" / "ingest-old"
    fresh = tmp_path / "tmp" / "ingest-new"
    stale.mkdir(parents=True)
    fresh.mkdir()
    os.utime(stale, (0, 0))
    assert store.sweep(min_age_seconds=60) == 1
    assert not stale.exists()
    assert fresh.exists()


def test_sweep_keeps_a_staging_directory_whose_files_are_still_being_written(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path)
    copying = tmp_path / "tmp" / "ingest-copying"
    large = copying / "content" / "weights" / "model.bin"
    large.parent.mkdir(parents=True)
    large.write_bytes(b"a large file, still being copied")
    for folder in (copying, copying / "content", large.parent):
        os.utime(folder, (0, 0))  # every entry created long ago; only the file's bytes move
    assert store.sweep(min_age_seconds=60) == 0
    assert large.exists()
    os.utime(large, (0, 0))  # the copy stopped: the ingest is gone
    assert store.sweep(min_age_seconds=60) == 1
    assert not copying.exists()


def test_sweep_removes_stale_stray_files_and_counts_only_what_it_removed(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path)
    staging = tmp_path / "tmp"
    staging.mkdir()
    stray = staging / "partial.bin"
    stray.write_bytes(b"left behind")
    link = staging / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for path in (stray, link):
        os.utime(path, (0, 0), follow_symlinks=False)
    assert store.sweep(min_age_seconds=60) == 2
    assert list(staging.iterdir()) == []


def test_a_stray_link_in_staging_is_judged_by_its_own_age_and_its_target_left_alone(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    staging = tmp_path / "artifacts" / "tmp"
    staging.mkdir(parents=True)
    busy = tmp_path / "busy"  # say, a log directory: something in it changes all the time
    busy.mkdir()
    (busy / "today.log").write_text("x")
    link = staging / "stray"
    link.symlink_to(busy)
    os.utime(link, (0, 0), follow_symlinks=False)
    assert store.sweep(min_age_seconds=60) == 1
    assert not os.path.lexists(link)
    assert (busy / "today.log").read_text() == "x"


def test_ingest_makes_every_directory_of_the_copy_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import store as store_module

    source = tmp_path / "model"
    (source / "a" / "b").mkdir(parents=True)
    (source / "a" / "b" / "weights.bin").write_bytes(b"weights")
    (source / "c").mkdir()
    (source / "c" / "config.json").write_bytes(b"{}")
    synced: list[Path] = []
    sync = store_module.fsync_directory
    monkeypatch.setattr(store_module, "fsync_directory", lambda p: synced.append(p) or sync(p))
    stored = ArtifactStore(tmp_path / "store").ingest(source)
    staging = tmp_path / "store" / "tmp"
    staged = {Path(*p.relative_to(staging).parts[1:]) for p in synced if p.is_relative_to(staging)}
    assert staged == {Path(), *(Path("content", d) for d in ("", "a", "a/b", "c"))}
    objects = tmp_path / "store" / "sha256"
    assert {stored.path.parent, objects, objects.parent} <= set(synced)  # the new prefix too
    assert stored.content.joinpath("a", "b", "weights.bin").read_bytes() == b"weights"


def test_digest_is_sha256_of_the_rfc8785_manifest(artifact: Path) -> None:
    import hashlib

    import rfc8785

    files = [
        {
            "path": p.relative_to(artifact).as_posix(),
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "size": p.stat().st_size,
        }
        for p in sorted(artifact.rglob("*"))
        if p.is_file()
    ]
    reference = rfc8785.dumps({"files": files, "format": "mintaka-manifest/1"})
    assert manifest_of(artifact).digest == "sha256:" + hashlib.sha256(reference).hexdigest()


def test_source_changed_after_its_manifest_was_taken_is_not_stored(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    manifest = manifest_of(source)
    source.write_bytes(b"weights, retrained")
    store = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(IntegrityError, match="changed while it was being copied"):
        store.ingest(source, manifest)
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []
    with pytest.raises(NotFound):
        store.get(manifest.digest)


def test_stored_bytes_that_cannot_be_read_fail_verify_and_are_replaced_on_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import digest

    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    store = ArtifactStore(tmp_path / "store")
    stored = store.ingest(source)
    unreadable = stored.content / "model.bin"
    hashed = digest.sized_sha256
    refusals: list[Path] = []

    def refuse_once(path: Path) -> tuple[int, str]:
        if Path(path) == unreadable and not refusals:
            refusals.append(path)
            raise PermissionError(13, "Permission denied", str(path))
        return hashed(path)

    monkeypatch.setattr(digest, "sized_sha256", refuse_once)
    with pytest.raises(IntegrityError, match=r"cannot be read.*Permission denied"):
        store.verify(stored.digest)
    refusals.clear()
    assert store.ingest(source).digest == stored.digest  # the caller's bytes take its place
    assert store.verify(stored.digest).digest == stored.digest
    [parked] = (tmp_path / "store" / "tmp").iterdir()  # the unreadable copy, for sweep
    assert parked.name.startswith("damaged-")


@pytest.mark.parametrize("change", ["removed", "made a directory"])
def test_source_gone_after_its_manifest_was_taken_is_a_typed_error(
    tmp_path: Path, change: str
) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"weights")
    manifest = manifest_of(source)
    (source / "weights.bin").unlink()
    if change == "made a directory":
        (source / "weights.bin").mkdir()
    store = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(IntegrityError, match="changed while it was being copied"):
        store.ingest(source, manifest)
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []
    assert not store.exists(manifest.digest)


@pytest.mark.parametrize("round_", range(5))
def test_ingests_racing_to_repair_one_damaged_copy_all_end_on_good_bytes(
    tmp_path: Path, round_: int
) -> None:
    import threading

    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(64 * 1024))
    store = ArtifactStore(tmp_path / "store")
    first = store.ingest(source)
    (first.content / "model.bin").write_bytes(b"damaged")
    barrier = threading.Barrier(6)
    outcomes: list[object] = []

    def ingest() -> None:
        barrier.wait()
        try:
            outcomes.append(store.ingest(source).digest)
        except Exception as exc:  # collected: the test says which
            outcomes.append(exc)

    threads = [threading.Thread(target=ingest) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == [first.digest] * 6
    assert store.verify(first.digest).digest == first.digest


def _outcome_without_waiting(pipe: Path, call: Callable[[], object]) -> object:
    """What ``call`` returned or raised (a ``MintakaError``); it must not wait on ``pipe``, a
    named pipe no writer opens: a wait is ended by opening and closing it for writing."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except MintakaError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(2)
    waited = thread.is_alive()
    if waited:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(2)
    assert not waited
    assert len(outcome) == 1
    return outcome[0]


def test_a_source_file_replaced_by_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.bin").write_bytes(b"x")
    manifest = manifest_of(source)  # registration digests first and stores later
    (source / "model.bin").unlink()
    os.mkfifo(source / "model.bin")  # replaced in between
    store = ArtifactStore(tmp_path / "store")
    outcome = _outcome_without_waiting(source / "model.bin", lambda: store.ingest(source, manifest))
    assert isinstance(outcome, IntegrityError), outcome
    assert "changed while it was being copied" in str(outcome)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_hashing_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    pipe = tmp_path / "model.bin"
    os.mkfifo(pipe)  # put where a file was, after it was looked at
    outcome = _outcome_without_waiting(pipe, lambda: sized_sha256(pipe))
    assert isinstance(outcome, ValidationError), outcome
    assert "named pipe" in str(outcome)


def test_the_first_ingest_makes_the_store_root_durable_in_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import store as store_module

    source = tmp_path / "model.bin"
    source.write_bytes(b"x")
    home = tmp_path / "home"
    home.mkdir()
    synced: list[Path] = []
    sync = store_module.fsync_directory
    monkeypatch.setattr(store_module, "fsync_directory", lambda p: synced.append(p) or sync(p))
    ArtifactStore(home / "artifacts").ingest(source)  # creates home/artifacts
    assert home in synced  # else a crash can lose artifacts/ with the artifact in it
    assert home / "artifacts" in synced


def test_a_store_root_removed_and_made_again_by_an_ingest_is_durable_in_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import store as store_module

    (tmp_path / "one.bin").write_bytes(b"one")
    (tmp_path / "two.bin").write_bytes(b"two")
    home = tmp_path / "home"
    home.mkdir()
    store = ArtifactStore(home / "artifacts")
    store.ingest(tmp_path / "one.bin")
    shutil.rmtree(home / "artifacts")  # emptied while this store is in use
    synced: list[Path] = []
    sync = store_module.fsync_directory
    monkeypatch.setattr(store_module, "fsync_directory", lambda p: synced.append(p) or sync(p))
    store.ingest(tmp_path / "two.bin")
    assert home in synced  # else a crash can lose artifacts/ with the artifact in it


def test_a_staging_entry_with_a_future_modification_time_goes_by_its_status_change(
    tmp_path: Path,
) -> None:
    staging = tmp_path / "tmp"
    (staging / "ingest-x").mkdir(parents=True)
    stray = staging / "ingest-x" / "partial.bin"
    stray.write_bytes(b"x")
    future = time.time() + 365 * 86400  # copied in keeping a skewed clock's time (cp -p)
    os.utime(stray, (future, future))
    store = ArtifactStore(tmp_path)
    assert store.sweep(min_age_seconds=3600) == 0  # its status changed just now
    assert store.sweep(min_age_seconds=0) == 1
    assert list(staging.iterdir()) == []


def test_two_sweeps_racing_for_one_entry_count_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import store as store_module

    (tmp_path / "tmp" / "ingest-x").mkdir(parents=True)
    os.utime(tmp_path / "tmp" / "ingest-x", (0, 0))
    mine, other = ArtifactStore(tmp_path), ArtifactStore(tmp_path)
    judge = store_module.newest_change
    counts = []

    def other_sweep_goes_first(path: Path, now: float) -> float | None:
        newest = judge(path, now)  # this sweep finds it old, then the other one removes it
        monkeypatch.setattr(store_module, "newest_change", judge)
        counts.append(other.sweep(3600))
        return newest

    monkeypatch.setattr(store_module, "newest_change", other_sweep_goes_first)
    counts.append(mine.sweep(3600))
    assert counts == [1, 0]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_sweep_that_read_an_age_before_another_claimed_the_entry_does_not_count_it_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import store as store_module

    (tmp_path / "tmp" / "ingest-x").mkdir(parents=True)
    os.utime(tmp_path / "tmp" / "ingest-x", (0, 0))
    mine, other = ArtifactStore(tmp_path), ArtifactStore(tmp_path)
    touch, judge = os.utime, store_module.newest_change
    counts = []

    def old_as_read_before(path: Path, now: float) -> float | None:
        return None if judge(path, now) is None else 0.0

    def other_sweep_in_between(path: object, *args: object, **kwargs: object) -> None:
        touch(path, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(os, "utime", touch)
        # The other sweep read every age before this one's claim gave the entry a new one.
        monkeypatch.setattr(store_module, "newest_change", old_as_read_before)
        counts.append(other.sweep(3600))
        monkeypatch.setattr(store_module, "newest_change", judge)

    monkeypatch.setattr(os, "utime", other_sweep_in_between)
    counts.append(mine.sweep(3600))
    assert sorted(counts) == [0, 1]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_sweep_on_a_full_disk_makes_no_directory_to_free_its_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    stale = tmp_path / "tmp" / "ingest-old"
    (stale / "content").mkdir(parents=True)
    (stale / "content" / "model.bin").write_bytes(b"left by a crash")
    for path in (stale / "content" / "model.bin", stale / "content", stale):
        os.utime(path, (0, 0))

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "mkdir", full)
    assert ArtifactStore(tmp_path).sweep(min_age_seconds=60) == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def _permissions_enforced(tmp_path: Path) -> bool:
    """Whether a directory without its search bit keeps this process out (not root with
    ``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH``)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "file").write_text("x")
    probe.chmod(0o600)
    try:
        os.stat(probe / "file")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)
    return False


@pytest.mark.parametrize("mode", [0o444, 0o644, 0o000])
def test_a_stored_copy_that_cannot_be_searched_is_replaced_and_its_parked_copy_swept(
    tmp_path: Path, mode: int
) -> None:
    if not _permissions_enforced(tmp_path):
        pytest.skip("this process is not kept out of a directory by its permissions")
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "model.bin").write_bytes(b"weights")
    store = ArtifactStore(tmp_path / "store")
    stored = store.ingest(source)
    (stored.content / "sub").chmod(mode)
    stored.path.chmod(mode)
    with pytest.raises(IntegrityError):
        store.verify(stored.digest)
    assert store.ingest(source).digest == stored.digest
    assert store.verify(stored.digest).digest == stored.digest
    [parked] = (tmp_path / "store" / "tmp").iterdir()
    assert parked.name.startswith("damaged-")
    assert store.sweep(min_age_seconds=0) == 1
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_a_damaged_copy_that_cannot_be_moved_aside_is_an_integrity_error_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    store = ArtifactStore(tmp_path / "store")
    stored = store.ingest(source)
    (stored.content / "model.bin").write_bytes(b"damaged")
    rename = os.rename

    def refused(src: object, dst: object) -> None:
        if Path(str(src)) == stored.path:
            raise PermissionError(13, "Permission denied", str(src))
        rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", refused)
    with pytest.raises(IntegrityError, match=r"cannot be moved aside.*Permission denied"):
        store.ingest(source)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []
    assert (stored.content / "model.bin").read_bytes() == b"damaged"
