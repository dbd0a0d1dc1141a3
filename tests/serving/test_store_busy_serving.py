"""The local backend's serving state lives in the store's database: its failures are the store's."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from artifact_kit import MakeArtifact
from serving_kit import stop_polling, wait_for
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
def failing_endpoint_reads(home: Path) -> Iterator[Callable[[Engine], Callable[[], None]]]:
    """Make every read of the local backend's endpoints fail as a locked SQLite file does, until
    the callable ``install`` returns is called."""
    engines: list[Engine] = []

    def locked(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "local_endpoints" in statement:
            raise sqlite3.OperationalError("database is locked")

    def install(engine: Engine) -> Callable[[], None]:
        event.listen(engine, "before_cursor_execute", locked)
        engines.append(engine)
        return functools.partial(remove, engine)

    def remove(engine: Engine) -> None:
        engines.remove(engine)
        event.remove(engine, "before_cursor_execute", locked)

    yield install
    for engine in list(engines):
        remove(engine)


def test_the_inference_server_answers_a_failing_store_503_and_keeps_serving(
    home: Path,
    make_servable: MakeArtifact,
    failing_endpoint_reads: Callable[[Engine], Callable[[], None]],
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


def test_a_store_failure_while_an_endpoint_loads_is_retried_at_the_next_look(
    home: Path,
    make_servable: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Platform(home, actor="alice") as plat:
        plat.register_model("m", make_servable(b"v1"), flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        real = plat.get_model_version
        failures = {"left": 2}

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if failures["left"]:
                failures["left"] -= 1
                raise StoreError("the store at sqlite:///x failed: disk I/O error")
            return real(*args, **kwargs)

        monkeypatch.setattr(plat, "get_model_version", flaky)
        with caplog.at_level("WARNING"), InferenceServer(plat, poll_interval=60) as server:
            assert "scoring" not in server.endpoints
            server.reload()  # the store fails again: not said twice
            assert "scoring" not in server.endpoints
            server.reload()  # the store answers: loaded, with no change to the endpoint
            assert "scoring" in server.endpoints
    said = [r for r in caplog.records if "disk I/O error" in r.getMessage()]
    assert len(said) == 1


def test_a_pinned_invocation_on_a_failing_store_is_answered_503_and_counted(
    home: Path, make_servable: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("the store at sqlite:///x failed: disk I/O error")

    with Platform(home, actor="alice") as plat:
        plat.register_model("m", make_servable(b"v1"), flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        with InferenceServer(plat, poll_interval=60) as server:
            server.start()
            monkeypatch.setattr(plat, "get_model_version", failing)
            with httpx.Client(timeout=5) as http:
                answer = http.post(
                    f"{server.url}/endpoints/scoring/invocations",
                    json={"inputs": {"x": 1.0}},
                    headers={"X-Mintaka-Route": "blue"},
                )
                metrics = http.get(f"{server.url}/metrics").text
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/json"
    assert "disk I/O error" in answer.json()["error"]
    counted = 'mintaka_requests_total{endpoint="scoring",route="blue",status="503"} 1.0'
    assert counted in metrics


def test_a_kill_the_server_cannot_apply_now_is_said_and_applied_at_its_next_look(
    home: Path,
    make_servable: MakeArtifact,
    failing_endpoint_reads: Callable[[Engine], Callable[[], None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Platform(home, actor="alice") as plat:
        plat.register_model("m", make_servable(b"v1"), flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        with InferenceServer(plat, poll_interval=60) as server:
            server.start()
            recover = failing_endpoint_reads(plat.backend.engine)  # the server's reads only
            with caplog.at_level("WARNING"), Platform(home, actor="alice") as other:
                killed = other.serving.kill("scoring", reason="incident")
            assert killed.status.value == "killed"  # recorded all the same
            assert not server.endpoints["scoring"].killed
            recover()
            server.reload()
            assert server.endpoints["scoring"].killed
    said = [r.getMessage() for r in caplog.records if r.name == "mintaka.local.serving"]
    assert len(said) == 1, said
    assert f"{server.url} answered 503 to /-/kill-switches" in said[0]
    assert "database is locked" in said[0]


def test_a_store_failing_at_every_poll_is_said_once(
    home: Path,
    make_servable: MakeArtifact,
    failing_endpoint_reads: Callable[[Engine], Callable[[], None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads = {"n": 0}

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        reads["n"] += "local_endpoints" in statement

    with Platform(home, actor="alice") as plat:
        plat.register_model("m", make_servable(b"v1"), flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        with caplog.at_level("WARNING"), InferenceServer(plat, poll_interval=0.005) as server:
            event.listen(plat.backend.engine, "before_cursor_execute", count)
            recover = failing_endpoint_reads(plat.backend.engine)
            server.start()
            wait_for(lambda: reads["n"] >= 5, timeout=5)
            recover()
            wait_for(lambda: any("answers again" in r.getMessage() for r in caplog.records), 5)
            stop_polling(server)
            event.remove(plat.backend.engine, "before_cursor_execute", count)
    said = [r.getMessage() for r in caplog.records if r.name == "mintaka.local.server"]
    assert len([m for m in said if "database is locked" in m]) == 1, said
