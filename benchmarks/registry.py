"""Registry benchmark: Mintaka's local backend against MLflow's SQLite model registry.

Registers ``--versions`` versions of one model (each with distinct artifact bytes), then reads
``--reads`` random versions by number and ``--reads`` by alias, on both systems in one run.

Mintaka's artifact ingest (manifest + content-addressed, fsync'd copy) is timed on its own, before
the registrations; each registration is then handed the ingested artifact (its digest computed and
its bytes stored by the ingest, checked to be in the store, not read again) and is timed as the
registration proper: the policy decision, the backend call and the store transaction with the
version, its lineage writes and its audit-chain append. MLflow's registry records a source URI and
copies no bytes, so its registration is compared with Mintaka's registration phase, twice:
``MlflowClient.create_model_version`` (the cheapest way in: the model exists, no run is looked up)
and ``mlflow.register_model`` on a ``runs:/`` URI (MLflow's call for registering a run's model: the
run looked up, the model created unless it exists, the version created with the run id). MLflow's
``log_artifact`` (a plain copy, not fsync'd) is reported beside Mintaka's ingest for information.

MLflow is not a dependency of Mintaka; run this with::

    uv run --isolated --with-editable . --with 'mlflow==3.17.*' python benchmarks/registry.py

Each of ``--rounds`` rounds (default 3) runs both systems on fresh directories, alternating which
goes first; the summary gives every round's ratio and their median. MLflow's registration is
dominated by the fsyncs of its rollback-journal commits, whose latency on a shared VM drifts from
minute to minute, so a single round's ratio says more about the disk than about either system.

``--skip-mlflow`` runs the Mintaka side alone (``uv run python benchmarks/registry.py
--skip-mlflow``). ``MINTAKA_STORE_SYNC=FULL`` in the environment switches Mintaka's store to
fsync every commit.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import platform as host
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "bench-model"
MODEL_BY_RUN = "bench-model-by-run"


@dataclass
class Timings:
    """Per-operation wall-clock times, in seconds."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.samples.setdefault(phase, []).append(seconds)

    def mean_ms(self, phase: str) -> float:
        return statistics.fmean(self.samples[phase]) * 1e3

    def line(self, phase: str) -> str:
        values = sorted(self.samples[phase])
        p50 = values[len(values) // 2] * 1e3
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))] * 1e3
        total = sum(values)
        return (
            f"{phase:<24} n={len(values):>5}  mean {self.mean_ms(phase):8.3f} ms  "
            f"p50 {p50:8.3f} ms  p95 {p95:8.3f} ms  total {total:7.2f} s"
        )


def timed(timings: Timings, phase: str, call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = call()
    timings.add(phase, time.perf_counter() - start)
    return result


def make_artifacts(root: Path, count: int, size: int, seed: int) -> list[Path]:
    """``count`` files of ``size`` bytes, each distinct."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"model-{i:05d}.bin"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def alias_name(i: int) -> str:
    return f"alias-{i:04d}"


# -- Mintaka -----------------------------------------------------------------------------------


def bench_mintaka(work: Path, artifacts: list[Path], reads: int, seed: int) -> Timings:
    from mintaka import Platform
    from mintaka.artifacts import manifest_of

    timings = Timings()
    home = work / "mintaka-home"
    with Platform(home, backend="local", actor="bench") as platform:
        timings.notes["durability"] = platform.store.durability()
        data = work / "train.csv"
        data.write_text("x,y\n1,2\n")
        dataset = platform.register_dataset("bench-train", data)
        run = platform.start_run("bench", dataset_ids=[dataset.id], code_commit_="0" * 40)
        platform.create_model(MODEL, owner="bench")

        stored = [
            timed(timings, "ingest", lambda p=path: platform.artifacts.ingest(p, manifest_of(p)))
            for path in artifacts
        ]

        gc.collect()
        for i, artifact in enumerate(stored):
            timed(
                timings,
                "register",
                lambda a=artifact, i=i: platform.register_model(
                    MODEL, a, run_id=run.id, params={"i": i}, metrics={"score": i / len(stored)}
                ),
            )

        rng = random.Random(seed)
        versions = len(artifacts)
        aliased = rng.sample(range(1, versions + 1), reads)
        for i, version in enumerate(aliased):
            platform.set_alias(MODEL, alias_name(i), version)

        for version in rng.choices(range(1, versions + 1), k=reads):
            mv = timed(
                timings, "get by version", lambda v=version: platform.get_model_version(MODEL, v)
            )
            assert mv.version == version
        for i in rng.choices(range(reads), k=reads):
            mv = timed(
                timings,
                "get by alias",
                lambda i=i: platform.get_model_version(MODEL, alias=alias_name(i)),
            )
            assert mv.version == aliased[i]
        report = platform.verify_audit()
        assert report.ok, report
        timings.notes["audit"] = f"chain verified, {report.events} events"
        lineage = platform.lineage_upstream(f"{MODEL}:{versions}")
        assert any(n.key == dataset.id for n in lineage.nodes)
    return timings


# -- MLflow ------------------------------------------------------------------------------------


def bench_mlflow(work: Path, artifacts: list[Path], reads: int, seed: int) -> Timings:
    warnings.filterwarnings("ignore")
    import mlflow
    from mlflow import MlflowClient

    timings = Timings()
    root = work / "mlflow"
    root.mkdir()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=(root / "art").as_uri())
    run = client.create_run(experiment)
    run_id = run.info.run_id

    store = client._get_registry_client().store
    with store.engine.connect() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    timings.notes["durability"] = (
        f"sqlite journal_mode={journal} synchronous={names.get(int(sync or 0), sync)} "
        f"(MLflow {mlflow.__version__} defaults)"
    )

    # Each logged directory also holds an MLmodel file (untimed), which makes it a model that
    # ``mlflow.register_model("runs:/<run>/m<i>")`` registers.
    mlmodel = root / "MLmodel"
    mlmodel.write_text("flavors: {}\n")
    for i, path in enumerate(artifacts):
        timed(
            timings,
            "log_artifact",
            lambda p=path, i=i: client.log_artifact(run_id, str(p), artifact_path=f"m{i}"),
        )
        client.log_artifact(run_id, str(mlmodel), artifact_path=f"m{i}")

    client.create_registered_model(MODEL)
    art_root = run.info.artifact_uri
    gc.collect()
    for i, _path in enumerate(artifacts):
        timed(
            timings,
            "register",
            lambda i=i: client.create_model_version(
                MODEL, f"{art_root}/m{i}", run_id=run_id, await_creation_for=0
            ),
        )

    # MLflow's own call for registering a run's model: it creates the registered model unless it
    # exists (here it does, after the first), resolves the run's artifacts and creates the
    # version with the run id. It prints a line per call, which goes to a buffer here.
    gc.collect()
    with contextlib.redirect_stderr(io.StringIO()):
        for i, _path in enumerate(artifacts):
            timed(
                timings,
                "register_model",
                lambda i=i: mlflow.register_model(
                    f"runs:/{run_id}/m{i}", MODEL_BY_RUN, await_registration_for=0
                ),
            )

    rng = random.Random(seed)
    versions = len(artifacts)
    aliased = rng.sample(range(1, versions + 1), reads)
    for i, version in enumerate(aliased):
        client.set_registered_model_alias(MODEL, alias_name(i), str(version))

    for version in rng.choices(range(1, versions + 1), k=reads):
        mv = timed(
            timings, "get by version", lambda v=version: client.get_model_version(MODEL, str(v))
        )
        assert int(mv.version) == version
    for i in rng.choices(range(reads), k=reads):
        mv = timed(
            timings,
            "get by alias",
            lambda i=i: client.get_model_version_by_alias(MODEL, alias_name(i)),
        )
        assert int(mv.version) == aliased[i]
    return timings


# -- report ------------------------------------------------------------------------------------


def run_round(args: argparse.Namespace, number: int) -> dict[str, Timings]:
    """Both systems on fresh directories; odd rounds run MLflow first, so drift in the machine's
    speed (its disk's fsync latency above all) does not always favour the same side."""
    with tempfile.TemporaryDirectory(prefix="mintaka-bench-") as tmp:
        work = Path(tmp)
        artifacts = make_artifacts(work / "src", args.versions, args.artifact_bytes, args.seed)
        systems: dict[str, Callable[[], Timings]] = {
            "mintaka": lambda: bench_mintaka(work, artifacts, args.reads, args.seed)
        }
        if not args.skip_mlflow:
            systems["mlflow"] = lambda: bench_mlflow(work, artifacts, args.reads, args.seed)
        order = list(systems)[::-1] if number % 2 else list(systems)
        results = {system: systems[system]() for system in order}
    return {system: results[system] for system in systems}


def report_round(number: int, results: dict[str, Timings]) -> None:
    print(f"\n#### round {number + 1}")
    for system, timings in results.items():
        print(f"== {system}: {timings.notes.get('durability', '')}")
        for note, value in timings.notes.items():
            if note != "durability":
                print(f"   {note}: {value}")
        for phase in timings.samples:
            print("   " + timings.line(phase))
    if "mlflow" in results:
        ours, theirs = results["mintaka"], results["mlflow"]
        print("== ratio (MLflow mean / Mintaka mean; higher is better for Mintaka; target >= 10)")
        for label, ours_phase, theirs_phase in PHASES:
            print(
                f"   {label:<16} MLflow {theirs.mean_ms(theirs_phase):8.3f} ms  "
                f"Mintaka {ours.mean_ms(ours_phase):8.3f} ms  ratio {ratio(results, label):6.1f}x"
            )
        print(
            f"   {'artifact bytes':<16} MLflow log_artifact {theirs.mean_ms('log_artifact'):.3f} "
            f"ms (copy, no fsync)  Mintaka ingest {ours.mean_ms('ingest'):.3f} ms "
            "(manifest + copy + fsync + rename)"
        )


# (label, Mintaka's phase, MLflow's phase). "register" is MlflowClient.create_model_version (the
# registered model exists, no run is looked up); "register by run" is mlflow.register_model on a
# runs:/ URI, MLflow's call for what Mintaka's register_model does with a run id.
PHASES = (
    ("register", "register", "register"),
    ("register by run", "register", "register_model"),
    ("get by version", "get by version", "get by version"),
    ("get by alias", "get by alias", "get by alias"),
)


def ratio(results: dict[str, Timings], label: str) -> float:
    _, ours, theirs = next(p for p in PHASES if p[0] == label)
    return results["mlflow"].mean_ms(theirs) / results["mintaka"].mean_ms(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--artifact-bytes", type=int, default=16 * 1024)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--rounds", type=int, default=3, help="repeat both systems this often")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]} on {host.platform()}, {os.cpu_count()} CPUs")
    print(
        f"{args.versions} versions of one model, {args.artifact_bytes} distinct bytes each; "
        f"{args.reads} random gets by version and {args.reads} by alias; {args.rounds} round(s)"
    )
    rounds = []
    for number in range(args.rounds):
        results = run_round(args, number)
        report_round(number, results)
        rounds.append(results)

    print("\n#### summary over rounds (mean per operation, ms)")
    for label, ours_phase, theirs_phase in PHASES:
        if args.skip_mlflow and ours_phase != theirs_phase:
            continue
        ours = [r["mintaka"].mean_ms(ours_phase) for r in rounds]
        line = f"   {label:<16} Mintaka {' '.join(f'{v:7.3f}' for v in ours)}"
        if not args.skip_mlflow:
            theirs = [r["mlflow"].mean_ms(theirs_phase) for r in rounds]
            ratios = [ratio(r, label) for r in rounds]
            line += (
                f"  MLflow {' '.join(f'{v:7.3f}' for v in theirs)}"
                f"  ratio {' '.join(f'{v:5.1f}x' for v in ratios)}"
                f"  median {statistics.median(ratios):5.1f}x"
            )
        print(line)


if __name__ == "__main__":
    main()
