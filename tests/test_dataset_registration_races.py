"""Registering a dataset while another process registers it, or while its file changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import mintaka.platform as platform_module
from mintaka import IdFactory, ManualClock, Platform
from mintaka.artifacts.digest import manifest_of
from mintaka.domain.runs import DatasetVersion
from mintaka.errors import Conflict
from mintaka.store.schema import audit_events, datasets, lineage_nodes


def _counts(plat: Platform) -> tuple[int, int, int]:
    """Dataset rows, ``dataset.register`` events and dataset lineage nodes in the store."""
    with plat.store.read() as conn:
        rows = conn.execute(select(func.count()).select_from(datasets)).scalar_one()
        events = conn.execute(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.action == "dataset.register")
        ).scalar_one()
        nodes = conn.execute(
            select(func.count()).select_from(lineage_nodes).where(lineage_nodes.c.kind == "dataset")
        ).scalar_one()
    return rows, events, nodes


def test_a_dataset_another_process_registers_meanwhile_is_returned_not_duplicated(
    home: Path, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    first = Platform(home, clock=clock, ids=IdFactory(1), actor="alice")
    second = Platform(home, clock=clock, ids=IdFactory(2), actor="bob")
    real = platform_module._profile_of
    theirs: list[DatasetVersion] = []
    raced: list[bool] = []

    def profile_while_another_process_registers(
        source: Path, categorical: Sequence[str]
    ) -> dict[str, Any] | None:
        if not raced:
            raced.append(True)
            theirs.append(second.register_dataset("apps", data))
        return real(source, categorical)

    monkeypatch.setattr(platform_module, "_profile_of", profile_while_another_process_registers)
    try:
        mine = first.register_dataset("apps", data)
        assert mine == theirs[0]
        assert _counts(first) == (1, 1, 1)
    finally:
        first.close()
        second.close()


def test_categories_asked_for_are_not_lost_to_another_process_profiling_without_them(
    home: Path, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("segment,b\n1,2\n3,4\n")
    first = Platform(home, clock=clock, ids=IdFactory(1), actor="alice")
    second = Platform(home, clock=clock, ids=IdFactory(2), actor="bob")
    real = platform_module._profile_of
    theirs: list[DatasetVersion] = []
    raced: list[bool] = []

    def profile_while_another_process_registers(
        source: Path, categorical: Sequence[str]
    ) -> dict[str, Any] | None:
        if not raced:
            raced.append(True)
            theirs.append(second.register_dataset("apps", data))
        return real(source, categorical)

    monkeypatch.setattr(platform_module, "_profile_of", profile_while_another_process_registers)
    try:
        with pytest.raises(Conflict, match="'segment' as numeric"):
            first.register_dataset("apps", data, categorical=["segment"])
        (stored,) = first.find_datasets("apps")
        assert stored == theirs[0]
        assert _counts(first) == (1, 1, 1)
        assert [e.action for e in first.audit.events(subject=stored.id)] == ["dataset.register"]
    finally:
        first.close()
        second.close()


def test_a_file_rewritten_while_it_is_profiled_is_refused_with_nothing_written(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n2\n3\n")
    real = platform_module._profile_of

    def rewritten_meanwhile(source: Path, categorical: Sequence[str]) -> dict[str, Any] | None:
        data.write_text("a\n1000\n2000\n3000\n4000\n")
        return real(source, categorical)

    monkeypatch.setattr(platform_module, "_profile_of", rewritten_meanwhile)
    with pytest.raises(Conflict, match="changed while it was registered; register it again"):
        platform.register_dataset("apps", data)
    assert _counts(platform) == (0, 0, 0)

    monkeypatch.setattr(platform_module, "_profile_of", real)
    again = platform.register_dataset("apps", data)
    assert again.digest == manifest_of(data).digest
    assert again.profile is not None
    assert again.profile["rows"] == 4


def _relocations(plat: Platform) -> list[dict[str, Any]]:
    """The details of the ``dataset.relocate`` events."""
    return [e.details for e in plat.audit.events() if e.action == "dataset.relocate"]


def test_a_moved_dataset_registered_from_its_new_path_moves_its_uri(
    platform: Platform, tmp_path: Path
) -> None:
    old = tmp_path / "old" / "train.csv"
    old.parent.mkdir()
    old.write_text("a,b\n1,2\n3,4\n")
    first = platform.register_dataset("apps", old)
    new = tmp_path / "new" / "train.csv"
    new.parent.mkdir()
    old.rename(new)

    moved = platform.register_dataset("apps", new)
    assert moved.id == first.id
    assert moved.uri == new.absolute().as_uri()
    assert platform.get_dataset(first.id).uri == moved.uri
    assert _relocations(platform) == [{"old_uri": first.uri, "new_uri": moved.uri}]
    assert _counts(platform) == (1, 1, 1)
    with platform.store.read() as conn:  # the lineage node names the file where it is now
        (attrs,) = conn.execute(
            select(lineage_nodes.c.attrs).where(lineage_nodes.c.key == first.id)
        ).one()
    assert attrs["uri"] == moved.uri

    copy = tmp_path / "copy" / "train.csv"  # the recorded file still holds the bytes: kept
    copy.parent.mkdir()
    copy.write_bytes(new.read_bytes())
    assert platform.register_dataset("apps", copy) == moved
    assert len(_relocations(platform)) == 1
