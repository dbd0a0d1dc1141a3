"""Shared fixtures of the SageMaker backend's tests: moto with the SageMaker extension, in-process
or as a server on 127.0.0.1, and never AWS; a Platform over the in-process one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto", reason="the SageMaker tests need mintaka-conformance[moto]")

from mintaka_conformance.fakes.sagemaker import (
    SageMakerFake,
    make_client,
    mock_sagemaker,
    sagemaker_server,
)
from mintaka_conformance.fakes.sagemaker import runtime as fake_runtime
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import BUCKET, DUMMY_AWS_ENV, Cli, container_answer, sagemaker_platform

from mintaka import Platform


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


@pytest.fixture
def fake(inference_image: None) -> Iterator[SageMakerFake]:
    """The extended moto, in-process, with the artifact bucket made."""
    with mock_sagemaker() as handle:
        make_client("s3").create_bucket(Bucket=BUCKET)
        yield handle


@pytest.fixture
def platform(tmp_path: Path, fake: SageMakerFake) -> Iterator[Platform]:
    with sagemaker_platform(tmp_path / "home", seed=7) as plat:
        yield plat


@pytest.fixture
def cloud(platform: Platform) -> SageMakerBackend:
    """The platform's backend, called directly (core never hears of these calls)."""
    assert isinstance(platform.backend, SageMakerBackend)
    return platform.backend


@pytest.fixture
def sm(fake: SageMakerFake) -> Any:
    """A plain boto3 SageMaker client: changes made behind Mintaka's back."""
    return make_client("sagemaker")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The ``mintaka`` command on a SageMaker home of its own (``sagemaker_testkit.Cli``)."""
    runner = Cli(tmp_path / "cli-home", capsys)
    monkeypatch.setenv("MINTAKA_HOME", str(runner.home))
    return runner
