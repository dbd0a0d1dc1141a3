"""Pipelines: a PipelineSpec compiled to the cloud's own format, submitted and read back."""

from __future__ import annotations

from typing import Any

import pytest

from mintaka import Capability, NotFound
from mintaka.domain.pipelines import PipelineSpec, StepSpec
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
