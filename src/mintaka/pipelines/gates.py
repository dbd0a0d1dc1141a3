"""The gates a pipeline can put between its steps, each a controller step returning a GateOutcome.

- :func:`validate_data` (data validation, before training): schema against the reference
  profile, volume, missing rates, distribution (PSI per feature) and the fairness of the training
  set (the label rate of each group of a protected attribute against the best-off group's).
- :func:`evaluate_model` (evaluation, before registration): performance (AUC, accuracy),
  calibration (expected calibration error as the monitors compute it,
  :func:`mintaka.monitoring.metrics.expected_calibration_error`; Brier score) and business cost,
  held to the thresholds the policy sets for the model's risk tier and to the pipeline's own.
- :func:`beat_champion` (evaluation, before promotion): the challenger must beat the champion on
  the model's declared business metric over the same holdout.
- :func:`approvals` (deployment): the production controls of the policy (approvals bound to the
  artifact digest, documentation, evaluation thresholds) for the registered version.

The canary with SLA verification, the last deployment gate, is :func:`mintaka.pipelines.builtins.
deploy_canary`. Every check carries its number and its limit, so a refusal says how far off it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from mintaka.domain.pipelines import GateCheck, GateOutcome
from mintaka.domain.registry import Flavor, RiskTier
from mintaka.domain.runs import DatasetVersion
from mintaka.errors import NotFound, ValidationError
from mintaka.pipelines.contract import StepContext, controller_step

if TYPE_CHECKING:
    from mintaka.platform import Platform


def _read(path: Path) -> list[dict[str, Any]]:
    from mintaka.serving.batch import read_rows

    return read_rows(path)


def _read_copy(copy: Path, dataset: DatasetVersion) -> list[dict[str, Any]]:
    """The rows of ``copy``, the checked copy of ``dataset``'s file. A file that cannot be read
    is a ``ValidationError`` naming the dataset version and its own file, not the copy, which
    is deleted by the time the error is read."""
    from mintaka.files import file_path

    try:
        return _read(copy)
    except ValidationError as exc:
        source = file_path(dataset.uri) or copy
        reason = str(exc).replace(str(copy), str(source))
        raise ValidationError(f"dataset {dataset.id}: {reason}") from exc


def _holdout(path: Path) -> list[dict[str, Any]]:
    """The rows of the holdout at ``path``. One without rows is a ``ValidationError`` naming
    it: no number measured on it would mean anything, and the model cannot score nothing."""
    rows = _read(path)
    if not rows:
        raise ValidationError(f"{path} holds no rows: there is no holdout to evaluate on")
    return rows


# The text of a boolean label as pandas and pyarrow read a CSV column of bools, so a CSV label
# reads as the same column written to Parquet (bools there) does.
_BOOL_TEXT = {
    **dict.fromkeys(("True", "TRUE", "true"), 1.0),
    **dict.fromkeys(("False", "FALSE", "false"), 0.0),
}


def _labels(rows: list[dict[str, Any]], label: str, source: Path) -> list[int]:
    """The binary label of each row, taken out of it (the rest are the features scored). A
    column the rows lack, or a value that is not 0 or 1, is a ``ValidationError`` naming it:
    the gates measure a binary classifier, and any other label would skew every number."""
    if rows and label not in rows[0]:
        raise ValidationError(f"{source} has no column {label!r} (the label)")
    return [binary_label(row.pop(label, None), label, source) for row in rows]


def binary_label(value: Any, label: str, source: Path) -> int:
    """``value`` as a 0 or 1 label: a number (a bool is one), its text, or a bool's text as a
    CSV reader of a boolean column takes it (``True``, ``TRUE``, ``true`` and the same of
    ``False``). Any other spelling (``yes``, ``t``, ``tRuE``) is refused, not guessed at."""
    number = _BOOL_TEXT.get(value) if isinstance(value, str) else None
    if number is None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
    if number not in (0.0, 1.0):
        raise ValidationError(
            f"{source}: label {label!r} is {value!r}; the gates take 0 or 1, true or false "
            "(a binary label)"
        )
    return int(number)


# -- data validation ------------------------------------------------------------------------------


class DataValidationInputs(BaseModel):
    dataset_id: str
    reference: str = ""
    label: str = ""
    min_rows: int = 1
    max_missing_rate: float = 0.0
    max_psi: float = 0.25
    protected: str = ""
    min_group_ratio: float = 0.8


class DataValidationOutcome(GateOutcome):
    rows: int = 0
    reference_dataset: str | None = None


def _reference(
    ctx: StepContext, inputs: DataValidationInputs, dataset: DatasetVersion
) -> DatasetVersion | None:
    """What ``dataset`` is compared with: the version ``reference`` names by id; else the latest
    profiled version of the dataset ``reference`` names; else the profiled version of
    ``dataset`` itself that got its profile last before it did. Each version is held to the one
    before it, so the gate measures what changed since the last version, not the drift
    accumulated since the first; a version registered without a profile has nothing to compare
    with, so it is passed over rather than let the next version through unmeasured; and an old
    version whose bytes are ingested again (profiled then, or profiled before and ingested after
    a newer version) is held to the versions profiled before that, not let through as the first
    of its dataset."""
    platform = ctx.require_platform()
    name = dataset.name
    if inputs.reference:
        try:
            return platform.get_dataset(inputs.reference)
        except NotFound:
            if not platform.find_datasets(inputs.reference):
                raise
            name = inputs.reference
    versions = [d for d in platform.find_datasets(name) if d.profile or d.id == dataset.id]
    if name == dataset.name:
        versions = platform.datasets_in_profile_order(versions)
        versions = versions[: next(i for i, d in enumerate(versions) if d.id == dataset.id)]
    earlier = [d for d in versions if d.id != dataset.id]
    return earlier[-1] if earlier else None


@controller_step
def validate_data(inputs: DataValidationInputs, ctx: StepContext) -> DataValidationOutcome:
    """Refuse data that is too small, too incomplete, shaped or distributed unlike the
    reference, or unfair across a protected attribute's groups. The rows read are the dataset
    version's own: a file rewritten at its path since it was registered is a
    ``ValidationError`` naming the version, never validated in its place."""
    from mintaka.files import file_path
    from mintaka.monitoring.profiles import DatasetProfile, as_columns
    from mintaka.monitoring.statistics import drift
    from mintaka.monitoring.training_data import registered_copy

    platform = ctx.require_platform()
    dataset = platform.get_dataset(inputs.dataset_id)
    with registered_copy(dataset, platform.home) as checked:
        rows = _read_copy(checked, dataset)
    source = file_path(dataset.uri) or checked  # errors name the dataset's file, not the copy
    checks = [
        GateCheck(
            name="rows", passed=len(rows) >= inputs.min_rows, value=len(rows), limit=inputs.min_rows
        )
    ]
    profile = DatasetProfile.from_json(dataset.profile) if dataset.profile else None
    if profile is not None:
        worst = max(profile.features.items(), key=lambda kv: _missing(kv[1]), default=None)
        if worst is not None:
            rate = _missing(worst[1])
            checks.append(
                GateCheck(
                    name="missing rate",
                    passed=rate <= inputs.max_missing_rate,
                    value=round(rate, 6),
                    limit=inputs.max_missing_rate,
                    detail=f"worst column {worst[0]!r}",
                )
            )
    reference = dataset if inputs.reference == dataset.id else _reference(ctx, inputs, dataset)
    unprofiled = _unprofiled(dataset, reference)
    if unprofiled is not None:
        checks.append(unprofiled)
    elif reference is None or not reference.profile or profile is None:
        checks.append(_no_reference(inputs, dataset))
    elif reference.id == dataset.id:
        checks += _identical(reference.id, inputs.max_psi)
    else:
        ref = DatasetProfile.from_json(reference.profile)
        expected = {k: v.kind for k, v in ref.features.items()}
        actual = {k: v.kind for k, v in profile.features.items()}
        changes = [f"missing {k}" for k in expected if k not in actual]
        changes += [f"new {k}" for k in actual if k not in expected]
        changes += [
            f"{k} {expected[k]} -> {actual[k]}"
            for k in expected
            if k in actual and expected[k] != actual[k]
        ]
        checks.append(
            GateCheck(
                name="schema",
                passed=not changes,
                value=len(changes),
                limit=0,
                detail="; ".join(changes) or f"matches {reference.id}",
            )
        )
        if not changes:
            features = [k for k in expected if k != inputs.label]
            report = drift(ref, as_columns(rows), features=features)
            psis = {k: report.value(k, "psi") for k in features}
            checks += _distribution_checks(psis, inputs.max_psi, reference.id)
    if inputs.protected:
        checks.append(_group_fairness(rows, inputs, source))
    return DataValidationOutcome(
        passed=all(c.passed for c in checks),
        checks=tuple(checks),
        rows=len(rows),
        reference_dataset=reference.id if reference is not None else None,
    )


def _no_reference(inputs: DataValidationInputs, dataset: DatasetVersion) -> GateCheck:
    """The schema check when no profiled version was found to compare with: a failure when
    ``reference`` names another dataset (the reference asked for, with nothing to check
    against, lets no data through); else, the dataset's own history having none, a pass, this
    version becoming the reference of the next."""
    if inputs.reference and inputs.reference != dataset.name:
        return GateCheck(
            name="schema",
            passed=False,
            detail=f"the reference dataset {inputs.reference!r} has no version registered with a "
            "profile: there is nothing to check against",
        )
    return GateCheck(
        name="schema",
        passed=True,
        detail="no earlier profiled version: this one becomes the reference",
    )


def _identical(reference: str, max_psi: float) -> list[GateCheck]:
    """The schema and distribution checks of a version that is the reference it is compared
    with (the same bytes registered again, as a retraining on an unchanged file does): identical
    data passes both. The detail says so, as a reference wired to the ingest step's own output
    would always be identical and check nothing."""
    detail = f"identical to the reference {reference} (the same dataset version)"
    return [
        GateCheck(name="schema", passed=True, value=0, limit=0, detail=detail),
        GateCheck(name="distribution (PSI)", passed=True, value=0.0, limit=max_psi, detail=detail),
    ]


def _unprofiled(dataset: DatasetVersion, reference: DatasetVersion | None) -> GateCheck | None:
    """A failing schema check when ``dataset``, or the reference named for it, has no profile:
    its schema, missing values and distribution cannot be checked, and data that cannot be
    checked is no evidence of sound data. None when both can be compared."""
    if not dataset.profile:
        return GateCheck(
            name="schema",
            passed=False,
            detail=f"{dataset.id} was registered without a profile: its schema, missing values "
            "and distribution cannot be checked (register it with a profile)",
        )
    if reference is not None and not reference.profile:
        return GateCheck(
            name="schema",
            passed=False,
            detail=f"the reference {reference.id} was registered without a profile: there is "
            "nothing to check against",
        )
    return None


def _distribution_checks(
    psis: dict[str, float | None], max_psi: float, reference: str
) -> list[GateCheck]:
    """The worst measured feature's PSI held to ``max_psi``, and, when a feature's PSI cannot be
    computed (no values on one side), a failing check naming it: drift that cannot be measured
    is no evidence of stable data, as a drift signal that cannot be computed is no quiet one."""
    scores = {k: v for k, v in psis.items() if v is not None}
    feature, value = max(scores.items(), key=lambda kv: kv[1], default=("", 0.0))
    checks = [
        GateCheck(
            name="distribution (PSI)",
            passed=value <= max_psi,
            value=round(value, 6),
            limit=max_psi,
            detail=(
                f"worst feature {feature!r} against {reference}"
                if scores
                else f"no feature measured against {reference}"
            ),
        )
    ]
    unmeasured = sorted(k for k, v in psis.items() if v is None)
    if unmeasured:
        checks.append(
            GateCheck(
                name="distribution measured",
                passed=False,
                value=len(unmeasured),
                limit=0,
                detail=f"no PSI against {reference} for {', '.join(map(repr, unmeasured))}: "
                "no values on one side",
            )
        )
    return checks


def _missing(feature: Any) -> float:
    return float(feature.count and feature.missing / feature.count)


def _group_fairness(
    rows: list[dict[str, Any]], inputs: DataValidationInputs, source: Path
) -> GateCheck:
    if not inputs.label:
        return GateCheck(
            name="training-set fairness",
            passed=False,
            detail="a protected attribute needs the label column named",
        )
    labels = _labels([dict(row) for row in rows], inputs.label, source)
    groups: dict[str, list[float]] = {}
    for row, value in zip(rows, labels, strict=True):
        groups.setdefault(str(row.get(inputs.protected)), []).append(float(value))
    rates = {g: sum(v) / len(v) for g, v in groups.items() if v}
    if len(rates) < 2:
        # As a monitor's TooFewGroups: one group has no difference to measure, which says
        # nothing about whether the data is fair, so the check is not passed.
        held = ", ".join(repr(g) for g in rates) or "none"
        return GateCheck(
            name="training-set fairness",
            passed=False,
            value=len(rates),
            limit=2,
            detail=f"only one group of the attribute {inputs.protected!r} is in the data "
            f"({held}): fairness compares two groups at least, so it cannot be measured",
        )
    if max(rates.values()) == 0:
        return GateCheck(
            name="training-set fairness",
            passed=True,
            detail=f"{len(rates)} groups of {inputs.protected!r}, none with a positive label: "
            "their label rates are equal",
        )
    ratio = min(rates.values()) / max(rates.values())
    shown = ", ".join(f"{g}={r:.3f}" for g, r in sorted(rates.items()))
    return GateCheck(
        name="training-set fairness",
        passed=ratio >= inputs.min_group_ratio,
        value=round(ratio, 6),
        limit=inputs.min_group_ratio,
        detail=f"label rate ratio across {inputs.protected!r} ({shown})",
    )


# -- evaluation -----------------------------------------------------------------------------------


# A limit on a cost: any finite number. Costs may be negative (gains), so a negative limit asks
# for at least that gain per decision.
CostLimit = Annotated[float, Field(allow_inf_nan=False)]


class EvaluationInputs(BaseModel):
    """``name`` is the registered model the artifact is to be a version of (``cost_model`` when
    not given): a tier below that model's is no tier for it, so the riskier of the two holds.
    ``max_expected_cost`` is the highest expected cost the model may have under the business
    metric of ``cost_model``; None (not wired) sets no limit of the pipeline's own, and 0 is a
    limit like any other (no cost at all), as is a negative one (at least that gain)."""

    # Inputs whose 0 a run recorded by an older Mintaka meant as "no limit"; such a run is
    # resumed (and a binding recorded then retrains) with that meaning.
    ZERO_WAS_UNSET: ClassVar[frozenset[str]] = frozenset({"max_expected_cost"})

    model: Path
    holdout: Path
    label: str
    tier: RiskTier = RiskTier.LOW
    name: str = ""
    features: str = ""
    min_auc: float = 0.0
    max_calibration_error: float = 1.0
    cost_model: str = ""
    max_expected_cost: CostLimit | None = None


class EvaluationOutcome(GateOutcome):
    metrics: dict[str, float] = {}


def _tighten(
    limits: dict[str, tuple[float | None, float | None]],
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
) -> None:
    """Hold ``name`` to ``low``/``high`` as well as to the limits already set (the stricter)."""
    current_low, current_high = limits.get(name, (None, None))
    if low is not None:
        current_low = low if current_low is None else max(current_low, low)
    if high is not None:
        current_high = high if current_high is None else min(current_high, high)
    limits[name] = (current_low, current_high)


def _tier(platform: Platform, inputs: EvaluationInputs) -> RiskTier:
    """The tier whose thresholds hold: the riskier of the one given and the registered model's,
    as registering a version refuses a tier below its model's (a pipeline given ``low`` for a
    high-risk model is held to the high tier's thresholds, not let through on the low's)."""
    from mintaka.governance.service import highest_tier

    name = inputs.name or inputs.cost_model
    if not name:
        return inputs.tier
    try:
        registered = platform.get_model(name).risk_tier
    except NotFound:
        return inputs.tier
    return highest_tier((inputs.tier, registered))


@controller_step
def evaluate_model(inputs: EvaluationInputs, ctx: StepContext) -> EvaluationOutcome:
    """Score the holdout and hold the numbers to the policy's and the pipeline's thresholds."""
    from mintaka.flavors.loader import load_predictor
    from mintaka.monitoring.metrics import expected_calibration_error
    from mintaka.rollout.challenger import CostMatrix, auc

    platform = ctx.require_platform()
    rows = _holdout(inputs.holdout)
    labels = np.asarray(_labels(rows, inputs.label, inputs.holdout))
    features = tuple(f for f in inputs.features.split(",") if f)
    predictor = load_predictor(inputs.model, Flavor.SKLEARN, features=features)
    scores = np.asarray([float(s) for s in predictor.predict(rows)])
    metrics = {
        "accuracy": float(((scores >= 0.5).astype(int) == labels).mean()),
        "brier": float(((scores - labels) ** 2).mean()),
        # the monitors' definition, so a gate and a monitor agree on one model's number
        "calibration_error": expected_calibration_error(labels, scores, positive=1),
    }
    measured_auc = auc(labels.tolist(), scores.tolist())
    if measured_auc is not None:  # a holdout of one class has no AUC: not measured, not 0
        metrics["auc"] = measured_auc
    checks = []
    metric: CostMatrix | None = None
    if inputs.cost_model:
        try:
            metric = platform.serving.business_metric(inputs.cost_model)
        except NotFound:
            metric = None  # only an error when a cost threshold asks for it (below)
    if metric is not None:
        metrics["expected_cost"] = metric.expected_cost(labels.tolist(), scores.tolist())
    limits: dict[str, tuple[float | None, float | None]] = {}
    tier_controls = platform.governance.policy.controls(_tier(platform, inputs))
    for name, threshold in tier_controls.evaluation.items():
        limits[name] = (threshold.min, threshold.max)
    # The pipeline's own thresholds only tighten the tier's: the stricter of the two holds.
    if inputs.min_auc:
        _tighten(limits, "auc", low=inputs.min_auc)
    if inputs.max_calibration_error < 1.0:
        _tighten(limits, "calibration_error", high=inputs.max_calibration_error)
    if inputs.max_expected_cost is not None:
        _tighten(limits, "expected_cost", high=inputs.max_expected_cost)
    for name, (low, high) in sorted(limits.items()):
        value = metrics.get(name)
        if value is None:
            detail = "not measured"
            if name == "expected_cost":
                detail += f": {inputs.cost_model or 'no model'!r} declares no business metric"
            checks.append(GateCheck(name=name, passed=False, detail=detail))
            continue
        if low is not None:
            checks.append(
                GateCheck(
                    name=f"{name} (min)", passed=value >= low, value=round(value, 6), limit=low
                )
            )
        if high is not None:
            checks.append(
                GateCheck(
                    name=f"{name} (max)", passed=value <= high, value=round(value, 6), limit=high
                )
            )
    return EvaluationOutcome(
        passed=all(c.passed for c in checks), checks=tuple(checks), metrics=metrics
    )


# -- champion-challenger --------------------------------------------------------------------------


class ChallengeInputs(BaseModel):
    model: str
    holdout: Path
    label: str
    alias: str = "champion"


class ChallengeOutcome(GateOutcome):
    champion: int | None = None
    challenger: int = 0


@controller_step
def beat_champion(inputs: ChallengeInputs, ctx: StepContext) -> ChallengeOutcome:
    """The challenger passes only when it beats the alias holder on the business metric, over a
    holdout that has rows (one without is a ``ValidationError`` naming it, as in
    :func:`evaluate_model`)."""
    platform = ctx.require_platform()
    version = platform.get_model_version(inputs.model)
    try:
        champion = platform.get_model_version(version.name, alias=inputs.alias)
    except NotFound:
        check = GateCheck(name="champion", passed=True, detail=f"no {inputs.alias} yet")
        return ChallengeOutcome(passed=True, checks=(check,), challenger=version.version)
    if champion.version == version.version:
        check = GateCheck(name="champion", passed=True, detail=f"already the {inputs.alias}")
        return ChallengeOutcome(
            passed=True, checks=(check,), champion=champion.version, challenger=version.version
        )
    rows = _holdout(inputs.holdout)
    labels = _labels(rows, inputs.label, inputs.holdout)
    try:
        comparison = platform.serving.compare(
            version.name, champion.version, version.version, rows, labels
        )
    except NotFound as exc:
        check = GateCheck(name="expected cost", passed=False, detail=str(exc))
        return ChallengeOutcome(
            passed=False, checks=(check,), champion=champion.version, challenger=version.version
        )
    check = GateCheck(
        name="expected cost vs champion",
        passed=comparison.challenger_wins,
        value=round(comparison.challenger_cost, 6),
        limit=round(comparison.champion_cost, 6),
        detail=f"v{version.version} against v{champion.version} on {len(rows)} holdout rows "
        f"(AUC {_shown_auc(comparison.challenger_auc)} vs {_shown_auc(comparison.champion_auc)})",
    )
    return ChallengeOutcome(
        passed=check.passed, checks=(check,), champion=champion.version, challenger=version.version
    )


def _shown_auc(value: float | None) -> str:
    """An AUC as a check's detail gives it: a holdout of one class has none, which is not 0."""
    return "not measured" if value is None else f"{value:.3f}"


# -- approvals ------------------------------------------------------------------------------------


class ApprovalInputs(BaseModel):
    model: str


@controller_step
def approvals(inputs: ApprovalInputs, ctx: StepContext) -> GateOutcome:
    """The policy's production controls for the version; the decision is recorded either way."""
    platform = ctx.require_platform()
    version = platform.get_model_version(inputs.model)
    controls = platform.governance.production_controls(version)
    decision = platform.governance.evaluate("pipeline.deploy", version.ref, controls)
    with platform.store.write() as conn:
        recorded = platform.governance.record(conn, decision)
        event = platform._audit(
            conn,
            "policy.allow" if decision.allowed else "policy.deny",
            version.ref,
            decision=recorded,
            unmet=list(decision.unmet),
        )
    platform._after_commit([event])
    checks = tuple(
        GateCheck(
            name=c.name,
            passed=c.describe() not in decision.unmet,
            detail=c.detail if not c.met else "",
        )
        for c in controls
    )
    return GateOutcome(passed=decision.allowed, checks=checks)
