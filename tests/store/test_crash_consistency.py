"""Crash consistency: SIGKILL a registering writer at random moments, then audit the home.

A writer process (``crash_writer.py``) registers model versions on one home and acknowledges each
one on stdout once ``register_model`` has returned. The test kills it with SIGKILL after a seeded
random delay, starts it again on the same home, and after every kill checks that

- every acknowledged version is there with the acknowledged digest;
- no record is partial: each version has its model, artifact row, tags, lineage node and edges,
  its ``model.register`` audit event and its backend version; each audit event points at the
  record it describes;
- every stored artifact, referenced or not, still matches its digest;
- both SQLite files pass ``PRAGMA integrity_check`` and ``foreign_key_check``;
- the audit chain verifies.

A version the local backend created but the control plane never recorded (a kill between the
backend call and the commit) is expected, as with a real cloud; ``sync`` reports it. The reverse,
a control-plane row without its backend version, is a failure.

Interpreter start-up plus ``import mintaka.platform`` take about a second, so the writer imports
once and forks a fresh writer process per round; each forked writer opens its own ``Platform``.
``MINTAKA_CRASH_SEED`` and ``MINTAKA_CRASH_KILLS`` override the seed and the number of kills.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select as sql_select

from mintaka.errors import MintakaError
from mintaka.local.backend import LocalBackend
from mintaka.local.registry_db import local_versions
from mintaka.platform import Platform
from mintaka.store.schema import (
    artifacts,
    audit_events,
    datasets,
    lineage_edges,
    lineage_nodes,
    model_tags,
    model_versions,
    models,
    runs,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writer forks (POSIX only)")

WRITER = Path(__file__).with_name("crash_writer.py")
DEFAULT_SEED = 20261127
DEFAULT_KILLS = 50
STARTUP_TIMEOUT = 60.0
ROUND_TIMEOUT = 30.0
MIN_ACKS = 20


def _kill_delay(rng: random.Random) -> float:
    """Seconds between a writer's start and its SIGKILL: some at once, the rest 3-150 ms.

    A forked writer needs some 40 ms to open the store and record its dataset and run, then
    about 10 ms per version, so kills land in start-up, inside a registration and between two.
    """
    if rng.random() < 0.15:
        return 0.0
    return rng.uniform(0.003, 0.15)


@dataclass(frozen=True)
class Ack:
    name: str
    version: int
    digest: str
    id: str


class WriterPipe:
    """Line-oriented reads from the writer's stdout, with a deadline and no blocking."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: Path) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.proc = proc
        self.stderr = stderr
        self._fd = proc.stdout.fileno()
        self._buffer = b""
        self.acks: list[Ack] = []

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def _lines(self, timeout: float) -> list[str]:
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return []
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            raise AssertionError(f"the writer exited unexpectedly:\n{self.diagnostics()}")
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        return [line.decode() for line in complete]

    def _take(self, line: str) -> str:
        if line.startswith("ack "):
            _, name, version, digest, version_id = line.split()
            self.acks.append(Ack(name, int(version), digest, version_id))
        return line

    def pump(self, seconds: float) -> None:
        """Collect acknowledgements for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for line in self._lines(left):
                self._take(line)

    def expect(self, prefix: str, timeout: float) -> str:
        """Collect lines until one starts with ``prefix``; return the rest of that line."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for line in self._lines(left):
                if self._take(line).startswith(prefix + " ") or line == prefix:
                    return line.removeprefix(prefix).strip()
        raise AssertionError(f"no {prefix!r} line from the writer in {timeout}s")

    def diagnostics(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:] if self.stderr.exists() else ""


@dataclass
class HomeState:
    versions: int = 0
    backend_orphans: int = 0
    unreferenced_artifacts: int = 0
    problems: list[str] = field(default_factory=list)


def _sqlite_checks(path: Path, problems: list[str]) -> None:
    if not path.exists():
        return
    conn = sqlite3.connect(path)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            problems.append(f"{path.name}: integrity_check says {integrity}")
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            problems.append(f"{path.name}: foreign_key_check reports {dangling[:5]}")
    finally:
        conn.close()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_home(home: Path, acked: list[Ack]) -> HomeState:
    """Every invariant a crash must not break; problems are collected, not raised one by one."""
    state = HomeState()
    problems = state.problems
    with Platform(home, actor="checker") as platform:
        chain = platform.verify_audit()
        if not chain.ok:
            problems.append(f"audit chain broken at {chain.first_bad_seq}: {chain.reason}")
        with platform.store.read() as conn:
            version_rows = conn.execute(sql_select(model_versions)).all()
            model_names = set(conn.execute(sql_select(models.c.name)).scalars())
            artifact_rows = {r.digest: r for r in conn.execute(sql_select(artifacts))}
            tag_owners = set(conn.execute(sql_select(model_tags.c.version_id)).scalars())
            dataset_ids = set(conn.execute(sql_select(datasets.c.id)).scalars())
            run_rows = {r.id: r for r in conn.execute(sql_select(runs.c.id, runs.c.dataset_ids))}
            node_rows = conn.execute(
                sql_select(lineage_nodes.c.id, lineage_nodes.c.kind, lineage_nodes.c.key)
            ).all()
            edge_rows = conn.execute(sql_select(lineage_edges)).all()
            event_rows = conn.execute(
                sql_select(audit_events.c.seq, audit_events.c.action, audit_events.c.canonical)
            ).all()
        # The backend's own registry, read whole in one query (the cloud side of the picture).
        assert isinstance(platform.backend, LocalBackend)
        with platform.backend.engine.connect() as conn:
            backend_versions = {
                (v.name, v.version): v for v in conn.execute(sql_select(local_versions))
            }

        state.versions = len(version_rows)
        by_id = {row.id: row for row in version_rows}
        node_pk = {(row.kind, row.key): row.id for row in node_rows}
        edges = {(row.src, row.dst, row.kind) for row in edge_rows}
        register_events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for row in event_rows:
            body = json.loads(row.canonical)
            details = body.get("details", {})
            if row.action == "model.register":
                register_events.setdefault(details.get("id", "?"), []).append(
                    (body["subject"], details)
                )
            elif row.action == "dataset.register" and body["subject"] not in dataset_ids:
                problems.append(f"audit {row.seq}: dataset {body['subject']} is missing")
            elif row.action == "run.start" and body["subject"] not in run_rows:
                problems.append(f"audit {row.seq}: run {body['subject']} is missing")

        def has_edge(src: tuple[str, str], dst: tuple[str, str], kind: str) -> bool:
            a, b = node_pk.get(src), node_pk.get(dst)
            return a is not None and b is not None and (a, b, kind) in edges

        # Nothing acknowledged is lost or changed.
        for ack in acked:
            row = by_id.get(ack.id)
            if row is None:
                problems.append(f"acknowledged {ack.name}:{ack.version} ({ack.id}) is lost")
            elif (row.name, row.version, row.artifact_digest) != (
                ack.name,
                ack.version,
                ack.digest,
            ):
                problems.append(
                    f"acknowledged {ack} reads back as "
                    f"{row.name}:{row.version} {row.artifact_digest}"
                )

        # No partial version.
        referenced: set[str] = set()
        for row in version_rows:
            ref = f"{row.name}:{row.version} ({row.id})"
            version_node = ("model_version", row.id)
            if row.name not in model_names:
                problems.append(f"{ref}: model row missing")
            if row.id not in tag_owners:
                problems.append(f"{ref}: tags missing")
            stored_row = artifact_rows.get(row.artifact_digest)
            if stored_row is None or stored_row.uri != row.artifact_uri:
                problems.append(f"{ref}: artifact row missing or pointing elsewhere")
            referenced.add(row.artifact_digest)
            try:
                stored = platform.artifacts.verify(row.artifact_digest)
                if stored.uri != row.artifact_uri:
                    problems.append(f"{ref}: artifact_uri {row.artifact_uri} != {stored.uri}")
            except MintakaError as exc:
                problems.append(f"{ref}: artifact fails verification: {exc}")
                stored = None
            if version_node not in node_pk:
                problems.append(f"{ref}: lineage node missing")
            upstream = version_node
            if row.run_id:
                upstream = ("run", row.run_id)
                if row.run_id not in run_rows:
                    problems.append(f"{ref}: run {row.run_id} missing")
                if not has_edge(upstream, version_node, "produced"):
                    problems.append(f"{ref}: lineage edge run -> version missing")
            for dataset_id in _json(row.dataset_ids):
                if dataset_id not in dataset_ids:
                    problems.append(f"{ref}: dataset {dataset_id} missing")
                if not has_edge(("dataset", dataset_id), upstream, "trained_on"):
                    problems.append(f"{ref}: lineage edge from dataset {dataset_id} missing")
            events = register_events.get(row.id, [])
            if len(events) != 1:
                problems.append(f"{ref}: {len(events)} model.register audit events, expected 1")
            elif events[0][0] != f"{row.name}:{row.version}" or (
                events[0][1].get("digest") != row.artifact_digest
            ):
                problems.append(f"{ref}: audit event says {events[0]}")
            remote = backend_versions.get((row.name, row.version))
            if remote is None:
                problems.append(f"{ref}: no backend version behind the control-plane row")
            elif remote.mintaka_id != row.id or remote.artifact_digest != row.artifact_digest:
                problems.append(
                    f"{ref}: backend holds {remote.mintaka_id} {remote.artifact_digest}"
                )
            elif stored is not None and remote.artifact_uri != stored.content.as_uri():
                problems.append(f"{ref}: backend points at {remote.artifact_uri}")

        # No audit event for a version that is not there.
        for version_id in register_events.keys() - by_id.keys():
            problems.append(f"model.register event for missing version {version_id}")

        # Datasets and runs are whole too.
        for dataset_id in dataset_ids:
            if ("dataset", dataset_id) not in node_pk:
                problems.append(f"dataset {dataset_id}: lineage node missing")
        for run_id, run in run_rows.items():
            for dataset_id in _json(run.dataset_ids):
                if not has_edge(("dataset", dataset_id), ("run", run_id), "trained_on"):
                    problems.append(f"run {run_id}: lineage edge from {dataset_id} missing")

        # A backend whose registry lives in the store commits its version with the store's
        # record, so neither exists without the other. Any other backend may hold versions the
        # store lacks (the kill fell between the backend call and the commit), but their bytes
        # were stored before the backend was called.
        atomic = platform.backend.resides_in(platform.store.url)
        recorded = {(row.name, row.version) for row in version_rows}
        for key, remote in backend_versions.items():
            if key in recorded:
                continue
            state.backend_orphans += 1
            if atomic:
                problems.append(f"backend-only version {key} in the store's own database")
            if remote.mintaka_id in by_id:
                problems.append(f"backend {key} carries the id of another version")
            try:
                platform.artifacts.verify(remote.artifact_digest or "")
            except MintakaError as exc:
                problems.append(f"backend-only version {key}: {exc}")

        # Every artifact in the store is whole: written and renamed into place, or absent.
        for directory in sorted((home / "artifacts" / "sha256").glob("*/*")):
            digest = "sha256:" + directory.name
            if digest in referenced:
                continue
            state.unreferenced_artifacts += 1
            try:
                platform.artifacts.verify(digest)
            except MintakaError as exc:
                problems.append(f"unreferenced artifact {directory.name[:12]} is partial: {exc}")

    _sqlite_checks(home / "store.db", problems)
    _sqlite_checks(home / "local" / "registry.db", problems)
    return state


@pytest.fixture
def writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, WriterPipe]]:
    monkeypatch.setenv("MINTAKA_PLUGINS", "local")
    home = tmp_path / "home"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    stderr = tmp_path / "writer.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(home), str(scratch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            bufsize=0,
        )
    pipe = WriterPipe(proc, stderr)
    try:
        yield home, pipe
    finally:
        # The writer leads its own process group: this ends it and any child still running.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.timeout(300)
def test_killed_writer_never_loses_an_acknowledged_version_or_leaves_a_partial_one(
    writer: tuple[Path, WriterPipe],
) -> None:
    home, pipe = writer
    seed = int(os.environ.get("MINTAKA_CRASH_SEED", DEFAULT_SEED))
    kills = int(os.environ.get("MINTAKA_CRASH_KILLS", DEFAULT_KILLS))
    print(f"crash consistency: MINTAKA_CRASH_SEED={seed} MINTAKA_CRASH_KILLS={kills}")
    rng = random.Random(seed)
    pipe.expect("ready", STARTUP_TIMEOUT)

    seen: set[tuple[str, int]] = set()
    round_no = 0
    # A loaded machine can slow the writers down so much that few kills find a registration
    # under way; more rounds then follow (at most 3x) until enough versions were written, and in
    # those the kill waits for the round's first acknowledgement, so each one makes progress.
    while round_no < kills or (len(pipe.acks) < MIN_ACKS and round_no < 3 * kills):
        round_no += 1
        delay = _kill_delay(rng)
        where = f"seed={seed} round={round_no} delay={delay * 1000:.1f}ms"
        before = len(pipe.acks)
        pipe.send(f"go {round_no}")
        pid = int(pipe.expect("child", ROUND_TIMEOUT))
        if round_no > kills:
            deadline = time.monotonic() + ROUND_TIMEOUT
            while len(pipe.acks) == before and time.monotonic() < deadline:
                pipe.pump(0.01)
        pipe.pump(delay)
        with contextlib.suppress(ProcessLookupError):  # it died on its own: reported below
            os.kill(pid, signal.SIGKILL)
        status = int(pipe.expect(f"exit {pid}", ROUND_TIMEOUT))
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert killed, (
            f"{where}: the writer stopped on its own (status {status}):\n{pipe.diagnostics()}"
        )
        for ack in pipe.acks[before:]:
            assert (ack.name, ack.version) not in seen, f"{where}: {ack} acknowledged twice"
            seen.add((ack.name, ack.version))

        state = check_home(home, pipe.acks)
        assert not state.problems, f"{where}:\n" + "\n".join(state.problems[:20])

    print(
        f"{round_no} kills, {len(pipe.acks)} acknowledged versions, {state.versions} recorded, "
        f"{state.backend_orphans} backend-only, {state.unreferenced_artifacts} unreferenced "
        f"artifacts; versions per model: {Counter(a.name for a in pipe.acks).most_common(3)}"
    )
    # The kills must have landed among real writes, or the test proves nothing.
    assert len(pipe.acks) >= MIN_ACKS, f"seed={seed}: only {len(pipe.acks)} versions written"


def test_checker_reports_lost_partial_and_corrupt_records(
    platform: Platform, make_artifact: Any
) -> None:
    """The invariants above are only worth their checker: damage a home and watch it object."""
    first, second, third = (
        platform.register_model("m", make_artifact(body), tags={"round": "0"})
        for body in (b"one", b"two", b"three")
    )
    acked = [Ack(v.name, v.version, v.artifact_digest, v.id) for v in (first, second, third)]
    assert check_home(platform.home, acked).problems == []

    stored = platform.artifacts.get(first.artifact_digest)
    (stored.content / "model.bin").write_bytes(b"tampered")
    assert isinstance(platform.backend, LocalBackend)
    with platform.backend.engine.begin() as conn:
        conn.execute(local_versions.delete().where(local_versions.c.mintaka_id == second.id))
    with platform.store.write() as conn:
        conn.execute(lineage_nodes.delete().where(lineage_nodes.c.key == third.id))
    lost = Ack("m", 9, third.artifact_digest, "mv-never-committed")
    with platform.backend.engine.begin() as conn:
        conn.execute(
            local_versions.insert().values(
                name="m",
                version=7,
                artifact_uri=stored.uri,
                artifact_digest=first.artifact_digest,
                flavor="opaque",
                metrics="{}",
                description="",
                mintaka_id="mv-orphan",
                idempotency_key="mv-orphan",
                created_at="2026-01-01T00:00:00+00:00",
            )
        )

    problems = "\n".join(check_home(platform.home, [*acked, lost]).problems)
    assert "backend-only version ('m', 7) in the store's own database" in problems
    assert f"m:1 ({first.id}): artifact fails verification" in problems
    assert f"m:2 ({second.id}): no backend version" in problems
    assert f"m:3 ({third.id}): lineage node missing" in problems
    assert "acknowledged m:9 (mv-never-committed) is lost" in problems
