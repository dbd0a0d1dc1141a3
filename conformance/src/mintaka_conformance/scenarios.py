"""Realistic starting states for conformance tests, built through the Platform like a user would.

A scenario uses only what the backend declares: on a backend without tags its versions carry none,
and the tests that look at tags are skipped by their ``requires`` marker, never by the scenario.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mintaka import (
    Capability,
    DatasetVersion,
    ManualClock,
    MintakaError,
    ModelVersion,
    Platform,
    Run,
)

CODE_COMMIT = "0123456789abcdef0123456789abcdef01234567"

MakeArtifact = Callable[[bytes], Path]
"""The ``make_artifact`` fixture: a fresh artifact directory holding the given bytes."""


class Names:
    """Valid, unique names for models, endpoints and experiments, from a per-test seed."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def _token(self) -> str:
        return "".join(self._random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=8))

    def model(self, stem: str = "model") -> str:
        return f"{stem}-{self._token()}"

    def endpoint(self, stem: str = "ep") -> str:
        return f"{stem}-{self._token()}"


@dataclass(frozen=True)
class ModelScenario:
    """A model ``name`` with versions 1-3 registered in order.

    Version 1 was trained by ``run`` on ``dataset``; where the backend supports them, versions 1 and
    2 carry ``tags`` and the aliases ``champion`` -> 2 and ``challenger`` -> 3 are set.
    """

    name: str
    versions: tuple[ModelVersion, ...]
    run: Run
    dataset: DatasetVersion
    tags: dict[int, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    def version(self, number: int) -> ModelVersion:
        return self.versions[number - 1]


def build_model_scenario(
    platform: Platform,
    clock: ManualClock,
    names: Names,
    make_artifact: MakeArtifact,
    tmp_path: Path,
) -> ModelScenario:
    name = names.model("credit")
    data = tmp_path / f"{name}-train.csv"
    data.write_text("income,debt,default\n52000,1200,0\n31000,8800,1\n")
    dataset = platform.register_dataset(f"{name}-train", data, schema={"income": "int"}, rows=2)
    clock.advance(60)
    run = platform.start_run(
        f"{name}-exp",
        params={"max_depth": 4, "learning_rate": 0.1},
        dataset_ids=[dataset.id],
        code_commit_=CODE_COMMIT,
    )
    platform.log_metrics(run.id, {"auc": 0.91, "logloss": 0.33})
    clock.advance(600)
    run = platform.end_run(run.id)

    tagging = platform.supports(Capability.REGISTRY_TAGS)
    tags = {1: {"team": "risk"}, 2: {"team": "risk", "note": "retrained"}} if tagging else {}
    versions: list[ModelVersion] = []
    for number, content in enumerate((b"weights-1", b"weights-2", b"weights-3"), start=1):
        clock.advance(3600)
        extra: dict[str, Any] = {"run_id": run.id} if number == 1 else {}
        versions.append(
            platform.register_model(
                name,
                make_artifact(content + name.encode()),
                tags=tags.get(number),
                description=f"version {number}",
                **extra,
            )
        )
    aliases: dict[str, int] = {}
    if platform.supports(Capability.REGISTRY_ALIASES):
        aliases = {"champion": 2, "challenger": 3}
        for alias, number in aliases.items():
            platform.set_alias(name, alias, number)
    final = tuple(platform.get_model_version(name, v.version) for v in versions)
    return ModelScenario(
        name=name, versions=final, run=run, dataset=dataset, tags=tags, aliases=aliases
    )


def cleanup_models(backend: Any, names: Iterable[str]) -> None:
    """Delete what a scenario left in the cloud, where the backend can delete versions.

    Errors are ignored: a test may already have deleted what it made, and a failing cleanup must
    not hide the test's own result.
    """
    if Capability.REGISTRY_DELETE not in backend.capabilities:
        return
    for name in names:
        try:
            versions = backend.list_versions(name)
        except MintakaError:
            continue
        for found in versions:
            with contextlib.suppress(MintakaError):
                backend.delete_version(name, found.version)


SERVABLE_FEATURES = ("f0", "f1", "f2")


@dataclass(frozen=True)
class ServableModel:
    """A model whose versions 1 and 2 are real scikit-learn classifiers any backend can serve."""

    name: str
    features: tuple[str, ...] = SERVABLE_FEATURES

    def row(self, i: int = 0) -> dict[str, float]:
        rng = random.Random(i)
        return {feature: rng.uniform(-2, 2) for feature in self.features}


def build_servable_model(platform: Platform, names: Names, tmp_path: Path) -> ServableModel:
    from sklearn.linear_model import LogisticRegression

    from mintaka.domain.registry import Signature
    from mintaka.flavors import sklearn as sklearn_flavor

    rng = random.Random(5)
    x = [[rng.uniform(-2, 2) for _ in SERVABLE_FEATURES] for _ in range(60)]
    y = [int(row[0] + row[1] > 0) for row in x]
    name = names.model("servable")
    signature = Signature(inputs=dict.fromkeys(SERVABLE_FEATURES, "float"))
    for c in (1.0, 0.05):
        model = LogisticRegression(C=c).fit(x, y)
        platform.register_model(
            name,
            sklearn_flavor.save(model, tmp_path / f"servable-{c}"),
            flavor="sklearn",
            signature=signature,
        )
    return ServableModel(name)
