"""Shared fixtures of the SageMaker backend's tests: moto with the SageMaker extension, in-process
or as a server on 127.0.0.1, and never AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("moto", reason="the SageMaker tests need mintaka-conformance[moto]")

from mintaka_conformance.fakes.sagemaker import runtime as fake_runtime
from mintaka_conformance.fakes.sagemaker import sagemaker_server
from sagemaker_testkit import DUMMY_AWS_ENV, container_answer


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
