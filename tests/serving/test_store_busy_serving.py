"""The local backend's serving state lives in the store's database: its failures are the store's."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from artifact_kit import MakeArtifact
from sqlalchemy import Engine, event

from mintaka import Platform
from mintaka.errors import StoreError
from mintaka.local.server import InferenceServer
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


@pytest.fixture
def failing_endpoint_reads(home: Path) -> Iterator[Callable[[Engine], None]]:
    """Make every read of the local backend's endpoints fail as a locked SQLite file does."""
    engines: list[Engine] = []

    def locked(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "local_endpoints" in statement:
            raise sqlite3.OperationalError("database is locked")

    def install(engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", locked)
        engines.append(engine)

    yield install
    for engine in engines:
        event.remove(engine, "before_cursor_execute", locked)


def test_the_inference_server_answers_a_failing_store_503_and_keeps_serving(
    home: Path, make_servable: MakeArtifact, failing_endpoint_reads: Callable[[Engine], None]
) -> None:
    with Platform(home, actor="alice") as plat:
        plat.register_model("m", make_servable(b"v1"), flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        with InferenceServer(plat, poll_interval=60) as server:
            server.start()
            failing_endpoint_reads(plat.backend.engine)
            with httpx.Client(timeout=5) as http:
                answers = [
                    http.post(f"{server.url}/-/reload"),
                    http.post(f"{server.url}/-/kill-switches"),
                ]
                served = http.post(
                    f"{server.url}/endpoints/scoring/invocations", json={"inputs": {"x": 1.0}}
                )
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/json"
        assert "database is locked" in answer.json()["error"]
        assert answer.json()["error"].startswith("the store at")
    assert served.status_code == 200
