"""Serving benchmark: Mintaka's local inference server against MLflow's and a bare FastAPI app.

The same scikit-learn model (a LogisticRegression on six numeric features) is served by

- ``mintaka serve`` (the local backend's inference server, prediction logging on),
- ``mlflow models serve --env-manager local`` (the model saved with MLflow's sklearn flavor,
  ``pyfunc_predict_fn="predict_proba"``),
- a minimal FastAPI app under uvicorn that loads the same skops file and returns
  ``predict_proba`` for one row,

each in its own process, all three pinned to one core while the load generator runs pinned to
another (on a machine with at least two cores). One load generator drives all three: a
hand-written HTTP/1.1 client on keep-alive connections, so that its own cost is small and the
same for every server. Per run: ``--sequential`` requests one after another on one connection
per server (p50/p99 latency), then ``--duration`` seconds per server at ``--concurrency``
connections (requests/s). The servers take turns (``--turn`` sequential requests, ``--slice``
seconds of load), so that whatever else the machine does weighs on all of them alike; an idle
server waits in ``epoll`` and costs the others next to nothing. The figures reported are the
medians of ``--runs`` runs, after a warm-up. Every answer is checked (status 200, and the same
probability from all three servers), and after Mintaka's server is stopped (SIGTERM) the
benchmark checks that every prediction it answered is in the prediction log.

MLflow and FastAPI are not dependencies of Mintaka; run this with::

    uv run --isolated --with-editable . --with 'mlflow==3.17.*' --with fastapi \\
        python benchmarks/serving.py

``--skip-mlflow`` / ``--skip-fastapi`` leave a server out (``uv run python
benchmarks/serving.py --skip-mlflow --skip-fastapi`` needs nothing beyond Mintaka).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FEATURES = [f"f{i}" for i in range(6)]
ENDPOINT = "bench"
MODEL = "bench-model"


# -- the model ---------------------------------------------------------------------------------


def fit_model() -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURES)))
    y = (x @ np.array([1.0, -0.5, 0.25, 0.0, 2.0, -1.0]) + rng.normal(size=2000) > 0).astype(int)
    return LogisticRegression().fit(x, y)


def sample_rows(count: int) -> list[dict[str, float]]:
    import random

    rng = random.Random(1)
    return [{f: round(rng.gauss(0, 1), 6) for f in FEATURES} for _ in range(count)]


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Target:
    """One server under test: how to start it, what to send, how to read the answer."""

    name: str
    start: Callable[[int], subprocess.Popen[bytes]]
    path: str
    body: Callable[[dict[str, float]], bytes]
    output: Callable[[Any], float]
    after_stop: Callable[[int], str] = lambda _answered: ""
    outputs: list[float] = field(default_factory=list)


def launch(command: list[str], log_file: Path, core: int | None) -> subprocess.Popen[bytes]:
    """Start a server process and pin it to ``core`` right away, long before its interpreter has
    started a thread (threads and child processes inherit the affinity)."""
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=offline_env(), start_new_session=True
        )
    if core is not None:
        os.sched_setaffinity(proc.pid, {core})
    return proc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # Any attempt to reach the network fails fast instead of waiting on it.
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
            "PIP_NO_INDEX": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def mintaka_target(work: Path, model: Any, core: int | None) -> Target:
    from mintaka import Platform
    from mintaka.domain.registry import Signature
    from mintaka.flavors import sklearn as sklearn_flavor

    home = work / "mintaka-home"
    with Platform(home, actor="bench") as platform:
        # A low-risk model needs no approval to be served; its card says what governance asks.
        platform.create_model(MODEL, owner="bench", tier="low")
        platform.register_model(
            MODEL,
            sklearn_flavor.save(model, work / "skops-model"),
            flavor="sklearn",
            signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        )
        governance = getattr(platform, "governance", None)
        if governance is not None:
            governance.set_model_card(f"{MODEL}:1", intended_use="serving benchmark", owner="bench")
        platform.serving.create_endpoint(ENDPOINT, f"{MODEL}:1", route="main")
    cli = Path(sys.executable).with_name("mintaka")
    log_file = work / "mintaka-serve.log"

    def start(port: int) -> subprocess.Popen[bytes]:
        return launch([str(cli), "--home", str(home), "serve", "--port", str(port)], log_file, core)

    seen = [0]

    def after_stop(answered: int) -> str:
        with sqlite3.connect(home / "store.db") as conn:
            total = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
        logged, seen[0] = total - seen[0], total
        if logged != answered:
            raise RuntimeError(f"Mintaka answered {answered} predictions but logged {logged}")
        return f"prediction log: {logged} of {answered} predictions written"

    return Target(
        "mintaka",
        start,
        f"/endpoints/{ENDPOINT}/invocations",
        lambda row: json.dumps({"inputs": row}).encode(),
        lambda answer: float(answer["predictions"][0]["output"]),
        after_stop,
    )


def mlflow_target(work: Path, model: Any, core: int | None) -> Target:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = work / "mlflow-model"
    example = [[0.0] * len(FEATURES)]
    import pandas as pd

    frame = pd.DataFrame(example, columns=FEATURES)
    mlflow.sklearn.save_model(
        model,
        str(path),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=["scikit-learn"],  # instead of inferring them from the project
        signature=infer_signature(frame, model.predict_proba(frame.to_numpy())),
    )
    log_file = work / "mlflow-serve.log"

    def start(port: int) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(path),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return launch(command, log_file, core)

    return Target(
        "mlflow",
        start,
        "/invocations",
        lambda row: json.dumps(
            {"dataframe_split": {"columns": FEATURES, "data": [[row[f] for f in FEATURES]]}}
        ).encode(),
        lambda answer: float(answer["predictions"][0][-1]),
    )


FASTAPI_APP = """
import sys

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel
from skops.io import load

FEATURES = sys.argv[2].split(",")
model = load(sys.argv[1])
app = FastAPI()


class Payload(BaseModel):
    inputs: dict[str, float]


@app.post("/predict")
async def predict(payload: Payload) -> dict[str, float]:
    row = np.array([[payload.inputs[f] for f in FEATURES]])
    return {"output": float(model.predict_proba(row)[0, -1])}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning",
                access_log=False)
"""


def fastapi_target(work: Path, model: Any, core: int | None) -> Target:
    from mintaka.flavors import sklearn as sklearn_flavor

    model_file = sklearn_flavor.save(model, work / "fastapi-model") / sklearn_flavor.FILENAME
    script = work / "bare_fastapi.py"
    script.write_text(FASTAPI_APP)
    log_file = work / "fastapi-serve.log"

    def start(port: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(script), str(model_file), ",".join(FEATURES), str(port)]
        return launch(command, log_file, core)

    return Target(
        "fastapi",
        start,
        "/predict",
        lambda row: json.dumps({"inputs": row}).encode(),
        lambda answer: float(answer["output"]),
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop cleanly (SIGTERM to its process group, as a process manager would); wait for it."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("server did not stop within 60 s") from None


# -- the load generator --------------------------------------------------------------------------


def request_bytes(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def parse_head(head: bytes) -> tuple[int, int]:
    """Status code and Content-Length of a response head (without the blank line)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise RuntimeError(f"response without Content-Length: {head!r}")


class Connection:
    """One blocking keep-alive HTTP/1.1 connection (for sequential latency)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, length = parse_head(head)
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def timed(conn: Connection, request: bytes) -> float:
    started = time.perf_counter()
    status, body = conn.send(request)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"status {status}: {body[:200]!r}")
    return elapsed


async def _concurrent(port: int, requests: list[bytes], workers: int, seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    done = [0]

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        i = offset
        try:
            while time.perf_counter() < deadline:
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                status, length = parse_head(head[:-4])
                body = await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"status {status}: {body[:200]!r}")
                done[0] += 1
                i += workers
        finally:
            writer.close()

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done[0]


# -- the measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    seq_rps: list[float] = field(default_factory=list)
    conc_rps: list[float] = field(default_factory=list)


@dataclass
class Running:
    target: Target
    port: int
    proc: subprocess.Popen[bytes]
    requests: list[bytes]
    answered: int = 0


def run_once(servers: list[Running], args: argparse.Namespace, run: int) -> dict[str, Result]:
    """One run: sequential latency, then throughput, interleaved across the servers.

    Requests go to the servers in turns of ``--turn`` requests (and throughput in slices of
    ``--slice`` seconds), so that whatever else the machine does at the time weighs on all
    of them alike instead of on whichever happened to be measured then.
    """
    latencies: dict[str, list[float]] = {s.target.name: [] for s in servers}
    conns = {s.target.name: Connection(s.port) for s in servers}
    try:
        for begin in range(0, args.sequential, args.turn):
            turn = servers[(begin // args.turn) % len(servers) :]
            turn += servers[: (begin // args.turn) % len(servers)]
            for server in turn:
                conn, sink = conns[server.target.name], latencies[server.target.name]
                for request in server.requests[begin : min(begin + args.turn, args.sequential)]:
                    sink.append(timed(conn, request))
                    server.answered += 1
    finally:
        for conn in conns.values():
            conn.close()
    counts = dict.fromkeys(latencies, 0)
    elapsed = dict.fromkeys(latencies, 0.0)
    slices = max(1, round(args.duration / args.slice))
    for index in range(slices):
        turn = servers[index % len(servers) :] + servers[: index % len(servers)]
        for server in turn:
            started = time.perf_counter()
            count = asyncio.run(
                _concurrent(server.port, server.requests, args.concurrency, args.duration / slices)
            )
            elapsed[server.target.name] += time.perf_counter() - started
            counts[server.target.name] += count
            server.answered += count
    results = {}
    for name, values in latencies.items():
        values.sort()
        result = Result(
            p50_ms=[statistics.median(values) * 1e3],
            p99_ms=[values[int(len(values) * 0.99) - 1] * 1e3],
            seq_rps=[len(values) / sum(values)],
            conc_rps=[counts[name] / elapsed[name]],
        )
        results[name] = result
        print(
            f"run {run + 1} {name:<8} p50 {result.p50_ms[0]:6.3f} ms  "
            f"p99 {result.p99_ms[0]:6.3f} ms  seq {result.seq_rps[0]:7.0f} req/s  "
            f"c{args.concurrency} {result.conc_rps[0]:7.0f} req/s",
            flush=True,
        )
    return results


def start_all(
    targets: list[Target], rows: list[dict[str, float]], args: argparse.Namespace
) -> list[Running]:
    servers = []
    try:
        for target in targets:
            port = free_port()
            requests = [request_bytes(target.path, target.body(row)) for row in rows]
            servers.append(Running(target, port, target.start(port), requests))
        for server in servers:
            wait_listening(server.port, server.proc)
            conn = Connection(server.port)
            try:
                status, body = conn.send(server.requests[0])
                if status != 200:
                    raise RuntimeError(f"{server.target.name}: status {status}: {body[:300]!r}")
                server.target.outputs.append(server.target.output(json.loads(body)))
                for request in server.requests[: args.warmup]:
                    timed(conn, request)
            finally:
                conn.close()
            server.answered += 1 + args.warmup
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: list[Running]) -> list[str]:
    notes = []
    for server in servers:
        stop(server.proc)
    for server in servers:
        note = server.target.after_stop(server.answered)
        if note:
            notes.append(note)
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--turn", type=int, default=100, help="sequential requests per turn")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds at concurrency")
    parser.add_argument("--slice", type=float, default=1.0, help="seconds per throughput turn")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-fastapi", action="store_true")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[-1], cores[0]) if len(cores) >= 2 else (None, None)
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})

    import warnings

    warnings.filterwarnings("ignore")
    model = fit_model()
    rows = sample_rows(max(args.sequential, args.warmup, 4096))
    with tempfile.TemporaryDirectory(prefix="mintaka-bench-serving-") as tmp:
        work = Path(tmp)
        targets = [mintaka_target(work, model, server_core)]
        if not args.skip_mlflow:
            targets.append(mlflow_target(work, model, server_core))
        if not args.skip_fastapi:
            targets.append(fastapi_target(work, model, server_core))
        results = {t.name: Result() for t in targets}
        servers = start_all(targets, rows, args)
        try:
            for run in range(args.runs):
                for name, one in run_once(servers, args, run).items():
                    for key in ("p50_ms", "p99_ms", "seq_rps", "conc_rps"):
                        getattr(results[name], key).extend(getattr(one, key))
        finally:
            notes = stop_all(servers)
        report(results, targets, notes, args, server_core, client_core)


def report(
    results: dict[str, Result],
    targets: list[Target],
    notes: list[str],
    args: argparse.Namespace,
    server_core: int | None,
    client_core: int | None,
) -> None:
    outputs = {round(o, 9) for t in targets for o in t.outputs}
    if len(outputs) != 1:
        raise RuntimeError(f"the servers disagree on the same row's probability: {outputs}")
    print()
    print(f"python {host.python_version()} on {host.platform()}, {os.cpu_count()} cores")
    if server_core is None:
        print("one core only: server and load generator share it")
    else:
        print(f"server pinned to core {server_core}, load generator to core {client_core}")
    print(
        f"{args.runs} runs (median shown); {args.sequential} sequential requests on one keep-alive"
        f" connection after {args.warmup} warm-up; {args.duration:g} s at concurrency"
        f" {args.concurrency}"
    )
    print()
    print(f"{'server':<10}{'p50 ms':>9}{'p99 ms':>9}{'seq req/s':>11}{'c8 req/s':>10}")
    med = {
        name: {
            key: statistics.median(getattr(r, key))
            for key in ("p50_ms", "p99_ms", "seq_rps", "conc_rps")
        }
        for name, r in results.items()
    }
    for name, m in med.items():
        print(
            f"{name:<10}{m['p50_ms']:9.3f}{m['p99_ms']:9.3f}{m['seq_rps']:11.0f}"
            f"{m['conc_rps']:10.0f}"
        )
    print()
    for note in notes:
        print(note)
    mine = med.get("mintaka")
    if mine and "fastapi" in med:
        extra = mine["p50_ms"] - med["fastapi"]["p50_ms"]
        verdict = "met" if extra <= 0.3 else "NOT met"
        print(f"mintaka p50 - fastapi p50 = {extra:+.3f} ms (target <= +0.300 ms: {verdict})")
    if mine and "mlflow" in med:
        ratio = mine["conc_rps"] / med["mlflow"]["conc_rps"]
        verdict = "met" if ratio >= 4 else "NOT met"
        print(f"mintaka / mlflow throughput at c8 = {ratio:.2f}x (target >= 4x: {verdict})")
        seq = mine["seq_rps"] / med["mlflow"]["seq_rps"]
        print(f"mintaka / mlflow sequential req/s = {seq:.2f}x")


if __name__ == "__main__":
    main()
