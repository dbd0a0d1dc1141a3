"""The SageMaker backend runs the whole conformance suite against moto with the SageMaker
extension in-process, and a representative part again through moto's server (``endpoint_url``)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance import (
    AbstractBackendFixtures,
    AbstractErrorContractTests,
    AbstractLineageTests,
    AbstractMonitoringTests,
    AbstractPipelineTests,
    AbstractRegistryTests,
    AbstractRunTests,
    AbstractServingTests,
    AbstractSyncTests,
    BackendUnderTest,
    SendTraffic,
    Traffic,
)
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client, mock_sagemaker
from mintaka_conformance.scenarios import Names
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import BUCKET, SETTINGS, deploy_without_registry

from mintaka import Platform
from mintaka.domain.names import route_name_of


class BotoOutOfBand:
    """Changes made with plain boto3, behind Mintaka's back."""

    def __init__(self, endpoint_url: str | None = None) -> None:
        self.sm = make_client("sagemaker", endpoint_url=endpoint_url)
        self.s3 = make_client("s3", endpoint_url=endpoint_url)
        self.account = make_client("sts", endpoint_url=endpoint_url).get_caller_identity()[
            "Account"
        ]

    def _arn(self, resource: str) -> str:
        return f"arn:aws:sagemaker:us-east-1:{self.account}:{resource}"

    def move_alias(self, name: str, alias: str, version: int) -> None:
        self.sm.add_tags(
            ResourceArn=self._arn(f"model-package-group/{name}"),
            Tags=[{"Key": f"mintaka:alias:{alias}", "Value": str(version)}],
        )

    def delete_version(self, name: str, version: int) -> None:
        self.sm.delete_model_package(ModelPackageName=self._arn(f"model-package/{name}/{version}"))

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self.sm.add_tags(
            ResourceArn=self._arn(f"model-package/{name}/{version}"),
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def deploy_unregistered(self, endpoint: str, files: Path) -> tuple[str, str]:
        """An endpoint as ``Model(...).deploy()`` makes one: a Model made straight from a
        ``model.tar.gz`` in S3, no package, served by the default variant ``AllTraffic``."""
        body = io.BytesIO()
        with tarfile.open(fileobj=body, mode="w:gz") as tar:
            for path in sorted(p for p in files.rglob("*") if p.is_file()):
                tar.add(path, arcname=path.relative_to(files).as_posix())
        key = f"legacy/{endpoint}/model.tar.gz"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.getvalue())
        deploy_without_registry(
            self.sm,
            endpoint,
            {
                "PrimaryContainer": {
                    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/sklearn-inference:1.2-1",
                    "ModelDataUrl": f"s3://{BUCKET}/{key}",
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                }
            },
        )
        return endpoint, "alltraffic"


def cloudwatch_traffic(platform: Platform, endpoint_url: str | None = None) -> SendTraffic:
    """The traffic's counts put into CloudWatch's ``AWS/SageMaker`` metrics of the route's
    variant, as SageMaker publishes them (moto's endpoints publish none): ``Invocations`` every
    request, ``Invocation5XXErrors`` the failed, ``Invocation4XXErrors`` the refused."""

    def send(endpoint: str, route: str, traffic: Traffic) -> None:
        cloud_name = platform.backend.settings.endpoint_of(endpoint)
        sm = make_client("sagemaker", endpoint_url=endpoint_url)
        variants = sm.describe_endpoint(EndpointName=cloud_name)["ProductionVariants"]
        [variant] = [v["VariantName"] for v in variants if route_name_of(v["VariantName"]) == route]
        dimensions = [
            {"Name": "EndpointName", "Value": cloud_name},
            {"Name": "VariantName", "Value": variant},
        ]
        at = platform.clock.now()
        make_client("cloudwatch", endpoint_url=endpoint_url).put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {"MetricName": name, "Dimensions": dimensions, "Value": value, "Timestamp": at}
                for name, value in (
                    ("Invocations", traffic.answered + traffic.failed + traffic.refused),
                    ("Invocation5XXErrors", traffic.failed),
                    ("Invocation4XXErrors", traffic.refused),
                )
            ],
        )

    return send


class InProcessFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(self, inference_image: None) -> Iterator[BackendUnderTest]:
        with mock_sagemaker():
            make_client("s3").create_bucket(Bucket=BUCKET)
            yield BackendUnderTest(SageMakerBackend, SETTINGS)

    @pytest.fixture
    def out_of_band(self, platform: Platform) -> BotoOutOfBand:
        return BotoOutOfBand()

    @pytest.fixture
    def serve_unregistered(
        self, out_of_band: BotoOutOfBand, names: Names
    ) -> Callable[[Path], tuple[str, str]]:
        return lambda files: out_of_band.deploy_unregistered(names.endpoint("legacy"), files)

    @pytest.fixture
    def send_traffic(self, platform: Platform) -> SendTraffic:
        return cloudwatch_traffic(platform)

    @pytest.fixture
    def hold_pipeline_run(self, backend: BackendUnderTest) -> Callable[[str], None]:
        """The fake's paced executions: a step ends every third DescribePipelineExecution."""
        return lambda pipeline: SageMakerFake().script_pipeline_execution(
            pipeline, paced=True, reads_per_step=3
        )


class TestSageMakerRegistry(InProcessFixtures, AbstractRegistryTests): ...


class TestSageMakerRuns(InProcessFixtures, AbstractRunTests): ...


class TestSageMakerLineage(InProcessFixtures, AbstractLineageTests): ...


class TestSageMakerServing(InProcessFixtures, AbstractServingTests): ...


class TestSageMakerPipelines(InProcessFixtures, AbstractPipelineTests): ...


class TestSageMakerMonitoring(InProcessFixtures, AbstractMonitoringTests): ...


class TestSageMakerSync(InProcessFixtures, AbstractSyncTests): ...


class TestSageMakerErrors(InProcessFixtures, AbstractErrorContractTests): ...


# -- the same backend through moto's server on 127.0.0.1 ------------------------------------------


class ServerFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(self, moto_server: Any, inference_image: None) -> BackendUnderTest:
        s3 = make_client("s3", endpoint_url=moto_server.endpoint_url)
        if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=BUCKET)
        return BackendUnderTest(
            SageMakerBackend, {**SETTINGS, "endpoint_url": moto_server.endpoint_url}
        )

    @pytest.fixture
    def out_of_band(self, platform: Platform, moto_server: Any) -> BotoOutOfBand:
        return BotoOutOfBand(moto_server.endpoint_url)

    @pytest.fixture
    def serve_unregistered(
        self, out_of_band: BotoOutOfBand, names: Names
    ) -> Callable[[Path], tuple[str, str]]:
        return lambda files: out_of_band.deploy_unregistered(names.endpoint("legacy"), files)


# Sync exercises the registry, aliases, tags, deletion and out-of-band boto3 calls over HTTP;
# test_sagemaker_server.py drives serving through the same server.
class TestSageMakerServerSync(ServerFixtures, AbstractSyncTests): ...
