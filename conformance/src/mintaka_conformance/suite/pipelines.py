"""Pipelines: a PipelineSpec compiled to the cloud's own format, submitted and read back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mintaka import Capability, NotFound
from mintaka.domain.pipelines import PipelineSpec, PipelineStatus, StepSpec
from mintaka_conformance.fixtures import AbstractBackendFixtures


def two_step_pipeline() -> PipelineSpec:
    return PipelineSpec(
        name="train-and-evaluate",
        parameters={"max_depth": 4},
        steps=[
            StepSpec(name="train", entrypoint="mintaka_conformance.steps:train"),
            StepSpec(
                name="evaluate",
                entrypoint="mintaka_conformance.steps:evaluate",
                depends_on=["train"],
            ),
        ],
    )


class AbstractPipelineTests(AbstractBackendFixtures):
    area = "pipelines"

    @pytest.mark.requires(Capability.PIPELINES)
    def test_compiled_pipeline_names_its_spec(self, cloud: Any) -> None:
        """The backend MUST compile a pipeline spec into a non-empty native definition of the same
        name."""
        native = cloud.compile(two_step_pipeline())
        assert native.pipeline == "train-and-evaluate"
        assert native.format
        assert native.definition

    @pytest.mark.requires(Capability.PIPELINES)
    def test_submitted_run_reads_back(self, cloud: Any) -> None:
        """The backend MUST return a run for a submitted pipeline that reads back by its id."""
        run = cloud.submit(cloud.compile(two_step_pipeline()), {"max_depth": "4"})
        assert run.pipeline == "train-and-evaluate"
        assert cloud.get_pipeline_run(run.id).id == run.id

    @pytest.mark.requires(Capability.PIPELINES)
    def test_missing_pipeline_run_is_not_found(self, cloud: Any) -> None:
        """The backend MUST raise NotFound for a pipeline run it does not have."""
        with pytest.raises(NotFound):
            cloud.get_pipeline_run("pipeline-run-does-not-exist")

    @pytest.mark.requires(Capability.PIPELINES)
    def test_compiling_twice_gives_the_same_definition(self, cloud: Any) -> None:
        """The backend MUST compile the same spec to the same native definition, so submitting an
        unchanged pipeline again never rewrites it in the cloud."""
        assert cloud.compile(two_step_pipeline()) == cloud.compile(two_step_pipeline())

    @pytest.mark.requires(Capability.PIPELINES)
    def test_submitted_run_carries_its_parameters(self, cloud: Any) -> None:
        """The backend MUST read back the parameters a run was submitted with, as strings."""
        run = cloud.submit(cloud.compile(two_step_pipeline()), {"max_depth": "7"})
        assert cloud.get_pipeline_run(run.id).parameters.get("max_depth") == "7"

    @pytest.mark.requires(Capability.PIPELINES)
    def test_stopped_run_ends_stopped_and_stopping_again_is_harmless(
        self, cloud: Any, hold_pipeline_run: Callable[[str], None]
    ) -> None:
        """The backend MUST end a running run it was asked to stop as ``stopped`` (within a few
        reads), and MUST accept a stop for a run that has already ended."""
        spec = two_step_pipeline()
        native = cloud.compile(spec)
        hold_pipeline_run(spec.name)
        run = cloud.submit(native, {"max_depth": "4"})
        cloud.stop_pipeline_run(run.id)
        status = cloud.get_pipeline_run(run.id).status
        for _ in range(20):  # a cloud takes a moment to stop what is running
            if status not in (PipelineStatus.PENDING, PipelineStatus.RUNNING):
                break
            status = cloud.get_pipeline_run(run.id).status
        assert status is PipelineStatus.STOPPED
        cloud.stop_pipeline_run(run.id)
        assert cloud.get_pipeline_run(run.id).status is PipelineStatus.STOPPED

    @pytest.mark.requires(Capability.PIPELINES)
    def test_stopping_a_missing_run_is_not_found(self, cloud: Any) -> None:
        """The backend MUST raise NotFound when asked to stop a pipeline run it does not have."""
        with pytest.raises(NotFound):
            cloud.stop_pipeline_run("pipeline-run-does-not-exist")
