"""A short check against real AWS, opt-in: ``MINTAKA_SAGEMAKER_LIVE=1`` with credentials and
``MINTAKA_SAGEMAKER_BUCKET`` (an S3 bucket the caller may write to); ``MINTAKA_SAGEMAKER_REGION``
defaults to us-east-1. It creates one model package group with one version and deletes both."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.settings import SageMakerSettings

from mintaka import NotFound
from mintaka.domain.registry import ApprovalStatus, VersionRequest
from mintaka.interfaces import BackendContext


def _live_settings() -> SageMakerSettings | None:
    if os.environ.get("MINTAKA_SAGEMAKER_LIVE") != "1" or not os.environ.get(
        "MINTAKA_SAGEMAKER_BUCKET"
    ):
        return None
    import boto3

    if boto3.session.Session().get_credentials() is None:
        return None
    return SageMakerSettings(
        bucket=os.environ["MINTAKA_SAGEMAKER_BUCKET"],
        region=os.environ.get("MINTAKA_SAGEMAKER_REGION", "us-east-1"),
        prefix="mintaka-live-test",
    )


pytestmark = pytest.mark.skipif(
    _live_settings() is None,
    reason="live SageMaker tests need MINTAKA_SAGEMAKER_LIVE=1, MINTAKA_SAGEMAKER_BUCKET and "
    "AWS credentials",
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[SageMakerBackend]:
    settings = _live_settings()
    assert settings is not None
    backend = SageMakerBackend(settings, BackendContext(home=tmp_path))
    yield backend
    backend.close()


def test_whoami_against_aws(live: SageMakerBackend) -> None:
    assert live.whoami().authenticated


def test_registry_round_trip_against_aws(live: SageMakerBackend, tmp_path: Path) -> None:
    name = f"mintaka-live-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(name.encode())
    from mintaka.artifacts import manifest_of

    digest = manifest_of(folder).digest
    live.ensure_model(name, "Mintaka live test, safe to delete")
    try:
        request = VersionRequest(
            name=name,
            artifact_path=str(folder),
            artifact_digest=digest,
            mintaka_id="mv-live",
            idempotency_key="mv-live",
            tags={"purpose": "test"},
        )
        version = live.create_version(request)
        assert live.create_version(request).version == version.version
        live.set_approval(name, version.version, ApprovalStatus.APPROVED)
        seen = live.get_version(name, version.version)
        assert (seen.artifact_digest, seen.approval, seen.tags) == (
            digest,
            ApprovalStatus.APPROVED,
            {"purpose": "test"},
        )
        live.delete_version(name, version.version)
        with pytest.raises(NotFound):
            live.get_version(name, version.version)
    finally:
        live.clients.sagemaker.delete_model_package_group(ModelPackageGroupName=name)
