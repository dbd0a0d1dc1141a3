"""A registered dataset's file is checked and used in one read: the bytes used are the bytes
checked against the dataset version's digest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mintaka import Platform
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
    cache = SampleCache()
    checked = cache.registered_file(dataset)
    sample = cache.feature_sample(checked, dataset.digest, {"x": "int"})
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


def test_the_checked_copies_of_a_pass_are_removed_when_the_pass_is_done(
    platform: Platform, tmp_path: Path
) -> None:
    dataset = platform.register_dataset("train", _write(tmp_path / "train.csv", range(10)))
    with SampleCache() as cache:
        checked = cache.registered_file(dataset)
        assert checked.read_text(encoding="utf-8") == (tmp_path / "train.csv").read_text()
    assert not checked.exists()
