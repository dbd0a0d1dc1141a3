"""The moto and botocore internals this extension relies on, checked in one place.

The extension patches moto's SageMaker response classes and reads moto's backend objects, so an
upstream change can break it silently. :func:`compatibility_problems` names every internal we use;
:func:`~mintaka_conformance.fakes.sagemaker.install` refuses to patch when one is missing, and the
test suite fails with the same messages when moto moves.
"""

from __future__ import annotations

import inspect
from typing import Any

EXPECTED_MOTO_VERSION = "5.2.5"

# Response-class methods that moto implements and that the extension wraps or replaces.
WRAPPED_SAGEMAKER_OPERATIONS = (
    "create_model",
    "create_endpoint_config",
    "describe_endpoint_config",
    "delete_endpoint_config",
    "create_endpoint",
    "describe_endpoint",
    "delete_endpoint",
    "update_endpoint_weights_and_capacities",
    "create_model_package_group",
    "create_model_package",
    "describe_model_package",
    "list_model_packages",
    "update_model_package",
    "add_tags",
    "list_tags",
    "delete_tags",
    "create_pipeline",
    "update_pipeline",
    "start_pipeline_execution",
    "describe_pipeline_execution",
    "list_pipeline_executions",
)

# SageMakerRuntimeResponse methods moto implements and the extension replaces.
WRAPPED_RUNTIME_OPERATIONS = ("invoke_endpoint", "invoke_endpoint_async")

# Operations moto 5.2.5 does not implement; the extension adds them. If moto starts implementing
# one, the extension still wins, but someone should compare the two.
ADDED_SAGEMAKER_OPERATIONS = (
    "update_endpoint",
    "delete_model_package",
    "delete_model_package_group",
    "list_pipeline_execution_steps",
    "stop_pipeline_execution",
    "create_monitoring_schedule",
    "describe_monitoring_schedule",
    "list_monitoring_schedules",
    "delete_monitoring_schedule",
    "list_monitoring_executions",
    "create_artifact",
    "describe_artifact",
    "update_artifact",
    "list_artifacts",
    "create_context",
    "describe_context",
    "update_context",
    "list_contexts",
    "create_action",
    "describe_action",
    "update_action",
    "list_actions",
    "add_association",
    "delete_association",
    "list_associations",
    "query_lineage",
)

# Attributes of ``SageMakerModelBackend`` the extension reads or writes.
BACKEND_ATTRIBUTES = (
    "_models",
    "endpoint_configs",
    "endpoints",
    "model_package_groups",
    "model_packages",
    "model_package_name_mapping",
    "pipelines",
    "data_quality_job_definitions",
)

# Keyword parameters of moto's model constructors that the extension passes or reads.
MODEL_PACKAGE_INIT_PARAMETERS = (
    "model_package_name",
    "model_package_group_name",
    "model_package_version",
    "model_package_description",
    "inference_specification",
    "source_algorithm_specification",
    "validation_specification",
    "certify_for_marketplace",
    "model_approval_status",
    "metadata_properties",
    "model_metrics",
    "approval_description",
    "customer_metadata_properties",
    "drift_check_baselines",
    "domain",
    "task",
    "sample_payload_url",
    "additional_inference_specifications",
    "client_token",
    "region_name",
    "account_id",
    "model_package_type",
    "tags",
)

RETRY_HANDLER_PARAMETERS = ("retry_policy", "retry_event_adapter", "retry_quota", "service_name")


def _missing_parameters(func: Any, names: tuple[str, ...]) -> list[str]:
    params = inspect.signature(func).parameters
    return [name for name in names if name not in params]


def compatibility_problems(*, check_version: bool = True) -> list[str]:
    """Every moto/botocore internal the extension needs that is missing or changed, as sentences."""
    problems: list[str] = []
    import moto

    if check_version and moto.__version__ != EXPECTED_MOTO_VERSION:
        problems.append(
            f"moto {moto.__version__} is installed but the SageMaker extension was written and "
            f"measured against moto {EXPECTED_MOTO_VERSION}; run "
            "conformance/tests/fakes/test_sagemaker_fake.py, fix what breaks, then update "
            "EXPECTED_MOTO_VERSION in fakes/sagemaker/_compat.py and the pin in "
            "conformance/pyproject.toml"
        )

    from moto.sagemaker import models as sm_models
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    for name in WRAPPED_SAGEMAKER_OPERATIONS:
        if not inspect.isfunction(getattr(SageMakerResponse, name, None)):
            problems.append(f"moto's SageMakerResponse no longer has the method {name!r}")
    for name in WRAPPED_RUNTIME_OPERATIONS:
        if not inspect.isfunction(getattr(SageMakerRuntimeResponse, name, None)):
            problems.append(f"moto's SageMakerRuntimeResponse no longer has {name!r}")
    from .originals import ORIGINALS

    for name in ADDED_SAGEMAKER_OPERATIONS:
        native = (
            ORIGINALS.get(name) if name in ORIGINALS else getattr(SageMakerResponse, name, None)
        )
        if native is not None:
            problems.append(
                f"moto now implements {name!r} itself; compare it with the extension's version "
                "and drop whichever is shallower"
            )
    if not hasattr(SageMakerResponse, "sagemaker_backend"):
        problems.append("moto's SageMakerResponse no longer has the 'sagemaker_backend' property")

    backend = sm_models.SageMakerModelBackend("us-east-1", "123456789012")
    for attr in BACKEND_ATTRIBUTES:
        if not isinstance(getattr(backend, attr, None), dict):
            problems.append(f"moto's SageMakerModelBackend no longer has the dict {attr!r}")
    for method in ("_get_resource_from_arn", "describe_endpoint_config", "create_endpoint"):
        if not callable(getattr(backend, method, None)):
            problems.append(f"moto's SageMakerModelBackend no longer has {method!r}")

    missing = _missing_parameters(sm_models.ModelPackage.__init__, MODEL_PACKAGE_INIT_PARAMETERS)
    if missing:
        problems.append(f"moto's ModelPackage.__init__ lost the parameters {missing}")
    for cls_name, attrs in (
        ("FakeEndpoint", ("endpoint_status", "endpoint_config_name", "production_variants")),
        ("FakeEndpointConfig", ("production_variants", "async_inference_config")),
        ("FakePipeline", ("pipeline_definition", "pipeline_executions")),
        (
            "FakePipelineExecution",
            (
                "pipeline_execution_status",
                "pipeline_execution_failure_reason",
                "last_modified_time",
            ),
        ),
    ):
        cls = getattr(sm_models, cls_name, None)
        if cls is None:
            problems.append(f"moto.sagemaker.models.{cls_name} no longer exists")
            continue
        source = inspect.getsource(cls.__init__)
        for attr in attrs:
            if f"self.{attr}" not in source:
                problems.append(f"moto's {cls_name} no longer sets {attr!r}")

    from moto.core import models as core_models

    stubber = getattr(core_models, "botocore_stubber", None)
    if stubber is None or not callable(stubber):
        problems.append("moto.core.models.botocore_stubber is gone (fault injection needs it)")
    else:
        from botocore.handlers import BUILTIN_HANDLERS

        if ("before-send", stubber) not in BUILTIN_HANDLERS:
            problems.append("moto no longer stubs boto3 through a 'before-send' builtin handler")

    from moto.cloudwatch.models import cloudwatch_backends

    cw = cloudwatch_backends["123456789012"]["us-east-1"]
    if not isinstance(getattr(cw, "alarms", None), dict):
        problems.append("moto's CloudWatch backend no longer keeps alarms in a dict 'alarms'")

    from moto.s3 import exceptions as s3_exceptions
    from moto.s3.models import S3Backend

    for method in ("get_object", "put_object"):  # data capture, asynchronous invocations
        if not callable(getattr(S3Backend, method, None)):
            problems.append(f"moto's S3Backend no longer has {method!r}")
    if not hasattr(s3_exceptions, "MissingBucket"):
        problems.append("moto.s3.exceptions.MissingBucket is gone (asynchronous invocations)")

    from botocore import endpoint as botocore_endpoint
    from botocore.retries import standard

    if not callable(getattr(botocore_endpoint.Endpoint, "_send", None)):
        problems.append("botocore.endpoint.Endpoint._send is gone (lost-response injection)")
    missing = _missing_parameters(standard.RetryHandler.__init__, RETRY_HANDLER_PARAMETERS)
    if missing:
        problems.append(f"botocore's standard RetryHandler lost the parameters {missing}")
    for name in (
        "RetryPolicy",
        "StandardRetryConditions",
        "RetryEventAdapter",
        "RetryQuotaChecker",
        "ThrottlingErrorDetector",
        "BaseRetryBackoff",
    ):
        if not hasattr(standard, name):
            problems.append(f"botocore.retries.standard.{name} is gone (zero-backoff clients)")
    return problems
