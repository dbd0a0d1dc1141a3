"""Shared fixtures of the SageMaker backend's tests: moto with the SageMaker extension, in-process
or as a server on 127.0.0.1, and never AWS."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("moto", reason="the SageMaker tests need mintaka-conformance[moto]")

from mintaka_conformance.fakes.sagemaker import runtime as fake_runtime
from mintaka_conformance.fakes.sagemaker import sagemaker_server

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


def container_answer(body: bytes, variant: str) -> Any:
    """What the Mintaka inference image answers: one output per input row."""
    request = json.loads(body)
    rows = request["inputs"] if isinstance(request["inputs"], list) else [request["inputs"]]
    return [round(sum(float(v) for v in row.values()), 6) for row in rows]


@pytest.fixture
def inference_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fake endpoint answers as the Mintaka inference image does (the fake's default is an
    echo of the request)."""
    monkeypatch.setattr(fake_runtime, "_echo", container_answer)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[Any]:
    """One moto server on 127.0.0.1 for the module (stopping it takes about half a second)."""
    saved = {k: os.environ.get(k) for k in DUMMY_AWS_ENV}
    os.environ.update(DUMMY_AWS_ENV)
    try:
        with sagemaker_server() as server:
            yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
