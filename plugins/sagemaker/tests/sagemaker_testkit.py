"""Constants and helpers shared by the SageMaker backend's tests (a unique module name, so it
never clashes with another plugin's test helpers)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mintaka_conformance.fixtures import InProcessPlugin
from mintaka_sagemaker.backend import SageMakerBackend
from pydantic import BaseModel

from mintaka import IdFactory, ManualClock, Platform
from mintaka.cli.app import main
from mintaka.config import MintakaConfig, write_config
from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE
from mintaka.plugins import PluginManager

ACCOUNT = "123456789012"
BUCKET = "mintaka-artifacts"
SETTINGS: dict[str, Any] = {
    "region": "us-east-1",
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
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


SERVICES = ("sagemaker", "sagemaker-runtime", "s3", "sts")


class Calls:
    """Records the API operations sent through a backend's clients while it is entered."""

    def __init__(self, backend: SageMakerBackend) -> None:
        self.clients = [backend.clients.get(service) for service in SERVICES]
        self.sent: list[str] = []

    def _record(self, model: Any, **_: Any) -> None:
        self.sent.append(model.name)

    def __enter__(self) -> list[str]:
        for client in self.clients:
            client.meta.events.register("before-call", self._record, unique_id="calls-test")
        return self.sent

    def __exit__(self, *exc: object) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-call", unique_id="calls-test")


def container_answer(body: bytes, variant: str) -> Any:
    """What the Mintaka inference image answers: one output per input row."""
    request = json.loads(body)
    rows = request["inputs"] if isinstance(request["inputs"], list) else [request["inputs"]]
    return [round(sum(float(v) for v in row.values()), 6) for row in rows]


def model_artifact(root: Path, content: bytes) -> Path:
    """A one-file model directory under ``root``, named after its content."""
    folder = root / f"model-{content.decode()}"
    folder.mkdir()
    (folder / "model.bin").write_bytes(content)
    return folder


@contextmanager
def sagemaker_platform(
    home: Path,
    settings: Mapping[str, Any] = SETTINGS,
    *,
    seed: int = 1,
    actor: str = "tester",
) -> Iterator[Platform]:
    """A Platform over the SageMaker backend alone, acting as ``actor``, with a manual clock,
    seeded ids and the open policy unless the home has a policy already (the mock or server it
    talks to is the caller's)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / POLICY_FILE).exists():
        (home / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())
    with Platform(
        home,
        backend="sagemaker",
        backend_settings=dict(settings),
        actor=actor,
        clock=ManualClock(),
        ids=IdFactory(seed=seed),
        plugins=PluginManager(load_entry_points=False, extra=[InProcessPlugin(SageMakerBackend)]),
    ) as platform:
        yield platform


def deploy_without_registry(
    sm: Any,
    endpoint: str,
    container: Mapping[str, Any],
    compute: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """An endpoint as the SageMaker SDK's ``Model(...).deploy()`` makes one, with plain boto3: a
    Model ``<endpoint>-model`` made from ``container`` (``PrimaryContainer=...`` or
    ``Containers=[...]``, and any other CreateModel field), no model package, served by the
    default variant ``AllTraffic`` on ``compute`` (one ml.m5.large by default), in a config with
    ``config``'s other CreateEndpointConfig fields."""
    sm.create_model(
        **{"ModelName": f"{endpoint}-model", "ExecutionRoleArn": SETTINGS["role_arn"], **container}
    )
    sm.create_endpoint_config(
        **(config or {}),
        EndpointConfigName=f"{endpoint}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{endpoint}-model",
                **(compute or {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}),
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")


class Cli:
    """``mintaka ARGS`` run in-process on ``home``, a home whose backend is SageMaker under the
    open policy (``MINTAKA_HOME`` points at it): each call answers the exit status and what was
    printed, its whitespace folded to single spaces."""

    def __init__(self, home: Path, capture: Any) -> None:
        self.home = home
        self.capture = capture
        write_config(MintakaConfig(home=home, backend="sagemaker", backend_settings=dict(SETTINGS)))
        (home / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())

    def __call__(self, *args: str) -> tuple[int, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capture.readouterr()
        return code, " ".join((out + err).split())


class NoStepInputs(BaseModel):
    pass


class StepMetrics(BaseModel):
    metrics: dict[str, float]


def measures_nan(inputs: NoStepInputs) -> StepMetrics:
    """A pipeline step's outputs, one metric of which is NaN (a metric that was not measured)."""
    return StepMetrics(metrics={"auc": float("nan"), "loss": 0.3})
