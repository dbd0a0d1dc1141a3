"""SageMaker Pipelines in the moto extension: definitions checked against the published schema's
shape, executions that walk their steps with scripted outcomes, steps listed, executions stopped."""

from __future__ import annotations

import pytest

pytest.importorskip("moto")

import json
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

from botocore.exceptions import ClientError
from mintaka_conformance.fakes.sagemaker import (
    SageMakerFake,
    make_client,
    mock_sagemaker,
    sagemaker_server,
)

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
BUCKET = "pipeline-outputs"


@pytest.fixture
def fake() -> Iterator[SageMakerFake]:
    with mock_sagemaker() as handle:
        make_client("s3").create_bucket(Bucket=BUCKET)
        yield handle


@pytest.fixture
def sm(fake: SageMakerFake) -> Any:
    return make_client("sagemaker")


def _outputs(step: str) -> dict[str, Any]:
    return {"Get": f"Steps.{step}.PropertyFiles.outputs"}


def processing(name: str, *args: Any, depends_on: tuple[str, ...] = ()) -> dict[str, Any]:
    uri = {
        "Std:Join": {
            "On": "/",
            "Values": [f"s3://{BUCKET}/runs", {"Get": "Execution.PipelineExecutionId"}, name],
        }
    }
    return {
        "Name": name,
        "Type": "Processing",
        "DependsOn": list(depends_on),
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                }
            },
            "AppSpecification": {"ImageUri": "img", "ContainerArguments": list(args)},
            "RoleArn": ROLE,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "outputs",
                        "S3Output": {
                            "S3Uri": uri,
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
        },
        "PropertyFiles": [
            {"PropertyFileName": "outputs", "OutputName": "outputs", "FilePath": "outputs.json"}
        ],
    }


def gate(step: str) -> dict[str, Any]:
    return {
        "Name": f"{step}-gate",
        "Type": "Condition",
        "DependsOn": [step],
        "Arguments": {
            "Conditions": [
                {
                    "Type": "Equals",
                    "LeftValue": {
                        "Std:JsonGet": {"PropertyFile": _outputs(step), "Path": "passed"}
                    },
                    "RightValue": True,
                }
            ],
            "IfSteps": [],
            "ElseSteps": [
                {
                    "Name": f"{step}-gate-failed",
                    "Type": "Fail",
                    "Arguments": {"ErrorMessage": f"gate {step} did not pass"},
                }
            ],
        },
    }


def definition() -> dict[str, Any]:
    """train -> evaluate (a gate) -> publish, with an Integer parameter."""
    return {
        "Version": "2020-12-01",
        "Metadata": {"owner": "tests"},
        "Parameters": [{"Name": "depth", "Type": "Integer", "DefaultValue": 4}],
        "Steps": [
            processing("train", "--depth", {"Get": "Parameters.depth"}),
            processing(
                "evaluate",
                "--model",
                {"Std:JsonGet": {"PropertyFile": _outputs("train"), "Path": "model"}},
                depends_on=("train",),
            ),
            gate("evaluate"),
            processing("publish", depends_on=("evaluate-gate",)),
        ],
    }


TRAINED = {"train": {"outputs": {"model": "s3://models/m.tar.gz"}}}


def _create(sm: Any, body: dict[str, Any] | str, name: str = "train") -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    sm.create_pipeline(PipelineName=name, PipelineDefinition=text, RoleArn=ROLE)


def _steps(sm: Any, arn: str) -> list[tuple[str, str]]:
    listed = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
    return [(s["StepName"], s["StepStatus"]) for s in listed["PipelineExecutionSteps"]]


def _status(sm: Any, arn: str) -> str:
    return str(sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"])


def _refused(info: pytest.ExceptionInfo[ClientError]) -> str:
    assert info.value.response["Error"]["Code"] == "ValidationException"
    message = str(info.value.response["Error"]["Message"])
    assert message.startswith("Unable to parse pipeline definition. ")
    return message


# --- definitions --------------------------------------------------------------------------------


def _without_steps(d: dict[str, Any]) -> None:
    d["Steps"] = []


def _bad_version(d: dict[str, Any]) -> None:
    d["Version"] = "2019-01-01"


def _duplicate_step(d: dict[str, Any]) -> None:
    d["Steps"].append(processing("train"))


def _unknown_type(d: dict[str, Any]) -> None:
    d["Steps"][0]["Type"] = "Notebookish"


def _no_image(d: dict[str, Any]) -> None:
    del d["Steps"][0]["Arguments"]["AppSpecification"]["ImageUri"]


def _unknown_dependency(d: dict[str, Any]) -> None:
    d["Steps"][1]["DependsOn"] = ["prepare"]


def _undefined_parameter(d: dict[str, Any]) -> None:
    d["Steps"][0]["Arguments"]["AppSpecification"]["ContainerArguments"][1] = {
        "Get": "Parameters.width"
    }


def _undefined_step(d: dict[str, Any]) -> None:
    d["Steps"][1]["Arguments"]["AppSpecification"]["ContainerArguments"][1] = {
        "Get": "Steps.prepare.ProcessingOutputConfig.Outputs['outputs'].S3Output.S3Uri"
    }


def _undefined_property_file(d: dict[str, Any]) -> None:
    d["Steps"][2]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]["PropertyFile"] = {
        "Get": "Steps.evaluate.PropertyFiles.metrics"
    }


def _mistyped_default(d: dict[str, Any]) -> None:
    d["Parameters"][0]["DefaultValue"] = "four"


def _cycle(d: dict[str, Any]) -> None:
    d["Steps"][0]["DependsOn"] = ["publish"]


def _fail_with_extras(d: dict[str, Any]) -> None:
    d["Steps"][2]["Arguments"]["ElseSteps"][0]["Arguments"]["Retry"] = True


def _object_metadata(d: dict[str, Any]) -> None:
    d["Metadata"] = {"mintaka": {"pipeline": "train"}}


def _bad_step_name(d: dict[str, Any]) -> None:
    d["Steps"][3]["Name"] = "publish to prod"


def _property_file_without_output(d: dict[str, Any]) -> None:
    d["Steps"][0]["PropertyFiles"][0]["OutputName"] = "metrics"


@pytest.mark.parametrize(
    ("breaks", "detail"),
    [
        (_without_steps, "Steps must be a non-empty list"),
        (_bad_version, "Version must be '2020-12-01'"),
        (_duplicate_step, "Step names must be unique; 'train'"),
        (_unknown_type, "Type 'Notebookish'"),
        (_no_image, "needs Arguments.AppSpecification.ImageUri"),
        (_unknown_dependency, "DependsOn 'prepare', which no step is named"),
        (_undefined_parameter, "Parameter reference 'Parameters.width' is undefined"),
        (_undefined_step, "names no step of the definition"),
        (_undefined_property_file, "Property file reference"),
        (_mistyped_default, "DefaultValue 'four' of another type"),
        (_cycle, "in a cycle"),
        (_fail_with_extras, "takes only ErrorMessage"),
        (_object_metadata, "Metadata entry 'mintaka'"),
        (_bad_step_name, "Step name 'publish to prod'"),
        (_property_file_without_output, "does not declare"),
    ],
)
def test_a_definition_that_breaks_the_schema_is_refused(sm: Any, breaks: Any, detail: str) -> None:
    body = definition()
    breaks(body)
    with pytest.raises(ClientError) as info:
        _create(sm, body)
    assert detail in _refused(info)
    assert sm.list_pipelines()["PipelineSummaries"] == []


def test_a_definition_that_is_not_json_is_refused(sm: Any) -> None:
    with pytest.raises(ClientError) as info:
        _create(sm, "{'Steps': []}")
    assert "not valid JSON" in _refused(info)


def test_update_refuses_a_bad_definition_and_keeps_the_old_one(sm: Any) -> None:
    _create(sm, definition())
    broken = definition()
    _unknown_dependency(broken)
    with pytest.raises(ClientError) as info:
        sm.update_pipeline(PipelineName="train", PipelineDefinition=json.dumps(broken))
    _refused(info)
    stored = json.loads(sm.describe_pipeline(PipelineName="train")["PipelineDefinition"])
    assert stored == definition()


def test_a_definition_in_s3_is_checked_too(sm: Any) -> None:
    broken = definition()
    _cycle(broken)
    make_client("s3").put_object(Bucket=BUCKET, Key="bad.json", Body=json.dumps(broken).encode())
    with pytest.raises(ClientError) as info:
        sm.create_pipeline(
            PipelineName="train",
            PipelineDefinitionS3Location={"Bucket": BUCKET, "ObjectKey": "bad.json"},
            RoleArn=ROLE,
        )
    _refused(info)
    assert sm.list_pipelines()["PipelineSummaries"] == []


# --- executions ---------------------------------------------------------------------------------


def test_an_unscripted_execution_with_no_data_to_read_fails_where_it_reads(sm: Any) -> None:
    _create(sm, definition())
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    assert _status(sm, arn) == "Failed"
    assert _steps(sm, arn) == [("train", "Succeeded"), ("evaluate", "Failed")]
    [evaluate] = [
        s
        for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)[
            "PipelineExecutionSteps"
        ]
        if s["StepName"] == "evaluate"
    ]
    assert "property file train.outputs holds no JSON" in evaluate["FailureReason"]


def test_a_passing_gate_runs_every_step_one_per_describe(sm: Any, fake: SageMakerFake) -> None:
    _create(sm, definition())
    fake.script_pipeline_execution(
        "train", property_files={**TRAINED, "evaluate": {"outputs": {"passed": True}}}
    )
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    seen = [(_status(sm, arn), _steps(sm, arn)[-1]) for _ in range(5)]
    assert seen == [
        ("Executing", ("evaluate", "Executing")),
        ("Executing", ("evaluate-gate", "Executing")),
        ("Executing", ("publish", "Executing")),
        ("Succeeded", ("publish", "Succeeded")),
        ("Succeeded", ("publish", "Succeeded")),
    ]
    listed = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    by_name = {s["StepName"]: s for s in listed}
    assert by_name["evaluate-gate"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    assert by_name["train"]["Metadata"]["ProcessingJob"]["Arn"].startswith(
        "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-"
    )
    assert [s["StepName"] for s in listed] == ["publish", "evaluate-gate", "evaluate", "train"]


def test_a_failed_gate_runs_the_fail_step_and_nothing_downstream(
    sm: Any, fake: SageMakerFake
) -> None:
    _create(sm, definition())
    fake.script_pipeline_execution(
        "train",
        property_files={**TRAINED, "evaluate": {"outputs": {"passed": False}}},
        paced=False,
    )
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Step failure: One or multiple steps failed."
    assert _steps(sm, arn) == [
        ("train", "Succeeded"),
        ("evaluate", "Succeeded"),
        ("evaluate-gate", "Succeeded"),
        ("evaluate-gate-failed", "Failed"),
    ]
    fail = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][0]
    assert fail["FailureReason"] == "gate evaluate did not pass"
    assert fail["Metadata"] == {"Fail": {"ErrorMessage": "gate evaluate did not pass"}}
    summary = sm.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"][0]
    assert summary["PipelineExecutionStatus"] == "Failed"


def test_a_scripted_step_failure_stops_the_execution_there(sm: Any, fake: SageMakerFake) -> None:
    _create(sm, definition())
    fake.script_pipeline_execution(
        "train", failures={"train": "AlgorithmError: out of memory"}, paced=False
    )
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    assert _status(sm, arn) == "Failed"
    [train] = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert (train["StepStatus"], train["FailureReason"]) == (
        "Failed",
        "AlgorithmError: out of memory",
    )


def test_scripts_apply_to_the_next_executions_in_order(sm: Any, fake: SageMakerFake) -> None:
    _create(sm, definition())
    passing = {**TRAINED, "evaluate": {"outputs": {"passed": True}}}
    fake.script_pipeline_execution("train", property_files=passing, paced=False)
    fake.script_pipeline_execution("train", failures={"train": "boom"}, paced=False)
    first = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    second = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    assert (_status(sm, first), _status(sm, second)) == ("Succeeded", "Failed")


def test_property_files_are_uploaded_to_the_step_output(sm: Any, fake: SageMakerFake) -> None:
    _create(sm, definition())
    fake.script_pipeline_execution(
        "train", property_files={**TRAINED, "evaluate": {"outputs": {"passed": True}}}, paced=False
    )
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    execution = arn.rsplit("/", 1)[-1]
    body = make_client("s3").get_object(Bucket=BUCKET, Key=f"runs/{execution}/train/outputs.json")
    assert json.loads(body["Body"].read()) == {"model": "s3://models/m.tar.gz"}


def test_a_running_execution_stops_on_the_next_describe(sm: Any, fake: SageMakerFake) -> None:
    _create(sm, definition())
    fake.script_pipeline_execution("train", property_files=TRAINED)
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    assert sm.stop_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionArn"] == arn
    assert sm.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"][0][
        "PipelineExecutionStatus"
    ] == ("Stopping")
    assert _status(sm, arn) == "Stopped"
    assert _steps(sm, arn) == [("train", "Stopped")]
    with pytest.raises(ClientError) as info:
        sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert info.value.response["Error"]["Code"] == "ConflictException"


def test_parameters_are_checked_against_the_definition(sm: Any, fake: SageMakerFake) -> None:
    body = definition()
    body["Steps"][2]["Arguments"]["Conditions"] = [
        {"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.depth"}, "RightValue": 5}
    ]
    _create(sm, body)
    for given in ({"Name": "width", "Value": "3"}, {"Name": "depth", "Value": "deep"}):
        with pytest.raises(ClientError) as info:
            sm.start_pipeline_execution(PipelineName="train", PipelineParameters=[given])
        assert info.value.response["Error"]["Code"] == "ValidationException"
    outcomes = []
    for depth in ("8", "2"):
        fake.script_pipeline_execution("train", property_files=TRAINED, paced=False)
        arn = sm.start_pipeline_execution(
            PipelineName="train", PipelineParameters=[{"Name": "depth", "Value": depth}]
        )["PipelineExecutionArn"]
        outcomes.append((_status(sm, arn), _steps(sm, arn)[-1]))
    assert outcomes == [
        ("Succeeded", ("publish", "Succeeded")),
        ("Failed", ("evaluate-gate-failed", "Failed")),
    ]


@pytest.mark.parametrize(
    ("kind", "default", "value", "taken"),
    [
        ("Integer", 4, "12", True),
        ("Integer", 4, "-3", True),
        ("Integer", 4, "+3", False),
        ("Integer", 4, " 3", False),
        ("Integer", 4, "1_000", False),
        ("Integer", 4, "\u0661\u0662", False),  # Arabic-Indic digits
        ("Integer", 4, "3.0", False),
        ("Float", 0.5, "0.25", True),
        ("Float", 0.5, "-2", True),
        ("Float", 0.5, "1e-05", True),
        ("Float", 0.5, "1e+20", True),
        ("Float", 0.5, "nan", False),
        ("Float", 0.5, "inf", False),
        ("Float", 0.5, "1e999", False),
        ("Float", 0.5, "1_0.5", False),
        ("Float", 0.5, " 1.5", False),
        ("Float", 0.5, "+1.5", False),
        ("Boolean", False, "true", True),
        ("Boolean", False, "True", True),  # str(True), as the SageMaker Python SDK sends it
        ("Boolean", False, "yes", False),
        ("Boolean", False, "1", False),
        ("String", "a", " any text ", True),
    ],
)
def test_a_parameter_value_is_taken_only_in_its_types_plain_form(
    sm: Any, kind: str, default: Any, value: str, taken: bool
) -> None:
    body = definition()
    body["Parameters"].append({"Name": "knob", "Type": kind, "DefaultValue": default})
    _create(sm, body)
    given = [{"Name": "knob", "Value": value}]
    if taken:
        sm.start_pipeline_execution(PipelineName="train", PipelineParameters=given)
        return
    with pytest.raises(ClientError) as info:
        sm.start_pipeline_execution(PipelineName="train", PipelineParameters=given)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert f"is of type {kind}" in info.value.response["Error"]["Message"]


def test_a_register_model_step_creates_a_version_in_its_group(sm: Any, fake: SageMakerFake) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    body = definition()
    body["Steps"].append(
        {
            "Name": "register",
            "Type": "RegisterModel",
            "DependsOn": ["publish"],
            "Arguments": {
                "ModelPackageGroupName": "churn",
                "InferenceSpecification": {
                    "Containers": [
                        {
                            "Image": "img",
                            "ModelDataUrl": {
                                "Std:JsonGet": {"PropertyFile": _outputs("train"), "Path": "model"}
                            },
                        }
                    ],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                "ModelApprovalStatus": "PendingManualApproval",
            },
        }
    )
    _create(sm, body)
    fake.script_pipeline_execution(
        "train", property_files={**TRAINED, "evaluate": {"outputs": {"passed": True}}}, paced=False
    )
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    assert _status(sm, arn) == "Succeeded"
    register = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][
        0
    ]
    package = sm.describe_model_package(
        ModelPackageName=register["Metadata"]["RegisterModel"]["Arn"]
    )
    assert package["ModelPackageVersion"] == 1
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == (
        "s3://models/m.tar.gz"
    )


def test_a_register_model_step_into_a_missing_group_fails(sm: Any, fake: SageMakerFake) -> None:
    body = {
        "Version": "2020-12-01",
        "Steps": [
            {
                "Name": "register",
                "Type": "RegisterModel",
                "Arguments": {
                    "ModelPackageGroupName": "nowhere",
                    "InferenceSpecification": {"Containers": [{"Image": "img"}]},
                },
            }
        ],
    }
    _create(sm, body, name="register")
    arn = sm.start_pipeline_execution(PipelineName="register")["PipelineExecutionArn"]
    assert _status(sm, arn) == "Failed"
    [step] = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert "nowhere" in step["FailureReason"]


def test_unknown_executions_are_resource_not_found(sm: Any) -> None:
    _create(sm, definition())
    missing = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/train/execution/nope"
    for call in (sm.describe_pipeline_execution, sm.list_pipeline_execution_steps):
        with pytest.raises(ClientError) as info:
            call(PipelineExecutionArn=missing)
        assert info.value.response["Error"]["Code"] == "ResourceNotFound"


def test_steps_are_listed_a_page_at_a_time(sm: Any, fake: SageMakerFake) -> None:
    _create(sm, definition())
    fake.script_pipeline_execution(
        "train", property_files={**TRAINED, "evaluate": {"outputs": {"passed": True}}}, paced=False
    )
    arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    pages = sm.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=arn, PaginationConfig={"PageSize": 3}
    )
    assert [len(p["PipelineExecutionSteps"]) for p in pages] == [3, 1]


def test_executions_run_through_the_server_too() -> None:
    with sagemaker_server() as server:
        sm = make_client("sagemaker", endpoint_url=server.endpoint_url)
        make_client("s3", endpoint_url=server.endpoint_url).create_bucket(Bucket=BUCKET)
        _create(sm, deepcopy(definition()))
        server.fake.script_pipeline_execution(
            "train", property_files={**TRAINED, "evaluate": {"outputs": {"passed": False}}}
        )
        arn = sm.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
        statuses = [_status(sm, arn) for _ in range(4)]
        assert statuses == ["Executing", "Executing", "Executing", "Failed"]
        assert _steps(sm, arn)[-1] == ("evaluate-gate-failed", "Failed")
