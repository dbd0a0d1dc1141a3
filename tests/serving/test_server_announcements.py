"""Every inference server on one home hears of a change; servers that died are forgotten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from serving_kit import row

from mintaka import Platform
from mintaka.local.server import InferenceServer
from mintaka.local.serving import SERVER_FILE, SERVERS_DIR, running_servers

Served = tuple[Platform, InferenceServer]
NO_SUCH_PID = 2**22 + 7  # above Linux's largest pid


def _served_by(server: InferenceServer) -> list[str]:
    return list(httpx.get(f"{server.url}/health", timeout=5).json()["endpoints"])


def test_two_servers_on_one_home_both_take_a_change_at_once(served: Served) -> None:
    plat, first = served
    second = InferenceServer(plat, poll_interval=3600)  # hears of changes only when told
    second.start()
    try:
        first.poll_interval = 3600
        assert {s.url for s in running_servers(plat.backend.path)} == {first.url, second.url}
        plat.serving.create_endpoint("second-api", "credit:2", route="green")
        assert "second-api" in _served_by(first)
        assert "second-api" in _served_by(second)  # before: only the last server to start
        answer = plat.backend.invoke("second-api", {"inputs": row(0)})  # type: ignore[attr-defined]
        assert answer["model"] == "credit"
    finally:
        second.stop()
    assert [s.url for s in running_servers(plat.backend.path)] == [first.url]


def test_a_dead_servers_announcement_is_removed_without_an_error(served: Served) -> None:
    plat, server = served
    folder = Path(plat.backend.path) / SERVERS_DIR
    stale = folder / f"{NO_SUCH_PID}-1.json"
    stale.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": NO_SUCH_PID}))
    legacy = Path(plat.backend.path) / SERVER_FILE
    legacy.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": NO_SUCH_PID}))
    (folder / "garbage.json").write_text("{not json")
    plat.serving.create_endpoint("fresh-api", "credit:2", route="green")
    assert "fresh-api" in _served_by(server)
    assert not stale.exists()
    assert not legacy.exists()
    assert [s.url for s in running_servers(plat.backend.path)] == [server.url]


def test_a_live_process_not_listening_is_skipped_for_invocations(served: Served) -> None:
    plat, _ = served
    folder = Path(plat.backend.path) / SERVERS_DIR
    # Sorted first, this process, nothing listening there: the invocation moves on.
    (folder / "0-1.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": None}))
    answer = plat.backend.invoke("scoring", {"inputs": row(1)})  # type: ignore[attr-defined]
    assert answer["route"] == "blue"


def test_a_stopped_server_removes_its_announcement(served: Served) -> None:
    plat, server = served
    server.stop()
    assert running_servers(plat.backend.path) == []
    assert list((Path(plat.backend.path) / SERVERS_DIR).iterdir()) == []


def test_a_server_on_ipv6_loopback_is_announced_in_brackets_and_told_of_a_kill(
    served: Served,
) -> None:
    plat, first = served
    first.poll_interval = 3600
    v6 = InferenceServer(plat, poll_interval=3600)  # hears of changes only when told
    url = v6.start("::1", 0)
    try:
        assert url.startswith("http://[::1]:")
        assert url in {s.url for s in running_servers(plat.backend.path)}
        plat.serving.kill("scoring", reason="incident")
        assert v6.endpoints["scoring"].killed  # told at once, as a server on IPv4 is
        assert plat.backend.get_endpoint("scoring").status == "killed"  # type: ignore[attr-defined]
        assert [e.action for e in plat.audit.events()][-1] == "endpoint.kill"
    finally:
        v6.stop()


def test_a_server_that_cannot_be_told_never_fails_a_committed_change(served: Served) -> None:
    plat, server = served
    folder = Path(plat.backend.path) / SERVERS_DIR
    # Sorted first, this process, at a URL no HTTP client takes (an unbracketed IPv6 address).
    (folder / "0-1.json").write_text(json.dumps({"url": "http://::1:1", "pid": os.getpid()}))
    plat.serving.kill("scoring", reason="incident")
    assert plat.backend.get_endpoint("scoring").status == "killed"  # type: ignore[attr-defined]
    assert [e.action for e in plat.audit.events()][-1] == "endpoint.kill"
    assert server.endpoints["scoring"].killed
    plat.serving.unkill("scoring", reason="resolved")
    answer = plat.backend.invoke("scoring", {"inputs": row(1)})  # type: ignore[attr-defined]
    assert answer["route"] == "blue"
