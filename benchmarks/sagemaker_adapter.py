"""SageMaker adapter benchmark: the backend's own cost over the boto3 calls behind it.

Everything runs in-process against moto 5.2.5 with Mintaka's SageMaker extension
(``mintaka_conformance.fakes.sagemaker.mock_sagemaker``); nothing contacts AWS (dummy credentials,
``AWS_CONFIG_FILE=/dev/null``). The backend object is called directly (``create_version``,
``get_version``, ``set_alias``, ``create_endpoint``, ``get_endpoint``, ``set_traffic``,
``invoke``), so none of core's governance, audit or lineage work is timed; the request objects
(``VersionRequest``, ``Route``, ``TrafficMap``) are built before the clock starts, as core builds
them. ``get_endpoint`` is timed twice: once the endpoint's config is known to the backend (its
routes are kept per config name), and cold, as the first read of that config in a process.

Each operation is timed three ways, interleaved in one run (the order rotates every repetition),
on the **same boto3 clients** (the backend's ``ClientFactory``) and the same moto state shape:

- ``adapter``: the backend method.
- ``mirror``: raw boto3 issuing exactly the calls the adapter issues, with the same parameters
  (checked once before timing: the operation names the adapter sends are recorded and compared).
  ``adapter / mirror - 1`` is the adapter's pure Python cost (error translation, pydantic models,
  layouts, hashing names).
- ``minimal``: the fewest raw calls that have the same effect (create the package; add the tag;
  update the weights; ...). ``adapter / minimal - 1`` is the overhead the target (< 10 %) is judged
  on: it counts the adapter's extra calls (existence checks, read-backs, waits) as overhead.

Run with ``uv run python benchmarks/sagemaker_adapter.py`` (``--reps`` repetitions per operation,
300 by default, after ``--warmup`` untimed ones).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform as host
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
os.environ.update(DUMMY_AWS_ENV)

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "mintaka-artifacts"
SETTINGS: dict[str, Any] = {
    "region": REGION,
    "bucket": BUCKET,
    "prefix": "mintaka",
    "role_arn": f"arn:aws:iam::{ACCOUNT}:role/mintaka-sagemaker",
    "image_uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mintaka-serve:1",
    "max_attempts": 4,
    "max_backoff_seconds": 0.0,
    "poll_seconds": 0.0,
    "connect_timeout": 1.0,
    "read_timeout": 5.0,
}
SIDES = ("adapter", "mirror", "minimal")
GROUP = "bench"  # versions are created here
SERVED = "served"  # two versions the endpoints serve
PAYLOAD = {"inputs": [{"a": 1.0, "b": 2.0, "c": 3.5}]}


def sm_arn(resource: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{resource}"


def container_answer(body: bytes, variant: str) -> Any:
    """What the Mintaka inference image answers: one output per input row."""
    rows = json.loads(body)["inputs"]
    return [round(sum(float(v) for v in row.values()), 6) for row in rows]


class Bench:
    """The backend, its clients, and the three implementations of each operation."""

    def __init__(self, backend: Any, artifact: Path, digest: str) -> None:
        from mintaka.domain.registry import VersionRequest
        from mintaka.domain.serving import Route, TrafficMap

        self.backend = backend
        self.sm = backend.clients.get("sagemaker")
        self.s3 = backend.clients.get("s3")
        self.rt = backend.clients.get("sagemaker-runtime")
        self.artifact = artifact
        self.digest = digest
        self.key = f"mintaka/artifacts/{digest.removeprefix('sha256:')}/model.tar.gz"
        self.uri = f"s3://{BUCKET}/{self.key}"
        self.counter = 0
        self.VersionRequest = VersionRequest
        self.routes = (
            Route(name="blue", model=SERVED, version=1),
            Route(name="green", model=SERVED, version=2),
        )
        self.traffic = [
            TrafficMap(weights={"blue": 100, "green": 0}),
            TrafficMap(weights={"blue": 50, "green": 50}),
        ]
        # set_traffic / invoke / get_endpoint each use one endpoint per side, made by the adapter
        # (so every side's config carries the same route tags).
        self.live = {side: f"live-{side}" for side in SIDES}
        # get_endpoint_cold reads its own endpoints, whose config's routes the adapter forgets
        # before each call (as a new process would not know them).
        self.cold = {side: f"cold-{side}" for side in SIDES}
        self.flip = dict.fromkeys(SIDES, 0)

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    # -- create_version ---------------------------------------------------------------------------

    def version_params(self, n: int) -> dict[str, Any]:
        return {
            "ModelPackageGroupName": GROUP,
            "ClientToken": f"key-{n}",
            "ModelApprovalStatus": "PendingManualApproval",
            "CustomerMetadataProperties": {
                "mintaka_id": f"ver_{n:08d}",
                "mintaka_digest": self.digest,
                "mintaka_flavor": "opaque",
            },
            "Tags": [{"Key": "team", "Value": "risk"}],
            "InferenceSpecification": {
                "Containers": [{"Image": SETTINGS["image_uri"], "ModelDataUrl": self.uri}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        }

    def prepare_create_version(self, side: str) -> Any:
        n = self.next_id()
        if side == "adapter":
            return self.VersionRequest(
                name=GROUP,
                artifact_path=str(self.artifact),
                artifact_digest=self.digest,
                tags={"team": "risk"},
                mintaka_id=f"ver_{n:08d}",
                idempotency_key=f"key-{n}",
            )
        return self.version_params(n)

    def adapter_create_version(self, request: Any) -> None:
        self.backend.create_version(request)

    def mirror_create_version(self, params: dict[str, Any]) -> None:
        self.s3.head_object(Bucket=BUCKET, Key=self.key)
        self.sm.create_model_package(**params)

    def minimal_create_version(self, params: dict[str, Any]) -> None:
        self.sm.create_model_package(**params)

    # -- get_version ------------------------------------------------------------------------------

    def prepare_get_version(self, side: str) -> int:
        return 1

    def adapter_get_version(self, version: int) -> None:
        self.backend.get_version(GROUP, version)

    def mirror_get_version(self, version: int) -> None:
        sm = self.sm
        arn = sm_arn(f"model-package/{GROUP}/{version}")
        sm.describe_model_package(ModelPackageName=arn)
        sm.list_tags(ResourceArn=sm_arn(f"model-package-group/{GROUP}"))
        sm.list_tags(ResourceArn=arn)

    def minimal_get_version(self, version: int) -> None:
        sm = self.sm
        arn = sm_arn(f"model-package/{GROUP}/{version}")
        sm.describe_model_package(ModelPackageName=arn)
        sm.list_tags(ResourceArn=arn)  # the version's tags
        sm.list_tags(ResourceArn=sm_arn(f"model-package-group/{GROUP}"))  # its aliases

    # -- set_alias --------------------------------------------------------------------------------

    def prepare_set_alias(self, side: str) -> tuple[str, int]:
        n = self.next_id()
        return f"{side}-{n % 20}", 1 + n % 2

    def adapter_set_alias(self, arg: tuple[str, int]) -> None:
        self.backend.set_alias(GROUP, *arg)

    def mirror_set_alias(self, arg: tuple[str, int]) -> None:
        version = arg[1]
        self.sm.describe_model_package(ModelPackageName=sm_arn(f"model-package/{GROUP}/{version}"))
        self.minimal_set_alias(arg)

    def minimal_set_alias(self, arg: tuple[str, int]) -> None:
        alias, version = arg
        self.sm.add_tags(
            ResourceArn=sm_arn(f"model-package-group/{GROUP}"),
            Tags=[{"Key": f"mintaka:alias:{alias}", "Value": str(version)}],
        )

    # -- create_endpoint --------------------------------------------------------------------------

    def prepare_create_endpoint(self, side: str) -> str:
        return f"ep-{side}-{self.next_id()}"

    def adapter_create_endpoint(self, name: str) -> None:
        self.backend.create_endpoint(name, self.routes, self.traffic[0])

    def _endpoint_calls(self, name: str, *, mirror: bool) -> None:
        sm = self.sm
        layout = self.backend._layout(name, self.routes, self.traffic[0])  # names only
        config = self.backend._config_name(name, 1, layout)
        for variant, route in zip(layout.variants, self.routes, strict=True):
            package_arn = sm_arn(f"model-package/{route.model}/{route.version}")
            if mirror:
                sm.describe_model_package(ModelPackageName=package_arn)
            sm.create_model(
                ModelName=variant["ModelName"],
                PrimaryContainer={
                    "Image": SETTINGS["image_uri"],
                    "Environment": {
                        "MINTAKA_MODEL": route.model,
                        "MINTAKA_VERSION": str(route.version),
                    },
                    "ModelDataUrl": self.uri,
                },
                ExecutionRoleArn=SETTINGS["role_arn"],
                Tags=[
                    {"Key": "mintaka:managed", "Value": "true"},
                    {"Key": "mintaka:model-package", "Value": package_arn},
                ],
            )
        sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=layout.variants,
            Tags=[
                {"Key": "mintaka:managed", "Value": "true"},
                {"Key": "mintaka:route:blue", "Value": f"{SERVED}:1"},
                {"Key": "mintaka:route:green", "Value": f"{SERVED}:2"},
            ],
        )
        sm.create_endpoint(
            EndpointName=name,
            EndpointConfigName=config,
            Tags=[{"Key": "mintaka:managed", "Value": "true"}],
        )
        if mirror:
            sm.describe_endpoint(EndpointName=name)  # the wait

    def mirror_create_endpoint(self, name: str) -> None:
        self._endpoint_calls(name, mirror=True)

    def minimal_create_endpoint(self, name: str) -> None:
        self._endpoint_calls(name, mirror=False)

    # -- get_endpoint -----------------------------------------------------------------------------

    def prepare_get_endpoint(self, side: str) -> str:
        return self.live[side]

    def adapter_get_endpoint(self, name: str) -> None:
        self.backend.get_endpoint(name)

    def mirror_get_endpoint(self, name: str) -> None:
        self.sm.describe_endpoint(EndpointName=name)

    minimal_get_endpoint = mirror_get_endpoint

    # -- get_endpoint, cold: the first read of an endpoint in a process ---------------------------

    def prepare_get_endpoint_cold(self, side: str) -> str:
        config = self.backend.get_endpoint(self.cold[side]).backend_ids["endpoint_config"]
        self.backend.config_routes.forget(config)
        return self.cold[side]

    adapter_get_endpoint_cold = adapter_get_endpoint

    def mirror_get_endpoint_cold(self, name: str) -> None:
        found = self.sm.describe_endpoint(EndpointName=name)
        self.sm.list_tags(ResourceArn=sm_arn(f"endpoint-config/{found['EndpointConfigName']}"))

    minimal_get_endpoint_cold = mirror_get_endpoint

    # -- set_traffic ------------------------------------------------------------------------------

    def prepare_set_traffic(self, side: str) -> tuple[str, int]:
        self.flip[side] ^= 1
        return self.live[side], self.flip[side]

    def adapter_set_traffic(self, arg: tuple[str, int]) -> None:
        name, which = arg
        self.backend.set_traffic(name, self.traffic[which])

    def _weights(self, which: int) -> list[dict[str, Any]]:
        weights = self.traffic[which].weights
        return [{"VariantName": k, "DesiredWeight": float(w)} for k, w in weights.items()]

    def mirror_set_traffic(self, arg: tuple[str, int]) -> None:
        name, which = arg
        sm = self.sm
        sm.describe_endpoint(EndpointName=name)  # routes and shape
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name, DesiredWeightsAndCapacities=self._weights(which)
        )
        sm.describe_endpoint(EndpointName=name)  # the wait, and the answer

    def minimal_set_traffic(self, arg: tuple[str, int]) -> None:
        name, which = arg
        self.sm.update_endpoint_weights_and_capacities(
            EndpointName=name, DesiredWeightsAndCapacities=self._weights(which)
        )

    # -- invoke -----------------------------------------------------------------------------------

    def prepare_invoke(self, side: str) -> str:
        return self.live[side]

    def adapter_invoke(self, name: str) -> None:
        self.backend.invoke(name, PAYLOAD)

    def mirror_invoke(self, name: str) -> None:
        answer = self.rt.invoke_endpoint(
            EndpointName=name,
            Body=json.dumps(PAYLOAD).encode("utf-8"),
            ContentType="application/json",
            Accept="application/json",
        )
        json.loads(answer["Body"].read())

    minimal_invoke = mirror_invoke


OPERATIONS = (
    "create_version",
    "get_version",
    "set_alias",
    "create_endpoint",
    "get_endpoint",
    "get_endpoint_cold",
    "set_traffic",
    "invoke",
)

# What the adapter issues beyond the minimal sequence, as printed and documented.
EXTRA_CALLS = {
    "create_version": "S3 HeadObject (is the content-addressed artifact already uploaded?)",
    "get_version": "none",
    "set_alias": "DescribeModelPackage (the version exists)",
    "create_endpoint": "DescribeModelPackage per route (image and model data), DescribeEndpoint "
    "(the wait for InService, also the answer)",
    "get_endpoint": "none (the config's routes are known)",
    "get_endpoint_cold": "ListTags on the endpoint config (its routes, read once per config)",
    "set_traffic": "DescribeEndpoint before (routes and shape) and after (the wait, also the "
    "answer)",
    "invoke": "none",
}


class Recorder:
    """Records the operation names sent through the backend's clients (for the check only)."""

    def __init__(self, clients: list[Any]) -> None:
        self.clients = clients
        self.calls: list[str] = []

    def _hook(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def __enter__(self) -> Recorder:
        for client in self.clients:
            client.meta.events.register("before-call", self._hook, unique_id="bench-recorder")
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-call", unique_id="bench-recorder")


def setup(bench: Bench) -> None:
    """The groups, two served versions and the live and cold endpoints (three each)."""
    from mintaka.domain.registry import VersionRequest

    backend = bench.backend
    backend.ensure_model(GROUP)
    backend.ensure_model(SERVED)
    for n in (1, 2):
        for group in (GROUP, SERVED):
            backend.create_version(
                VersionRequest(
                    name=group,
                    artifact_path=str(bench.artifact),
                    artifact_digest=bench.digest,
                    mintaka_id=f"ver_setup_{group}_{n}",
                    idempotency_key=f"setup-{group}-{n}",
                )
            )
    for name in [*bench.live.values(), *bench.cold.values()]:
        backend.create_endpoint(name, bench.routes, bench.traffic[0])


def check_mirrors(bench: Bench) -> dict[str, tuple[int, int]]:
    """Assert that each mirror sends the adapter's exact calls; (adapter calls, minimal calls)."""
    clients = [bench.sm, bench.s3, bench.rt, bench.backend.clients.get("sts")]
    counts: dict[str, tuple[int, int]] = {}
    for op in OPERATIONS:
        seen: dict[str, list[str]] = {}
        for side in SIDES:
            arg = getattr(bench, f"prepare_{op}")(side)
            with Recorder(clients) as rec:
                getattr(bench, f"{side}_{op}")(arg)
            seen[side] = rec.calls
        if seen["adapter"] != seen["mirror"]:
            raise SystemExit(f"{op}: adapter sent {seen['adapter']}, mirror {seen['mirror']}")
        counts[op] = (len(seen["adapter"]), len(seen["minimal"]))
    return counts


def run(bench: Bench, reps: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {op: {s: [] for s in SIDES} for op in OPERATIONS}
    clock = time.perf_counter_ns
    for i in range(warmup + reps):
        order = SIDES[i % 3 :] + SIDES[: i % 3]
        for op in OPERATIONS:
            prepare = getattr(bench, f"prepare_{op}")
            for side in order:
                arg = prepare(side)
                call: Callable[[Any], None] = getattr(bench, f"{side}_{op}")
                gc.disable()
                start = clock()
                call(arg)
                elapsed = clock() - start
                gc.enable()
                if i >= warmup:
                    times[op][side].append(elapsed / 1e6)
        gc.collect()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    import boto3
    import botocore
    import moto
    from mintaka_conformance.fakes.sagemaker import make_client, mock_sagemaker
    from mintaka_conformance.fakes.sagemaker import runtime as fake_runtime
    from mintaka_sagemaker.backend import SageMakerBackend
    from mintaka_sagemaker.settings import SageMakerSettings

    from mintaka import IdFactory
    from mintaka.interfaces import BackendContext

    fake_runtime._echo = container_answer  # endpoints answer as the inference image does
    with tempfile.TemporaryDirectory() as tmp, mock_sagemaker():
        root = Path(tmp)
        artifact = root / "artifact"
        artifact.mkdir()
        (artifact / "model.bin").write_bytes(b"weights" * 1000)
        digest = "sha256:" + hashlib.sha256((artifact / "model.bin").read_bytes()).hexdigest()
        make_client("s3").create_bucket(Bucket=BUCKET)
        backend = SageMakerBackend(
            SageMakerSettings(**SETTINGS),
            BackendContext(home=root / "home", ids=IdFactory(seed=1)),
        )
        bench = Bench(backend, artifact, digest)
        setup(bench)
        counts = check_mirrors(bench)
        started = time.perf_counter()
        times = run(bench, args.reps, args.warmup)
        wall = time.perf_counter() - started
        backend.close()

    print(
        f"Python {sys.version.split()[0]} on {host.machine()} {host.system()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; boto3 {boto3.__version__}, "
        f"botocore {botocore.__version__}, moto {moto.__version__} in-process with the "
        "Mintaka SageMaker extension"
    )
    print(
        f"{args.reps} timed repetitions per operation and side ({args.warmup} warm-up), "
        f"interleaved; {wall:.1f} s"
    )
    print()
    header = (
        f"{'operation':<18} {'calls a/min':>11} "
        f"{'adapter p50/mean ms':>20} {'mirror p50/mean ms':>19} {'minimal p50/mean ms':>20} "
        f"{'vs mirror':>10} {'vs minimal':>11} {'<10%':>5}"
    )
    print(header)
    print("-" * len(header))
    for op in OPERATIONS:
        med = {s: statistics.median(times[op][s]) for s in SIDES}
        avg = {s: statistics.fmean(times[op][s]) for s in SIDES}
        vs_mirror = (med["adapter"] / med["mirror"] - 1) * 100
        vs_minimal = (med["adapter"] / med["minimal"] - 1) * 100
        cells = " ".join(f"{med[s]:>9.3f}/{avg[s]:<9.3f}" for s in SIDES)
        adapter_calls, minimal_calls = counts[op]
        print(
            f"{op:<18} {adapter_calls:>5}/{minimal_calls:<5} {cells} "
            f"{vs_mirror:>+9.1f}% {vs_minimal:>+10.1f}% {'yes' if vs_minimal < 10 else 'no':>5}"
        )
    print()
    print("overhead = median adapter / median other - 1 (means in the columns above)")
    print("extra calls the adapter makes over the minimal sequence:")
    for op in OPERATIONS:
        print(f"  {op}: {EXTRA_CALLS[op]}")


if __name__ == "__main__":
    main()
