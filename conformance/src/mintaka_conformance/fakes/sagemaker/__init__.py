"""A moto extension that makes SageMaker behave as AWS documents, for backends' own tests.

moto 5.2.5 is shallow where Mintaka's SageMaker backend needs depth. Inside
:func:`mock_sagemaker`, :func:`sagemaker_server` or :func:`installed` (or for good after
:func:`install`), moto's SageMaker and SageMaker Runtime response classes answer these operations
the way the AWS API reference describes:

* **Registry.** ``UpdateModelPackage`` changes only the fields given (approval status included);
  ``DescribeModelPackage`` returns ``ModelPackageName``; versioned packages start
  ``PendingManualApproval``, keep their ``ClientToken`` idempotent and never reuse a version
  number; ``DeleteModelPackage`` and ``DeleteModelPackageGroup`` exist (a group with versions
  raises ``ConflictException``); ``AddTags``/``ListTags``/``DeleteTags`` work on package ARNs and
  replace a tag whose key exists.
* **Names.** Creating a model, package group, endpoint config or endpoint whose name exists raises
  ``ValidationException`` ("Cannot create already existing ..."); endpoint names compare
  case-insensitively.
* **Endpoints.** Shadow variants are kept and returned (at most one, beside exactly one production
  variant); ``UpdateEndpoint`` deploys a new config with ``DeploymentConfig`` (blue/green
  ALL_AT_ONCE / CANARY / LINEAR or rolling, validated) and rolls back to the old config, with a
  ``FailureReason``, when an ``AutoRollbackConfiguration`` alarm is in ``ALARM`` in moto's
  CloudWatch; ``UpdateEndpointWeightsAndCapacities`` changes only what each variant names.
* **Statuses.** By default every step finishes at once. :meth:`SageMakerFake.script_endpoint` and
  :meth:`SageMakerFake.script_model_package` queue a status sequence (``["Creating",
  "InService"]``, ``["Creating", "Failed"]``) that advances one step per describe call.
* **Invocation.** ``InvokeEndpoint`` answers per endpoint and variant: ``TargetVariant`` or smooth
  weighted round-robin, the ``x-Amzn-Invoked-Production-Variant`` header, a JSON body naming the
  variant and model, and ``ValidationError`` for an unknown endpoint or variant.
  ``InvokeEndpointAsync`` on an endpoint with ``AsyncInferenceConfig`` reads its input from S3,
  routes the same way and writes the body to ``S3OutputPath`` (a failure to ``S3FailurePath``);
  each kind of endpoint refuses the other call.
* **Pipelines.** ``CreatePipeline`` / ``UpdatePipeline`` check the definition against the shape of
  the published pipeline-definition schema (``ValidationException`` when it does not fit); an
  execution walks its steps (conditions evaluated, Fail steps ending it, RegisterModel creating a
  version), ``ListPipelineExecutionSteps`` and ``StopPipelineExecution`` exist, and
  :meth:`SageMakerFake.script_pipeline_execution` scripts property files, step failures and the
  pace (one step per describe).
* **Model Monitor.** Monitoring schedules (create, describe, list, delete) and their executions
  (:meth:`SageMakerFake.add_monitoring_execution`, ``ListMonitoringExecutions``).
* **ML Lineage.** Artifacts, contexts, actions, associations and ``QueryLineage``.

Fault injection (:class:`FaultInjector`) and retry-ready clients (:func:`make_client`) are per
client and need no patching of moto. All state lives on moto's backends, so moto's reset clears it.
See ``docs/fakes/sagemaker.md``.
"""

from __future__ import annotations

from ._compat import EXPECTED_MOTO_VERSION, compatibility_problems
from .clients import ZeroBackoff, make_client, moto_mock_active, use_zero_backoff
from .faults import Attempt, Fault, FaultInjector
from .patching import (
    IncompatibleMotoError,
    SageMakerFake,
    SageMakerServer,
    install,
    installed,
    is_installed,
    mock_sagemaker,
    sagemaker_server,
    uninstall,
)
from .runtime import choose_variant
from .state import Invocation

__all__ = [
    "EXPECTED_MOTO_VERSION",
    "Attempt",
    "Fault",
    "FaultInjector",
    "IncompatibleMotoError",
    "Invocation",
    "SageMakerFake",
    "SageMakerServer",
    "ZeroBackoff",
    "choose_variant",
    "compatibility_problems",
    "install",
    "installed",
    "is_installed",
    "make_client",
    "mock_sagemaker",
    "moto_mock_active",
    "sagemaker_server",
    "uninstall",
    "use_zero_backoff",
]
