"""Pipelines on SageMaker: a PipelineSpec compiled to a SageMaker Pipelines definition.

Each step becomes a ``Processing`` step running the inference image (or the step's own image)
with ``python -m mintaka.pipelines.step <entrypoint>``; ``depends_on`` becomes ``DependsOn`` and
the spec's parameters become ``String`` pipeline parameters. ``submit`` creates (or updates) the
pipeline and starts an execution; the run id is the execution ARN.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mintaka.domain.pipelines import (
    NativePipeline,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
)
from mintaka.errors import ConfigurationError, Conflict, NotFound
from mintaka_sagemaker.aws import AwsCalls, short_hash
from mintaka_sagemaker.errors import is_already_exists

FORMAT = "sagemaker-pipelines/2020-12-01"
STATUSES = {
    "Executing": PipelineStatus.RUNNING,
    "Stopping": PipelineStatus.RUNNING,
    "Stopped": PipelineStatus.STOPPED,
    "Failed": PipelineStatus.FAILED,
    "Succeeded": PipelineStatus.SUCCEEDED,
}


class SageMakerPipelines(AwsCalls):
    """``Capability.PIPELINES`` through SageMaker Pipelines."""

    def _pipeline_role(self) -> str:
        if not self.settings.role_arn:
            raise ConfigurationError("[sagemaker] pipelines need role_arn in [backend_settings]")
        return self.settings.role_arn

    def compile(self, spec: PipelineSpec) -> NativePipeline:
        role = self._pipeline_role()
        steps: list[dict[str, Any]] = []
        for step in spec.steps:
            image = step.image or self.settings.image_uri
            if not image:
                raise ConfigurationError(
                    f"[sagemaker] step {step.name!r} names no image and image_uri is not set"
                )
            arguments: list[Any] = [step.entrypoint]
            for parameter in spec.parameters:
                arguments += [f"--{parameter}", {"Get": f"Parameters.{parameter}"}]
            steps.append(
                {
                    "Name": step.name,
                    "Type": "Processing",
                    "DependsOn": list(step.depends_on),
                    "Arguments": {
                        "ProcessingResources": {
                            "ClusterConfig": {
                                "InstanceType": self.settings.instance_type,
                                "InstanceCount": 1,
                                "VolumeSizeInGB": 30,
                            }
                        },
                        "AppSpecification": {
                            "ImageUri": image,
                            "ContainerEntrypoint": ["python", "-m", "mintaka.pipelines.step"],
                            "ContainerArguments": arguments,
                        },
                        "RoleArn": role,
                        "Environment": {"MINTAKA_PIPELINE": spec.name, "MINTAKA_STEP": step.name},
                    },
                }
            )
        definition = {
            "Version": "2020-12-01",
            "Metadata": {"mintaka": {"pipeline": spec.name}},
            "Parameters": [
                {"Name": name, "Type": "String", "DefaultValue": str(value)}
                for name, value in spec.parameters.items()
            ],
            "Steps": steps,
        }
        return NativePipeline(pipeline=spec.name, format=FORMAT, definition=definition)

    def submit(self, pipeline: NativePipeline, parameters: dict[str, str]) -> PipelineRun:
        role = self._pipeline_role()
        body = json.dumps(pipeline.definition, sort_keys=True)
        try:
            self._sm(
                "create_pipeline",
                PipelineName=pipeline.pipeline,
                PipelineDefinition=body,
                RoleArn=role,
                ClientRequestToken="mk-" + short_hash(body) * 4,
            )
        except Conflict as exc:
            if not is_already_exists(exc):
                raise
            self._sm(
                "update_pipeline",
                PipelineName=pipeline.pipeline,
                PipelineDefinition=body,
                RoleArn=role,
            )
        started = self._sm(
            "start_pipeline_execution",
            PipelineName=pipeline.pipeline,
            PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
        )
        return self.get_pipeline_run(str(started["PipelineExecutionArn"]))

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        if ":pipeline/" not in run_id or "/execution/" not in run_id:
            raise NotFound(f"[sagemaker] pipeline run {run_id!r} not found (not an execution ARN)")
        found = self._sm("describe_pipeline_execution", PipelineExecutionArn=run_id)
        status = STATUSES.get(str(found.get("PipelineExecutionStatus")), PipelineStatus.PENDING)
        created = found.get("CreationTime")
        modified = found.get("LastModifiedTime")
        terminal = status in {
            PipelineStatus.SUCCEEDED,
            PipelineStatus.FAILED,
            PipelineStatus.STOPPED,
        }
        return PipelineRun(
            id=run_id,
            pipeline=run_id.split(":pipeline/", 1)[1].split("/", 1)[0],
            status=status,
            started_at=created if isinstance(created, datetime) else datetime.now().astimezone(),
            ended_at=modified if terminal and isinstance(modified, datetime) else None,
            backend="sagemaker",
            backend_ids={"pipeline_execution": run_id, "pipeline": str(found.get("PipelineArn"))},
        )

    def stop_pipeline_run(self, run_id: str) -> None:
        self.get_pipeline_run(run_id)
        self._sm(
            "stop_pipeline_execution",
            PipelineExecutionArn=run_id,
            ClientRequestToken="mk-" + short_hash(["stop", run_id]) * 4,
        )
