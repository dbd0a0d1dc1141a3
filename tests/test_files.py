from __future__ import annotations

import os
from pathlib import Path

import pytest

from mintaka.files import open_atomic, write_atomic


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fail_halfway(target: Path) -> None:
    with open_atomic(target, "wb") as handle:
        handle.write(b"half of the ")
        raise RuntimeError("scoring failed")


@pytest.mark.parametrize("durable", [True, False])
def test_text_replaces_the_target_and_leaves_no_temporary_file(
    tmp_path: Path, durable: bool
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    write_atomic(target, '{"new": "é"}', durable=durable)
    assert target.read_text() == '{"new": "é"}'
    assert _names(tmp_path) == ["state.json"]


def test_bytes_are_written_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    write_atomic(target, b"\x00\r\n\xff")
    assert target.read_bytes() == b"\x00\r\n\xff"
    assert _names(tmp_path) == ["blob.bin"]


def test_a_missing_parent_directory_is_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.json"
    write_atomic(target, "{}")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_durable_write_fsyncs_the_file_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(tmp_path / "a.json", "{}")
    assert len(synced) == 2
    synced.clear()
    write_atomic(tmp_path / "b.json", "{}", durable=False)
    assert synced == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["state.json"]


def test_an_error_in_the_block_keeps_the_old_content_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "rows.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="scoring failed"):
        _fail_halfway(target)
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["rows.csv"]


def test_a_missing_target_stays_missing_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    with pytest.raises(RuntimeError, match="scoring failed"):
        _fail_halfway(target)
    assert _names(tmp_path) == []


def test_concurrent_writers_of_one_target_never_share_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "outputs.json"
    with open_atomic(target) as first, open_atomic(target) as second:
        first.write("first")
        second.write("second")
        temporary = [name for name in _names(tmp_path) if name != "outputs.json"]
        assert len(temporary) == 2
        assert not target.exists()
    # The writer that finishes last wins, whole.
    assert target.read_text() == "first"
    assert _names(tmp_path) == ["outputs.json"]


def test_the_temporary_file_is_hidden_and_not_taken_for_the_target_kind(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    with open_atomic(target):
        (temporary,) = _names(tmp_path)
    assert temporary.startswith(".run.json.")
    assert not temporary.endswith(".json")  # a glob for "*.json" never reads a half-written file


def test_text_mode_passes_newline_through(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    with open_atomic(target, newline="") as handle:
        handle.write("a\r\n")
    assert target.read_bytes() == b"a\r\n"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_the_new_file_gets_the_usual_permissions_not_private_ones(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "scores.csv", "a\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "scores.csv").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ["p" * 240 + ".csv", "é" * 125 + ".csv"])
def test_a_long_name_that_a_plain_write_takes_is_written_atomically(
    tmp_path: Path, name: str
) -> None:
    target = tmp_path / name
    assert len(os.fsencode(name)) <= 255
    write_atomic(target, "x")
    assert target.read_text() == "x"
    assert os.listdir(tmp_path) == [name]
