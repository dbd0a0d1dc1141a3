"""An endpoint changed, replaced or deleted in SageMaker after Mintaka adopted it: adopting it
again records what it serves now, deleting it drops the record, and one that never came into
service is not adopted."""

from __future__ import annotations

from typing import Any

import pytest
from sagemaker_testkit import SETTINGS
from test_sagemaker_adopt import GROUP, legacy_endpoint, legacy_package, tarball

from mintaka import Platform, ValidationError


def _adopted_then_deleted_in_sagemaker(platform: Platform, sm: Any) -> None:
    """``churn-api`` made outside Mintaka (package 1), adopted, then deleted in SageMaker."""
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    legacy_endpoint(sm, {"AllTraffic": one})
    platform.migration.adopt_model(GROUP, reason="legacy")
    platform.migration.adopt_endpoint("churn-api", reason="legacy")
    sm.delete_endpoint(EndpointName="churn-api")


def test_an_endpoint_deleted_in_sagemaker_leaves_the_record_when_deleted(
    platform: Platform, sm: Any
) -> None:
    _adopted_then_deleted_in_sagemaker(platform, sm)
    assert [d.kind for d in platform.sync()] == ["endpoint.missing"]
    platform.serving.delete_endpoint("churn-api", reason="deleted in the console")
    assert platform.sync() == []
    assert platform.serving.list_endpoints() == []
    [event] = [e for e in platform.audit.events() if e.action == "endpoint.delete"]
    assert event.details["gone_from_backend"] is True


def test_an_endpoint_replaced_in_sagemaker_is_adopted_again_as_it_serves_now(
    platform: Platform, sm: Any
) -> None:
    _adopted_then_deleted_in_sagemaker(platform, sm)
    two = legacy_package(sm, "jobs/2/model.tar.gz", tarball({"model.joblib": b"2"}))
    sm.create_model(
        ModelName="churn-model-next",
        PrimaryContainer={"ModelPackageName": two},
        ExecutionRoleArn=SETTINGS["role_arn"],
    )
    sm.create_endpoint_config(
        EndpointConfigName="churn-config-next",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "churn-model-next",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.create_endpoint(EndpointName="churn-api", EndpointConfigName="churn-config-next")
    platform.migration.adopt_model(GROUP, reason="the new package")
    assert "endpoint.routes" in [d.kind for d in platform.sync()]
    again = platform.migration.adopt_endpoint("churn-api", reason="replaced in the console")
    assert again.adopted
    assert [(r.model, r.version) for r in again.endpoint.routes] == [(GROUP, 2)]
    assert platform.sync() == []
    adopt = [e for e in platform.audit.events() if e.action == "endpoint.adopt"]
    assert [e.details.get("readopted", False) for e in adopt] == [False, True]
    assert not platform.migration.adopt_endpoint("churn-api", reason="again").adopted


def test_an_endpoint_that_failed_to_come_into_service_is_not_adopted(
    platform: Platform, fake: Any, sm: Any
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    fake.script_endpoint("churn-api", ["Creating", "Failed"], failure_reason="health check failed")
    legacy_endpoint(sm, {"AllTraffic": one})
    while sm.describe_endpoint(EndpointName="churn-api")["EndpointStatus"] != "Failed":
        pass
    platform.migration.adopt_model(GROUP, reason="legacy")
    with pytest.raises(ValidationError, match=r"not in service in the cloud \(failed\)"):
        platform.migration.adopt_endpoint("churn-api", reason="legacy")
    assert platform.serving.list_endpoints() == []
