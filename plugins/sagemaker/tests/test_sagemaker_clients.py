"""The client factory's retry policy and timeouts, and the one SDK error table."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from mintaka_conformance.fakes.sagemaker import Fault, FaultInjector, mock_sagemaker
from mintaka_sagemaker.clients import SERVICES, ClientFactory
from mintaka_sagemaker.errors import translate, translated
from mintaka_sagemaker.settings import SageMakerSettings
from sagemaker_testkit import SETTINGS

from mintaka.errors import (
    BackendError,
    ConfigurationError,
    Conflict,
    MintakaError,
    NotFound,
    RetryExhausted,
    Throttled,
    ValidationError,
)


def _error(code: str, message: str = "", *, exhausted: bool = False) -> ClientError:
    meta: dict[str, Any] = {"HTTPStatusCode": 400, "RetryAttempts": 3 if exhausted else 0}
    if exhausted:
        meta["MaxAttemptsReached"] = True
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": meta}, "Op"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_client_has_the_configured_retries_and_timeouts(service: str) -> None:
    settings = SageMakerSettings(
        bucket="bucket",
        region="eu-west-1",
        retry_mode="standard",
        max_attempts=7,
        connect_timeout=2.5,
        read_timeout=33.0,
    )
    with mock_sagemaker():
        client = ClientFactory(settings).get(service)
    config = client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 7}
    assert (config.connect_timeout, config.read_timeout) == (2.5, 33.0)
    assert client.meta.region_name == "eu-west-1"


def test_clients_are_built_once_per_factory() -> None:
    with mock_sagemaker():
        factory = ClientFactory(SageMakerSettings(**SETTINGS))
        assert factory.sagemaker is factory.get("sagemaker")
        assert factory.runtime is not factory.sagemaker


def test_unknown_service_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'ec2' client"):
        ClientFactory(SageMakerSettings()).get("ec2")


def test_zero_backoff_retries_throttling_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    with mock_sagemaker():
        factory = ClientFactory(SageMakerSettings(**{**SETTINGS, "max_attempts": 4}))
        factory.sagemaker.list_model_package_groups()  # moto's backend warms up on first use
        faults = FaultInjector(script=[Fault.THROTTLING] * 3)
        faults.attach(factory.sagemaker)
        monkeypatch.setattr(time, "sleep", sleep)
        answer = factory.sagemaker.list_model_package_groups()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 3
    # botocore sleeps before each retry for the backoff it computed: zero, every time
    assert slept == [0, 0, 0]


def test_backoff_cap_needs_standard_retries() -> None:
    with pytest.raises(ValueError, match="retry_mode 'standard'"):
        SageMakerSettings(bucket="bucket", retry_mode="legacy", max_backoff_seconds=0)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_error("ValidationException", "ModelPackage arn:... does not exist."), NotFound),
        (_error("ValidationException", 'Could not find endpoint "arn:..."'), NotFound),
        (_error("ValidationException", "Model Package Group already exists: arn"), Conflict),
        (_error("ValidationException", "1 validation error detected"), ValidationError),
        (_error("ValidationException", 'Cannot update in-progress endpoint "arn:..."'), Conflict),
        (_error("ResourceNotFound", "no such thing"), NotFound),
        (_error("ResourceInUse", "in use"), Conflict),
        (_error("ConflictException", "group has versions"), Conflict),
        (_error("ThrottlingException", "Rate exceeded"), Throttled),
        (_error("ThrottlingException", "Rate exceeded", exhausted=True), RetryExhausted),
        (_error("ServiceUnavailable", "down", exhausted=True), RetryExhausted),
        (_error("AccessDeniedException", "no"), BackendError),
        (_error("SomethingNew", "?"), BackendError),
        (_error("404"), NotFound),
        (ReadTimeoutError(endpoint_url="http://x"), RetryExhausted),
        (EndpointConnectionError(endpoint_url="http://x"), RetryExhausted),
    ],
)
def test_sdk_errors_translate_through_one_table(error: Exception, kind: type) -> None:
    translated_error = translate(error, "sagemaker op")
    assert type(translated_error) is kind
    if isinstance(translated_error, BackendError):
        assert translated_error.backend == "sagemaker"


def test_translated_keeps_the_sdk_error_as_cause() -> None:
    original = _error("ThrottlingException", "Rate exceeded", exhausted=True)
    with pytest.raises(RetryExhausted) as caught, translated("sagemaker describe_endpoint"):
        raise original
    assert caught.value.__cause__ is original
    assert caught.value.backend == "sagemaker"
    assert "gave up after 4 attempts" in str(caught.value)


def test_missing_credentials_are_a_configuration_error() -> None:
    from botocore.exceptions import NoCredentialsError

    with pytest.raises(ConfigurationError), translated("sts get_caller_identity"):
        raise NoCredentialsError()


def test_non_sdk_errors_pass_through_untouched() -> None:
    with pytest.raises(KeyError), translated("anything"):
        raise KeyError("x")
    assert issubclass(RetryExhausted, MintakaError)


def test_settings_without_a_bucket_build_but_refuse_an_upload() -> None:
    settings = SageMakerSettings()
    with pytest.raises(ConfigurationError, match="set bucket"):
        settings.s3_uri("capture")


def test_registering_the_backend_imports_no_aws_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mintaka.plugins import BackendRegistry\n"
        "import mintaka_sagemaker.plugin as plugin\n"
        "plugin.mintaka_register_backends(BackendRegistry())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_a_missing_boto3_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'mintaka\[sagemaker\]'"):
        ClientFactory(SageMakerSettings()).get("sts")
