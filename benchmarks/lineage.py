"""Lineage benchmark: "which deployments descend from dataset X", Mintaka's store against networkx.

A seeded synthetic lineage of about a million edges: 10,000 datasets -> 100,000 training runs
(each reading 1-4 datasets, chosen with Zipf-like popularity, so a few datasets feed a large share
of all runs) -> 100,000 model versions (one per run) -> 20,000 deployments (each serving 1-2
versions) -> prediction batches (the leaves, which make up the rest of the edges). The graph is
written straight into the store's ``lineage_nodes`` and ``lineage_edges`` tables with bulk
inserts, then the same question is asked of ``LineageStore.descendants(node,
kind=NodeKind.DEPLOYMENT)`` and of ``networkx.descendants`` on the same graph, filtered to
deployments.

Each approach runs in its own subprocess, so its peak resident memory (``ru_maxrss``, building
plus querying) is its own. Run with::

    uv run python benchmarks/lineage.py

networkx is already a dependency of Mintaka, so no extra environment is needed.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import os
import platform as host
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("dataset", "run", "model_version", "deployment", "prediction_batch")


@dataclass(frozen=True)
class Shape:
    datasets: int = 10_000
    runs: int = 100_000
    deployments: int = 20_000
    edges: int = 1_000_000
    zipf: float = 0.95
    seed: int = 20260101


class Lineage:
    """The synthetic graph, streamed (never held in memory) so each process's peak RSS is what
    its graph representation needs, not the generator's.

    Node ids are 1-based and laid out in blocks: datasets, runs, model versions (version i was
    produced by run i), deployments, prediction batches.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.first = {
            "dataset": 1,
            "run": 1 + shape.datasets,
            "model_version": 1 + shape.datasets + shape.runs,
            "deployment": 1 + shape.datasets + 2 * shape.runs,
            "prediction_batch": 1 + shape.datasets + 2 * shape.runs + shape.deployments,
        }
        runs_per_dataset = [0] * shape.datasets
        upstream = 0
        for src, _dst, kind in self._upstream_edges():
            upstream += 1
            if kind == "trained_on":
                runs_per_dataset[src - 1] += 1
        self.batches = shape.edges - upstream
        self.node_count = self.first["prediction_batch"] - 1 + self.batches
        self.hub = 1 + max(range(shape.datasets), key=runs_per_dataset.__getitem__)

    def kind_of(self, node: int) -> str:
        for kind in reversed(KINDS):
            if node >= self.first[kind]:
                return kind
        raise ValueError(node)

    def key_of(self, node: int) -> str:
        kind = self.kind_of(node)
        return f"{kind[:3]}-{node - self.first[kind]:07d}"

    def nodes(self) -> Iterator[tuple[int, str, str]]:
        for node in range(1, self.node_count + 1):
            kind = self.kind_of(node)
            yield node, kind, f"{kind[:3]}-{node - self.first[kind]:07d}"

    def _upstream_edges(self) -> Iterator[tuple[int, int, str]]:
        shape = self.shape
        rng = random.Random(shape.seed)
        # Zipf-like popularity over a shuffled order, so the hub is not simply dataset 1.
        order = list(range(shape.datasets))
        rng.shuffle(order)
        cumulative = list(
            itertools.accumulate(1.0 / (rank + 1) ** shape.zipf for rank in range(shape.datasets))
        )
        total = cumulative[-1]
        run0, mv0, dep0 = self.first["run"], self.first["model_version"], self.first["deployment"]
        for run in range(shape.runs):
            picked = {
                order[bisect.bisect_left(cumulative, rng.random() * total)]
                for _ in range(rng.randint(1, 4))
            }
            for dataset in sorted(picked):
                yield 1 + dataset, run0 + run, "trained_on"
            yield run0 + run, mv0 + run, "produced"
        for dep in range(shape.deployments):
            for mv in sorted({rng.randrange(shape.runs) for _ in range(rng.randint(1, 2))}):
                yield mv0 + mv, dep0 + dep, "deployed_as"

    def edges(self) -> Iterator[tuple[int, int, str]]:
        yield from self._upstream_edges()
        rng = random.Random(self.shape.seed + 2)
        dep0, batch0 = self.first["deployment"], self.first["prediction_batch"]
        for batch in range(self.batches):
            yield dep0 + rng.randrange(self.shape.deployments), batch0 + batch, "served"

    def targets(self, sample: int) -> list[int]:
        """The most-connected dataset (most runs) first, then a seeded sample of the others."""
        rng = random.Random(self.shape.seed + 1)
        others = [d for d in range(1, self.shape.datasets + 1) if d != self.hub]
        return [self.hub, *rng.sample(others, sample)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed_queries(query: Any, targets: list[int]) -> tuple[float, list[float], list[int], str]:
    """Seconds for the hub (best of 3 after a warm-up), per-target seconds, result sizes."""
    query(targets[0])
    hub_times = []
    for _ in range(3):
        start = time.perf_counter()
        query(targets[0])
        hub_times.append(time.perf_counter() - start)
    per_target, answers = [], []
    for target in targets[1:]:
        start = time.perf_counter()
        found = query(target)
        per_target.append(time.perf_counter() - start)
        answers.append(found)
    answers.insert(0, query(targets[0]))
    # Sizes, plus one digest over every answer so the two processes can be checked to agree.
    keys = [sorted(key.rpartition(":")[2] for key in found) for found in answers]
    digest = hashlib.sha256(json.dumps(keys).encode()).hexdigest()
    return min(hub_times), per_target, [len(found) for found in answers], digest


# -- the two approaches, each run in its own process -------------------------------------------


def run_mintaka(shape: Shape, sample: int, work: Path) -> dict[str, Any]:
    from mintaka.domain.lineage import NodeKind
    from mintaka.lineage import LineageStore
    from mintaka.store import Store

    started = time.perf_counter()
    graph = Lineage(shape)
    targets = graph.targets(sample)
    by_key = {t: f"dataset:{graph.key_of(t)}" for t in targets}
    lineage = LineageStore(Store(f"sqlite:///{work / 'store.db'}"))
    with lineage.store.write() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(
            "INSERT INTO lineage_nodes (id, kind, key, label, attrs) VALUES (?, ?, ?, ?, '{}')",
            ((node, kind, key, key) for node, kind, key in graph.nodes()),
        )
        cursor.executemany(
            "INSERT INTO lineage_edges (src, dst, kind) VALUES (?, ?, ?)", graph.edges()
        )
        loaded = time.perf_counter()
        indexed = lineage.reindex(conn)  # the bulk load bypassed add(), which keeps it current
    built = time.perf_counter()

    hub, per_target, sizes, digest = timed_queries(
        lambda t: lineage.descendants(by_key[t], kind=NodeKind.DEPLOYMENT), targets
    )
    counts = conn_counts(lineage)
    return {
        "approach": "mintaka",
        "build_s": built - started,
        "reindex_s": built - loaded,
        "reach_rows": indexed,
        "hub_s": hub,
        "per_target_s": per_target,
        "sizes": sizes,
        "answers": digest,
        "peak_rss_mb": peak_rss_mb(),
        "store_mb": (work / "store.db").stat().st_size / 2**20,
        "durability": lineage.store.durability(),
        **counts,
    }


def conn_counts(lineage: Any) -> dict[str, int]:
    with lineage.store.read() as conn:
        nodes = conn.exec_driver_sql("SELECT count(*) FROM lineage_nodes").scalar()
        edges = conn.exec_driver_sql("SELECT count(*) FROM lineage_edges").scalar()
    return {"nodes": int(nodes), "edges": int(edges)}


def run_networkx(shape: Shape, sample: int, work: Path) -> dict[str, Any]:
    import networkx as nx

    started = time.perf_counter()
    lineage = Lineage(shape)
    targets = lineage.targets(sample)
    graph = nx.DiGraph()
    # The same node ids Mintaka answers with, each with its kind.
    graph.add_nodes_from((f"{kind}:{key}", {"kind": kind}) for _node, kind, key in lineage.nodes())

    def name(node: int) -> str:
        return f"{lineage.kind_of(node)}:{lineage.key_of(node)}"

    # Edge kinds are left out: the query does not need them, and they would only add memory.
    graph.add_edges_from((name(s), name(d)) for s, d, _kind in lineage.edges())
    by_key = {t: name(t) for t in targets}
    built = time.perf_counter() - started
    kind_of = graph.nodes

    def query(target: int) -> list[str]:
        return [
            node
            for node in nx.descendants(graph, by_key[target])
            if kind_of[node]["kind"] == "deployment"
        ]

    hub, per_target, sizes, digest = timed_queries(query, targets)
    return {
        "approach": "networkx",
        "build_s": built,
        "hub_s": hub,
        "per_target_s": per_target,
        "sizes": sizes,
        "answers": digest,
        "peak_rss_mb": peak_rss_mb(),
        "nodes": graph.number_of_nodes(),
        "edges": graph.number_of_edges(),
    }


# -- driver --------------------------------------------------------------------------------------


def child(approach: str, shape: Shape, sample: int, work: Path) -> None:
    runner = run_mintaka if approach == "mintaka" else run_networkx
    print(json.dumps(runner(shape, sample, work)))


def spawn(approach: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        approach,
        "--work",
        str(work),
        "--sample",
        str(args.sample),
        "--scale",
        str(args.scale),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def shape_for(scale: float) -> Shape:
    base = Shape()
    return Shape(
        datasets=max(10, int(base.datasets * scale)),
        runs=max(10, int(base.runs * scale)),
        deployments=max(10, int(base.deployments * scale)),
        edges=max(100, int(base.edges * scale)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=200, help="random datasets to query")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the graph for a try-out")
    parser.add_argument("--child", choices=("mintaka", "networkx"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("mintaka", "networkx"))
    args = parser.parse_args()
    shape = shape_for(args.scale)
    if args.child:
        child(args.child, shape, args.sample, args.work)
        return

    print(f"python {sys.version.split()[0]} on {host.platform()}, {os.cpu_count()} CPUs")
    results: dict[str, dict[str, Any]] = {}
    for approach in ("mintaka", "networkx"):
        if args.only and approach != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="mintaka-lineage-") as tmp:
            results[approach] = spawn(approach, args, Path(tmp))

    for name, result in results.items():
        times = [t * 1e3 for t in result["per_target_s"]]
        sizes = result["sizes"]
        print(f"\n== {name}: {result['nodes']:,} nodes, {result['edges']:,} edges")
        if "durability" in result:
            print(f"   store: {result['durability']}, {result['store_mb']:.0f} MB on disk")
        print(f"   build                    {result['build_s']:8.2f} s")
        if "reindex_s" in result:
            print(
                f"     of which reach index   {result['reindex_s']:8.2f} s "
                f"({result['reach_rows']:,} rows)"
            )
        print(
            f"   most-connected dataset   {result['hub_s'] * 1e3:8.2f} ms  "
            f"({sizes[0]:,} deployments)"
        )
        print(
            f"   {len(times)} random datasets      median {statistics.median(times):.3f} ms  "
            f"p95 {sorted(times)[int(len(times) * 0.95)]:.3f} ms  "
            f"(median {statistics.median(sizes[1:]):.0f} deployments, max {max(sizes[1:]):,})"
        )
        print(f"   peak RSS (build + query) {result['peak_rss_mb']:8.0f} MB")

    if len(results) == 2:
        ours, theirs = results["mintaka"], results["networkx"]
        assert ours["answers"] == theirs["answers"], "the two approaches disagree"
        median_ours = statistics.median(ours["per_target_s"])
        median_theirs = statistics.median(theirs["per_target_s"])
        print("\n== ratio (networkx / Mintaka; both return the same deployments)")
        print(
            f"   most-connected dataset   {theirs['hub_s'] / ours['hub_s']:6.1f}x faster "
            "(target >= 10x, under 10 ms)"
        )
        print(
            f"   median random dataset    {median_theirs / median_ours:6.1f}x faster "
            "(target under 1 ms)"
        )
        print(
            f"   peak RSS                 {ours['peak_rss_mb'] / theirs['peak_rss_mb']:6.2f} "
            "of networkx's (target <= 0.5)"
        )


if __name__ == "__main__":
    main()
