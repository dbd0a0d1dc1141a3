"""Each gate of the credit pipeline failing, with the numbers that made it fail."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mintaka import GateFailed, IdFactory, ManualClock, Platform
from mintaka.demo import COSTS, write_dataset
from mintaka.demo_pipeline import FEATURES, credit_pipeline
from mintaka.domain.pipelines import GateCheck, PipelineRun, PipelineSpec, PipelineStatus
from mintaka.governance.policy import DEFAULT_POLICY

UP_TO_VALIDATION = ("ingest", "validate-data")
UP_TO_EVALUATION = (*UP_TO_VALIDATION, "train", "evaluate")
UP_TO_CHALLENGE = (*UP_TO_EVALUATION, "register", "challenge")


def partial(names: tuple[str, ...], **overrides: str | int | float | bool) -> PipelineSpec:
    full = credit_pipeline(**overrides)
    return PipelineSpec(
        name=full.name,
        parameters=full.parameters,
        steps=[
            s.model_copy(update={"depends_on": [d for d in s.depends_on if d in names]})
            for s in full.steps
            if s.name in names
        ],
    )


def rewrite(path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    rows = [change(dict(r)) for r in rows]
    columns = list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def failing(platform: Platform, spec: PipelineSpec) -> GateFailed:
    with pytest.raises(GateFailed) as raised:
        platform.pipelines.run(spec, isolation="inline")
    return raised.value


def checks(error: GateFailed) -> dict[str, tuple[object, object]]:
    return {c.name: (c.value, c.limit) for c in error.checks}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "credit.csv", rows=600)


def test_too_few_rows(platform: Platform, data: Path) -> None:
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(data), min_rows=1000))
    assert (error.gate, error.kind) == ("validate-data", "data_validation")
    assert checks(error) == {"rows": (600, 1000)}


def test_a_dataset_whose_path_holds_a_space_is_validated(
    platform: Platform, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    folder = tmp_path / "credit data"
    folder.mkdir()
    version = platform.register_dataset(
        "applications", write_dataset(folder / "applications 100%.csv", rows=600)
    )
    assert "%20" in version.uri
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    outcome = validate_data(DataValidationInputs(dataset_id=version.id, min_rows=600), context)
    assert outcome.passed, outcome.failures()
    assert outcome.rows == 600


def test_the_gate_refuses_a_dataset_whose_file_was_rewritten_since_it_was_registered(
    platform: Platform, tmp_path: Path
) -> None:
    from mintaka.errors import ValidationError
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    path = write_dataset(tmp_path / "applications.csv", rows=20)
    version = platform.register_dataset("applications", path)
    write_dataset(path, rows=600, seed=8)  # a newer file at the same path: another version
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    with pytest.raises(ValidationError, match=f"no longer holds dataset {version.id}"):
        validate_data(DataValidationInputs(dataset_id=version.id, min_rows=600), context)


def test_a_dataset_that_cannot_be_read_is_named_by_its_own_file_and_version(
    platform: Platform, tmp_path: Path
) -> None:
    from mintaka.errors import ValidationError
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    path = tmp_path / "applications.csv"
    path.write_bytes(b"x\n\xff\xfe\n")
    version = platform.register_dataset("applications", path, profile=False)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    with pytest.raises(ValidationError) as raised:
        validate_data(DataValidationInputs(dataset_id=version.id), context)
    message = str(raised.value)
    assert message.startswith(f"dataset {version.id}: {path} is not UTF-8 text"), message
    assert "mintaka-dataset-" not in message


def test_missing_values(platform: Platform, data: Path) -> None:
    rewrite(data, lambda r: {**r, "age": "" if r["tenure"].startswith("-") else r["age"]})
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(data), max_missing_rate=0.05))
    [(name, (value, limit))] = checks(error).items()
    assert name == "missing rate"
    assert limit == 0.05
    assert 0.4 < float(value) < 0.6  # type: ignore[arg-type]
    assert "worst column 'age'" in str(error)


def test_data_that_silently_changed_shape(platform: Platform, data: Path, tmp_path: Path) -> None:
    platform.pipelines.run(partial(UP_TO_VALIDATION, data=str(data)), isolation="inline")
    dropped = rewrite(
        write_dataset(tmp_path / "v2.csv", rows=600, seed=8),
        lambda r: {k: v for k, v in r.items() if k != "tenure"},
    )
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(dropped)))
    assert checks(error)["schema"] == (1, 0)
    assert "missing tenure" in str(error)


def test_a_unit_change_breaks_the_distribution_check(
    platform: Platform, data: Path, tmp_path: Path
) -> None:
    platform.pipelines.run(partial(UP_TO_VALIDATION, data=str(data)), isolation="inline")
    cents = rewrite(
        write_dataset(tmp_path / "v2.csv", rows=600, seed=8),
        lambda r: {**r, "income": str(float(r["income"]) * 1000)},
    )
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(cents)))
    value, limit = checks(error)["distribution (PSI)"]
    assert limit == 2.0
    assert float(value) > 2.0
    assert "worst feature 'income'" in str(error)


def test_each_version_is_held_to_the_one_before_it(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    rng = np.random.default_rng(11)
    versions = []
    for step in range(4):  # each version 0.5 sd on from the last: PSI about 0.27 per step
        path = tmp_path / f"v{step}.csv"
        path.write_text("x\n" + "\n".join(f"{v:.6f}" for v in rng.normal(0.5 * step, 1, 5000)))
        versions.append(platform.register_dataset("applications", path))
        clock.advance(minutes=1)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    for named in ("", "applications"):
        for previous, version in itertools.pairwise(versions):
            inputs = DataValidationInputs(dataset_id=version.id, reference=named, max_psi=0.5)
            outcome = validate_data(inputs, context)
            assert outcome.passed, outcome.failures()
            assert outcome.reference_dataset == previous.id


def test_the_profile_order_of_a_dataset_is_read_in_one_query(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from sqlalchemy import event

    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    versions = []
    for step in range(6):
        path = tmp_path / f"v{step}.csv"
        path.write_text("x\n" + "\n".join(str(v + step) for v in range(100)))
        versions.append(platform.register_dataset("applications", path))
        clock.advance(minutes=1)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(platform.store.engine, "before_cursor_execute", record)
    try:
        outcome = validate_data(DataValidationInputs(dataset_id=versions[-1].id), context)
    finally:
        event.remove(platform.store.engine, "before_cursor_execute", record)
    assert outcome.reference_dataset == versions[-2].id
    audit_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert sum("audit_events" in s for s in audit_reads) == 1


def test_a_version_without_a_profile_is_no_reference(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    rng = np.random.default_rng(5)
    versions = []
    for step, (shift, profiled) in enumerate(((0.0, True), (0.0, False), (3.0, True))):
        path = tmp_path / f"v{step}.csv"
        path.write_text("x\n" + "\n".join(f"{v:.6f}" for v in rng.normal(shift, 1, 2000)))
        versions.append(platform.register_dataset("applications", path, profile=profiled))
        clock.advance(minutes=1)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    inputs = DataValidationInputs(dataset_id=versions[2].id, max_psi=0.5)
    outcome = validate_data(inputs, context)
    assert outcome.reference_dataset == versions[0].id
    assert [c.name for c in outcome.failures()] == ["distribution (PSI)"]


def test_a_version_named_as_its_own_reference_passes_as_identical(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    path = tmp_path / "v.csv"
    path.write_text("x\n" + "\n".join(str(v) for v in range(100)))
    version = platform.register_dataset("applications", path)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    inputs = DataValidationInputs(dataset_id=version.id, reference=version.id)
    outcome = validate_data(inputs, context)
    assert outcome.passed, outcome.failures()
    assert outcome.reference_dataset == version.id
    found = {c.name: c for c in outcome.checks}
    assert f"identical to the reference {version.id}" in found["schema"].detail
    assert f"identical to the reference {version.id}" in found["distribution (PSI)"].detail


def test_a_pipeline_pinned_to_a_reference_retrains_on_the_unchanged_file(
    platform: Platform, data: Path
) -> None:
    first = platform.pipelines.run(partial(UP_TO_VALIDATION, data=str(data)), isolation="inline")
    [version] = platform.find_datasets("credit-applications")
    spec = partial(UP_TO_VALIDATION, data=str(data))
    pinned = spec.model_copy(
        update={
            "parameters": {**spec.parameters, "reference": version.id},
            "steps": [
                s.model_copy(update={"inputs": {**s.inputs, "reference": "params.reference"}})
                if s.name == "validate-data"
                else s
                for s in spec.steps
            ],
        }
    )
    again = platform.pipelines.run(pinned, isolation="inline")
    assert (first.status, again.status) == (PipelineStatus.SUCCEEDED, PipelineStatus.SUCCEEDED)
    validation = next(s for s in again.steps if s.name == "validate-data")
    assert validation.gate is not None
    [schema] = [c for c in validation.gate.checks if c.name == "schema"]
    assert f"identical to the reference {version.id}" in schema.detail


def test_a_reference_dataset_without_a_profiled_version_fails_the_gate(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    baseline, fresh = tmp_path / "baseline.csv", tmp_path / "fresh.csv"
    baseline.write_text("x\n" + "\n".join(str(v) for v in range(100)))
    fresh.write_text("y\n" + "\n".join(str(v * 1000) for v in range(100)))
    platform.register_dataset("baseline", baseline, profile=False)
    clock.advance(minutes=1)
    version = platform.register_dataset("applications", fresh)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    inputs = DataValidationInputs(dataset_id=version.id, reference="baseline")
    outcome = validate_data(inputs, context)
    assert not outcome.passed
    [failure] = outcome.failures()
    assert failure.name == "schema"
    assert "'baseline' has no version registered with a profile" in failure.detail


def test_a_version_without_a_profile_cannot_pass_the_gate(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    path = tmp_path / "v.csv"
    path.write_text("x\n" + "\n".join(str(v) for v in range(100)))
    version = platform.register_dataset("applications", path, profile=False)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    outcome = validate_data(DataValidationInputs(dataset_id=version.id), context)
    assert not outcome.passed
    [failure] = outcome.failures()
    assert failure.name == "schema"
    assert "without a profile" in failure.detail
    clock.advance(minutes=1)
    path.write_text("x\n" + "\n".join(str(v) for v in range(1, 101)))
    profiled = platform.register_dataset("applications", path)
    named = DataValidationInputs(dataset_id=profiled.id, reference=version.id)
    [failure] = validate_data(named, context).failures()
    assert failure.name == "schema"
    assert f"reference {version.id} was registered without a profile" in failure.detail


def test_a_feature_whose_drift_cannot_be_measured_fails_the_gate(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, 500)
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_text("x,y\n" + "\n".join(f"{v:.6f},{v:.6f}" for v in values))
    second.write_text("x,y\n" + "\n".join(f"{v:.6f}," for v in values))
    platform.register_dataset("applications", first)
    clock.advance(minutes=1)
    version = platform.register_dataset("applications", second)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    inputs = DataValidationInputs(dataset_id=version.id, max_missing_rate=1.0)
    outcome = validate_data(inputs, context)
    found = {c.name: c for c in outcome.checks}
    assert not outcome.passed
    assert found["distribution (PSI)"].passed
    unmeasured = found["distribution measured"]
    assert (unmeasured.passed, unmeasured.value, unmeasured.limit) == (False, 1, 0)
    assert "'y'" in (unmeasured.detail or "")


def test_an_unfair_training_set(platform: Platform, data: Path) -> None:
    rewrite(data, lambda r: {**r, "default": "0" if r["segment"] == "north" else r["default"]})
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(data)))
    value, limit = checks(error)["training-set fairness"]
    assert (value, limit) == (0.0, 0.8)
    assert "north=0.000" in str(error)


def test_a_training_set_of_one_group_is_not_passed_as_fair(platform: Platform, data: Path) -> None:
    """One group of the protected attribute has no label rate to compare with: the fairness
    check cannot be measured, which is no pass."""
    rewrite(data, lambda r: {**r, "segment": "north"})
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(data)))
    assert checks(error)["training-set fairness"] == (1, 2)
    [check] = [c for c in error.checks if c.name == "training-set fairness"]
    assert check.detail == (
        "only one group of the attribute 'segment' is in the data ('north'): fairness compares "
        "two groups at least, so it cannot be measured"
    )


def test_evaluation_thresholds_of_the_pipeline(platform: Platform, data: Path) -> None:
    error = failing(
        platform,
        partial(UP_TO_EVALUATION, data=str(data), min_auc=0.99, max_calibration_error=0.001),
    )
    assert (error.gate, error.kind) == ("evaluate", "evaluation")
    found = checks(error)
    assert set(found) == {"auc (min)", "calibration_error (max)"}
    assert found["auc (min)"][1] == 0.99
    assert 0.7 < float(found["auc (min)"][0]) < 0.99
    assert found["calibration_error (max)"][1] == 0.001


def test_an_auc_the_holdout_cannot_measure_is_not_measured_rather_than_zero(
    platform: Platform, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.rollout import challenger

    monkeypatch.setattr(challenger, "auc", lambda labels, scores: None)  # a one-class holdout
    error = failing(platform, partial(UP_TO_EVALUATION, data=str(data), min_auc=0.7))
    [check] = [c for c in error.checks if c.name.startswith("auc")]
    assert (check.name, check.value, check.detail) == ("auc", None, "not measured")


def test_the_evaluation_gate_computes_calibration_as_the_monitors_do(
    platform: Platform, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One definition of ECE (bins, edges, empty bins): a gate and a monitor agree on a model."""
    from mintaka.monitoring import metrics

    seen: list[float] = []
    original = metrics.expected_calibration_error

    def recorded(y_true, y_prob, **options):  # type: ignore[no-untyped-def]
        seen.append(original(y_true, y_prob, **options))
        return seen[-1]

    monkeypatch.setattr(metrics, "expected_calibration_error", recorded)
    error = failing(
        platform, partial(UP_TO_EVALUATION, data=str(data), max_calibration_error=0.001)
    )
    assert len(seen) == 1
    assert checks(error)["calibration_error (max)"][0] == pytest.approx(seen[0], abs=1e-5)


def test_evaluation_thresholds_of_the_policy_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Path
) -> None:
    monkeypatch.setenv("MINTAKA_POLICY", str(DEFAULT_POLICY))  # high tier: auc >= 0.7
    # labels that no feature explains: the last digit of an income's decimals
    rewrite(data, lambda r: {**r, "default": str(int(r["income"][-1]) % 2)})
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(5)) as plat:
        error = failing(
            plat, partial(UP_TO_EVALUATION, data=str(data), min_auc=0.0, min_group_ratio=0.0)
        )
    value, limit = checks(error)["auc (min)"]
    assert limit == 0.7
    assert float(value) < 0.7


def test_a_pipeline_given_a_lower_tier_is_held_to_the_registered_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Path
) -> None:
    monkeypatch.setenv("MINTAKA_POLICY", str(DEFAULT_POLICY))  # high tier: auc >= 0.7
    rewrite(data, lambda r: {**r, "default": str(int(r["income"][-1]) % 2)})
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(5)) as plat:
        plat.create_model("credit-default", tier="high")
        error = failing(
            plat,
            partial(UP_TO_EVALUATION, data=str(data), tier="low", min_auc=0.0, min_group_ratio=0.0),
        )
    value, limit = checks(error)["auc (min)"]
    assert limit == 0.7
    assert float(value) < 0.7  # type: ignore[arg-type]


@pytest.fixture
def costed(platform: Platform) -> Platform:
    """The platform with the high-tier model the pipeline registers, and its business metric."""
    platform.create_model("credit-default", tier="high")
    platform.serving.declare_business_metric("credit-default", COSTS)
    return platform


def cost_checks(run: PipelineRun, step: str = "evaluate") -> list[GateCheck]:
    """The business cost checks of the gate ``step`` of ``run``."""
    gate = next(s for s in run.steps if s.name == step).gate
    assert gate is not None
    return [c for c in gate.checks if c.name.startswith("expected_cost")]


def test_the_business_cost_threshold(costed: Platform, data: Path) -> None:
    error = failing(costed, partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=0.01))
    value, limit = checks(error)["expected_cost (max)"]
    assert limit == 0.01
    assert float(value) > 0.01


def test_a_pipeline_threshold_never_loosens_the_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        DEFAULT_POLICY.read_text().replace(
            "[tiers.high.evaluation]\n",
            "[tiers.high.evaluation]\n"
            "calibration_error = { max = 0.001 }\nexpected_cost = { max = 0.01 }\n",
            1,
        )
    )
    monkeypatch.setenv("MINTAKA_POLICY", str(policy))
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(5)) as plat:
        plat.create_model("credit-default", tier="high")
        plat.serving.declare_business_metric("credit-default", COSTS)
        error = failing(
            plat,
            partial(
                UP_TO_EVALUATION, data=str(data), max_calibration_error=0.5, max_expected_cost=1e6
            ),
        )
    found = checks(error)
    assert found["calibration_error (max)"][1] == 0.001  # the tier's, not the pipeline's 0.5
    assert found["expected_cost (max)"][1] == 0.01  # the tier's, not the pipeline's 1e6
    assert float(found["expected_cost (max)"][0]) > 0.01  # type: ignore[arg-type]


@pytest.fixture
def champion(costed: Platform, data: Path) -> Platform:
    run = costed.pipelines.run(partial(UP_TO_CHALLENGE, data=str(data)), isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    assert run.steps[-1].gate is not None
    assert run.steps[-1].gate.checks[0].detail == "no champion yet"
    costed.set_alias("credit-default", "champion", 1)
    return costed


def test_a_challenger_that_does_not_beat_the_champion(champion: Platform, tmp_path: Path) -> None:
    # the same kind of data, but a challenger that may only look at one weak feature
    fresh = write_dataset(tmp_path / "fresh.csv", rows=600, seed=9)
    error = failing(
        champion,
        partial(
            UP_TO_CHALLENGE,
            data=str(fresh),
            features="age",
            min_auc=0.0,
            max_calibration_error=1.0,
            min_group_ratio=0.0,
        ),
    )
    assert (error.gate, error.kind) == ("challenge", "evaluation")
    [check] = error.checks
    assert check.name == "expected cost vs champion"
    assert float(check.value) >= float(check.limit)  # type: ignore[arg-type]
    assert "v2 against v1" in check.detail
    assert champion.get_model_version("credit-default", alias="champion").version == 1


def test_an_auc_the_comparison_cannot_measure_is_shown_as_not_measured(
    champion: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.serving import ops

    monkeypatch.setattr(ops, "auc", lambda labels, scores: None)  # a one-class holdout
    fresh = write_dataset(tmp_path / "fresh.csv", rows=600, seed=9)
    error = failing(
        champion,
        partial(UP_TO_CHALLENGE, data=str(fresh), features="age", min_auc=0.0, min_group_ratio=0.0),
    )
    [check] = error.checks
    assert "AUC not measured vs not measured" in check.detail
    assert "0.000" not in check.detail


def test_a_canary_that_cannot_verify_the_sla_rolls_back(champion: Platform, tmp_path: Path) -> None:
    champion.serving.create_endpoint("credit-scoring", "credit-default@champion")
    better = write_dataset(tmp_path / "v2.csv", rows=600, seed=10)
    names = (*UP_TO_EVALUATION, "register", "approvals", "canary")
    with pytest.raises(GateFailed) as raised:
        champion.pipelines.run(
            partial(names, data=str(better), canary_steps="25,100"),
            isolation="inline",
            wait=lambda seconds: None,  # no traffic arrives during the bake
        )
    error = raised.value
    assert (error.gate, error.kind) == ("canary", "deployment")
    assert "fewer than the 10 needed to verify the SLA" in str(error)
    endpoint = champion.serving.get_endpoint("credit-scoring")
    assert endpoint.traffic.weights == {"credit-default-v1": 100, "credit-default-v2": 0}


@pytest.mark.parametrize("field", ["bake_seconds", "max_error_rate", "p99_latency_ms"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_canary_limit_that_is_no_finite_number_is_refused(field: str, value: float) -> None:
    """A NaN limit would compare false with everything, switching its check off."""
    from pydantic import ValidationError as PydanticValidationError

    from mintaka.pipelines.builtins import CanaryInputs

    with pytest.raises(PydanticValidationError, match=field):
        CanaryInputs.model_validate({"model": "m:1", "endpoint": "e", field: value})


def test_a_new_endpoint_whose_version_refuses_its_requests_is_taken_down(
    champion: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new endpoint has no route to compare with: every request its version refused as
    invalid counts against the error rate, as in a rollout's first steps."""
    from datetime import datetime

    from mintaka.domain.serving import EndpointMetrics
    from mintaka.errors import NotFound
    from mintaka.pipelines.builtins import CanaryInputs, deploy_canary
    from mintaka.pipelines.contract import StepContext

    def refused(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        route = "credit-default-v1"
        return EndpointMetrics(
            endpoint=endpoint, start=start, end=end, requests={route: 50}, invalid={route: 50}
        )

    monkeypatch.setattr(champion.serving, "endpoint_metrics", refused)
    context = StepContext(
        pipeline="p",
        run_id="r",
        step="canary",
        workdir=tmp_path,
        platform=champion,
        wait=lambda seconds: None,
    )
    outcome = deploy_canary(
        CanaryInputs(model="credit-default:1", endpoint="credit-fresh"), context
    )
    assert not outcome.passed
    assert "counting 50 requests refused as invalid" in outcome.checks[-1].detail
    with pytest.raises(NotFound):
        champion.serving.get_endpoint("credit-fresh")


@pytest.mark.parametrize("limit", [0.0, -0.5])
def test_a_business_cost_limit_of_zero_or_below_is_a_limit(
    costed: Platform, data: Path, limit: float
) -> None:
    """0 asks for no cost at all; costs may be negative (gains), so a negative limit asks for at
    least that gain per decision."""
    error = failing(costed, partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=limit))
    value, found = checks(error)["expected_cost (max)"]
    assert found == limit
    assert float(value) > limit  # type: ignore[arg-type]


def test_no_business_cost_limit_unless_one_is_given(costed: Platform, data: Path) -> None:
    run = costed.pipelines.run(partial(UP_TO_EVALUATION, data=str(data)), isolation="inline")
    assert cost_checks(run) == []


@pytest.mark.parametrize("limit", [math.inf, math.nan])
def test_a_non_finite_business_cost_limit_is_refused_before_the_run(
    platform: Platform, data: Path, limit: float
) -> None:
    from mintaka.errors import ValidationError

    spec = partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=limit)
    with pytest.raises(ValidationError, match="max_expected_cost"):
        platform.pipelines.run(spec, isolation="inline")
    assert platform.pipelines.runs() == []


def _as_recorded_before_explicit_limits(path: Path) -> None:
    record = json.loads(path.read_text())
    del record["explicit_limits"]
    path.write_text(json.dumps(record))


def bound_before_explicit_limits(
    platform: Platform, spec: PipelineSpec, parameters: dict[str, float] | None = None
) -> None:
    """Bind ``spec`` to credit-default as a Mintaka that read a 0 limit as none recorded it."""
    platform.pipelines.bind("credit-default", spec, parameters)
    _as_recorded_before_explicit_limits(
        platform.pipelines.root / "training" / "credit-default.json"
    )


def retrain_audit(platform: Platform) -> dict[str, object]:
    [audited] = [e for e in platform.audit.events() if e.action == "model.retrain"]
    return audited.details


@pytest.mark.parametrize("zero", [0.0, 0, "0", "0.0", "-0"])
def test_a_run_recorded_when_a_zero_cost_limit_meant_none_resumes_with_that_meaning(
    costed: Platform, data: Path, zero: str | float
) -> None:
    error = failing(costed, partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=zero))
    assert error.run_id is not None
    _as_recorded_before_explicit_limits(
        costed.pipelines.executor().root / "runs" / f"{error.run_id}.json"
    )
    run = costed.pipelines.resume(error.run_id, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    assert cost_checks(run) == []


def test_a_binding_recorded_when_a_zero_cost_limit_meant_none_retrains_with_that_meaning(
    costed: Platform, data: Path
) -> None:
    costed.pipelines.bind(
        "credit-default", partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=0.0)
    )
    with pytest.raises(GateFailed):
        costed.pipelines.retrain("credit-default", "a limit of 0", isolation="inline")
    _as_recorded_before_explicit_limits(costed.pipelines.root / "training" / "credit-default.json")
    run = costed.pipelines.retrain("credit-default", "as bound", isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED


def test_a_zero_cost_limit_given_at_retrain_time_on_an_older_binding_is_a_limit(
    costed: Platform, data: Path
) -> None:
    spec = partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=100.0)
    bound_before_explicit_limits(costed, spec)
    with pytest.raises(GateFailed) as raised:
        costed.pipelines.retrain(
            "credit-default", "no cost now", parameters={"max_expected_cost": 0}, isolation="inline"
        )
    assert checks(raised.value)["expected_cost (max)"][1] == 0.0
    assert retrain_audit(costed)["parameters"] == {"max_expected_cost": 0.0}


def test_a_zero_cost_limit_an_older_binding_holds_is_not_audited_as_a_limit(
    costed: Platform, data: Path
) -> None:
    spec = partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=100.0)
    bound_before_explicit_limits(costed, spec, {"max_expected_cost": 0.0})
    run = costed.pipelines.retrain("credit-default", "as bound", isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    audited = retrain_audit(costed)
    assert "max_expected_cost" not in audited["parameters"]  # type: ignore[operator]
    assert audited["no_limit"] == ["max_expected_cost"]


def test_a_zero_limit_given_now_beside_one_an_older_binding_holds_reads_each_its_own_way(
    costed: Platform, data: Path
) -> None:
    """The binding's 0 for one limit keeps its older meaning (none) while a 0 given now for
    another is a limit, in the run and when it is resumed."""
    one = partial(UP_TO_EVALUATION, data=str(data), max_expected_cost=0.0)
    evaluate = next(s for s in one.steps if s.name == "evaluate")
    again = evaluate.model_copy(
        update={
            "name": "evaluate-again",
            "inputs": {**evaluate.inputs, "max_expected_cost": "params.second_limit"},
        }
    )
    spec = one.model_copy(
        update={
            "parameters": {**one.parameters, "second_limit": 5.0},
            "steps": [*one.steps, again],
        }
    )
    bound_before_explicit_limits(costed, spec)
    with pytest.raises(GateFailed) as raised:
        costed.pipelines.retrain(
            "credit-default", "two zeros", parameters={"second_limit": 0}, isolation="inline"
        )
    assert (raised.value.gate, checks(raised.value)["expected_cost (max)"][1]) == (
        "evaluate-again",
        0.0,
    )
    [run] = costed.pipelines.runs()
    assert cost_checks(run) == []
    assert retrain_audit(costed)["parameters"] == {"second_limit": 0.0}
    assert retrain_audit(costed)["no_limit"] == ["max_expected_cost"]
    with pytest.raises(GateFailed) as resumed:
        costed.pipelines.resume(run.id, isolation="inline")
    assert resumed.value.gate == "evaluate-again"


def test_a_label_column_the_data_lacks_is_a_validation_error(
    platform: Platform, data: Path
) -> None:
    from mintaka.errors import ValidationError

    with pytest.raises(ValidationError, match="'defualt'"):
        platform.pipelines.run(
            partial(UP_TO_VALIDATION, data=str(data), label="defualt"), isolation="inline"
        )


@pytest.mark.parametrize(
    ("label", "value", "message"),
    [
        ("missing", None, "no column 'missing'"),
        ("default", "yes", "label 'default' is 'yes'"),
        ("default", "t", "label 'default' is 't'"),
        ("default", "tRuE", "label 'default' is 'tRuE'"),
        ("default", "2", "label 'default' is '2'"),
    ],
)
def test_the_evaluation_gate_refuses_labels_that_are_not_binary(
    platform: Platform, data: Path, tmp_path: Path, label: str, value: str | None, message: str
) -> None:
    from mintaka.errors import ValidationError
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import EvaluationInputs, evaluate_model

    run = platform.pipelines.run(partial(UP_TO_EVALUATION, data=str(data)), isolation="inline")
    trained = next(s for s in run.steps if s.name == "train").outputs
    holdout = Path(str(trained["holdout"]))
    if value is not None:
        rewrite(holdout, lambda r: {**r, "default": value})
    context = StepContext(
        pipeline="p", run_id="r", step="evaluate", workdir=tmp_path, platform=platform
    )
    inputs = EvaluationInputs(
        model=Path(str(trained["model"])),
        holdout=holdout,
        label=label,
        features=",".join(FEATURES),
    )
    with pytest.raises(ValidationError, match=message):
        evaluate_model(inputs, context)


@pytest.mark.parametrize(
    ("one", "zero"), [("True", "False"), ("true", "false"), ("TRUE", "FALSE"), ("1", "0")]
)
def test_boolean_labels_read_alike_from_csv_and_parquet(
    platform: Platform, data: Path, tmp_path: Path, one: str, zero: str
) -> None:
    """A CSV label column spelled as pandas and pyarrow read a boolean column scores as the
    same column of bools in Parquet, and as the 0 and 1 it stands for."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import EvaluationInputs, evaluate_model

    run = platform.pipelines.run(partial(UP_TO_EVALUATION, data=str(data)), isolation="inline")
    trained = next(s for s in run.steps if s.name == "train").outputs
    holdout = Path(str(trained["holdout"]))
    with holdout.open() as handle:
        rows = [{**r, "default": r["default"] == "1"} for r in csv.DictReader(handle)]
    spelled = tmp_path / "spelled.csv"
    spelled.write_text(holdout.read_text())
    rewrite(spelled, lambda r: {**r, "default": one if r["default"] == "1" else zero})
    typed = tmp_path / "typed.parquet"
    pq.write_table(pa.Table.from_pylist(rows), typed)
    context = StepContext(
        pipeline="p", run_id="r", step="evaluate", workdir=tmp_path, platform=platform
    )

    def metrics(path: Path) -> dict[str, float]:
        inputs = EvaluationInputs(
            model=Path(str(trained["model"])),
            holdout=path,
            label="default",
            features=",".join(FEATURES),
        )
        return evaluate_model(inputs, context).metrics

    assert metrics(spelled) == metrics(typed) == metrics(holdout)


def test_the_demo_training_step_reads_the_label_spellings_the_gates_take(tmp_path: Path) -> None:
    """The training step reads a label spelled as a boolean column the way the gates after it
    do, so the same data trains the same model, and a spelling the gates refuse is refused
    there too with the column named."""
    from mintaka.demo_pipeline import TrainInputs, train
    from mintaka.errors import ValidationError
    from mintaka.pipelines.contract import StepContext

    digits = write_dataset(tmp_path / "digits.csv", rows=200)
    spelled = rewrite(
        write_dataset(tmp_path / "spelled.csv", rows=200),
        lambda r: {**r, "default": "True" if r["default"] == "1" else "false"},
    )

    def model_bytes(data: Path, name: str) -> bytes:
        workdir = tmp_path / name
        workdir.mkdir()
        context = StepContext(pipeline="p", run_id="r", step="train", workdir=workdir)
        inputs = TrainInputs(data=data, label="default", features=",".join(FEATURES))
        trained = train(inputs, context)
        return b"".join(p.read_bytes() for p in sorted(trained.model.rglob("*")) if p.is_file())

    assert model_bytes(spelled, "spelled") == model_bytes(digits, "digits")
    rewrite(spelled, lambda r: {**r, "default": "yes"})
    with pytest.raises(ValidationError, match="'default' is 'yes'"):
        model_bytes(spelled, "refused")


def test_a_version_registered_without_a_profile_gets_one_when_registered_again(
    platform: Platform, data: Path
) -> None:
    unprofiled = platform.register_dataset("applications", data, profile=False)
    assert unprofiled.profile is None
    profiled = platform.register_dataset("applications", data, categorical=["segment"])
    assert profiled.id == unprofiled.id
    assert profiled.profile is not None
    assert platform.get_dataset(unprofiled.id).profile == profiled.profile
    assert [e.subject for e in platform.audit.events() if e.action == "dataset.profile"] == [
        unprofiled.id
    ]
    run = platform.pipelines.run(partial(UP_TO_VALIDATION, data=str(data)), isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED


def test_an_empty_holdout_is_a_validation_error_naming_it(
    costed: Platform, data: Path, tmp_path: Path
) -> None:
    from mintaka.errors import ValidationError
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import EvaluationInputs, evaluate_model

    run = costed.pipelines.run(partial(UP_TO_EVALUATION, data=str(data)), isolation="inline")
    trained = next(s for s in run.steps if s.name == "train").outputs
    holdout = Path(str(trained["holdout"]))
    holdout.write_text(holdout.read_text().splitlines()[0] + "\n")
    context = StepContext(
        pipeline="p", run_id="r", step="evaluate", workdir=tmp_path, platform=costed
    )
    inputs = EvaluationInputs(
        model=Path(str(trained["model"])),
        holdout=holdout,
        label="default",
        features=",".join(FEATURES),
        cost_model="credit-default",
    )
    with pytest.raises(ValidationError, match=f"{holdout} holds no rows"):
        evaluate_model(inputs, context)


def test_an_old_unprofiled_version_ingested_again_is_held_to_the_later_profiled_one(
    platform: Platform, data: Path, tmp_path: Path, clock: ManualClock
) -> None:
    old = tmp_path / "old.csv"
    old.write_text(data.read_text())
    rewrite(old, lambda r: {k: v for k, v in r.items() if k != "income"})
    unprofiled = platform.register_dataset("credit-applications", old, profile=False)
    clock.advance(days=1)
    run = platform.pipelines.run(partial(UP_TO_VALIDATION, data=str(data)), isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    clock.advance(days=1)
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(old)))
    assert checks(error)["schema"] == (1, 0)
    assert "missing income" in str(error)
    assert platform.get_dataset(unprofiled.id).profile is not None


def test_old_bytes_ingested_again_after_newer_ones_are_held_to_the_newer_version(
    platform: Platform, data: Path, tmp_path: Path, clock: ManualClock
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    old = tmp_path / "old.csv"
    old.write_text(data.read_text())
    rewrite(old, lambda r: {k: v for k, v in r.items() if k != "income"})
    first = platform.register_dataset("credit-applications", old)
    clock.advance(days=1)
    newer = platform.register_dataset("credit-applications", data)
    clock.advance(days=1)
    error = failing(platform, partial(UP_TO_VALIDATION, data=str(old)))
    assert checks(error)["schema"] == (1, 0)
    assert "missing income" in str(error)
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    outcome = validate_data(DataValidationInputs(dataset_id=first.id), context)
    assert outcome.reference_dataset == newer.id
    assert [e.action for e in platform.audit.events(subject=first.id)] == [
        "dataset.register",
        "dataset.reingest",
    ]
    clock.advance(days=1)
    platform.register_dataset("credit-applications", old)  # already the latest: nothing new
    assert len(platform.audit.events(subject=first.id)) == 2


def test_versions_registered_at_one_instant_are_held_to_the_one_registered_before(
    platform: Platform, tmp_path: Path
) -> None:
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import DataValidationInputs, validate_data

    versions = []
    for step in range(3):  # no clock advance: one instant, told apart by registration order
        path = tmp_path / f"v{step}.csv"
        path.write_text("x\n" + "\n".join(str(v + step) for v in range(100)))
        versions.append(platform.register_dataset("applications", path))
    context = StepContext(
        pipeline="p", run_id="r", step="validate", workdir=tmp_path, platform=platform
    )
    for previous, version in itertools.pairwise(versions):
        outcome = validate_data(DataValidationInputs(dataset_id=version.id), context)
        assert outcome.reference_dataset == previous.id
    first = validate_data(DataValidationInputs(dataset_id=versions[0].id), context)
    assert first.reference_dataset is None


def test_a_profile_asked_for_survives_a_registration_without_one_meanwhile(
    platform: Platform, data: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mintaka.platform as platform_module

    measure = platform_module._profile_of
    other = Platform(platform.home, clock=clock, ids=IdFactory(seed=99), actor="bob")

    def measured_then_raced(source: Path, categorical: list[str]) -> object:
        profile = measure(source, categorical)
        other.register_dataset("applications", source, profile=False)
        return profile

    monkeypatch.setattr(platform_module, "_profile_of", measured_then_raced)
    with other:
        asked = platform.register_dataset("applications", data)
    [raced] = platform.find_datasets("applications")
    assert asked.id == raced.id
    assert raced.profile is not None
    assert asked.profile == raced.profile
    actions = [(e.action, e.actor) for e in platform.audit.events(subject=raced.id)]
    assert actions == [("dataset.register", "bob"), ("dataset.profile", "alice")]


def test_an_empty_holdout_is_a_validation_error_naming_it_in_the_champion_gate(
    champion: Platform, tmp_path: Path
) -> None:
    from mintaka.errors import ValidationError
    from mintaka.pipelines.contract import StepContext
    from mintaka.pipelines.gates import ChallengeInputs, beat_champion

    fresh = write_dataset(tmp_path / "fresh.csv", rows=600, seed=9)
    run = champion.pipelines.run(
        partial((*UP_TO_EVALUATION, "register"), data=str(fresh), min_group_ratio=0.0),
        isolation="inline",
    )
    outputs = {s.name: s.outputs for s in run.steps}
    holdout = Path(str(outputs["train"]["holdout"]))
    holdout.write_text(holdout.read_text().splitlines()[0] + "\n")
    context = StepContext(
        pipeline="p", run_id="r", step="challenge", workdir=tmp_path, platform=champion
    )
    model = str(outputs["register"]["ref"])
    inputs = ChallengeInputs(model=model, holdout=holdout, label="default")
    with pytest.raises(ValidationError, match=f"{holdout} holds no rows"):
        beat_champion(inputs, context)
