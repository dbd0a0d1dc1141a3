"""A step's cache key takes the same schema of its models in every process, and a changed
default factory changes it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from mintaka.pipelines.contract import model_schema

MODELS = """
from pydantic import BaseModel, Field

LABELS = frozenset({"approve", "decline", "review", "escalate", "hold", "refer", "defer"})


class Outputs(BaseModel):
    labels: frozenset[str] = LABELS
    nested: dict[str, set[str]] = {"a": set(LABELS)}
    weights: list[int] = Field(default_factory=lambda: [1, 2])
"""

SCHEMA = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); import schema_models;"
    "from mintaka.pipelines.contract import model_schema;"
    "print(json.dumps(model_schema(schema_models.Outputs), sort_keys=True))"
)


def schema_in_process(folder: Path, hash_seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCHEMA, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_a_set_default_gives_the_same_schema_whatever_the_hash_seed(tmp_path: Path) -> None:
    (tmp_path / "schema_models.py").write_text(MODELS)
    assert schema_in_process(tmp_path, "1") == schema_in_process(tmp_path, "2")


def test_a_default_factory_whose_body_changes_changes_the_schema(tmp_path: Path) -> None:
    models = tmp_path / "schema_models.py"
    models.write_text(MODELS)
    before = schema_in_process(tmp_path, "0")
    models.write_text(MODELS.replace("lambda: [1, 2]", "lambda: [10, 20]"))
    after = schema_in_process(tmp_path, "0")
    assert before != after


def _weights(scale: int) -> list[int]:
    return [scale, 2 * scale]


class One(BaseModel):
    weights: list[int] = Field(default_factory=functools.partial(_weights, 1))


class Two(BaseModel):
    weights: list[int] = Field(default_factory=functools.partial(_weights, 2))


def test_a_partial_default_factory_is_taken_with_its_arguments() -> None:
    one = model_schema(One)[f"{__name__}.One"]
    two = model_schema(Two)[f"{__name__}.Two"]
    assert one["weights"] != two["weights"]
