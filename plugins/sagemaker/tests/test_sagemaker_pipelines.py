"""Pipelines on SageMaker: a PipelineSpec with wired inputs and gates compiled to a SageMaker
Pipelines definition, run through the mocked cloud with scripted outcomes, read back step by step
and stopped."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client
from mintaka_conformance.fakes.sagemaker.pipeline_definition import parse_definition
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.pipelines import OUTPUT_DIR, OUTPUTS_FILE, REGISTER_ENTRYPOINT
from sagemaker_testkit import BUCKET, SETTINGS, Calls, sagemaker_platform

from mintaka import NotFound, Platform, ValidationError
from mintaka.artifacts import manifest_of
from mintaka.domain.lineage import NodeKind
from mintaka.domain.pipelines import GateKind, PipelineSpec, PipelineStatus, StepSpec
from mintaka.pipelines import step as step_runner


def retrain() -> PipelineSpec:
    """validate (a data gate) -> fit -> evaluate (an evaluation gate) -> publish."""
    return PipelineSpec(
        name="retrain",
        parameters={"data_uri": "s3://data/train.csv", "max_depth": 4, "min_auc": 0.8},
        steps=[
            StepSpec(
                name="validate",
                entrypoint="pkg.steps:validate",
                inputs={"data_uri": "params.data_uri"},
                gate=GateKind.DATA_VALIDATION,
            ),
            StepSpec(
                name="fit",
                entrypoint="pkg.steps:fit",
                inputs={"data_uri": "params.data_uri", "max_depth": "params.max_depth"},
                depends_on=["validate"],
            ),
            StepSpec(
                name="evaluate",
                entrypoint="pkg.steps:evaluate",
                inputs={"model_uri": "fit.model_uri", "min_auc": "params.min_auc"},
                gate=GateKind.EVALUATION,
            ),
            StepSpec(
                name="publish",
                entrypoint="pkg.steps:publish",
                inputs={"model_uri": "fit.model_uri"},
                depends_on=["evaluate"],
            ),
        ],
    )


def passing(auc: float = 0.91) -> dict[str, dict[str, Any]]:
    """What the steps' outputs.json files hold in a run whose gates pass."""
    return {
        "validate": {"outputs": {"passed": True, "checks": []}},
        "fit": {"outputs": {"model_uri": "s3://models/retrain/model.tar.gz"}},
        "evaluate": {
            "outputs": {
                "passed": auc >= 0.8,
                "checks": [{"name": "auc", "passed": auc >= 0.8, "value": auc, "limit": 0.8}],
            }
        },
    }


def _by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            for inner in (step.get("Arguments") or {}).get(branch, []):
                found[inner["Name"]] = inner
    return found


# -- compile --------------------------------------------------------------------------------------


def test_steps_gates_and_parameters_compile_to_a_definition(cloud: SageMakerBackend) -> None:
    native = cloud.compile(retrain())
    definition = native.definition
    assert definition["Parameters"] == [
        {"Name": "data_uri", "Type": "String", "DefaultValue": "s3://data/train.csv"},
        {"Name": "max_depth", "Type": "Integer", "DefaultValue": 4},
        {"Name": "min_auc", "Type": "Float", "DefaultValue": 0.8},
    ]
    steps = _by_name(definition)
    assert [(s["Name"], s["Type"], s.get("DependsOn")) for s in definition["Steps"]] == [
        ("validate", "Processing", []),
        ("validate-gate", "Condition", ["validate"]),
        ("fit", "Processing", ["validate-gate"]),
        ("evaluate", "Processing", ["fit"]),
        ("evaluate-gate", "Condition", ["evaluate"]),
        ("publish", "Processing", ["evaluate-gate", "fit"]),
    ]
    gate = steps["evaluate-gate"]["Arguments"]
    assert gate["Conditions"] == [
        {
            "Type": "Equals",
            "LeftValue": {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": "Steps.evaluate.PropertyFiles.outputs"},
                    "Path": "passed",
                }
            },
            "RightValue": True,
        }
    ]
    [fail] = gate["ElseSteps"]
    assert (fail["Name"], fail["Type"]) == ("evaluate-gate-failed", "Fail")
    assert "gate 'evaluate' (evaluation) did not pass" in fail["Arguments"]["ErrorMessage"]
    arguments = steps["evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[0] == "pkg.steps:evaluate"
    wired = dict(zip(arguments[11::2], arguments[12::2], strict=True))
    assert wired == {
        "--model_uri": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.fit.PropertyFiles.outputs"},
                "Path": "model_uri",
            }
        },
        "--min_auc": {"Get": "Parameters.min_auc"},
    }
    assert steps["fit"]["PropertyFiles"] == [
        {"PropertyFileName": "outputs", "OutputName": "outputs", "FilePath": "outputs.json"}
    ]


def test_the_compiled_definition_fits_the_published_schema(cloud: SageMakerBackend) -> None:
    parsed = parse_definition(json.dumps(cloud.compile(retrain()).definition))
    assert parsed.upstream(parsed.steps["publish"]) == {"evaluate-gate", "fit"}
    assert parsed.steps["evaluate-gate-failed"].branch == ("evaluate-gate", False)


def test_a_register_model_step_compiles_to_register_model(cloud: SageMakerBackend) -> None:
    spec = retrain()
    spec.steps.append(
        StepSpec(
            name="register",
            entrypoint=REGISTER_ENTRYPOINT,
            inputs={"name": "params.model", "model": "fit.model_dir"},
            depends_on=["publish"],
        )
    )
    spec.parameters["model"] = "churn"
    step = _by_name(cloud.compile(spec).definition)["register"]
    assert step["Type"] == "RegisterModel"
    assert step["DependsOn"] == ["publish", "fit"]
    arguments = step["Arguments"]
    assert arguments["ModelPackageGroupName"] == {"Get": "Parameters.model"}
    assert arguments["ModelApprovalStatus"] == "PendingManualApproval"
    container = arguments["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                {"Get": "Steps.fit.ProcessingOutputConfig.Outputs['outputs'].S3Output.S3Uri"},
                "model.tar.gz",
            ],
        }
    }


@pytest.mark.parametrize(
    ("step", "complaint"),
    [
        (
            StepSpec(name="register", entrypoint=REGISTER_ENTRYPOINT, inputs={"name": "params.p"}),
            "needs its 'model' input wired",
        ),
        (StepSpec(name="s", entrypoint="pkg:s", inputs={"step": "params.p"}), "step runner"),
        (
            StepSpec(
                name="data",
                entrypoint="mintaka.pipelines.builtins:register_dataset",
                inputs={"name": "params.p"},
            ),
            "acts on Mintaka's control plane",
        ),
    ],
)
def test_steps_the_definition_cannot_express_are_refused(
    cloud: SageMakerBackend, step: StepSpec, complaint: str
) -> None:
    spec = PipelineSpec(name="odd", parameters={"p": "v"}, steps=[step])
    with pytest.raises(ValidationError, match=complaint):
        cloud.compile(spec)


def test_a_long_gate_name_stays_within_sagemakers_limit(cloud: SageMakerBackend) -> None:
    long = "g" + "a" * 62
    spec = PipelineSpec(
        name="long",
        steps=[StepSpec(name=long, entrypoint="pkg:g", gate=GateKind.DEPLOYMENT)],
    )
    names = list(_by_name(cloud.compile(spec).definition))
    assert len(names) == 3
    assert all(len(n) <= 64 for n in names)
    assert len(set(names)) == 3


# -- run through the mocked cloud -----------------------------------------------------------------


def test_a_run_whose_gates_pass_succeeds_step_by_step(
    cloud: SageMakerBackend, fake: SageMakerFake
) -> None:
    fake.script_pipeline_execution("retrain", property_files=passing())
    run = cloud.submit(cloud.compile(retrain()), {"max_depth": 6})
    assert run.status is PipelineStatus.RUNNING
    assert run.parameters["max_depth"] == "6"
    seen = [cloud.get_pipeline_run(run.id) for _ in range(6)]
    assert [r.status for r in seen][-1] is PipelineStatus.SUCCEEDED
    assert PipelineStatus.RUNNING in {r.status for r in seen[:-1]}
    done = seen[-1]
    assert [(s.name, s.status) for s in done.steps] == [
        ("validate", PipelineStatus.SUCCEEDED),
        ("fit", PipelineStatus.SUCCEEDED),
        ("evaluate", PipelineStatus.SUCCEEDED),
        ("publish", PipelineStatus.SUCCEEDED),
    ]
    steps = {s.name: s for s in done.steps}
    assert steps["fit"].outputs == {"model_uri": "s3://models/retrain/model.tar.gz"}
    evaluate = steps["evaluate"].gate
    assert evaluate is not None
    assert evaluate.passed
    assert [(c.name, c.value) for c in evaluate.checks] == [("auc", 0.91)]
    assert done.failure_reason is None
    assert done.ended_at is not None
    assert done.backend_ids["step:fit"].startswith("arn:aws:sagemaker:")


def test_a_failed_gate_fails_the_run_with_the_fail_steps_message(
    cloud: SageMakerBackend, fake: SageMakerFake
) -> None:
    fake.script_pipeline_execution("retrain", property_files=passing(auc=0.62), paced=False)
    run = cloud.submit(cloud.compile(retrain()), {})
    assert run.status is PipelineStatus.FAILED
    assert [(s.name, s.status) for s in run.steps] == [
        ("validate", PipelineStatus.SUCCEEDED),
        ("fit", PipelineStatus.SUCCEEDED),
        ("evaluate", PipelineStatus.FAILED),
    ]
    evaluate = run.steps[-1]
    assert evaluate.failure_reason is not None
    assert "gate 'evaluate' (evaluation) did not pass" in evaluate.failure_reason
    assert evaluate.gate is not None
    assert not evaluate.gate.passed
    assert [c.describe() for c in evaluate.gate.failures()] == ["auc: 0.62 (limit 0.8)"]
    assert run.failure_reason == evaluate.failure_reason


def test_a_failing_step_reports_its_reason(cloud: SageMakerBackend, fake: SageMakerFake) -> None:
    fake.script_pipeline_execution(
        "retrain", property_files=passing(), failures={"fit": "AlgorithmError: OOM"}, paced=False
    )
    run = cloud.submit(cloud.compile(retrain()), {})
    assert run.status is PipelineStatus.FAILED
    assert (run.steps[-1].name, run.steps[-1].failure_reason) == ("fit", "AlgorithmError: OOM")
    assert run.failure_reason == "Step failure: One or multiple steps failed."


def test_the_command_a_processing_step_runs_fails_a_metric_that_is_not_a_number(
    cloud: SageMakerBackend, tmp_path: Path
) -> None:
    """The Processing step's container runs the step runner the local executor runs: a metric
    that is NaN fails the job with the error the local executor fails the step with, rather than
    a NaN in ``outputs.json`` that a later step or gate reads."""
    spec = PipelineSpec(
        name="measured",
        steps=[StepSpec(name="measure", entrypoint="sagemaker_testkit:measures_nan")],
    )
    [step] = cloud.compile(spec).definition["Steps"]
    app = step["Arguments"]["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python", "-m", "mintaka.pipelines.step"]
    local = {
        f"{OUTPUT_DIR}/{OUTPUTS_FILE}": str(tmp_path / OUTPUTS_FILE),
        "/opt/ml/processing/work": str(tmp_path / "work"),
    }
    arguments = [
        "execution-1" if isinstance(a, dict) else local.get(a, a) for a in app["ContainerArguments"]
    ]
    with pytest.raises(
        ValidationError,
        match=r"^step 'measure' reported metrics that are not finite numbers .*: \['auc'\]$",
    ):
        step_runner.main(arguments)


def test_a_running_run_is_stopped_and_a_finished_one_left_alone(
    cloud: SageMakerBackend, fake: SageMakerFake
) -> None:
    fake.script_pipeline_execution("retrain", property_files=passing())
    run = cloud.submit(cloud.compile(retrain()), {})
    cloud.stop_pipeline_run(run.id)
    stopped = cloud.get_pipeline_run(run.id)
    assert stopped.status is PipelineStatus.STOPPED
    assert stopped.steps[-1].status is PipelineStatus.STOPPED
    cloud.stop_pipeline_run(run.id)
    assert cloud.get_pipeline_run(run.id).status is PipelineStatus.STOPPED


def test_a_slower_paced_run_ends_a_step_every_few_reads(
    cloud: SageMakerBackend, fake: SageMakerFake, sm: Any
) -> None:
    fake.script_pipeline_execution("retrain", property_files=passing(), reads_per_step=3)
    run = cloud.submit(cloud.compile(retrain()), {})  # the submit reads it once
    arn = run.id
    finished = []
    for _ in range(11):
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        finished.append(sum(1 for s in steps if s["StepStatus"] == "Succeeded"))
        sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert finished == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="reads_per_step"):
        fake.script_pipeline_execution("retrain", reads_per_step=0)


def retrain_and_register(sm: Any, fake: SageMakerFake) -> PipelineSpec:
    """``retrain`` with a last step registering the fitted model in group ``churn`` (made here),
    scripted to pass."""
    sm.create_model_package_group(ModelPackageGroupName="churn")
    spec = retrain()
    spec.parameters["model"] = "churn"
    spec.steps.append(
        StepSpec(
            name="register",
            entrypoint=REGISTER_ENTRYPOINT,
            inputs={"name": "params.model", "model": "fit.model_dir"},
            depends_on=["publish"],
        )
    )
    fake.script_pipeline_execution("retrain", property_files=passing(), paced=False)
    return spec


def test_a_registration_step_creates_a_version_awaiting_approval(
    cloud: SageMakerBackend, fake: SageMakerFake, sm: Any
) -> None:
    spec = retrain_and_register(sm, fake)
    run = cloud.submit(cloud.compile(spec), {})
    assert run.status is PipelineStatus.SUCCEEDED
    register = run.steps[-1]
    assert register.name == "register"
    package = sm.describe_model_package(ModelPackageName=register.outputs["model_package_arn"])
    assert package["ModelPackageGroupName"] == "churn"
    execution = run.id.rsplit("/", 1)[-1]
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == (
        f"s3://{BUCKET}/mintaka/pipelines/retrain/{execution}/fit/model.tar.gz"
    )
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"] == {
        "mintaka_pipeline": "retrain",
        "mintaka_step": "register",
    }


def test_a_second_submit_updates_the_pipeline(cloud: SageMakerBackend, sm: Any) -> None:
    first = retrain()
    cloud.submit(cloud.compile(first), {})
    second = retrain()
    second.parameters["max_depth"] = 9
    cloud.submit(cloud.compile(second), {})
    stored = json.loads(sm.describe_pipeline(PipelineName="retrain")["PipelineDefinition"])
    assert stored["Parameters"][1]["DefaultValue"] == 9
    assert (
        len(sm.list_pipeline_executions(PipelineName="retrain")["PipelineExecutionSummaries"]) == 2
    )


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"max_depth": "deep"}, "'max_depth' is an Integer"),
        *(
            ({"max_depth": text}, "'max_depth' is an Integer")
            for text in ("1_000", " 5 ", "+5", "\u0665", "5.0", "")
        ),
        ({"min_auc": "high"}, "'min_auc' is a Float"),
        *(
            ({"min_auc": text}, "'min_auc' is a Float")
            for text in ("nan", "inf", "-Infinity", "1e999", "0_5", " 0.5", "+0.5", "0x1p-2")
        ),
        ({"min_auc": float("nan")}, "'min_auc' is a Float"),
        ({"refit": "maybe"}, "'refit' is a Boolean"),
        ({"learning_rate": "0.1"}, "'learning_rate'"),
    ],
)
def test_a_bad_parameter_is_refused_before_the_pipeline_changes(
    cloud: SageMakerBackend, sm: Any, parameters: dict[str, str], named: str
) -> None:
    first = retrain()
    first.parameters["refit"] = True
    cloud.submit(cloud.compile(first), {})
    before = sm.describe_pipeline(PipelineName="retrain")["PipelineDefinition"]
    second = retrain()
    second.parameters["refit"] = True
    second.parameters["max_depth"] = 9
    with Calls(cloud) as sent, pytest.raises(ValidationError, match=named):
        cloud.submit(cloud.compile(second), parameters)
    assert sent == []
    assert sm.describe_pipeline(PipelineName="retrain")["PipelineDefinition"] == before
    assert (
        len(sm.list_pipeline_executions(PipelineName="retrain")["PipelineExecutionSummaries"]) == 1
    )


@pytest.mark.parametrize(
    ("max_depth", "min_auc"),
    [("-3", "0.5"), ("007", ".5"), (12, 1e-05), ("4", "2."), ("4", "1E+3"), ("4", "-7")],
)
def test_plainly_written_numbers_are_sent_as_given(
    cloud: SageMakerBackend, max_depth: str | int, min_auc: str | float
) -> None:
    run = cloud.submit(cloud.compile(retrain()), {"max_depth": max_depth, "min_auc": min_auc})
    assert (run.parameters["max_depth"], run.parameters["min_auc"]) == (
        str(max_depth),
        str(min_auc),
    )


def test_unknown_runs_are_not_found(cloud: SageMakerBackend) -> None:
    cloud.submit(cloud.compile(retrain()), {})
    missing = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/retrain/execution/nope"
    for call in (cloud.get_pipeline_run, cloud.stop_pipeline_run):
        with pytest.raises(NotFound):
            call(missing)


def test_platform_pipelines_submit_runs_the_spec_on_sagemaker(
    platform: Platform, cloud: SageMakerBackend, fake: SageMakerFake
) -> None:
    spec = retrain()
    spec.parameters["refit"] = True
    fake.script_pipeline_execution("retrain", property_files=passing(), paced=False)
    run = platform.pipelines.submit(spec, {"max_depth": 6, "refit": False})
    assert run.backend == "sagemaker"
    assert run.status is PipelineStatus.SUCCEEDED
    assert run.parameters["refit"] == "false"
    assert [e.subject for e in platform.audit.events() if e.action == "pipeline.submit"] == [run.id]
    assert cloud.get_pipeline_run(run.id).steps[-1].name == "publish"


def test_a_version_a_run_registered_is_adopted_when_its_status_is_read(
    platform: Platform, fake: SageMakerFake, sm: Any, tmp_path: Path
) -> None:
    spec = retrain_and_register(sm, fake)
    run = platform.pipelines.submit(spec, {})
    register = run.steps[-1].outputs
    assert (register["registered_model"], register["registered_version"]) == ("churn", 1)

    # The fit step's model.tar.gz is not in S3 yet: the status is still reported.
    early = platform.pipelines.status(run.id)
    assert early.run.status is PipelineStatus.SUCCEEDED
    assert early.adopted == ()
    assert "churn:1" in early.problems[0]

    weights = b"fitted-by-sagemaker"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(weights)
        tar.addfile(info, io.BytesIO(weights))
    execution = run.id.rsplit("/", 1)[-1]
    make_client("s3").put_object(
        Bucket=BUCKET,
        Key=f"mintaka/pipelines/retrain/{execution}/fit/model.tar.gz",
        Body=archive.getvalue(),
    )
    (tmp_path / "model.joblib").write_bytes(weights)

    found = platform.pipelines.status(run.id)
    [version] = found.adopted
    assert (version.ref, version.artifact_digest) == (
        "churn:1",
        manifest_of(tmp_path / "model.joblib").digest,
    )
    upstream = platform.lineage_upstream("churn:1")
    assert [n.key for n in upstream.nodes if n.kind is NodeKind.PIPELINE_RUN] == [run.id]
    assert platform.pipelines.status(run.id).adopted == ()  # once
    assert [d.subject for d in platform.sync() if d.subject.startswith("churn")] == []


def test_a_registration_goes_to_the_group_model_names_maps_the_model_to(
    fake: SageMakerFake, sm: Any, tmp_path: Path
) -> None:
    """A pipeline cannot look a name up, so the RegisterModel step reads a hidden parameter
    that submit sets to the mapped group; the run reads back under the Mintaka name."""
    spec = retrain_and_register(sm, fake)
    spec.parameters["model"] = "churn-model"
    sm.create_model_package_group(ModelPackageGroupName="ChurnModel")
    settings = {**SETTINGS, "model_names": {"churn-model": "ChurnModel"}}
    with sagemaker_platform(tmp_path / "home", settings) as platform:
        cloud = platform.backend
        assert isinstance(cloud, SageMakerBackend)
        native = cloud.compile(spec)
        assert parse_definition(json.dumps(native.definition)) is not None
        run = cloud.submit(native, {"model": "churn-model"})
        assert run.status is PipelineStatus.SUCCEEDED
        register = run.steps[-1]
        package = sm.describe_model_package(ModelPackageName=register.outputs["model_package_arn"])
        assert package["ModelPackageGroupName"] == "ChurnModel"
        assert register.outputs["registered_model"] == "churn-model"
        assert run.parameters["model"] == "churn-model"
        assert not any(name.startswith("MintakaGroupOf") for name in run.parameters)
        groups = sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
        assert "churn-model" not in {g["ModelPackageGroupName"] for g in groups}


# -- idempotency tokens ---------------------------------------------------------------------------


@contextmanager
def tokens(cloud: SageMakerBackend) -> Iterator[list[tuple[str, str]]]:
    """(operation, ClientRequestToken) of each SageMaker request ``cloud`` sends, as sent: after
    botocore filled in any token the caller left out."""
    sent: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        if "ClientRequestToken" in body:
            sent.append((model.name, body["ClientRequestToken"]))

    client = cloud.clients.get("sagemaker")
    client.meta.events.register("before-call.sagemaker", record, unique_id="tokens-test")
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-call.sagemaker", unique_id="tokens-test")


def _carries_128_bits(token: str) -> bool:
    """Within IdempotencyToken's 32-128 characters, with 32 or more hex digits that are not a
    shorter digest repeated."""
    digits = token.removeprefix("mk-")
    repeated = any(digits == digits[:n] * (len(digits) // n) for n in (8, 16) if len(digits) > n)
    return 32 <= len(token) <= 128 and len(digits) >= 32 and not repeated


def test_create_and_stop_tokens_carry_128_bits_of_the_request(
    cloud: SageMakerBackend, fake: SageMakerFake
) -> None:
    fake.script_pipeline_execution("retrain", property_files=passing())
    with tokens(cloud) as sent:
        run = cloud.submit(cloud.compile(retrain()), {})
        cloud.stop_pipeline_run(run.id)
    made = dict(sent)
    assert _carries_128_bits(made["CreatePipeline"])
    assert _carries_128_bits(made["StopPipelineExecution"])


def test_a_create_token_is_stable_for_one_request_and_differs_for_another(
    cloud: SageMakerBackend, tmp_path: Path
) -> None:
    """The same pipeline created again sends the token it sent before (SageMaker answers a
    retry with what the first call made); another role or definition sends another."""
    native = cloud.compile(retrain())
    changed = retrain()
    changed.parameters["max_depth"] = 9
    with tokens(cloud) as sent:
        cloud.submit(native, {})
        cloud.submit(native, {})
        cloud.submit(cloud.compile(changed), {})
    created = [token for operation, token in sent if operation == "CreatePipeline"]
    assert created[0] == created[1] != created[2]
    role = f"{SETTINGS['role_arn']}-other"
    with sagemaker_platform(tmp_path / "other", {**SETTINGS, "role_arn": role}) as platform:
        other = platform.backend
        assert isinstance(other, SageMakerBackend)
        with tokens(other) as sent_by_other:
            other.submit(native, {})
    assert [t for o, t in sent_by_other if o == "CreatePipeline"] != created[:1]
