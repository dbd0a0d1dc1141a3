"""How the SageMaker backend is configured: ``[backend_settings]`` in ``config.toml``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mintaka.domain.names import (
    check_name_map,
    mintaka_name_in,
    validate_endpoint_name,
    validate_model_name,
)
from mintaka.errors import ConfigurationError, ValidationError
from mintaka.interfaces import BackendSettings

# Model package groups and endpoints are named alike on SageMaker.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def cloud_name_in(names: dict[str, str], name: str, what: str, setting: str) -> str:
    """The SageMaker name of Mintaka name ``name`` under the map ``names`` (itself unless
    mapped). SageMaker names ignore case, so an unmapped name that is a mapped one without
    regard to case (``churnmodel`` beside ``ChurnModel``) is that resource, which reads back
    under the Mintaka name it is mapped to: it is refused."""
    mapped = names.get(name)
    if mapped is not None:
        return mapped
    owner = mintaka_name_in(names, name, ignore_case=True)
    if owner != name:
        raise ValidationError(
            f"[sagemaker] {name!r} is the {what} {names[owner]!r} (SageMaker names ignore "
            f"case), which {setting} maps to Mintaka name {owner!r}: use {owner!r}"
        )
    return name


class SageMakerSettings(BackendSettings):
    """Where Mintaka's SageMaker resources live and how patiently it talks to AWS.

    ``bucket`` is needed as soon as an artifact is uploaded or capture is configured, so that
    ``mintaka init --backend sagemaker`` works before it is set. Credentials are never settings:
    boto3's own chain (environment, ``profile``, instance role) provides them. ``endpoint_url``
    points every client at one URL (a moto server, a VPC endpoint); ``max_attempts`` counts the
    first request; ``max_backoff_seconds`` caps botocore's exponential backoff in ``standard``
    mode (0 retries at once, for tests). ``model_names`` maps a Mintaka model name to the model
    package group that holds it where the group's name is one Mintaka cannot use (upper case,
    a leading digit), so that a group made before Mintaka can be adopted under a Mintaka name;
    ``endpoint_names`` does the same for endpoints. ``poll_seconds`` and
    ``wait_timeout_seconds`` pace the waits for endpoint changes; ``async_poll_seconds`` and
    ``async_timeout_seconds`` the wait for an asynchronous endpoint's answer in S3 (SageMaker's
    own default limit on processing one asynchronous request is 15 minutes).
    """

    region: str = "us-east-1"
    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    prefix: str = Field(default="mintaka", pattern=r"^[A-Za-z0-9!_.*'()/-]{0,200}$")
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    model_role: Literal["role_arn", "endpoint"] = "role_arn"
    """The execution role of a Model Mintaka makes on an endpoint: ``role_arn``, or
    ``endpoint``: the role of the Model serving the endpoint's busiest route (an adopted
    endpoint's new versions then run under the role its owners gave it, which must be able to
    read the artifact bucket); ``role_arn`` where the endpoint has no Model yet."""
    image_uri: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1)
    endpoint_url: str | None = None
    profile: str | None = None
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_backoff_seconds: float = Field(default=20.0, ge=0, le=300)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    poll_seconds: float = Field(default=15.0, ge=0)
    wait_timeout_seconds: float = Field(default=3600.0, ge=0)
    async_poll_seconds: float = Field(default=1.0, gt=0)
    async_timeout_seconds: float = Field(default=900.0, ge=0)
    rollback_alarms: tuple[str, ...] = Field(default=(), max_length=10)
    """CloudWatch alarms that roll back every native rollout, beside the plan's SLA alarms
    (SageMaker's ``AutoRollbackConfiguration`` takes at most 10 in all)."""
    model_names: dict[str, str] = Field(default_factory=dict)
    endpoint_names: dict[str, str] = Field(default_factory=dict)

    @field_validator("model_names")
    @classmethod
    def _model_names_one_to_one(cls, names: dict[str, str]) -> dict[str, str]:
        return check_name_map(
            names, "model package group", validate_model_name, SAGEMAKER_NAME, ignore_case=True
        )

    @field_validator("endpoint_names")
    @classmethod
    def _endpoint_names_one_to_one(cls, names: dict[str, str]) -> dict[str, str]:
        return check_name_map(
            names, "endpoint", validate_endpoint_name, SAGEMAKER_NAME, ignore_case=True
        )

    @model_validator(mode="after")
    def _backoff_cap_needs_standard_retries(self) -> SageMakerSettings:
        if self.max_backoff_seconds != 20.0 and self.retry_mode != "standard":
            raise ValueError("max_backoff_seconds applies to retry_mode 'standard' only")
        return self

    def group_of(self, name: str) -> str:
        """The model package group holding Mintaka model ``name`` (``cloud_name_in``)."""
        return cloud_name_in(self.model_names, name, "model package group", "model_names")

    def name_of(self, group: str) -> str:
        """The Mintaka name of model package group ``group`` (itself unless mapped)."""
        return mintaka_name_in(self.model_names, group, ignore_case=True)  # ARNs: lower case

    def endpoint_of(self, name: str) -> str:
        """The SageMaker endpoint that is Mintaka endpoint ``name`` (``cloud_name_in``)."""
        return cloud_name_in(self.endpoint_names, name, "endpoint", "endpoint_names")

    def endpoint_name_of(self, endpoint: str) -> str:
        """The Mintaka name of SageMaker endpoint ``endpoint`` (itself unless mapped)."""
        return mintaka_name_in(self.endpoint_names, endpoint, ignore_case=True)

    @property
    def key_prefix(self) -> str:
        return self.prefix.strip("/")

    def require_bucket(self) -> str:
        """The artifact bucket; a clear configuration error where none is set yet."""
        if not self.bucket:
            raise ConfigurationError(
                "[sagemaker] set bucket (an S3 bucket for artifacts and captured traffic) in "
                "[backend_settings] of config.toml"
            )
        return self.bucket

    def key(self, *parts: str) -> str:
        """The S3 key of ``parts`` under the key prefix."""
        return "/".join(p.strip("/") for p in (self.key_prefix, *parts) if p.strip("/"))

    def s3_uri(self, *parts: str) -> str:
        return f"s3://{self.require_bucket()}/{self.key(*parts)}"
