"""``mintaka sync`` on SageMaker: changes made with plain boto3 behind Mintaka's back (approval
status, variant weights, deleted versions) are each reported and audited, and neither side is
overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import SETTINGS, model_artifact, sagemaker_platform

from mintaka import Platform
from mintaka.domain.serving import EndpointStatus
from mintaka.governance.policy import POLICY_FILE
from mintaka.sync import DIFFERENCE_ACTION, RESOLVED_ACTION


@pytest.fixture
def live(platform: Platform, tmp_path: Path) -> str:
    """churn:1 on route blue (all traffic) and churn:2 on green, both recorded by Mintaka, under
    a policy whose medium tier can be approved (so core projects an approval status) and need
    not be."""
    (platform.home / POLICY_FILE).write_text(POLICY.replace("approvals = 1\n", ""))
    platform.governance.reload_policy()
    platform.register_model("churn", model_artifact(tmp_path, b"v1"))
    platform.register_model("churn", model_artifact(tmp_path, b"v2"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    platform.serving.deploy("churn-live", "churn:2", route="green")
    assert platform.sync() == []
    return "churn-live"


def _package(sm: Any, version: int) -> str:
    packages = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    return str(next(p for p in packages if p["ModelPackageVersion"] == version)["ModelPackageArn"])


def _audited(platform: Platform, action: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.subject, e.details) for e in platform.audit.events() if e.action == action]


def test_every_out_of_band_change_is_reported_and_audited(
    platform: Platform, sm: Any, live: str
) -> None:
    sm.update_model_package(ModelPackageArn=_package(sm, 1), ModelApprovalStatus="Approved")
    sm.update_endpoint_weights_and_capacities(
        EndpointName=live,
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 1.0},
            {"VariantName": "green", "DesiredWeight": 1.0},
        ],
    )
    sm.delete_model_package(ModelPackageName=_package(sm, 2))
    deleted = platform.get_model_version("churn:2")
    differences = {(d.kind, d.subject): (d.recorded, d.observed) for d in platform.sync()}
    assert differences == {
        ("version.approval", "churn:1"): ("pending", "approved"),
        ("endpoint.traffic", "endpoint churn-live"): (
            {"weights": {"blue": 100}, "shadow": None},
            {"weights": {"blue": 50, "green": 50}, "shadow": None},
        ),
        ("version.missing", "churn:2"): (
            {"id": deleted.id, "digest": deleted.artifact_digest},
            None,
        ),
    }
    assert sorted(s for s, _ in _audited(platform, DIFFERENCE_ACTION)) == [
        "churn:1",
        "churn:2",
        "endpoint churn-live",
    ]
    # Neither side was overwritten: SageMaker keeps its changes, the store its records.
    assert sm.describe_model_package(ModelPackageName=_package(sm, 1))["ModelApprovalStatus"] == (
        "Approved"
    )
    assert platform.serving.get_endpoint(live).traffic.weights == {"blue": 100, "green": 0}
    assert platform.get_model_version("churn:2").version == 2
    # A second sync reports the same differences without auditing them again.
    assert len(platform.sync()) == 3
    assert len(_audited(platform, DIFFERENCE_ACTION)) == 3


def test_an_approval_undone_out_of_band_is_resolved(platform: Platform, sm: Any, live: str) -> None:
    arn = _package(sm, 1)
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert [(d.kind, d.observed) for d in platform.sync()] == [("version.approval", "rejected")]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval")
    assert platform.sync() == []
    assert _audited(platform, RESOLVED_ACTION) == [
        (
            "churn:1",
            {"kind": "version.approval", "recorded": "pending", "observed": "rejected"},
        )
    ]


POLICY = """
version = "sync-tests/1"
production_aliases = ["champion"]

[roles]
"rita" = ["model-risk"]

[tiers.low]
[tiers.medium]
approvals = 1
approver_roles = ["model-risk"]
[tiers.high]
"""


def test_an_approval_made_through_mintaka_is_no_difference(
    platform: Platform, sm: Any, live: str
) -> None:
    (platform.home / POLICY_FILE).write_text(POLICY)
    platform.governance.reload_policy()
    with sagemaker_platform(platform.home, seed=22, actor="rita") as rita:
        rita.governance.approve("churn:1", role="model-risk")
    assert sm.describe_model_package(ModelPackageName=_package(sm, 1))["ModelApprovalStatus"] == (
        "Approved"
    )
    assert platform.sync() == []
    sm.update_model_package(ModelPackageArn=_package(sm, 1), ModelApprovalStatus="Rejected")
    assert [(d.kind, d.recorded, d.observed) for d in platform.sync()] == [
        ("version.approval", "approved", "rejected")
    ]


def test_a_version_registered_in_sagemaker_alone_is_reported(
    platform: Platform, sm: Any, live: str
) -> None:
    sm.create_model_package(
        ModelPackageGroupName="churn",
        InferenceSpecification={
            "Containers": [{"Image": SETTINGS["image_uri"]}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    [difference] = platform.sync()
    assert (difference.kind, difference.subject, difference.recorded) == (
        "version.unrecorded",
        "churn:3",
        None,
    )


def test_an_endpoint_whose_config_was_deleted_out_of_band_still_reads_as_serving(
    platform: Platform, cloud: SageMakerBackend, sm: Any, live: str
) -> None:
    config = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    sm.delete_endpoint_config(EndpointConfigName=config)  # SageMaker allows it; the endpoint serves
    cloud.config_routes.clear()  # as a new process reads it
    endpoint = cloud.get_endpoint(live)
    assert endpoint.status is EndpointStatus.IN_SERVICE
    assert endpoint.traffic.weights == {"blue": 100, "green": 0}
    assert endpoint.routes == ()
    assert endpoint.extra["routes_known"] is False
    assert [e.name for e in cloud.list_endpoints()] == [live]
    assert platform.sync() == []  # neither missing nor serving no routes
