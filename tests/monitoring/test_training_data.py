"""A registered dataset's file is checked and used in one read: the bytes used are the bytes
checked against the dataset version's digest."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mintaka import Platform
from mintaka.errors import ValidationError
from mintaka.monitoring import training_data
from mintaka.monitoring.training_data import SampleCache


def _write(path: Path, values: range) -> Path:
    path.write_text("x\n" + "".join(f"{n}\n" for n in values), encoding="utf-8")
    return path


def test_a_file_rewritten_after_its_check_is_not_sampled_in_place_of_the_checked_bytes(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _write(tmp_path / "train.csv", range(10))
    dataset = platform.register_dataset("train", source)
    stream = training_data._stream_rows

    def rewritten_first(path: Path) -> Iterator[dict[str, Any]]:
        _write(source, range(100, 110))
        return stream(path)

    monkeypatch.setattr(training_data, "_stream_rows", rewritten_first)
    sample = SampleCache(platform.home).feature_sample(dataset, {"x": "int"})
    assert [row["x"] for row in sample.rows] == list(range(10))


def test_the_data_gate_validates_the_checked_bytes_not_a_file_rewritten_after_the_check(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.pipelines import gates
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    source = _write(tmp_path / "train.csv", range(10))
    dataset = platform.register_dataset("train", source)
    read = gates._read

    def rewritten_first(path: Path) -> list[dict[str, Any]]:
        _write(source, range(600))
        return read(path)

    monkeypatch.setattr(gates, "_read", rewritten_first)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    outcome = validate_data(DataValidationInputs(dataset_id=dataset.id, min_rows=600), context)
    assert (outcome.passed, outcome.rows) == (False, 10)


def test_a_checked_copy_is_removed_once_its_sample_is_drawn_and_the_sample_kept(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = platform.register_dataset("train", _write(tmp_path / "train.csv", range(10)))
    reads: list[Path] = []
    stream = training_data._stream_rows
    monkeypatch.setattr(training_data, "_stream_rows", lambda p: reads.append(p) or stream(p))
    with SampleCache(platform.home) as cache:
        first = cache.feature_sample(dataset, {"x": "int"})
        assert _copies(platform) == []
        again = cache.feature_sample(dataset, {"x": "int"})
    assert [row["x"] for row in first.rows] == [row["x"] for row in again.rows] == list(range(10))
    assert len(reads) == 1


def _copies(platform: Platform) -> list[Path]:
    root = platform.home / training_data.COPIES
    return sorted(root.iterdir()) if root.exists() else []


def _scored_on(platform: Platform, tmp_path: Path) -> None:
    """A sklearn ``credit:1`` trained on a registered file, served on ``scoring`` with its
    predictions logged and watched for drift of its scores: a pass copies that file."""
    from monitoring_kit import drift_signal, log_on, scoring_monitor
    from sklearn.linear_model import LogisticRegression

    from mintaka.domain.registry import Signature
    from mintaka.flavors import sklearn as sklearn_flavor

    source = tmp_path / "train.csv"
    source.write_text("a,label\n" + "".join(f"{n},{n % 2}\n" for n in range(40)))
    dataset = platform.register_dataset("train", source, categorical=["label"])
    model = LogisticRegression().fit([[n] for n in range(40)], [n % 2 for n in range(40)])
    platform.register_model(
        "credit",
        sklearn_flavor.save(model, tmp_path / "model"),
        flavor="sklearn",
        signature=Signature(inputs={"a": "float"}),
        dataset_ids=[dataset.id],
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="score-drift", metric="psi:prediction", window="100n"))
    )
    log_on(platform, "blue", 1, [{"a": float(n)} for n in range(40)])


_STOPPED_MID_PASS = """
import sys, time
from mintaka.monitoring import training_data

def copied(*_args, **_kwargs):
    print("copied", flush=True)
    time.sleep(60)

training_data.feature_sample = copied
from mintaka.cli.app import main
sys.argv = ["mintaka", "--home", sys.argv[1], "monitor", "run", "--once"]
main()
"""


def test_a_runner_stopped_with_sigterm_mid_pass_leaves_no_copy_behind(
    platform: Platform, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    _scored_on(platform, tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", _STOPPED_MID_PASS, str(platform.home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "copied"
        assert len(_copies(platform)) == 1  # the pass holds its copy of train.csv
        child.send_signal(signal.SIGTERM)
        _, errors = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0  # a clean stop: a service manager must not mark it failed
    assert errors.strip().splitlines()[-1] == "stopped"
    assert _copies(platform) == []


def test_a_copy_a_killed_process_left_is_swept_by_the_next_pass_and_one_in_use_is_kept(
    platform: Platform, tmp_path: Path
) -> None:
    import os

    left = platform.home / training_data.COPIES / "copy-killed"
    left.mkdir(parents=True)
    (left / "train.csv").write_text("a\n1\n")
    dataset = platform.register_dataset("held", _write(tmp_path / "held.csv", range(10)))
    old = 1_000_000_000  # long before any pass
    with training_data.registered_copy(dataset, platform.home) as held:
        for path in (left / "train.csv", left, held, held.parent):
            os.utime(path, (old, old))
        platform.monitoring.run_once()
        assert _copies(platform) == [held.parent]
        assert held.read_text() == (tmp_path / "held.csv").read_text()
    assert _copies(platform) == []


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EFBIG, "File too large"),
        PermissionError(errno.EACCES, "Permission denied"),
    ],
)
def test_a_copy_that_cannot_be_written_or_read_fails_the_gate_naming_the_dataset(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: OSError
) -> None:
    from mintaka.artifacts import digest
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    source = _write(tmp_path / "train.csv", range(10))
    dataset = platform.register_dataset("train", source)

    def failing(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise failure

    monkeypatch.setattr(digest, "copy_hashed", failing)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    with pytest.raises(ValidationError) as raised:
        validate_data(DataValidationInputs(dataset_id=dataset.id), context)
    for named in (dataset.id, str(source), failure.strerror):
        assert str(named) in str(raised.value)
    assert _copies(platform) == []
    assert source.read_text() == "x\n" + "".join(f"{n}\n" for n in range(10))


def test_an_entry_whose_age_cannot_be_read_is_left_and_the_pass_and_the_sweep_go_on(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    root = platform.home / training_data.COPIES
    unreadable, left = root / "copy-unreadable", root / "copy-killed"
    for entry in (unreadable, left):
        entry.mkdir(parents=True)
        os.utime(entry, (1_000_000_000, 1_000_000_000))
    scandir = os.scandir

    def refused(path: Any = ".") -> Any:
        if not isinstance(path, int) and Path(path) == unreadable:  # rmtree lists by descriptor
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refused)  # what the sweep's walk lists a directory with
    assert platform.monitoring.run_once().failed == ()
    assert _copies(platform) == [unreadable]
    assert str(unreadable) in caplog.text


def test_a_copies_directory_that_cannot_be_listed_skips_the_sweep_not_the_pass(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    root = platform.home / training_data.COPIES
    root.mkdir(parents=True)
    listdir = os.listdir

    def refused(path: Any = ".") -> list[str]:
        if Path(path) == root:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", refused)
    assert training_data.sweep_copies(platform.home) == 0
    assert platform.monitoring.run_once().failed == ()
    assert str(root) in caplog.text


def _permissions_enforced(tmp_path: Path) -> bool:
    """Whether a directory without its search bit keeps this process out (not root with
    ``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH``)."""
    import os

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


def test_a_left_copy_made_read_only_is_swept_all_the_same(
    platform: Platform, tmp_path: Path
) -> None:
    import os

    if not _permissions_enforced(tmp_path):
        pytest.skip("this process is not kept out of a directory by its permissions")
    left = platform.home / training_data.COPIES / "copy-killed"
    (left / "part").mkdir(parents=True)
    (left / "part" / "train.csv").write_text("a\n1\n")
    old = 1_000_000_000
    for path in (left / "part" / "train.csv", left / "part", left):
        os.utime(path, (old, old))
    (left / "part").chmod(0o500)
    try:
        assert training_data.sweep_copies(platform.home) == 1
    finally:
        if left.exists():
            (left / "part").chmod(0o700)
    assert _copies(platform) == []


def _gate_refusal(platform: Platform, tmp_path: Path, dataset_id: str) -> ValidationError:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    with pytest.raises(ValidationError) as raised:
        validate_data(DataValidationInputs(dataset_id=dataset_id), context)
    return raised.value


def test_a_file_whose_existence_cannot_be_checked_fails_the_gate_naming_the_dataset(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    source = _write(tmp_path / "train.csv", range(10))
    dataset = platform.register_dataset("train", source)
    stat = os.stat

    def refused(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path) == source:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refused)
    refusal = _gate_refusal(platform, tmp_path, dataset.id)
    for named in (dataset.id, str(source), "Permission denied"):
        assert named in str(refusal)


def test_a_file_in_a_directory_that_cannot_be_searched_fails_the_gate_naming_the_dataset(
    platform: Platform, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    source = _write(folder / "train.csv", range(10))
    dataset = platform.register_dataset("train", source)
    if not _permissions_enforced(tmp_path):
        pytest.skip("this process is not kept out of a directory by its permissions")
    folder.chmod(0o600)
    try:
        refusal = _gate_refusal(platform, tmp_path, dataset.id)
    finally:
        folder.chmod(0o700)
    for named in (dataset.id, str(source), "Permission denied"):
        assert named in str(refusal)


@pytest.mark.parametrize("lock", ["named pipe", "link out of the home", "directory", "missing"])
def test_a_left_copy_whose_lock_is_not_a_plain_file_is_swept_without_waiting_or_following(
    platform: Platform, tmp_path: Path, lock: str
) -> None:
    import os
    import threading

    left = platform.home / training_data.COPIES / "copy-killed"
    left.mkdir(parents=True)
    (left / "train.csv").write_text("a\n1\n")
    outside = tmp_path / "outside"
    held = left / training_data._HELD
    if lock == "named pipe":
        os.mkfifo(held)
    elif lock == "link out of the home":
        held.symlink_to(outside)
    elif lock == "directory":
        held.mkdir()
    old = 1_000_000_000
    for path in (left / "train.csv", held, left):
        if os.path.lexists(path):
            os.utime(path, (old, old), follow_symlinks=False)
    swept: list[int] = []
    sweeper = threading.Thread(
        target=lambda: swept.append(training_data.sweep_copies(platform.home)), daemon=True
    )
    sweeper.start()
    sweeper.join(5)
    if sweeper.is_alive() and lock == "named pipe":
        os.close(os.open(held, os.O_RDONLY | os.O_NONBLOCK))  # ends the wait
        sweeper.join(2)
    assert swept == [1]
    assert _copies(platform) == []
    assert not os.path.lexists(outside)
