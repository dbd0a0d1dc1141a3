"""Performance and fairness of a model from its logged predictions and late-arriving labels.

Labels arrive after the prediction, keyed by prediction id; :func:`join_labels` pairs them (a
later label for the same id replaces an earlier one, as a correction does) and reports what is
still unlabelled and which labels name no known prediction. The metrics are plain functions on
arrays, equal to scikit-learn's where it has them:

- :func:`accuracy`, :func:`roc_auc` (binary, ties at their average rank), :func:`rmse`;
- :func:`expected_calibration_error`: ``sum_b n_b / n * |mean(y_b) - mean(p_b)|`` over
  ``n_bins`` equal-width bins of the predicted probability, binned as
  ``sklearn.calibration.calibration_curve(strategy="uniform")`` does (a value on an inner edge
  belongs to the lower bin);
- :func:`demographic_parity_difference`: the largest minus the smallest rate of positive
  predictions across the groups of a sensitive attribute (rates and their differences are exact
  fractions of the counts, converted to a float once, so equal gaps compare alike with a
  threshold);
- :func:`equalized_odds_difference`: the larger of the between-group spreads of the true positive
  rate and of the false positive rate (a group without actual positives, or without actual
  negatives, has no such rate and is left out of that spread).

Labels and predicted classes are compared as classes (see :func:`classes`): a boolean is the
number it stands for (``True`` is 1), a number with an integral value is that integer (``1.0`` is
1), and a string is the class it spells, never a number (``"1"`` is not 1). A window whose labels
and predicted classes mix strings with numbers or booleans is refused by every metric alike,
rather than counted as wrong answers by one and as one class by another.

The fairness metrics, ROC AUC and the calibration error count the predictions (or score the
probabilities) of the positive class: 1 for 0/1 (or boolean) classes; other classes must be
declared with ``positive`` (see :func:`positive_class` and :func:`binary_positive`). A
missing prediction or label (None or NaN) is no class: accuracy, ROC AUC, calibration and fairness
refuse the window.

:func:`performance` and :func:`fairness` compute them on a window of joined records, with
:func:`mintaka.monitoring.windows.windows` doing the slicing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import Field

from mintaka.domain.base import Record
from mintaka.errors import ValidationError

Array = Sequence[Any] | npt.NDArray[Any]


class LabelledPrediction(NamedTuple):
    """A logged prediction with the label that arrived for it."""

    id: str
    at: datetime | str
    inputs: Mapping[str, Any] | None
    output: Any
    label: Any


class Joined(NamedTuple):
    records: list[LabelledPrediction]
    unlabelled: int
    unknown_labels: list[str]


def join_labels(
    predictions: Iterable[Mapping[str, Any]],
    labels: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> Joined:
    """Pair prediction-log records with labels by prediction id, in prediction order.

    ``labels`` is a mapping from prediction id to label, or ``(prediction_id, label)`` pairs in
    arrival order, where a later pair for the same id wins. A prediction without a label is
    counted in ``unlabelled``; a label whose id matches no prediction is listed in
    ``unknown_labels`` (its prediction may not be in this slice of the log, or never existed).
    """
    by_id = dict(labels.items() if isinstance(labels, Mapping) else labels)
    records = []
    seen = set()
    unlabelled = 0
    for row in predictions:
        pid = str(row["id"])
        seen.add(pid)
        if pid not in by_id:
            unlabelled += 1
            continue
        records.append(
            LabelledPrediction(pid, row["at"], row.get("inputs"), row.get("output"), by_id[pid])
        )
    return Joined(records, unlabelled, sorted(set(by_id) - seen))


# --- performance ---------------------------------------------------------------------------------


def _pair(y_true: Array, y_other: Array) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    a, b = np.asarray(y_true), np.asarray(y_other)
    if a.shape != b.shape or a.ndim != 1:
        raise ValidationError(f"expected two 1-d arrays of one length, got {a.shape}, {b.shape}")
    if len(a) == 0:
        raise ValidationError("no labelled predictions")
    return a, b


def _class(value: Any) -> Any:
    """One class as :func:`classes` compares it."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _kinds(values: Iterable[Any]) -> dict[str, Any]:
    """The kinds of class among ``values`` (``"string"``, ``"number"``, or a type's name), each
    with one example."""
    found: dict[str, Any] = {}
    for value in values:
        kind = "string" if isinstance(value, str) else "number" if _number(value) else None
        found.setdefault(kind or type(value).__name__, value)
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def classes(*columns: tuple[Array, str]) -> list[npt.NDArray[Any]]:
    """Each ``(values, what)`` column as the classes the metrics compare, in one object array
    per column: a boolean is 0 or 1, a number with an integral value is that integer, a string
    is itself. A missing value (None or NaN) is refused (see :func:`_refuse_missing`), and so
    are columns that together mix strings with numbers or booleans: whether ``"1"`` is the class
    1 (or ``"True"`` the class ``True``) is not guessed, since one guess makes every such answer
    wrong."""
    found = []
    for values, what in columns:
        _refuse_nonscalar(values, what)
        _refuse_missing(values, what)
        keyed = [_class(value) for value in np.asarray(values, dtype=object).tolist()]
        found.append(np.asarray(keyed, dtype=object).reshape(len(keyed)))
    kinds = _kinds(value for column in found for value in column.tolist())
    if len(kinds) > 1:
        what = " and ".join(w for _, w in columns)
        examples = ", ".join(f"{kind} ({example!r})" for kind, example in sorted(kinds.items()))
        raise ValidationError(
            f"the {what} mix classes of different kinds: {examples}; a string is never the "
            "number or boolean it spells, so log and label the classes alike"
        )
    return found


def accuracy(y_true: Array, y_pred: Array) -> float:
    """The share of predicted classes equal to their labels, compared as :func:`classes`. A
    missing prediction or label (None or NaN) is refused: NaN equals nothing, so a missed
    prediction would count as a wrong answer, and a missing label as one the model got wrong."""
    pred, true = classes((y_pred, "predicted classes"), (y_true, "labels"))
    a, b = _pair(true, pred)
    return float(np.mean(a == b))


def _finite(values: npt.NDArray[Any], what: str) -> npt.NDArray[np.float64]:
    """``values`` as float64, refused when one is not a finite number: a single NaN would make
    the metric NaN, which no threshold ever flags."""
    try:
        found = values.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"{what} must be numbers, got e.g. {values[:3].tolist()}") from None
    bad = ~np.isfinite(found)
    if bad.any():
        raise ValidationError(
            f"{what} must be finite numbers; {int(bad.sum())} are not (e.g. {found[bad][0]})"
        )
    return found


def rmse(y_true: Array, y_pred: Array) -> float:
    """Root mean squared error, scaled by the largest error so that finite errors above 1e154,
    whose squares overflow, still give a finite value; refused when it is beyond the float
    range itself."""
    a, b = _pair(y_true, y_pred)
    half = _finite(a, "labels") / 2 - _finite(b, "predicted values") / 2  # cannot overflow
    scale = float(np.max(np.abs(half)))
    if scale == 0.0:
        return 0.0
    scaled = half / scale
    with np.errstate(over="ignore"):
        found = float(np.sqrt(np.mean(scaled * scaled)) * scale * 2)
    if not math.isfinite(found):
        raise ValidationError("the root mean squared error is beyond the float range")
    return found


def binary_positive(y_true: Array, positive: Any = None) -> Any | None:
    """The positive class of binary labels: ``positive`` when declared (refused when it cannot be
    one of them, as :func:`positive_class` refuses it); else 1 for 0/1 (or boolean) labels, even
    when only 0s are present. Two other classes are refused, as :func:`positive_class` refuses
    them: taking the larger one (``"legit"`` of ``"fraud"``/``"legit"``) would invert ROC AUC and
    the calibration error of a model scoring the other. ``None`` when the labels cannot tell: a
    single class that is not 0 or 1 might be either one, and guessing would score the
    probabilities of one class against the other. A missing label (None or NaN) is refused (see
    :func:`_refuse_missing`). Labels are read as :func:`classes`."""
    [found] = classes((y_true, "labels"))
    labels = sorted(set(found.tolist()))
    if len(labels) > 2:
        raise ValidationError(f"expected a binary label, got classes {labels}")
    if positive is not None:
        if labels and _misdeclared(positive, labels):
            raise ValidationError(
                f"the positive class {positive!r} is none of the label classes {labels}"
            )
        return _class(positive)
    if set(labels) <= {0, 1}:
        return 1
    if len(labels) == 2:
        raise ValidationError(
            f"the labels {labels} are not 0/1: declare which class is positive (the signal's "
            f"positive, e.g. positive = {labels[0]!r}); neither is taken for it by guess"
        )
    return None


def single_class(y_true: Array, positive: Any = None) -> bool:
    """Whether binary labels hold one class only, read as :func:`roc_auc` reads them (``True``
    and ``1`` are one class): every label the positive class, none of them, or a single class
    that does not say which class is positive. Refused as :func:`binary_positive` refuses."""
    found = binary_positive(y_true, positive)
    if found is None:
        return True
    positives = np.asarray(classes((y_true, "labels"))[0] == found, dtype=bool)
    return bool(positives.all() or not positives.any())


def _binary(y_true: npt.NDArray[Any], positive: Any) -> npt.NDArray[np.bool_]:
    found = binary_positive(y_true, positive)
    if found is None:
        raise ValidationError(
            f"the labels hold only the class {y_true[0]!r}, which does not say which class is "
            "positive: declare it (positive=...)"
        )
    return np.asarray(classes((y_true, "labels"))[0] == found, dtype=bool)


def roc_auc(y_true: Array, y_score: Array, *, positive: Any = None) -> float:
    """Area under the ROC curve of a binary label (positive as :func:`binary_positive` finds)."""
    a, score = _pair(classes((y_true, "labels"))[0], y_score)
    pos = _binary(a, positive)
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValidationError("ROC AUC needs both classes among the labels")
    from scipy.stats import rankdata

    ranks = rankdata(_finite(score, "scores"))  # average ranks for ties
    u = float(ranks[pos].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def expected_calibration_error(
    y_true: Array, y_prob: Array, *, n_bins: int = 10, positive: Any = None
) -> float:
    """Expected calibration error of predicted positive-class probabilities (binary labels;
    positive as :func:`binary_positive` finds, so labels of one class other than 0/1 need it)."""
    a, prob = _pair(classes((y_true, "labels"))[0], y_prob)
    p = _finite(prob, "probabilities")
    if np.any((p < 0) | (p > 1)):
        raise ValidationError("probabilities must lie in [0, 1]")
    y = _binary(a, positive).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)
    count = np.bincount(bins, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    used = count > 0
    gaps = np.abs(observed[used] - predicted[used]) / count[used]
    return float(np.sum(gaps * count[used]) / len(p))


# --- fairness ------------------------------------------------------------------------------------


class GroupRates(Record):
    """Rates of one group of the sensitive attribute; a rate is ``None`` where undefined."""

    count: int
    selection_rate: float
    true_positive_rate: float | None = None
    false_positive_rate: float | None = None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _refuse_nonscalar(values: Array, what: str, *, nouns: str = "classes") -> None:
    """Refuse ``values`` holding a value that is not a single one (a list, a mapping, an
    array): no class or group is a collection (its ``str`` would be made a group, and
    ``["a", "b"]`` one apart from ``["b", "a"]``), and numpy would read a column of lists as a
    table."""
    items = values if not isinstance(values, np.ndarray) or values.ndim == 1 else list(values)
    for value in items:
        if isinstance(value, Sequence | Mapping | AbstractSet | np.ndarray) and not isinstance(
            value, str | bytes
        ):
            raise ValidationError(f"{what} must be single {nouns}, not collections: got {value!r}")


def _refuse_missing(values: Array, what: str, *, noun: str = "class") -> None:
    """Refuse ``values`` holding a missing one (None or NaN): it is no class, and counting it as
    one would make a window of one class look like two, or a missed prediction a negative one.
    Called on the values as given, before they become an array: numpy turns a NaN among strings
    into the string ``'nan'``, which no check can tell from a class."""
    found = np.asarray(values, dtype=object).tolist()
    missing = sum(1 for value in found if _missing(value))
    if missing:
        raise ValidationError(
            f"{missing} of {len(found)} {what} are missing (None or NaN), and a missing one is "
            f"no {noun}"
        )


def _zero_or_one(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.bool_ | np.number) and value in (0, 1)


def _kind(value: Any) -> str:
    """What sort of class ``value`` is: a boolean, a number (of any width) or its own type."""
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | float | np.number):
        return "number"
    return type(value).__name__


def _misdeclared(positive: Any, classes: Sequence[Any]) -> bool:
    """Whether a declared positive class cannot be one of a window's ``classes``:
    among 0/1 classes, it is neither 0 nor 1; among others, none of them equals it and that is a
    misdeclaration rather than a window without positives: it is of a sort no class is (``1``
    among strings), or the window holds two classes, which a binary model's positive one must be
    among."""
    if all(_zero_or_one(value) for value in classes):
        return not _zero_or_one(positive)
    if any(value == positive for value in classes):
        return False
    distinct = {str(value) for value in classes}
    return len(distinct) >= 2 or _kind(positive) not in {_kind(value) for value in classes}


def positive_class(y_true: Array | None, y_pred: Array, *, positive: Any = None) -> Any:
    """The class that counts as positive among the labels and predicted classes.

    0/1 (or boolean) classes need no declaration: 1 is positive. Other classes (``"approve"``,
    ``"deny"``) must name theirs with ``positive``: counting the predictions equal to 1 would find
    none, and every rate and difference would be a silent 0. For the same reason a declared class
    that no prediction and no label equals is refused when it cannot be a class of the window: of
    another type (``1`` among strings), or neither of two classes the window holds (a
    misspelling). A window of a single class of the declared one's type, a model that predicted
    the negative class for everyone, is measured. A missing prediction or label (None or NaN) is
    no class: the window is refused (see :func:`_refuse_missing`).
    """
    columns = [(y_pred, "predicted classes")]
    if y_true is not None:
        columns.append((y_true, "labels"))
    seen = [value for column in classes(*columns) for value in column.tolist()]
    if all(_zero_or_one(value) for value in seen):
        if positive is not None and _misdeclared(positive, seen):
            raise ValidationError(
                f"the predicted classes and labels are 0/1, so the positive class is 0 or 1 "
                f"(1 when left out), not {positive!r}"
            )
        return 1 if positive is None else positive
    named = sorted({str(value) for value in seen})[:5]
    if positive is None:
        raise ValidationError(
            f"the predicted classes and labels {named} are not 0/1: declare which class is "
            "the positive one (the signal's positive, e.g. positive = "
            f"{named[0]!r})"
        )
    if _misdeclared(positive, seen):
        raise ValidationError(
            f"no prediction or label is the positive class {positive!r}; the classes are {named}"
        )
    return positive


def group_keys(groups: Array, *, attribute: str = "") -> npt.NDArray[np.str_]:
    """Each value of a sensitive attribute as its group's key, read by the rule of
    :func:`classes`: ``True``, ``1`` and ``1.0`` are one group (``"1"``), a string is the group
    it spells. An attribute logged as strings by some callers and numbers or booleans by others
    is refused rather than guessed (is ``"1"`` the group ``1``?), and so are a missing value and
    a collection (a list or a mapping), named by the ``attribute`` when given: parity between
    groups of one attribute is only as right as the grouping."""
    what = f"the values of the attribute {attribute!r}" if attribute else "groups"
    _refuse_nonscalar(groups, what, nouns="groups")
    _refuse_missing(groups, "groups", noun="group")
    keyed = [_class(value) for value in np.asarray(groups, dtype=object).tolist()]
    kinds = _kinds(keyed)
    if len(kinds) > 1:
        examples = ", ".join(f"{kind} ({example!r})" for kind, example in sorted(kinds.items()))
        raise ValidationError(
            f"the groups mix kinds: {examples}; a string is never the number or boolean it "
            "spells, so log the attribute alike"
        )
    return np.asarray([str(value) for value in keyed], dtype=str).reshape(len(keyed))


class TooFewGroups(ValidationError):
    """Fairness compares groups: data holding fewer than two groups of the attribute has no
    difference to measure, which says nothing about whether the model is fair. A monitor reads
    it as a window that cannot be measured, as it does a drift statistic of too few values."""


def _compared(rates: Mapping[str, _ExactRates], attribute: str) -> Mapping[str, _ExactRates]:
    """``rates`` when they hold two groups at least; refused with :class:`TooFewGroups`."""
    if len(rates) < 2:
        what = f"the attribute {attribute!r}" if attribute else "the groups"
        held = ", ".join(repr(key) for key in rates) or "none"
        raise TooFewGroups(
            f"only one group of {what} is in the data ({held}): fairness compares two groups "
            "at least, so it cannot be measured"
        )
    return rates


class _ExactRates(NamedTuple):
    """A group's rates as exact fractions of its counts (``None`` where undefined)."""

    size: int
    selection: Fraction
    true_positive: Fraction | None
    false_positive: Fraction | None


def _exact_rates(
    y_true: Array | None, y_pred: Array, groups: Array, *, positive: Any, attribute: str
) -> dict[str, _ExactRates]:
    """Each group's rates as fractions of integer counts (see :func:`group_rates`): a gap
    between them is then exact, so equal gaps get one alert decision at a threshold (in floats
    8/10 - 7/10 is above 0.1, 6/10 - 5/10 below it)."""
    lengths = {
        what: len(values)
        for what, values in (("labels", y_true), ("predictions", y_pred), ("groups", groups))
        if values is not None
    }
    if len(set(lengths.values())) > 1:
        raise ValidationError(f"expected arrays of one length, got {lengths}")
    positive = _class(positive_class(y_true, y_pred, positive=positive))
    [found] = classes((y_pred, "predicted classes"))
    pred = np.asarray(found == positive, dtype=bool)
    g = group_keys(groups, attribute=attribute)
    actual = (
        None
        if y_true is None
        else np.asarray(classes((y_true, "labels"))[0] == positive, dtype=bool)
    )
    keys, index = np.unique(g, return_inverse=True)
    out = {}
    for k, key in enumerate(keys.tolist()):
        mine = index == k
        tpr = fpr = None
        if actual is not None:
            pos, neg = actual & mine, ~actual & mine
            tpr = _share(pred[pos])
            fpr = _share(pred[neg])
        out[key] = _ExactRates(int(mine.sum()), _share(pred[mine]) or Fraction(0), tpr, fpr)
    return out


def _share(flags: npt.NDArray[np.bool_]) -> Fraction | None:
    """The share of true ``flags``, exactly; ``None`` when there are none."""
    return Fraction(int(flags.sum()), len(flags)) if len(flags) else None


def group_rates(
    y_true: Array | None,
    y_pred: Array,
    groups: Array,
    *,
    positive: Any = None,
    attribute: str = "",
) -> dict[str, GroupRates]:
    """Selection rate and, with labels, true and false positive rates, per group (``str`` keys).

    ``positive`` is the positive class, found by :func:`positive_class` (1 for 0/1 classes);
    ``attribute`` names the groups' column in a refusal (see :func:`group_keys`)."""
    found = _exact_rates(y_true, y_pred, groups, positive=positive, attribute=attribute)
    return {key: _as_floats(rates) for key, rates in found.items()}


def _as_floats(rates: _ExactRates) -> GroupRates:
    return GroupRates(
        count=rates.size,
        selection_rate=float(rates.selection),
        true_positive_rate=None if rates.true_positive is None else float(rates.true_positive),
        false_positive_rate=None if rates.false_positive is None else float(rates.false_positive),
    )


def _spread(values: Iterable[Fraction | None]) -> float:
    """The largest minus the smallest of exact rates, converted to a float once."""
    found = [v for v in values if v is not None]
    return float(max(found) - min(found)) if found else 0.0


def _odds_spread(rates: Mapping[str, _ExactRates]) -> float:
    return max(
        _spread(r.true_positive for r in rates.values()),
        _spread(r.false_positive for r in rates.values()),
    )


def has_group(inputs: Mapping[str, Any], attribute: str) -> bool:
    """Whether ``inputs`` logs a value of the sensitive ``attribute``: a prediction that does
    not, or logs None or NaN, belongs to no group, and one made-up group of such predictions
    would be compared with the real ones."""
    return not _missing(inputs.get(attribute))


def _inputs(record: LabelledPrediction | Mapping[str, Any]) -> Mapping[str, Any]:
    """The logged inputs of a prediction-log record or a joined record (none: empty)."""
    found = record.get("inputs") if isinstance(record, Mapping) else record.inputs
    return found if isinstance(found, Mapping) else {}


def demographic_parity_difference(
    y_pred: Array, groups: Array, *, positive: Any = None, attribute: str = ""
) -> float:
    rates = _exact_rates(None, y_pred, groups, positive=positive, attribute=attribute)
    return _spread(r.selection for r in _compared(rates, attribute).values())


def equalized_odds_difference(
    y_true: Array, y_pred: Array, groups: Array, *, positive: Any = None, attribute: str = ""
) -> float:
    rates = _exact_rates(y_true, y_pred, groups, positive=positive, attribute=attribute)
    return _odds_spread(_compared(rates, attribute))


# --- on windows of joined records ----------------------------------------------------------------


class Performance(Record):
    """Performance on one set of labelled predictions; a metric that does not apply is ``None``."""

    count: int
    accuracy: float | None = None
    roc_auc: float | None = None
    expected_calibration_error: float | None = None
    rmse: float | None = None


def performance(
    records: Sequence[LabelledPrediction],
    *,
    task: Literal["classification", "regression"],
    prediction: Callable[[Any], Any] = lambda output: output,
    score: Callable[[Any], float] | None = None,
    positive: Any = None,
    n_bins: int = 10,
) -> Performance:
    """Metrics of one window of joined records.

    ``prediction`` reads the predicted label (or value) from a logged output and ``score`` the
    predicted positive-class probability; with a score, ROC AUC and the calibration error are
    computed too (binary labels only; not where the labels cannot tell which class is positive,
    see :func:`binary_positive`). A classification window with a missing predicted class or label
    (None or NaN) is refused, as :func:`accuracy` refuses it.
    """
    if not records:
        return Performance(count=0)
    labels = [r.label for r in records]
    predicted = [prediction(r.output) for r in records]
    if task == "regression":
        return Performance(count=len(records), rmse=rmse(labels, predicted))
    found: dict[str, float | None] = {"accuracy": accuracy(labels, predicted)}
    if score is not None:
        scores = np.asarray([score(r.output) for r in records], dtype=np.float64)
        count = len(set(classes((labels, "labels"))[0].tolist()))
        found["roc_auc"] = roc_auc(labels, scores, positive=positive) if count == 2 else None
        if count <= 2 and binary_positive(labels, positive) is not None:
            found["expected_calibration_error"] = expected_calibration_error(
                labels, scores, n_bins=n_bins, positive=positive
            )
    return Performance(count=len(records), **found)


class Fairness(Record):
    """Group fairness across one sensitive attribute, flagged past ``threshold``."""

    attribute: str
    groups: dict[str, GroupRates]
    demographic_parity_difference: float
    equalized_odds_difference: float | None = None
    threshold: float
    flagged: bool = Field(description="either difference exceeds the threshold")


def fairness(
    records: Sequence[LabelledPrediction] | Sequence[Mapping[str, Any]],
    attribute: str,
    *,
    prediction: Callable[[Any], Any] = lambda output: output,
    positive: Any = None,
    threshold: float = 0.1,
) -> Fairness:
    """Demographic parity and equalized odds across the declared sensitive ``attribute``.

    ``attribute`` is an input column of each record; a record whose attribute is missing (not
    logged, None or NaN) is in no group and left out (see :func:`has_group`). Unlabelled
    prediction-log records (mappings) give demographic parity only; joined records give
    equalized odds too. ``positive`` is the positive class, needed unless the classes are 0/1
    (:func:`positive_class`). The array-level :func:`demographic_parity_difference` and
    :func:`equalized_odds_difference` leave nothing out: a missing group there is refused.
    Records of fewer than two groups are refused with :class:`TooFewGroups` by all three: one
    group differs from nothing, and a difference of 0 would read as fair.
    """
    if not records:
        raise ValidationError("no predictions to assess")
    kept = [r for r in records if has_group(_inputs(r), attribute)]
    if not kept:
        raise ValidationError(f"no prediction logs a value of the attribute {attribute!r}")
    groups = [_inputs(r)[attribute] for r in kept]
    outputs = [r.get("output") if isinstance(r, Mapping) else r.output for r in kept]
    predicted = [prediction(o) for o in outputs]
    labels = (
        None
        if isinstance(kept[0], Mapping)
        else [r.label for r in kept if not isinstance(r, Mapping)]
    )
    rates = _exact_rates(labels, predicted, groups, positive=positive, attribute=attribute)
    _compared(rates, attribute)
    dpd = _spread(r.selection for r in rates.values())
    eod = None if labels is None else _odds_spread(rates)
    return Fairness(
        attribute=attribute,
        groups={key: _as_floats(found) for key, found in rates.items()},
        demographic_parity_difference=dpd,
        equalized_odds_difference=eod,
        threshold=threshold,
        flagged=dpd > threshold or (eod is not None and eod > threshold),
    )
