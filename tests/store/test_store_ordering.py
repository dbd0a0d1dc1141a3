"""Listings read from the store come back in one order, even for rows recorded at one instant."""

from __future__ import annotations

from pathlib import Path

from mintaka import IdFactory, ManualClock, Platform


def test_datasets_registered_at_one_instant_are_found_in_registration_order(
    tmp_path: Path,
) -> None:
    clock = ManualClock()  # never advanced: every version has the same created_at
    with Platform(tmp_path / "home", clock=clock, ids=IdFactory(seed=3), actor="alice") as plat:
        registered = []
        for i in range(6):
            data = tmp_path / f"train-{i}.csv"
            data.write_text(f"x,y\n{i},0\n")
            registered.append(plat.register_dataset("train", data))
        assert len({d.created_at for d in registered}) == 1
        ids = [d.id for d in registered]
        assert sorted(ids)[-1] != ids[-1]  # id order would not put the last registered last
        found = [d.id for d in plat.find_datasets("train")]
        assert found == ids
        assert [d.id for d in plat.list_datasets()] == found
