"""Pipelines compiled to the cloud's native format and run there."""

from __future__ import annotations

from abc import ABC, abstractmethod

from mintaka.domain.pipelines import NativePipeline, PipelineRun, PipelineSpec


class PipelineExecution(ABC):
    """``Capability.PIPELINES``."""

    @abstractmethod
    def compile(self, spec: PipelineSpec) -> NativePipeline: ...

    @abstractmethod
    def submit(self, pipeline: NativePipeline, parameters: dict[str, str]) -> PipelineRun: ...

    @abstractmethod
    def get_pipeline_run(self, run_id: str) -> PipelineRun: ...

    @abstractmethod
    def stop_pipeline_run(self, run_id: str) -> None: ...
