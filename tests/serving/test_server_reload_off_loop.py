"""Slow work, a reload loading a model or a model predicting, does not stop the server answering
other requests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import faulty_models
import httpx
import pytest
from serving_kit import pyfunc_artifact, row, stop_polling, wait_for

from mintaka import Platform, ValidationError
from mintaka.domain.serving import Route, TrafficMap
from mintaka.local.backend import LocalBackend
from mintaka.local.server import DEFAULT_PREDICT_WORKERS, EndpointRuntime, InferenceServer

Served = tuple[Platform, InferenceServer]


@pytest.fixture
def held(served: Served, tmp_path: Path) -> Iterator[Served]:
    """``served`` with an endpoint ``held`` whose model answers only once the test releases it
    (``faulty_models.RELEASE``); each call starting signals ``faulty_models.PREDICTING``."""
    plat, server = served
    faulty_models.PREDICTING = threading.Semaphore(0)
    faulty_models.RELEASE.clear()
    artifact = pyfunc_artifact(tmp_path, "faulty_models:waits_for_release")
    version = plat.register_model("credit", artifact, flavor="pyfunc")
    plat.serving.create_endpoint("held", f"credit:{version.version}", route="slow")
    try:
        yield plat, server
    finally:
        faulty_models.RELEASE.set()


def _invoke_in_background(server: InferenceServer, name: str) -> tuple[threading.Thread, list[int]]:
    """Invoke ``name`` on a thread; its status lands in the list (none if the server hung up)."""
    statuses: list[int] = []

    def invoke() -> None:
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.post(
                f"{server.url}/endpoints/{name}/invocations", json={"inputs": row(0)}, timeout=10
            )
            statuses.append(answer.status_code)

    thread = threading.Thread(target=invoke)
    thread.start()
    return thread, statuses


def test_requests_and_the_kill_switch_are_answered_while_a_model_predicts(held: Served) -> None:
    plat, server = held
    slow, statuses = _invoke_in_background(server, "held")
    try:
        assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        with httpx.Client(timeout=2) as http:  # a blocked event loop would time out
            assert http.get(f"{server.url}/health").status_code == 200
            assert http.get(f"{server.url}/metrics").status_code == 200
            other = http.post(
                f"{server.url}/endpoints/scoring/invocations", json={"inputs": row(0)}
            )
            assert other.status_code == 200
            plat.serving.kill("held")
            refused = http.post(f"{server.url}/endpoints/held/invocations", json={"inputs": row(1)})
            assert refused.status_code == 503
    finally:
        faulty_models.RELEASE.set()
        slow.join(10)
    assert statuses == [200]  # the prediction under way when the switch was pulled


def test_no_more_predictions_run_at_once_than_an_endpoint_has_workers(held: Served) -> None:
    plat, _ = held
    server = InferenceServer(plat, poll_interval=0.02, predict_workers=1)
    server.start()
    calls = [_invoke_in_background(server, "held") for _ in range(2)]
    try:
        assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        assert not faulty_models.PREDICTING.acquire(timeout=0.05), "a second worker predicted"
    finally:
        faulty_models.RELEASE.set()
        for thread, _ in calls:
            thread.join(10)
        server.stop()
    assert faulty_models.PREDICTING.acquire(timeout=0)  # the second ran after the first
    assert [statuses for _, statuses in calls] == [[200], [200]]


def test_a_slow_model_holds_up_no_other_endpoint(held: Served) -> None:
    plat, server = held
    calls = [_invoke_in_background(server, "held") for _ in range(DEFAULT_PREDICT_WORKERS)]
    try:
        for _ in calls:
            assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        plat.serving.kill("held")  # refuses new requests; frees none of the held workers
        with httpx.Client(timeout=2) as http:
            other = http.post(
                f"{server.url}/endpoints/scoring/invocations", json={"inputs": row(0)}
            )
            assert other.status_code == 200
    finally:
        faulty_models.RELEASE.set()
        for thread, _ in calls:
            thread.join(10)
    assert [statuses for _, statuses in calls] == [[200]] * DEFAULT_PREDICT_WORKERS


@contextlib.contextmanager
def _one_predicting_one_queued(
    plat: Platform,
) -> Iterator[tuple[InferenceServer, list[tuple[threading.Thread, list[int]]]]]:
    """A server with one prediction worker, on which a request to ``held`` is predicting and a
    second waits for the worker; on leaving, the model answers and the server stops."""
    server = InferenceServer(plat, poll_interval=0.02, predict_workers=1)
    server.start()
    calls = [_invoke_in_background(server, "held")]
    try:
        assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        calls.append(_invoke_in_background(server, "held"))  # queued behind the hung one
        wait_for(lambda: server.endpoints["held"].pool._work_queue.qsize() == 1, timeout=5)
        yield server, calls
    finally:
        faulty_models.RELEASE.set()
        for thread, _ in calls:
            thread.join(10)
        server.stop()


def test_requests_queued_for_an_endpoint_when_it_is_killed_are_refused(held: Served) -> None:
    plat, _ = held
    with _one_predicting_one_queued(plat) as (_, calls):
        plat.serving.kill("held")
    assert [statuses for _, statuses in calls] == [[200], [503]]
    assert not faulty_models.PREDICTING.acquire(timeout=0)  # the queued request's model: never


def test_an_endpoint_that_goes_takes_its_prediction_workers_with_it(held: Served) -> None:
    plat, server = held
    slow, statuses = _invoke_in_background(server, "held")
    try:
        assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        workers = [t for t in threading.enumerate() if t.name.startswith("mintaka-predict-held")]
        assert len(workers) == 1
        plat.serving.delete_endpoint("held")
        assert "held" not in server.endpoints
    finally:
        faulty_models.RELEASE.set()
        slow.join(10)
    assert statuses == [200]  # the prediction under way when the endpoint went
    workers[0].join(5)
    assert not workers[0].is_alive()


def test_requests_queued_for_an_endpoint_when_it_is_deleted_are_refused_at_once(
    held: Served,
) -> None:
    plat, _ = held
    with _one_predicting_one_queued(plat) as (_, calls):
        plat.serving.delete_endpoint("held")
        calls[1][0].join(5)  # answered while the model under way still holds its worker
        assert calls[1][1] == [404]
    assert calls[0][1] == [200]  # the prediction under way when the endpoint went
    assert not faulty_models.PREDICTING.acquire(timeout=0)  # the queued request's model: never


def test_a_changed_endpoint_is_not_held_up_by_its_old_configurations_hung_model(
    held: Served,
) -> None:
    plat, _ = held
    with _one_predicting_one_queued(plat) as (server, calls):
        backend: LocalBackend = plat.backend  # type: ignore[assignment]
        fast = Route(name="fast", model="credit", version=1)
        backend.update_routes("held", [fast], TrafficMap(weights={"fast": 100}))
        with httpx.Client(timeout=2) as http:
            answer = http.post(f"{server.url}/endpoints/held/invocations", json={"inputs": row(0)})
        assert (answer.status_code, answer.json()["route"]) == (200, "fast")
        calls[1][0].join(5)  # the queued request moved to the new configuration's workers
        assert calls[1][1] == [200]
    assert calls[0][1] == [200]  # the prediction under way when the endpoint changed


def test_stop_leaves_a_model_that_does_not_return_behind_after_its_grace(held: Served) -> None:
    plat, _ = held
    server = InferenceServer(plat, poll_interval=0.02, stop_grace=0.05)
    server.start()
    slow, statuses = _invoke_in_background(server, "held")
    try:
        assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        (worker,) = [t for t in threading.enumerate() if t.name.startswith("mintaka-predict-held")]
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3  # the model answers in 10 s if never released
        assert worker.is_alive()  # left behind, on a thread that keeps no process alive:
        assert worker.daemon
    finally:
        faulty_models.RELEASE.set()
        slow.join(10)
    assert statuses == [503]  # the request was given up, not answered by the model


def test_requests_left_waiting_when_the_server_stops_are_answered_503(held: Served) -> None:
    plat, _ = held
    server = InferenceServer(plat, poll_interval=0.02, predict_workers=1, stop_grace=0.05)
    server.start()
    answers: list[httpx.Response] = []

    def invoke() -> None:
        answers.append(
            httpx.post(
                f"{server.url}/endpoints/held/invocations", json={"inputs": row(0)}, timeout=10
            )
        )

    calls = [threading.Thread(target=invoke)]
    calls[0].start()
    try:
        assert faulty_models.PREDICTING.acquire(timeout=5), "the model was never called"
        calls.append(threading.Thread(target=invoke))
        calls[1].start()
        wait_for(lambda: server.endpoints["held"].pool._work_queue.qsize() == 1, timeout=5)
        server.stop()
        for thread in calls:
            thread.join(5)
    finally:
        faulty_models.RELEASE.set()
    assert [answer.status_code for answer in answers] == [503, 503]
    assert all("stopping" in answer.json()["error"] for answer in answers)
    assert not faulty_models.PREDICTING.acquire(timeout=0)  # the queued request's model: never


@pytest.mark.parametrize("grace", [-1.0, float("nan"), float("inf")])
def test_a_stop_grace_that_is_not_a_number_of_seconds_is_refused(
    served: Served, grace: float
) -> None:
    with pytest.raises(ValidationError, match="stop_grace"):
        InferenceServer(served[0], stop_grace=grace)


def test_a_server_without_prediction_workers_is_refused(served: Served) -> None:
    with pytest.raises(ValidationError, match="predict_workers"):
        InferenceServer(served[0], predict_workers=0)


def _held_loads(
    server: InferenceServer, held: Callable[[Any], bool]
) -> tuple[threading.Event, threading.Event]:
    """Make ``server`` load each configuration ``held`` picks only once the test releases it:
    the first event is set when such a load starts, the second releases it."""
    loading, release = threading.Event(), threading.Event()
    load = server._runtime

    def slow_load(config: Any) -> EndpointRuntime:
        if held(config):
            loading.set()
            assert release.wait(10), "the test never released the load"
        return load(config)

    server._runtime = slow_load  # type: ignore[method-assign]
    return loading, release


def test_requests_are_answered_while_a_reload_loads_a_model(served: Served) -> None:
    plat, server = served
    loading, release = _held_loads(server, lambda config: config.name == "slow")
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


def _invoked(server: InferenceServer, name: str) -> httpx.Response:
    """Invoke endpoint ``name`` with one row, failing if the server takes over two seconds."""
    return httpx.post(
        f"{server.url}/endpoints/{name}/invocations", json={"inputs": row(0)}, timeout=2
    )


def _unnotified(plat: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes made through ``plat`` reach a server only when it looks (a poll or a reload)."""
    monkeypatch.setattr(plat.backend, "_notify_server", lambda path="/-/reload": None)


def test_an_endpoint_made_again_is_not_served_by_the_one_it_replaces_while_it_loads(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, server = served
    stop_polling(server)
    _unnotified(plat, monkeypatch)
    replaced = server.endpoints["scoring"].incarnation
    loading, release = _held_loads(
        server, lambda config: config.name == "scoring" and config.incarnation != replaced
    )
    plat.serving.delete_endpoint("scoring")
    plat.serving.create_endpoint("scoring", "credit:2", route="green")
    reload = threading.Thread(target=server.reload)
    reload.start()
    try:
        assert loading.wait(5), "the new endpoint was never loaded"
        assert _invoked(server, "scoring").status_code == 404
    finally:
        release.set()
        reload.join(10)
    answer = _invoked(server, "scoring")
    assert (answer.status_code, answer.json()["route"]) == (200, "green")


def test_a_deleted_endpoint_is_not_served_while_a_reload_loads_models(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, server = served
    stop_polling(server)
    _unnotified(plat, monkeypatch)
    plat.serving.delete_endpoint("scoring")
    server._reload_lock.acquire()  # a reload loading another endpoint's models
    notice = threading.Thread(
        target=httpx.post, args=(f"{server.url}/-/reload",), kwargs={"timeout": 10}
    )
    try:
        notice.start()  # the delete's notice, which waits for that reload
        wait_for(lambda: "scoring" not in server.endpoints, timeout=5)
        assert _invoked(server, "scoring").status_code == 404
    finally:
        server._reload_lock.release()
        notice.join(10)


def test_a_reload_that_outlives_stop_leaves_no_prediction_workers_taking_work(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, _ = served
    _unnotified(plat, monkeypatch)
    server = InferenceServer(plat, poll_interval=60, stop_grace=0.05)
    server.start()
    loading, release = _held_loads(server, lambda config: config.name == "late")
    plat.serving.create_endpoint("late", "credit:2", route="green")
    reload = threading.Thread(target=server.reload)  # as a poller whose join timed out
    reload.start()
    try:
        assert loading.wait(5), "the new endpoint was never loaded"
        server.stop()
    finally:
        release.set()
        reload.join(10)
    assert "late" in server.endpoints
    for runtime in server.endpoints.values():
        with pytest.raises(RuntimeError, match="shut down"):
            runtime.pool.submit(lambda: None)


def test_a_kill_is_in_force_at_once_while_reloads_wait_on_every_shared_thread(
    served: Served,
) -> None:
    plat, server = served
    stop_polling(server)  # no polling: only the kill's own call can apply it
    waiting: list[None] = []
    reload = server.reload

    def counted(force: bool = False) -> None:
        waiting.append(None)
        reload(force)

    async def shared_threads() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    server.reload = counted  # type: ignore[method-assign]
    reloads = []
    server._reload_lock.acquire()  # a reload loading models, for as long as the test needs
    try:
        for _ in range(int(anyio.run(shared_threads))):
            reloads.append(
                threading.Thread(
                    target=httpx.post, args=(f"{server.url}/-/reload",), kwargs={"timeout": 10}
                )
            )
            reloads[-1].start()
        wait_for(lambda: len(waiting) == len(reloads), timeout=10)
        plat.serving.kill("scoring")
        with httpx.Client(timeout=2) as http:
            refused = http.post(
                f"{server.url}/endpoints/scoring/invocations", json={"inputs": row(0)}
            )
            assert refused.status_code == 503
    finally:
        server._reload_lock.release()
        for thread in reloads:
            thread.join(10)


def test_an_unrecorded_endpoint_is_looked_up_again_off_the_event_loop(served: Served) -> None:
    _, server = served
    stop_polling(server)  # no polling: only the invocation looks again
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


def test_a_reload_left_waiting_for_models_when_the_server_stops_is_answered_503(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    plat, _ = served
    server = InferenceServer(plat, poll_interval=60, stop_grace=0.05)
    server.start()
    waiting: list[None] = []
    reload = server.reload

    def counted(force: bool = False) -> None:
        waiting.append(None)
        reload(force)

    server.reload = counted  # type: ignore[method-assign]
    answers: list[httpx.Response] = []
    server._reload_lock.acquire()  # a reload loading models, for as long as the test needs
    try:
        asking = threading.Thread(
            target=lambda: answers.append(httpx.post(f"{server.url}/-/reload", timeout=10))
        )
        asking.start()
        wait_for(lambda: waiting, timeout=5)
        server.stop()
        asking.join(10)
    finally:
        server._reload_lock.release()
    [answer] = answers
    assert answer.status_code == 503
    assert "stopping" in answer.json()["error"]
    assert "Exception in ASGI application" not in caplog.text
