"""The local backend's serving state lives in the store's database: its failures are the store's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact

from mintaka import Platform
from mintaka.errors import StoreError
from mintaka.store import engine as store_engine


def test_a_kill_while_another_process_holds_the_write_lock_is_a_busy_store_error(
    home: Path, make_servable: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 50)
    with Platform(home, actor="alice") as plat:
        plat.register_model("m", make_servable(b"v1"), flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
    holder = sqlite3.connect(home / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with (
            Platform(home, actor="alice") as plat,
            pytest.raises(StoreError, match="the store is busy"),
        ):
            plat.serving.kill("scoring", reason="incident")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Platform(home, actor="alice") as plat:
        endpoint = plat.serving.get_endpoint("scoring")
    assert (endpoint.status.value, endpoint.traffic.weights) == ("in_service", {"blue": 100})
