"""A reload that loads a slow model does not stop the server answering other requests."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from serving_kit import row

from mintaka import Platform
from mintaka.local.server import EndpointRuntime, InferenceServer

Served = tuple[Platform, InferenceServer]


def test_requests_are_answered_while_a_reload_loads_a_model(served: Served) -> None:
    plat, server = served
    loading, release = threading.Event(), threading.Event()
    load = server._runtime

    def slow_load(config: Any) -> EndpointRuntime:
        if config.name == "slow":
            loading.set()
            assert release.wait(10), "the test never released the load"
        return load(config)

    server._runtime = slow_load  # type: ignore[method-assign]
    changer = threading.Thread(
        target=plat.serving.create_endpoint, args=("slow", "credit:2"), kwargs={"route": "green"}
    )
    changer.start()
    reload: threading.Thread | None = None
    try:
        assert loading.wait(5), "the new endpoint was never loaded"
        with httpx.Client(timeout=2) as http:  # a blocked event loop would time out
            reload = threading.Thread(
                target=httpx.post, args=(f"{server.url}/-/reload",), kwargs={"timeout": 10}
            )
            reload.start()  # a second reload waits for the first, on a worker thread
            assert http.get(f"{server.url}/health").status_code == 200
            answer = http.post(
                f"{server.url}/endpoints/scoring/invocations", json={"inputs": row(0)}
            )
            assert answer.status_code == 200
            assert "slow" not in http.get(f"{server.url}/health").json()["endpoints"]
    finally:
        release.set()
        changer.join(10)
        if reload is not None:
            reload.join(10)
    with httpx.Client(timeout=2) as http:
        assert (
            http.post(
                f"{server.url}/endpoints/slow/invocations", json={"inputs": row(1)}
            ).status_code
            == 200
        )


def test_an_unrecorded_endpoint_is_looked_up_again_off_the_event_loop(served: Served) -> None:
    _, server = served
    server._stop.set()  # no polling: only the invocation looks again
    assert server._poller is not None
    server._poller.join(5)
    threads: list[str] = []
    reload = server.reload

    def recording(force: bool = False) -> None:
        threads.append(threading.current_thread().name)
        reload(force)

    server.reload = recording  # type: ignore[method-assign]
    server._unrecorded = {"legacy-api"}  # an endpoint whose model the store does not record
    answer = httpx.post(
        f"{server.url}/endpoints/legacy-api/invocations", json={"inputs": row(0)}, timeout=5
    )
    assert answer.status_code == 404
    assert threads
    assert "mintaka-http" not in threads  # the server's event loop runs on that thread
