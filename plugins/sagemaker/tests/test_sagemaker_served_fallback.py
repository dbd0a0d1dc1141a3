"""The conformance suite's check of ``registry.from_serving`` on a SageMaker backend whose
``fetch_served`` answers None, as the interface allows: it is held to reading the bytes back
after registering. Kept out of the conformance module, whose tests make the matrix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mintaka_conformance import AbstractSyncTests, BackendUnderTest
from mintaka_conformance.fakes.sagemaker import make_client, mock_sagemaker
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import BUCKET, SETTINGS
from test_sagemaker_conformance import InProcessFixtures

from mintaka.interfaces.registry import ServedBytes


class AnswersNoServedBytes(SageMakerBackend):
    """Overrides ``fetch_served`` and, as the interface allows, answers None: the backend
    cannot read what a route serves before registering it."""

    def fetch_served(self, endpoint: str, route: str, into: Path) -> ServedBytes | None:
        return None


class TestSageMakerServedReadAfterRegistering(InProcessFixtures):
    """The suite's check of ``registry.from_serving`` on a backend whose ``fetch_served``
    override answers None: it is held to the guarantee of reading the bytes back after
    registering, not to refusing before."""

    @pytest.fixture
    def backend(self, inference_image: None) -> Iterator[BackendUnderTest]:
        with mock_sagemaker():
            make_client("s3").create_bucket(Bucket=BUCKET)
            yield BackendUnderTest(AnswersNoServedBytes, SETTINGS)

    # The one suite test, with the static helpers it calls (their staticmethod objects).
    _suite = vars(AbstractSyncTests)
    test_served_without_the_registry = _suite[
        "test_what_an_endpoint_serves_without_the_registry_is_registered_then_adopted"
    ]
    _reads_served_first = _suite["_reads_served_first"]
    _refused_registers_nothing = _suite["_refused_registers_nothing"]
    _register_served_and_adopt = _suite["_register_served_and_adopt"]
