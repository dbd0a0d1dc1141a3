"""The inference server's worker pools: threads that run models, and that can be left behind.

A ``ThreadPoolExecutor``'s threads are joined when the interpreter exits, so a model that never
returns would keep a stopped server's process alive forever. These threads are daemons: once the
server's stop grace is over, a thread still inside a model is abandoned, and the process exits.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError
from contextlib import suppress
from typing import Any

_Work = tuple["Future[Any]", Callable[[], Any]]


class WorkerPool(Executor):
    """Up to ``workers`` daemon threads taking calls in the order they were submitted, each made
    when a call finds no idle one."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._work_queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._running: set[Future[Any]] = set()  # the calls under way, for abandon()
        self._abandoned: Callable[[], Any] | None = None  # abandon()'s answer, once called
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"worker pool {self._name} is shut down")
            self._queue((future, functools.partial(fn, *args, **kwargs)))
        return future

    def _queue(self, work: _Work) -> None:
        """Queue ``work``, making a thread for it when none is idle (under ``_lock``)."""
        self._work_queue.put(work)
        if self._idle.acquire(blocking=False) or len(self._threads) >= self._workers:
            return
        thread = threading.Thread(
            target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            work = self._work_queue.get()
            if work is None:  # shut down: pass the word on to the next thread
                self._work_queue.put(None)
                return
            future, call = work
            if future.set_running_or_notify_cancel():
                self._run(future, call)
            del work, future, call
            self._idle.release()

    def _run(self, future: Future[Any], call: Callable[[], Any]) -> None:
        """Run ``call`` for ``future``; a future :meth:`abandon` completed meanwhile keeps the
        answer it was given."""
        with self._lock:
            abandoned = self._abandoned
            if abandoned is None:
                self._running.add(future)
        if abandoned is not None:  # taken off the queue just before abandon() drained it
            future.set_result(abandoned())
            return
        try:
            result = call()
        except BaseException as exc:
            with self._lock:
                self._running.discard(future)
            with suppress(InvalidStateError):
                future.set_exception(exc)
        else:
            with self._lock:
                self._running.discard(future)
            with suppress(InvalidStateError):
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more calls; the queued ones still run unless ``cancel_futures``."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                for work in self._drain():
                    work[0].cancel()
            self._work_queue.put(None)
        if wait:
            self.join()

    def hand_over(self, successor: WorkerPool) -> None:
        """Shut down without waiting, handing the calls still queued to ``successor``: they run
        there rather than behind whatever holds this pool's threads."""
        with self._lock:
            self._closed = True
            queued = self._drain()
            self._work_queue.put(None)
        with successor._lock:
            for work in queued:
                successor._queue(work)

    def refuse_queued(self, answer: Callable[[], Any]) -> None:
        """Shut down without waiting, completing each call still queued with ``answer()``
        instead of running it: its caller gets that answer now rather than once whatever holds
        this pool's threads lets go."""
        with self._lock:
            self._closed = True
            queued = self._drain()
            self._work_queue.put(None)
        for future, _ in queued:
            if future.set_running_or_notify_cancel():
                future.set_result(answer())

    def abandon(self, answer: Callable[[], Any]) -> None:
        """Shut down without waiting, completing every call not finished with ``answer()``:
        those still queued are never run, and the caller of one under way gets that answer now,
        while its thread is left to finish (what it returns then goes nowhere)."""
        with self._lock:
            self._closed = True
            self._abandoned = answer
            calls = [future for future, _ in self._drain()] + list(self._running)
            self._work_queue.put(None)
        for future in calls:
            with suppress(InvalidStateError):
                future.set_result(answer())

    def _drain(self) -> list[_Work]:
        """The queued calls, taken off the queue (under ``_lock``)."""
        taken: list[_Work] = []
        while True:
            try:
                work = self._work_queue.get_nowait()
            except queue.Empty:
                return taken
            if work is not None:
                taken.append(work)

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: without bound) for every thread of a pool shut
        down to finish; whether they all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)
