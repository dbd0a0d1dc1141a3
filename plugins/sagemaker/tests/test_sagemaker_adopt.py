"""Adopting model packages that were made with boto3, not Mintaka: their bytes are read back from
S3 (a ``model.tar.gz`` unpacked, or a plain object), digested and stored."""

from __future__ import annotations

import contextlib
import functools
import io
import tarfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import Fault, FaultInjector, make_client
from mintaka_sagemaker import serving
from mintaka_sagemaker.aws import short_hash
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import (
    BUCKET,
    SETTINGS,
    Cli,
    deploy_without_registry,
    model_artifact,
    sagemaker_platform,
)

from mintaka import Platform, migration
from mintaka.artifacts import manifest_of
from mintaka.domain.monitoring import CaptureConfig
from mintaka.domain.registry import Flavor
from mintaka.domain.serving import (
    RolloutStrategy,
    Route,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import (
    ConfigurationError,
    Conflict,
    InvalidName,
    NotFound,
    Throttled,
    ValidationError,
)
from mintaka.interfaces.registry import ServedRegistration

GROUP = "legacy-churn"


def tarball(files: dict[str, bytes]) -> bytes:
    """A model.tar.gz as a training job writes it (with mtimes and owners, not reproducible)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def legacy_package(sm: Any, key: str, body: bytes, group: str = GROUP, **more: Any) -> str:
    """A package in ``group`` made by plain boto3 calls, with model data at ``key``."""
    make_client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    with contextlib.suppress(sm.exceptions.ClientError):
        sm.create_model_package_group(ModelPackageGroupName=group)
    return str(
        sm.create_model_package(
            **more,
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "1.dkr.ecr.us-east-1.amazonaws.com/x:1",
                        "ModelDataUrl": (f"s3://{BUCKET}/{key}"),
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )["ModelPackageArn"]
    )


def test_packages_made_without_mintaka_are_adopted_with_their_bytes(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    files = {"model.joblib": b"legacy-weights", "code/inference.py": b"def predict(): ..."}
    first = legacy_package(sm, "jobs/train-1/output/model.tar.gz", tarball(files))
    legacy_package(sm, "exports/model-2.bin", b"raw-weights-2")
    expected_dir = tmp_path / "expected"
    for name, content in files.items():
        (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (expected_dir / name).write_bytes(content)
    (tmp_path / "model-2.bin").write_bytes(b"raw-weights-2")

    discovered = {c.name: c for c in platform.migration.discover()}
    assert not discovered[f"{GROUP}:1"].managed
    assert not discovered[f"{GROUP}:1"].recorded

    adoption = platform.migration.adopt_model(GROUP, reason="trained by the 2024 job")
    assert [v.artifact_digest for v in adoption.adopted] == [
        manifest_of(expected_dir).digest,
        manifest_of(tmp_path / "model-2.bin").digest,
    ]
    for version in adoption.adopted:
        assert version.backend_ids["model_package"].endswith(f"/{GROUP}/{version.version}")
    assert platform.sync() == []
    # Nothing was written to the cloud: the packages carry no Mintaka metadata still.
    described = sm.describe_model_package(ModelPackageName=first)
    assert not described.get("CustomerMetadataProperties")


def test_an_archive_reaching_outside_its_directory_is_refused(platform: Platform, sm: Any) -> None:
    legacy_package(sm, "evil/model.tar.gz", tarball({"../../escaped.txt": b"x"}))
    with pytest.raises(ValidationError, match="cannot be unpacked"):
        platform.migration.adopt_model(GROUP, reason="inherited")
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar() == 0


TRAINING_JOB = "arn:aws:sagemaker:us-east-1:123456789012:training-job/churn-2024-03"


def test_what_the_package_says_produced_it_is_recorded_on_the_adopted_version(
    platform: Platform, sm: Any
) -> None:
    legacy_package(
        sm,
        "jobs/churn-2024-03/output/model.tar.gz",
        tarball({"model.joblib": b"w"}),
        MetadataProperties={
            "GeneratedBy": TRAINING_JOB,
            "CommitId": "c" * 40,
            "Repository": "https://git.example/churn",
        },
    )
    legacy_package(sm, "exports/model-2.bin", b"raw-weights-2")  # says nothing of its origin
    one, two = (platform.backend.get_version(GROUP, n) for n in (1, 2))  # type: ignore[attr-defined]
    assert one.origin is not None
    assert (one.origin.produced_by, one.origin.code_commit) == (TRAINING_JOB, "c" * 40)
    assert two.origin is None

    adoption = platform.migration.adopt_model(GROUP, reason="trained by the 2024 job")
    first, second = adoption.adopted
    assert (first.code_commit, second.code_commit) == ("c" * 40, None)
    node = platform.lineage.node(f"model_version:{first.id}")
    assert node.attrs["origin_produced_by"] == TRAINING_JOB
    assert node.attrs["origin_repository"] == "https://git.example/churn"
    assert "origin_produced_by" not in platform.lineage.node(f"model_version:{second.id}").attrs
    [event] = [e for e in platform.audit.events() if e.subject == f"{GROUP}:1"]
    assert event.details["origin"]["produced_by"] == TRAINING_JOB
    [lineage_finding] = [f for f in adoption.findings if "lineage starts" in f]
    assert TRAINING_JOB in lineage_finding


def test_a_group_whose_name_mintaka_cannot_use_is_adopted_under_a_mapped_name(
    fake: Any, sm: Any, tmp_path: Path
) -> None:
    legacy_package(sm, "jobs/churn/model.tar.gz", tarball({"model.joblib": b"w"}), "ChurnModel")
    with sagemaker_platform(tmp_path / "unmapped") as plain:
        listed = {c.name: c for c in plain.migration.discover()}
        assert not listed["ChurnModel"].usable_name  # listed as the cloud names it
        assert not listed["ChurnModel:1"].usable_name
        with pytest.raises(InvalidName, match=r"SageMaker, the Databricks workspace registry"):
            plain.migration.adopt_model("ChurnModel", reason="inherited")
    settings = {**SETTINGS, "model_names": {"churn-model": "ChurnModel"}}
    with sagemaker_platform(tmp_path / "mapped", settings) as platform:
        found = {c.name: c for c in platform.migration.discover()}
        assert {"churn-model", "churn-model:1"} <= set(found)
        assert found["churn-model"].usable_name
        assert found["churn-model"].backend_id.endswith(":model-package-group/ChurnModel")
        [adopted] = platform.migration.adopt_model("churn-model", reason="inherited").adopted
        assert adopted.ref == "churn-model:1"
        assert adopted.backend_ids["model_package_group"] == "ChurnModel"
        platform.set_alias("churn-model", "champion", 1)  # tags on the group the map names
        tags = sm.list_tags(ResourceArn=found["churn-model"].backend_id)["Tags"]
        assert {"Key": "mintaka:alias:champion", "Value": "1"} in tags
        # An endpoint names the package by its ARN, where SageMaker writes the group lower case.
        package = str(adopted.backend_ids["model_package"])
        deployed_from_model_data(sm, "churn-api", PrimaryContainer={"ModelPackageName": package})
        endpoint = platform.migration.adopt_endpoint("churn-api", reason="inherited").endpoint
        assert [(r.model, r.version) for r in endpoint.routes] == [("churn-model", 1)]
        assert platform.sync() == []


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ({"Churn": "ChurnModel"}, "invalid model name"),
        ({"churn": "churn_model"}, "not a valid model package group name in the cloud"),
        ({"churn": "legacy-churn"}, "valid Mintaka name already"),
        ({"a-model": "ModelA", "b-model": "ModelA"}, "two Mintaka names map to one"),
        ({"a-model": "ModelA", "b-model": "MODELA"}, "two Mintaka names map to one"),
    ],
)
def test_a_name_map_that_is_not_one_to_one_is_refused(
    fake: Any, tmp_path: Path, names: dict[str, str], says: str
) -> None:
    with (
        pytest.raises((ConfigurationError, ValidationError), match=says),
        sagemaker_platform(tmp_path / "home", {**SETTINGS, "model_names": names}),
    ):
        pass


def test_a_name_that_is_a_mapped_one_without_regard_to_case_is_refused(
    fake: Any, sm: Any, tmp_path: Path
) -> None:
    settings = {
        **SETTINGS,
        "model_names": {"churn-a": "ChurnB"},
        "endpoint_names": {"churn-api": "ChurnApi"},
    }
    with sagemaker_platform(tmp_path / "home", settings) as platform:
        with pytest.raises(ValidationError, match="'churnb' is the model package group 'ChurnB'"):
            platform.register_model("churnb", model_artifact(tmp_path, b"w"))
        assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
        platform.register_model("churn-a", model_artifact(tmp_path, b"x"))
        [group] = sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
        assert group["ModelPackageGroupName"] == "ChurnB"
        with pytest.raises(ValidationError, match="endpoint_names maps to Mintaka name"):
            platform.serving.create_endpoint("churnapi", "churn-a:1", route="blue")
        assert sm.list_endpoints()["Endpoints"] == []
        assert len(sm.list_models()["Models"]) == 0


def legacy_endpoint(sm: Any, packages: dict[str, str], name: str = "churn-api") -> None:
    """Endpoint ``name`` as boto3 makes it: one Model per package, variants named as SageMaker's
    SDK names them (``AllTraffic``), all traffic on the first, no Mintaka tag anywhere."""
    variants = []
    for index, (variant, package) in enumerate(packages.items()):
        model = f"churn-model-{index}"
        sm.create_model(
            ModelName=model,
            PrimaryContainer={"ModelPackageName": package},
            ExecutionRoleArn=SETTINGS["role_arn"],
        )
        variants.append(
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0 if index == 0 else 0.0,
            }
        )
    sm.create_endpoint_config(EndpointConfigName="churn-config", ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName="churn-config")


def test_an_endpoint_made_without_mintaka_is_adopted_with_routes_from_its_packages(
    platform: Platform, sm: Any
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    two = legacy_package(sm, "jobs/2/model.tar.gz", tarball({"model.joblib": b"2"}))
    legacy_endpoint(sm, {"AllTraffic": one, "Canary_2": two})
    platform.migration.adopt_model(GROUP, reason="trained by the 2024 job")
    adoption = platform.migration.adopt_endpoint("churn-api", reason="the CRM scoring endpoint")
    endpoint = adoption.endpoint
    assert {(r.name, r.model, r.version) for r in endpoint.routes} == {
        ("alltraffic", GROUP, 1),
        ("canary-2", GROUP, 2),
    }
    assert endpoint.traffic.weights == {"alltraffic": 100, "canary-2": 0}
    assert platform.sync() == []
    # A weights change goes to the variants the endpoint has, under their own names.
    platform.serving.set_traffic("churn-api", {"alltraffic": 50, "canary-2": 50}, reason="test")
    described = sm.describe_endpoint(EndpointName="churn-api")
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
    assert weights == {"AllTraffic": 50.0, "Canary_2": 50.0}
    assert described["EndpointConfigName"] == "churn-config"  # changed in place
    assert platform.serving.get_endpoint("churn-api").traffic.weights == {
        "alltraffic": 50,
        "canary-2": 50,
    }
    assert platform.sync() == []


def sdk_deploy(sm: Any, package: str, model: str, name: str = "churn-api") -> None:
    """Endpoint ``name`` as the SageMaker SDK's ``Model.deploy(endpoint_name=name)`` makes it:
    its config named as the endpoint, one variant ``AllTraffic`` serving ``package``."""
    sm.create_model(
        ModelName=model,
        PrimaryContainer={"ModelPackageName": package},
        ExecutionRoleArn=SETTINGS["role_arn"],
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def test_an_adopted_endpoint_redeployed_under_the_same_config_name_reads_its_new_routes(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    two = legacy_package(sm, "jobs/2/model.tar.gz", tarball({"model.joblib": b"2"}))
    sdk_deploy(sm, one, "churn-model-1")
    platform.migration.adopt_model(GROUP, reason="inherited")
    platform.migration.adopt_endpoint("churn-api", reason="inherited")
    assert platform.sync() == []
    sm.delete_endpoint(EndpointName="churn-api")
    sm.delete_endpoint_config(EndpointConfigName="churn-api")
    sdk_deploy(sm, two, "churn-model-2")  # the same names, now serving legacy-churn:2
    assert [r.version for r in cloud.get_endpoint("churn-api").routes] == [2]
    [difference] = platform.sync()
    assert (difference.kind, difference.observed) == (
        "endpoint.routes",
        {"alltraffic": f"{GROUP}:2"},
    )


def test_adopting_again_with_the_same_capture_leaves_the_endpoint_on_its_config(
    platform: Platform, sm: Any
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    legacy_endpoint(sm, {"AllTraffic": one})
    platform.migration.adopt_model(GROUP, reason="inherited")
    capture = CaptureConfig(sample_percent=50)
    platform.migration.adopt_endpoint("churn-api", reason="inherited", capture=capture)
    configured = sm.describe_endpoint(EndpointName="churn-api")["EndpointConfigName"]
    assert configured != "churn-config"
    again = platform.migration.adopt_endpoint("churn-api", reason="inherited", capture=capture)
    assert not again.adopted
    assert sm.describe_endpoint(EndpointName="churn-api")["EndpointConfigName"] == configured
    assert platform.sync() == []


def test_an_endpoint_whose_name_mintaka_cannot_use_is_managed_under_a_mapped_name(
    fake: Any, sm: Any, tmp_path: Path
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    two = legacy_package(sm, "jobs/2/model.tar.gz", tarball({"model.joblib": b"2"}))
    legacy_endpoint(sm, {"AllTraffic": one, "Canary": two}, name="ChurnApi")
    with sagemaker_platform(tmp_path / "unmapped") as plain:
        assert not {c.name: c for c in plain.migration.discover()}["ChurnApi"].usable_name
        with pytest.raises(InvalidName, match="SageMaker: endpoint_names"):
            plain.migration.adopt_endpoint("ChurnApi", reason="inherited")
    settings = {**SETTINGS, "endpoint_names": {"churn-api": "ChurnApi"}}
    with sagemaker_platform(tmp_path / "home", settings) as platform:
        found = {c.name: c for c in platform.migration.discover()}
        assert found["churn-api"].usable_name
        assert found["churn-api"].backend_id.lower().endswith(":endpoint/churnapi")
        platform.migration.adopt_model(GROUP, reason="inherited")
        adopted = platform.migration.adopt_endpoint("churn-api", reason="inherited").endpoint
        assert adopted.name == "churn-api"
        assert adopted.traffic.weights == {"alltraffic": 100, "canary": 0}
        platform.serving.set_traffic("churn-api", {"alltraffic": 90, "canary": 10}, reason="t")
        described = sm.describe_endpoint(EndpointName="ChurnApi")
        weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
        assert weights == {"AllTraffic": 90.0, "Canary": 10.0}
        assert [e.name for e in platform.backend.list_endpoints()] == ["churn-api"]  # type: ignore[attr-defined]
        pinned = platform.serving.invoke("churn-api", {"x": 1.0}, route="canary")
        assert pinned["route"] == "canary"  # sent to the variant Canary, read back as its route
        assert platform.serving.invoke("churn-api", {"x": 1.0})["route"] in {"alltraffic", "canary"}
        now = platform.clock.now()
        metrics = platform.serving.endpoint_metrics("churn-api", now - timedelta(hours=1), now)
        assert set(metrics.requests) == {"alltraffic", "canary"}  # read under the routes' names
        assert platform.sync() == []


def test_an_endpoint_name_map_must_be_one_to_one(fake: Any, tmp_path: Path) -> None:
    settings = {**SETTINGS, "endpoint_names": {"churn-api": "churn-prod"}}
    with (
        pytest.raises((ConfigurationError, ValidationError), match="valid Mintaka name already"),
        sagemaker_platform(tmp_path / "home", settings),
    ):
        pass


def test_an_endpoint_serving_a_model_that_is_no_package_version_is_not_adopted(
    platform: Platform, sm: Any
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    platform.migration.adopt_model(GROUP, reason="inherited")
    sm.create_model(
        ModelName="straight-from-s3",
        PrimaryContainer={
            "Image": "1.dkr.ecr.us-east-1.amazonaws.com/x:1",
            "ModelDataUrl": f"s3://{BUCKET}/jobs/1/model.tar.gz",
        },
        ExecutionRoleArn=SETTINGS["role_arn"],
    )
    sm.create_model(
        ModelName="from-package",
        PrimaryContainer={"ModelPackageName": one},
        ExecutionRoleArn=SETTINGS["role_arn"],
    )
    variant = {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sm.create_endpoint_config(
        EndpointConfigName="mixed",
        ProductionVariants=[
            {
                **variant,
                "VariantName": "AllTraffic",
                "ModelName": "straight-from-s3",
                "InitialVariantWeight": 1.0,
            },
            {
                **variant,
                "VariantName": "Packaged",
                "ModelName": "from-package",
                "InitialVariantWeight": 0.0,
            },
        ],
    )
    sm.create_endpoint(EndpointName="mixed-api", EndpointConfigName="mixed")
    with pytest.raises(
        ValidationError, match=r"no route to a registered version for \['alltraffic'\]"
    ):
        platform.migration.adopt_endpoint("mixed-api", reason="inherited")
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM endpoints").scalar() == 0


# -- endpoints deployed straight from model data (Model(...).deploy()) -----------------------------

IMAGE = "1.dkr.ecr.us-east-1.amazonaws.com/x:1"
LEGACY_ENV = {"SAGEMAKER_PROGRAM": "inference.py"}


def deployed_from_model_data(
    sm: Any,
    endpoint: str = "legacy-api",
    key: str = "jobs/7/model.tar.gz",
    compute: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    **model: Any,
) -> str:
    """An endpoint as the SageMaker SDK's ``Model(...).deploy()`` makes one: a Model made from
    a container (by default one ``model.tar.gz`` in S3, and ``model``'s other fields), served
    by ``AllTraffic``."""
    if "PrimaryContainer" not in model and "Containers" not in model:
        make_client("s3").put_object(
            Bucket=BUCKET, Key=key, Body=tarball({"model.joblib": b"served-weights"})
        )
        model["PrimaryContainer"] = {
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/{key}",
            "Environment": LEGACY_ENV,
        }
    deploy_without_registry(sm, endpoint, model, compute, config)
    return endpoint


def adopted_with_a_second_version(platform: Platform, endpoint: str, tmp_path: Path) -> None:
    """``endpoint``'s route adopted as churn:1, the endpoint adopted, and churn:2 registered."""
    platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    platform.migration.adopt_endpoint(endpoint, reason="inherited")
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "model.bin").write_bytes(b"retrained")
    platform.register_model("churn", tmp_path / "v2")


def test_a_route_serving_model_data_is_registered_as_a_package_and_the_endpoint_adopted(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    endpoint = deployed_from_model_data(sm)
    with pytest.raises(ValidationError, match="mintaka adopt served legacy-api alltraffic"):
        platform.migration.adopt_endpoint(endpoint, reason="inherited")

    # The cloud's own slot name is taken as well as the route name Mintaka reads.
    read: list[tuple[int | None, int, int]] = []
    adoption = platform.migration.adopt_served(
        endpoint,
        "AllTraffic",
        "churn",
        reason="deployed by hand in 2024",
        on_fetch=lambda theirs, index, total: read.append(
            (None if theirs is None else theirs.version, index, total)
        ),
    )
    assert read == [(None, 0, 1)]  # progress: the route's bytes are read, once
    [version] = adoption.adopted
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "model.joblib").write_bytes(b"served-weights")
    assert version.ref == "churn:1"
    assert version.artifact_digest == manifest_of(tmp_path / "expected").digest
    package = sm.describe_model_package(ModelPackageName=version.backend_ids["model_package"])
    [container] = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/jobs/7/model.tar.gz"
    assert container["Environment"] == LEGACY_ENV
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    # The live endpoint is as it was: same config, same Model; the Model names its package.
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == "legacy-api-config"
    model_arn = sm.describe_model(ModelName="legacy-api-model")["ModelArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model_arn)["Tags"]}
    assert tags["mintaka:model-package"] == version.backend_ids["model_package"]

    adopted = platform.migration.adopt_endpoint(endpoint, reason="inherited")
    assert [(r.name, r.model, r.version) for r in adopted.endpoint.routes] == [
        ("alltraffic", "churn", 1)
    ]
    assert platform.sync() == []

    # Mintaka deploys the version with the environment the Model had, beside its own.
    cloud.create_endpoint(
        "churn-next",
        [Route(name="blue", model="churn", version=1)],
        TrafficMap(weights={"blue": 100}),
    )
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="churn-next")["EndpointConfigName"]
    )
    made = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert made["PrimaryContainer"]["Environment"] == {
        **LEGACY_ENV,
        "MINTAKA_MODEL": "churn",
        "MINTAKA_VERSION": "1",
    }


def test_registering_what_a_route_serves_twice_or_after_a_lost_response_makes_one_package(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    faults = FaultInjector(
        script=[Fault.LOST_RESPONSE, None], operations={"CreateModelPackage", "AddTags"}
    )
    faults.attach(cloud.clients.sagemaker)
    first = cloud.register_served(endpoint, "alltraffic", "churn")
    again = cloud.register_served(endpoint, "alltraffic", "churn")
    assert (first.version, again.version) == (1, 1)
    assert [v.version for v in cloud.list_versions("churn")] == [1]
    assert faults.faults(Fault.LOST_RESPONSE)


@pytest.mark.parametrize(
    ("container", "refusal"),
    [
        (
            {
                "Containers": [
                    {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/a.tar.gz"},
                    {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/b.tar.gz"},
                ]
            },
            "serves 2 containers",
        ),
        (
            {"PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/"}},
            "serves 's3://mintaka-artifacts/models/'",
        ),
        ({"PrimaryContainer": {"Image": IMAGE}}, "serves no S3 model data"),
        (
            {
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "Mode": "MultiModel",
                    "ModelDataUrl": f"s3://{BUCKET}/models/",
                }
            },
            "multi-model endpoint",
        ),
        (
            {
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "ModelDataUrl": f"s3://{BUCKET}/base/model.tar.gz",
                    "AdditionalModelDataSources": [
                        {
                            "ChannelName": "adapter",
                            "S3DataSource": {
                                "S3Uri": f"s3://{BUCKET}/adapters/a/",
                                "S3DataType": "S3Prefix",
                                "CompressionType": "None",
                            },
                        }
                    ],
                }
            },
            "container with AdditionalModelDataSources, which a model package",
        ),
        (
            {
                "PrimaryContainer": {
                    "Image": "registry.internal.example/team/churn:7",
                    "ImageConfig": {"RepositoryAccessMode": "Vpc"},
                    "ModelDataUrl": f"s3://{BUCKET}/base/model.tar.gz",
                }
            },
            "container with ImageConfig, which a model package",
        ),
    ],
    ids=[
        "pipeline",
        "a-prefix-as-a-url",
        "in-the-image",
        "multi-model",
        "adapters",
        "private-registry-image",
    ],
)
def test_what_cannot_be_one_version_is_refused_and_nothing_registered(
    platform: Platform, cloud: SageMakerBackend, sm: Any, container: dict[str, Any], refusal: str
) -> None:
    make_client("s3").put_object(
        Bucket=BUCKET, Key="base/model.tar.gz", Body=tarball({"model.joblib": b"base"})
    )
    endpoint = deployed_from_model_data(sm, **container)
    with pytest.raises(ValidationError, match=refusal):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    with pytest.raises(ValidationError, match=refusal):
        cloud.register_served(endpoint, "alltraffic", "churn")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_bad_input_and_other_models_routes_are_refused_before_anything_is_registered(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    with pytest.raises(ValidationError, match="needs a reason"):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason=" ")
    with pytest.raises(InvalidName):
        platform.migration.adopt_served(endpoint, "alltraffic", "Churn_Model", reason="x")
    with pytest.raises(ValidationError, match="invalid risk tier"):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="x", tier="vip")
    with pytest.raises(NotFound, match=r"no route 'blue' \(its variants read as \['alltraffic'\]"):
        platform.migration.adopt_served(endpoint, "blue", "churn", reason="x")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []

    platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    with pytest.raises(Conflict, match="serves churn:1, not a version of 'fraud'"):
        platform.migration.adopt_served(endpoint, "alltraffic", "fraud", reason="inherited")
    with pytest.raises(Conflict, match="serves churn:1, not a version of 'fraud'"):
        cloud.register_served(endpoint, "alltraffic", "fraud")
    groups = sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["churn"]


def test_mintaka_adopt_served_registers_and_adopts_from_the_command_line(
    fake: Any, sm: Any, cli: Cli
) -> None:
    endpoint = deployed_from_model_data(sm)
    served = (
        "adopt",
        "served",
        endpoint,
        "AllTraffic",
        "--model",
        "churn",
        "--reason",
        "inherited",
    )
    code, said = cli(*served)
    assert code == 0, said
    assert "registered what legacy-api alltraffic serves as churn:1" in said
    assert "next: mintaka adopt endpoint legacy-api" in said
    code, said = cli(*served)
    assert (code, said.split(":")[0]) == (0, "already adopted")
    code, said = cli("adopt", "endpoint", endpoint, "--reason", "inherited")
    assert code == 0, said
    assert "adopted endpoint legacy-api: alltraffic=100%" in said


def uncompressed(prefix: str) -> dict[str, Any]:
    return {
        "S3DataSource": {
            "S3Uri": f"s3://{BUCKET}/{prefix}",
            "S3DataType": "S3Prefix",
            "CompressionType": "None",
        }
    }


def test_uncompressed_model_data_under_a_prefix_is_registered_read_back_and_deployed(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    """Large models are deployed from an S3 prefix (``ModelDataSource``), not a tarball: every
    object below it is the model's files."""
    files = {"config.json": b"{}", "weights/part-1.safetensors": b"w1", "weights/part-2": b"w2"}
    s3 = make_client("s3")
    for name, content in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"llm/v3/{name}", Body=content)
    s3.put_object(Bucket=BUCKET, Key="llm/v3/weights/", Body=b"")  # a console "folder"
    s3.put_object(Bucket=BUCKET, Key="llm/v30/other", Body=b"not this model")
    source = uncompressed("llm/v3/")
    endpoint = deployed_from_model_data(
        sm, "llm-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": source}
    )
    adoption = platform.migration.adopt_served(endpoint, "alltraffic", "llm", reason="inherited")
    [version] = adoption.adopted
    expected = tmp_path / "expected"
    for name, content in files.items():
        (expected / name).parent.mkdir(parents=True, exist_ok=True)
        (expected / name).write_bytes(content)
    assert version.artifact_digest == manifest_of(expected).digest
    package = sm.describe_model_package(ModelPackageName=version.backend_ids["model_package"])
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataSource"] == source
    assert platform.migration.adopt_endpoint(endpoint, reason="inherited").adopted

    cloud.create_endpoint(
        "llm-next", [Route(name="blue", model="llm", version=1)], TrafficMap(weights={"blue": 100})
    )
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="llm-next")["EndpointConfigName"]
    )
    made = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert made["PrimaryContainer"]["ModelDataSource"] == source
    assert "ModelDataUrl" not in made["PrimaryContainer"]


def test_a_prefix_key_reaching_outside_the_model_directory_is_refused(
    platform: Platform, sm: Any
) -> None:
    s3 = make_client("s3")
    s3.put_object(Bucket=BUCKET, Key="evil/ok.bin", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="evil/../../escaped.bin", Body=b"2")
    endpoint = deployed_from_model_data(
        sm, "evil-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": uncompressed("evil/")}
    )
    with pytest.raises(ValidationError, match="would land outside the model directory"):
        platform.migration.adopt_served(endpoint, "alltraffic", "evil", reason="inherited")
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar() == 0


def current_config(sm: Any, endpoint: str) -> dict[str, Any]:
    name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    return dict(sm.describe_endpoint_config(EndpointConfigName=name))


@pytest.mark.parametrize(
    "compute",
    [
        {
            "InstanceType": "ml.g4dn.xlarge",
            "InitialInstanceCount": 2,
            "ContainerStartupHealthCheckTimeoutInSeconds": 600,
        },
        {"ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 5}},
    ],
    ids=["gpu-instances", "serverless"],
)
def test_an_adopted_endpoint_keeps_its_variant_names_compute_and_history_as_mintaka_changes_it(
    platform: Platform, sm: Any, tmp_path: Path, compute: dict[str, Any]
) -> None:
    endpoint = deployed_from_model_data(sm, compute=compute)
    adopted_with_a_second_version(platform, endpoint, tmp_path)

    platform.serving.deploy(endpoint, "churn:2", route="green")
    first = current_config(sm, endpoint)
    variants = {v["VariantName"]: v for v in first["ProductionVariants"]}
    # The route Mintaka read keeps its variant's name (autoscaling and alarms are attached to
    # it) and its compute; the new route runs on the same compute, not the settings' default.
    assert set(variants) == {"AllTraffic", "green"}
    assert variants["AllTraffic"]["ModelName"] == "legacy-api-model"  # still serving churn:1
    for variant in variants.values():
        assert {k: variant[k] for k in compute} == compute
        if "ServerlessConfig" in compute:
            assert "InstanceType" not in variant
    # What predates Mintaka is kept: other tools may refer to it.
    assert sm.describe_endpoint_config(EndpointConfigName="legacy-api-config")
    assert sm.describe_model(ModelName="legacy-api-model")

    platform.serving.set_traffic(endpoint, {"alltraffic": 40, "green": 60})
    live = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert {v["VariantName"]: v["CurrentWeight"] for v in live} == {"AllTraffic": 40, "green": 60}
    assert platform.sync() == []

    # Mintaka's own configs are retired as the endpoint moves on, and deleted with it.
    platform.serving.deploy(endpoint, "churn:2", route="blue")
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_endpoint_config(EndpointConfigName=first["EndpointConfigName"])
    platform.serving.delete_endpoint(endpoint)
    assert sm.describe_endpoint_config(EndpointConfigName="legacy-api-config")
    assert sm.describe_model(ModelName="legacy-api-model")
    left = {m["ModelName"] for m in sm.list_models()["Models"]}
    assert left == {"legacy-api-model"}


def test_a_rollout_back_to_an_adopted_route_watches_the_variant_it_runs_on(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    endpoint = deployed_from_model_data(sm)
    adopted_with_a_second_version(platform, endpoint, tmp_path)
    platform.serving.deploy(endpoint, "churn:2", route="green")
    platform.serving.set_traffic(endpoint, {"alltraffic": 0, "green": 100})

    back = TrafficPlan(
        endpoint=endpoint,
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights={"alltraffic": 10, "green": 90}, bake_seconds=60),
            TrafficStep(weights={"alltraffic": 100, "green": 0}),
        ],
        sla={"max_error_rate": 0.01},
    )
    cloud.start_rollout(back)
    [alarm] = make_client("cloudwatch").describe_alarms()["MetricAlarms"]
    [query] = [m for m in alarm["Metrics"] if m["Id"] == "errors"]
    dimensions = {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}
    assert dimensions == {"EndpointName": endpoint, "VariantName": "AllTraffic"}


def test_models_mintaka_makes_on_an_adopted_endpoint_run_in_its_network(
    platform: Platform, sm: Any, tmp_path: Path
) -> None:
    vpc = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}
    deployed_from_model_data(
        sm,
        "private-api",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/private-models",
        VpcConfig=vpc,
        EnableNetworkIsolation=True,
    )
    adopted_with_a_second_version(platform, "private-api", tmp_path)

    platform.serving.deploy("private-api", "churn:2", route="green")
    variants = {
        v["VariantName"]: v for v in current_config(sm, "private-api")["ProductionVariants"]
    }
    assert variants["AllTraffic"]["ModelName"] == "private-api-model"
    made = sm.describe_model(ModelName=variants["green"]["ModelName"])
    assert made["VpcConfig"] == vpc
    assert made["EnableNetworkIsolation"] is True


@pytest.mark.parametrize(
    ("model_role", "runs_as"),
    [
        ("role_arn", SETTINGS["role_arn"]),
        ("endpoint", "arn:aws:iam::123456789012:role/private-models"),
    ],
)
def test_the_role_of_models_mintaka_makes_on_an_adopted_endpoint_is_a_setting(
    sm: Any, tmp_path: Path, model_role: str, runs_as: str
) -> None:
    deployed_from_model_data(
        sm, "private-api", ExecutionRoleArn="arn:aws:iam::123456789012:role/private-models"
    )
    settings = {**SETTINGS, "model_role": model_role}
    with sagemaker_platform(tmp_path / "home", settings) as platform:
        adopted_with_a_second_version(platform, "private-api", tmp_path)
        platform.serving.deploy("private-api", "churn:2", route="green")
        config = current_config(sm, "private-api")
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    made = sm.describe_model(ModelName=variants["green"]["ModelName"])
    assert made["ExecutionRoleArn"] == runs_as
    kept = sm.describe_model(ModelName=variants["AllTraffic"]["ModelName"])
    assert kept["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/private-models"


def test_an_adopted_asynchronous_endpoint_stays_asynchronous(
    platform: Platform, sm: Any, tmp_path: Path
) -> None:
    serving = {
        "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/async-out/"}},
        "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abcd",
    }
    deployed_from_model_data(sm, "async-api", config=serving)
    adopted_with_a_second_version(platform, "async-api", tmp_path)

    platform.serving.deploy("async-api", "churn:2", route="green")
    config = current_config(sm, "async-api")
    assert config["EndpointConfigName"] != "async-api-config"
    assert {k: config.get(k) for k in serving} == serving


def test_traffic_on_an_adopted_endpoint_needs_no_image_or_role_until_a_model_is_made(
    fake: Any, sm: Any, tmp_path: Path
) -> None:
    """Adopting endpoints and moving their traffic is work a platform team does before it
    builds an inference image for Mintaka: the routes keep their Models, so none is made."""
    bare = {k: v for k, v in SETTINGS.items() if k not in ("image_uri", "role_arn")}
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    two = legacy_package(sm, "jobs/2/model.tar.gz", tarball({"model.joblib": b"2"}))
    for name, package in (("blue-model", one), ("green-model", two)):
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"ModelPackageName": package},
            ExecutionRoleArn=SETTINGS["role_arn"],
        )
    variant = {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sm.create_endpoint_config(
        EndpointConfigName="two-config",
        ProductionVariants=[
            {
                **variant,
                "VariantName": "Blue",
                "ModelName": "blue-model",
                "InitialVariantWeight": 1,
            },
            {
                **variant,
                "VariantName": "Green",
                "ModelName": "green-model",
                "InitialVariantWeight": 0,
            },
        ],
    )
    sm.create_endpoint(EndpointName="two-api", EndpointConfigName="two-config")
    with sagemaker_platform(tmp_path / "home", bare) as platform:
        platform.migration.adopt_model(GROUP, reason="inherited")
        platform.migration.adopt_endpoint("two-api", reason="inherited")
        platform.serving.set_traffic("two-api", {"blue": 20, "green": 80})
        with pytest.raises(ConfigurationError, match="serving needs image_uri"):
            platform.serving.deploy("two-api", f"{GROUP}:1", route="red")  # a Model to make
        assert current_config(sm, "two-api")["EndpointConfigName"] == "two-config"
        platform.serving.set_traffic(
            "two-api", {"blue": 100, "green": 0}, shadow="green", shadow_percent=10
        )  # a new config: both routes keep their Models
        config = current_config(sm, "two-api")
        assert [v["ModelName"] for v in config["ProductionVariants"]] == ["blue-model"]
        assert [v["ModelName"] for v in config["ShadowProductionVariants"]] == ["green-model"]


@pytest.mark.parametrize(
    ("files", "flavor", "refusal"),
    [
        ({"model.skops": b"not a zip"}, None, "its files read as flavor 'sklearn'"),
        ({"model.joblib": b"served-weights"}, "sklearn", "cannot adopt"),
    ],
    ids=["detected", "declared"],
)
def test_served_bytes_that_cannot_be_loaded_are_refused_before_anything_is_registered(
    platform: Platform, sm: Any, files: dict[str, bytes], flavor: str | None, refusal: str
) -> None:
    make_client("s3").put_object(Bucket=BUCKET, Key="jobs/9/model.tar.gz", Body=tarball(files))
    endpoint = deployed_from_model_data(
        sm,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/jobs/9/model.tar.gz"},
    )
    with pytest.raises(ValidationError, match=refusal):
        platform.migration.adopt_served(
            endpoint, "alltraffic", "churn", reason="inherited", flavor=flavor
        )
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    model_arn = sm.describe_model(ModelName="legacy-api-model")["ModelArn"]
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == []
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar() == 0


def test_features_given_to_adopt_served_are_the_adopted_versions_signature(
    platform: Platform, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    adoption = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited", features=["age", "plan"]
    )
    [version] = adoption.adopted
    assert list(version.signature.inputs) == ["age", "plan"]


def refused_when_changed_after_read(
    platform: Platform,
    cloud: SageMakerBackend,
    sm: Any,
    change: Callable[[], object],
    endpoint: str = "legacy-api",
) -> None:
    """Adopting ``endpoint``'s route with ``change`` made right after its bytes are read is
    refused with ``Conflict``, registering and recording nothing; ``fetch_served`` is then the
    backend's own again."""
    real = cloud.fetch_served

    def then_changed(endpoint: str, route: str, into: Path) -> Any:
        read = real(endpoint, route, into)
        change()
        return read

    cloud.fetch_served = then_changed  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="changed while what it serves was read"):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar() == 0
    del cloud.fetch_served


def test_a_route_redeployed_while_its_bytes_are_read_is_refused_and_nothing_registered(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    endpoint = deployed_from_model_data(sm)  # serves model.joblib = b"served-weights"
    make_client("s3").put_object(
        Bucket=BUCKET, Key="jobs/8/model.tar.gz", Body=tarball({"model.joblib": b"new-weights"})
    )
    sm.create_model(
        ModelName="new-model",
        ExecutionRoleArn=SETTINGS["role_arn"],
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/jobs/8/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="new-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "new-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    refused_when_changed_after_read(
        platform,
        cloud,
        sm,
        lambda: sm.update_endpoint(EndpointName=endpoint, EndpointConfigName="new-config"),
    )
    [version] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    package = sm.describe_model_package(ModelPackageName=version.backend_ids["model_package"])
    [container] = package["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/jobs/8/model.tar.gz"
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "model.joblib").write_bytes(b"new-weights")
    assert version.artifact_digest == manifest_of(tmp_path / "new").digest


def test_adopting_a_recorded_route_again_reads_no_bytes_and_needs_none_in_s3(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    first = platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    assert [v.version for v in first.adopted] == [1]
    # SageMaker keeps serving what it copied at deployment; the object itself is gone.
    make_client("s3").delete_object(Bucket=BUCKET, Key="jobs/7/model.tar.gz")
    read: list[str] = []
    real = cloud.fetch_served

    def fetch(endpoint: str, route: str, into: Path) -> Any:
        read.append(route)
        return real(endpoint, route, into)

    cloud.fetch_served = fetch  # type: ignore[method-assign]
    again = platform.migration.adopt_served(endpoint, "AllTraffic", "churn", reason="again")
    assert (again.adopted, again.already_recorded) == ((), (1,))
    assert read == []
    with pytest.raises(Conflict, match="serves churn:1, not a version of 'fraud'"):
        platform.migration.adopt_served(endpoint, "alltraffic", "fraud", reason="inherited")
    assert read == []


def test_a_backend_that_cannot_read_served_bytes_first_registers_then_reads_them_back(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    endpoint = deployed_from_model_data(sm)
    checked: list[str | None] = []
    real = cloud.register_served

    def register(endpoint: str, route: str, model: str, served: str | None = None) -> Any:
        checked.append(served)
        return real(endpoint, route, model, served)

    cloud.fetch_served = functools.partial(ServedRegistration.fetch_served, cloud)  # type: ignore[method-assign]
    cloud.register_served = register  # type: ignore[method-assign]
    [version] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    assert checked == [None]
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "model.joblib").write_bytes(b"served-weights")
    assert version.artifact_digest == manifest_of(tmp_path / "expected").digest


def recreated_under_its_name(sm: Any, endpoint: str) -> bytes:
    """The SDK's redeployment of ``endpoint``: its Model deleted and made again under its name
    from other model data, and the endpoint updated onto a config serving it; the new weights."""
    weights = b"new-weights"
    make_client("s3").put_object(
        Bucket=BUCKET, Key="jobs/8/model.tar.gz", Body=tarball({"model.joblib": weights})
    )
    sm.delete_model(ModelName="legacy-api-model")
    sm.create_model(
        ModelName="legacy-api-model",
        ExecutionRoleArn=SETTINGS["role_arn"],
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/jobs/8/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="legacy-api-config-2",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "legacy-api-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName="legacy-api-config-2")
    return weights


def test_a_model_made_again_under_its_name_is_adopted_as_a_new_version(
    platform: Platform, sm: Any, tmp_path: Path
) -> None:
    endpoint = deployed_from_model_data(sm)
    platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    weights = recreated_under_its_name(sm, endpoint)
    again = platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="redeployed")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "model.joblib").write_bytes(weights)
    assert [(v.version, v.artifact_digest) for v in again.adopted] == [
        (2, manifest_of(tmp_path / "new").digest)
    ]


def test_served_bytes_registered_as_a_recorded_version_with_other_bytes_are_a_conflict(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    [first] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    recreated_under_its_name(sm, endpoint)
    # A backend whose idempotency ties the new Model to the package of the one it replaced.
    cloud.register_served = lambda *args, **kwargs: cloud.get_version("churn", 1)  # type: ignore[method-assign]
    with pytest.raises(Conflict, match=r"registered them as churn:1, recorded with digest"):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="redeployed")
    assert platform.get_model_version("churn", 1).artifact_digest == first.artifact_digest
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar() == 1


def adopted_meanwhile(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Another process adopts churn:1 while this adopt_served is between registering the
    version and recording it (at its observe_model call)."""
    real = SageMakerBackend.observe_model
    done: list[bool] = []

    def observe(self: SageMakerBackend, name: str) -> Any:
        if not done:
            done.append(True)
            with sagemaker_platform(home, seed=99, actor="other") as other:
                other.migration.adopt_model("churn", reason="other process", versions=[1])
        return real(self, name)

    monkeypatch.setattr(SageMakerBackend, "observe_model", observe)


def test_adopt_served_losing_a_race_reports_the_version_as_recorded(
    platform: Platform, sm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = deployed_from_model_data(sm)
    adopted_meanwhile(monkeypatch, tmp_path / "home")
    adoption = platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="x")
    assert (adoption.adopted, adoption.already_recorded) == ((), (1,))


def test_mintaka_adopt_served_losing_a_race_says_the_route_is_already_adopted(
    fake: Any, sm: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = deployed_from_model_data(sm)
    adopted_meanwhile(monkeypatch, cli.home)
    code, said = cli("adopt", "served", endpoint, "AllTraffic", "--model", "churn", "--reason", "x")
    assert code == 0, said
    assert "already adopted: legacy-api alltraffic serves churn:1" in said


def test_a_route_tagged_with_a_deleted_package_is_registered_again(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)  # model.joblib: not an sklearn skops archive
    cloud.fetch_served = functools.partial(ServedRegistration.fetch_served, cloud)  # type: ignore[method-assign]
    with pytest.raises(ValidationError, match="cannot adopt"):
        platform.migration.adopt_served(
            endpoint, "alltraffic", "churn", reason="x", flavor="sklearn"
        )
    # The refused version stays registered (docs/migration.md); the operator deletes it.
    [refused] = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    sm.delete_model_package(ModelPackageName=refused["ModelPackageArn"])
    assert cloud.get_endpoint(endpoint).routes == ()
    [version] = platform.migration.adopt_served(endpoint, "alltraffic", "fraud", reason="x").adopted
    assert version.ref == "fraud:1"
    arn = sm.describe_model(ModelName="legacy-api-model")["ModelArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags["mintaka:model-package"] == version.backend_ids["model_package"]


def test_progress_is_shown_before_the_served_bytes_are_read(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    order: list[str] = []
    real = cloud.fetch_served

    def fetch(endpoint: str, route: str, into: Path) -> Any:
        order.append("download")
        return real(endpoint, route, into)

    cloud.fetch_served = fetch  # type: ignore[method-assign]
    platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="x", on_fetch=lambda *_: order.append("progress")
    )
    assert order == ["progress", "download"]


def test_a_backend_reading_served_bytes_after_registering_shows_progress_for_each_read(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    cloud.fetch_served = functools.partial(ServedRegistration.fetch_served, cloud)  # type: ignore[method-assign]
    read: list[int | None] = []
    platform.migration.adopt_served(
        endpoint,
        "alltraffic",
        "churn",
        reason="x",
        on_fetch=lambda theirs, *_: read.append(None if theirs is None else theirs.version),
    )
    assert read == [None, 1]  # the attempt to read first, then the read back of churn:1


@pytest.mark.parametrize("versioned", [False, True], ids=["plain-bucket", "versioned-bucket"])
def test_model_data_overwritten_at_its_key_while_read_is_refused_and_nothing_registered(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path, versioned: bool
) -> None:
    s3 = make_client("s3")
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    endpoint = deployed_from_model_data(sm)  # serves model.joblib = b"served-weights"
    refused_when_changed_after_read(
        platform,
        cloud,
        sm,
        lambda: s3.put_object(
            Bucket=BUCKET, Key="jobs/7/model.tar.gz", Body=tarball({"model.joblib": b"other"})
        ),
    )
    [version] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.joblib").write_bytes(b"other")
    assert version.artifact_digest == manifest_of(tmp_path / "other").digest


def test_model_data_overwritten_at_its_key_is_adopted_again_as_a_new_version(
    platform: Platform, sm: Any, tmp_path: Path
) -> None:
    endpoint = deployed_from_model_data(sm)
    [first] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    # The Model loses the tag naming its package, and new bytes are written at the same key.
    arn = sm.describe_model(ModelName="legacy-api-model")["ModelArn"]
    sm.delete_tags(ResourceArn=arn, TagKeys=["mintaka:model-package"])
    make_client("s3").put_object(
        Bucket=BUCKET, Key="jobs/7/model.tar.gz", Body=tarball({"model.joblib": b"retrained"})
    )
    again = platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="retrained")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "model.joblib").write_bytes(b"retrained")
    assert [(v.version, v.artifact_digest) for v in again.adopted] == [
        (2, manifest_of(tmp_path / "new").digest)
    ]
    assert platform.get_model_version("churn", 1).artifact_digest == first.artifact_digest


def test_the_served_bytes_flavor_is_read_and_checked_once(
    platform: Platform, sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = deployed_from_model_data(sm)
    real = migration._flavor_of
    refs: list[str] = []

    def flavor_of(ref: str, *args: Any) -> Any:
        refs.append(ref)
        return real(ref, *args)

    monkeypatch.setattr(migration, "_flavor_of", flavor_of)
    [version] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    assert refs == ["what legacy-api route alltraffic serves"]
    assert version.flavor is Flavor.OPAQUE  # a model.joblib reads as no servable flavor


@pytest.mark.parametrize("key", ["llm/v3/weights/part-1", "llm/v3/weights/part-3"])
def test_model_data_under_a_prefix_written_to_while_read_is_refused(
    platform: Platform, cloud: SageMakerBackend, sm: Any, key: str
) -> None:
    s3 = make_client("s3")
    for name in ("config.json", "weights/part-1", "weights/part-2"):
        s3.put_object(Bucket=BUCKET, Key=f"llm/v3/{name}", Body=name.encode())
    source = uncompressed("llm/v3/")
    endpoint = deployed_from_model_data(
        sm, "llm-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": source}
    )
    refused_when_changed_after_read(
        platform,
        cloud,
        sm,
        lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"written meanwhile"),
        endpoint,
    )
    [version] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    assert version.ref == "churn:1"


def test_a_route_of_an_endpoint_whose_config_was_deleted_is_refused_saying_so(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    sm.delete_endpoint_config(EndpointConfigName="legacy-api-config")  # it serves on
    said = r"config 'legacy-api-config', which was deleted outside Mintaka"
    with pytest.raises(NotFound, match=said):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    with pytest.raises(NotFound, match=said):
        cloud.register_served(endpoint, "alltraffic", "churn")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


@pytest.mark.parametrize(
    "keys",
    [("weights", "weights/part-1"), ("weights/./part-1", "weights/part-1")],
    ids=["a-file-and-a-folder", "two-keys-for-one-path"],
)
def test_prefix_keys_that_cannot_be_one_model_directory_are_refused(
    platform: Platform, sm: Any, keys: tuple[str, str]
) -> None:
    s3 = make_client("s3")
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=f"llm/v3/{key}", Body=key.encode())
    endpoint = deployed_from_model_data(
        sm, "llm-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": uncompressed("llm/v3/")}
    )
    with pytest.raises(ValidationError, match="cannot both be files of one model directory"):
        platform.migration.adopt_served(endpoint, "alltraffic", "llm", reason="inherited")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_an_uncompressed_object_named_tar_gz_is_recorded_as_the_file_served(
    platform: Platform, sm: Any, tmp_path: Path
) -> None:
    """SageMaker copies an object whose ``ModelDataSource`` says ``CompressionType: None`` into
    the container as it is, whatever its name: that file is the version's bytes."""
    body = tarball({"model.joblib": b"w"})
    make_client("s3").put_object(Bucket=BUCKET, Key="raw/model.tar.gz", Body=body)
    source = {
        "S3DataSource": {
            "S3Uri": f"s3://{BUCKET}/raw/model.tar.gz",
            "S3DataType": "S3Object",
            "CompressionType": "None",
        }
    }
    endpoint = deployed_from_model_data(
        sm, "one-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": source}
    )
    [version] = platform.migration.adopt_served(endpoint, "alltraffic", "one", reason="r").adopted
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "model.tar.gz").write_bytes(body)
    assert version.artifact_digest == manifest_of(tmp_path / "served" / "model.tar.gz").digest
    assert version.flavor is Flavor.OPAQUE
    (tmp_path / "back").mkdir()
    fetched = platform.backend.fetch_artifact("one", 1, tmp_path / "back")
    assert fetched.read_bytes() == body


@pytest.mark.parametrize(
    ("key", "said"),
    [(".", "names no file below"), ("/config.json", "would land outside")],
    ids=["dot", "double-slash"],
)
def test_a_prefix_key_naming_no_file_below_the_prefix_is_refused_naming_it(
    platform: Platform, sm: Any, key: str, said: str
) -> None:
    s3 = make_client("s3")
    s3.put_object(Bucket=BUCKET, Key="llm/v3/config.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key=f"llm/v3/{key}", Body=b"odd")
    endpoint = deployed_from_model_data(
        sm, "llm-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": uncompressed("llm/v3/")}
    )
    for _ in range(2):  # the same answer when run again: nothing there changed
        with pytest.raises(ValidationError, match=rf"s3://{BUCKET}/llm/v3/{key} {said}"):
            platform.migration.adopt_served(endpoint, "alltraffic", "llm", reason="inherited")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_adopting_an_endpoint_whose_config_was_deleted_says_why_and_what_to_do(
    platform: Platform, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    sm.delete_endpoint_config(EndpointConfigName="legacy-api-config")  # it serves on
    with pytest.raises(ValidationError) as refused:
        platform.migration.adopt_endpoint(endpoint, reason="inherited")
    said = str(refused.value)
    assert "'legacy-api-config', which was deleted outside Mintaka" in said
    assert "update the endpoint onto a config naming its Models" in said
    assert "mintaka adopt served" not in said
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM endpoints").scalar() == 0


def test_a_served_registration_still_pending_in_sagemaker_is_adopted(
    platform: Platform, cloud: SageMakerBackend, sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new package starts ``Pending``/``InProgress`` in SageMaker: the version reads as one
    all the same, so what was just registered is adopted, not refused as missing."""
    endpoint = deployed_from_model_data(sm)
    real = cloud._sm
    statuses: list[str] = []

    def pending(operation: str, **params: Any) -> dict[str, Any]:
        answer = real(operation, **params)
        if operation == "describe_model_package":
            answer = {**answer, "ModelPackageStatus": "Pending"}
            statuses.append(answer["ModelPackageStatus"])
        return answer

    monkeypatch.setattr(cloud, "_sm", pending)
    [version] = platform.migration.adopt_served(
        endpoint, "alltraffic", "churn", reason="inherited"
    ).adopted
    assert version.ref == "churn:1"
    assert statuses  # the package was read while SageMaker still called it pending


MODEL_DELETED = "serves SageMaker Model 'legacy-api-model', which was deleted outside Mintaka"


def test_an_endpoint_whose_model_was_deleted_is_refused_saying_why_and_what_to_do(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    sm.delete_model(ModelName="legacy-api-model")  # SageMaker lets the endpoint serve on
    unreadable = cloud.get_endpoint(endpoint).extra.get("routes_unreadable")
    assert unreadable is not None
    assert MODEL_DELETED in unreadable
    with pytest.raises(ValidationError) as refused:
        platform.migration.adopt_endpoint(endpoint, reason="inherited")
    said = str(refused.value)
    assert MODEL_DELETED in said
    assert "update the endpoint onto a config whose Models exist" in said
    assert "mintaka adopt served" not in said
    assert "endpoint config" not in said  # the config is there still
    with pytest.raises(NotFound, match=MODEL_DELETED):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="inherited")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM endpoints").scalar() == 0


def test_adopt_served_run_again_after_the_token_changed_reuses_the_package_it_made(
    platform: Platform, cloud: SageMakerBackend, sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that made the package but died before tagging the Model, with a ``ClientToken``
    of another form (an older Mintaka's): run again, it finds the package by the Model it
    names and what it holds, and makes no second one."""
    endpoint = deployed_from_model_data(sm)
    real = cloud._sm

    def tagging_fails(operation: str, **params: Any) -> Any:
        if operation == "add_tags" and ":model/" in params["ResourceArn"]:
            raise Throttled("add_tags throttled", backend="sagemaker")
        return real(operation, **params)

    monkeypatch.setattr(serving, "client_token", lambda key: "mk-" + short_hash(key) * 4)
    monkeypatch.setattr(cloud, "_sm", tagging_fails)
    with pytest.raises(Throttled):
        platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="r")
    monkeypatch.undo()
    [version] = platform.migration.adopt_served(endpoint, "alltraffic", "churn", reason="r").adopted
    assert version.ref == "churn:1"
    packages = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert len(packages) == 1
    assert [r.version for r in cloud.get_endpoint(endpoint).routes] == [1]


def hand_made_served_package(sm: Any, data: str) -> None:
    """A package in ``churn`` naming the endpoint's Model as the one it was registered from,
    holding the model data at ``data``, with no slot identity recorded (as a Mintaka that
    recorded none made them)."""
    with contextlib.suppress(sm.exceptions.ClientError):
        sm.create_model_package_group(ModelPackageGroupName="churn")
    sm.create_model_package(
        ModelPackageGroupName="churn",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{data}", "Environment": LEGACY_ENV}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={
            "mintaka_served_by": sm.describe_model(ModelName="legacy-api-model")["ModelArn"]
        },
    )


def test_a_package_naming_the_model_but_not_what_it_serves_now_is_not_reused(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    endpoint = deployed_from_model_data(sm)
    hand_made_served_package(sm, "other.tar.gz")
    assert cloud.register_served(endpoint, "alltraffic", "churn").version == 2
    # one made before the Model was made again under its name is another Model's
    hand_made_served_package(sm, "jobs/7/model.tar.gz")
    sm.delete_model(ModelName="legacy-api-model")
    sm.create_model(
        ModelName="legacy-api-model",
        ExecutionRoleArn=SETTINGS["role_arn"],
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/jobs/7/model.tar.gz",
            "Environment": LEGACY_ENV,
        },
    )
    assert cloud.register_served(endpoint, "alltraffic", "churn").version == 4


def test_a_package_that_recorded_no_identity_is_not_reused_even_holding_the_container(
    platform: Platform, cloud: SageMakerBackend, sm: Any
) -> None:
    """A package naming the Model and its container but no slot identity may hold other bytes
    than the key holds now (written again since): a new version is registered and the Model
    tagged with it, the old package left as it is."""
    endpoint = deployed_from_model_data(sm)
    hand_made_served_package(sm, "jobs/7/model.tar.gz")
    make_client("s3").put_object(
        Bucket=BUCKET, Key="jobs/7/model.tar.gz", Body=tarball({"model.joblib": b"rewritten"})
    )
    assert cloud.register_served(endpoint, "alltraffic", "churn").version == 2
    assert [r.version for r in cloud.get_endpoint(endpoint).routes] == [2]
    packages = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert sorted(p["ModelPackageVersion"] for p in packages) == [1, 2]


@pytest.mark.parametrize("key", ["raw/..", "raw/.", ".."])
def test_a_single_object_whose_name_is_a_dot_segment_is_refused_before_anything_is_written(
    platform: Platform, sm: Any, tmp_path: Path, key: str
) -> None:
    make_client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"weights")
    source = {
        "S3DataSource": {
            "S3Uri": f"s3://{BUCKET}/{key}",
            "S3DataType": "S3Object",
            "CompressionType": "None",
        }
    }
    endpoint = deployed_from_model_data(
        sm, "one-api", PrimaryContainer={"Image": IMAGE, "ModelDataSource": source}
    )
    said = rf"s3://{BUCKET}/{key} names no file"
    with pytest.raises(ValidationError, match=said):
        platform.migration.adopt_served(endpoint, "alltraffic", "one", reason="r")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    legacy_package(sm, key, b"weights")  # a package made by hand, read by adopt model
    with pytest.raises(ValidationError, match=said):
        platform.migration.adopt_model(GROUP, reason="inherited")
    with platform.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar() == 0


def test_a_route_whose_model_is_still_there_keeps_it_when_another_routes_model_was_deleted(
    platform: Platform, sm: Any
) -> None:
    one = legacy_package(sm, "jobs/1/model.tar.gz", tarball({"model.joblib": b"1"}))
    two = legacy_package(sm, "jobs/2/model.tar.gz", tarball({"model.joblib": b"2"}))
    legacy_endpoint(sm, {"AllTraffic": one, "Canary_2": two})
    platform.migration.adopt_model(GROUP, reason="inherited")
    platform.migration.adopt_endpoint("churn-api", reason="inherited")
    sm.delete_model(ModelName="churn-model-1")  # the endpoint serves on
    platform.serving.deploy("churn-api", f"{GROUP}:2", route="blue")
    variants = {v["VariantName"]: v for v in current_config(sm, "churn-api")["ProductionVariants"]}
    assert variants["AllTraffic"]["ModelName"] == "churn-model-0"
