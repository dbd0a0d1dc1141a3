"""Performance and fairness metrics equal scikit-learn's, or hand-computed values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from mintaka.errors import ValidationError
from mintaka.monitoring import (
    accuracy,
    demographic_parity_difference,
    equalized_odds_difference,
    expected_calibration_error,
    fairness,
    join_labels,
    performance,
    rmse,
    roc_auc,
)
from mintaka.monitoring.metrics import (
    binary_positive,
    group_rates,
    positive_class,
    single_class,
)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 500)
    score = np.clip(np.round(0.3 * y + rng.uniform(0, 0.7, 500), 2), 0, 1)  # ties
    return y, score


def test_accuracy_auc_rmse_equal_sklearn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = binary
    pred = (score >= 0.5).astype(int)
    assert close(accuracy(y, pred), sk.accuracy_score(y, pred))
    assert close(roc_auc(y, score), sk.roc_auc_score(y, score))
    assert close(rmse(y, score), math.sqrt(sk.mean_squared_error(y, score)))


def test_ece_from_sklearn_calibration_curve(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = binary
    prob_true, prob_pred = calibration_curve(y, score, n_bins=10, strategy="uniform")
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], score)
    counts = np.bincount(bins, minlength=10)
    counts = counts[counts > 0]
    expected = float(np.sum(counts * np.abs(prob_true - prob_pred)) / len(y))
    assert close(expected_calibration_error(y, score), expected)


def test_ece_by_hand() -> None:
    # bin [0, 0.1]: p=0.1, y=0; bin (0.8, 0.9]: p=0.9 twice, y=1 and 0
    assert close(expected_calibration_error([0, 1, 0], [0.1, 0.9, 0.9]), (0.1 + 2 * 0.4) / 3)


def test_ece_of_a_window_holding_only_negatives_keeps_1_as_the_positive_class() -> None:
    # observed rate 0 in each bin: the error is the mean predicted probability
    assert close(expected_calibration_error([0, 0, 0], [0.1, 0.2, 0.3]), 0.2)
    assert close(expected_calibration_error([False, False], [0.25, 0.75]), 0.5)
    assert close(expected_calibration_error([1, 1], [0.25, 0.75]), 0.5)


def test_join_labels_late_and_corrected() -> None:
    predictions = [
        {"id": "a", "at": "2025-01-01T00:00:00+00:00", "inputs": {}, "output": 1},
        {"id": "b", "at": "2025-01-01T00:01:00+00:00", "inputs": {}, "output": 0},
        {"id": "c", "at": "2025-01-01T00:02:00+00:00", "inputs": {}, "output": 1},
    ]
    joined = join_labels(predictions, [("a", 0), ("c", 1), ("a", 1), ("zzz", 1)])
    assert [(r.id, r.label) for r in joined.records] == [("a", 1), ("c", 1)]
    assert joined.unlabelled == 1
    assert joined.unknown_labels == ["zzz"]
    found = performance(joined.records, task="classification")
    assert found.accuracy == 1.0


def test_fairness_by_hand() -> None:
    y_true = [1, 0, 1, 0, 1, 0, 1, 0]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0]
    groups = ["a", "a", "a", "a", "b", "b", "b", "b"]
    # selection a = 3/4, b = 1/4; TPR a = 1, b = 1/2; FPR a = 1/2, b = 0
    assert close(demographic_parity_difference(y_pred, groups), 0.5)
    assert close(equalized_odds_difference(y_true, y_pred, groups), 0.5)


def test_a_group_logged_as_1_and_as_1_0_is_one_group() -> None:
    y_pred = [1, 1, 0, 0, 1, 0, 1, 0]
    groups: list[object] = [1, 1.0, 1, 1.0, 2, 2.0, 2, 2.0]
    assert sorted(group_rates(None, y_pred, groups)) == ["1", "2"]
    assert close(demographic_parity_difference(y_pred, groups), 0.0)


def labelled(biased: bool) -> list[object]:
    rng = np.random.default_rng(9)
    n = 4000
    group = rng.choice(["f", "m"], n)
    y = rng.integers(0, 2, n)
    correct = rng.uniform(size=n) < 0.85
    pred = np.where(correct, y, 1 - y)
    if biased:  # the model refuses group "f" a positive half of the time
        pred = np.where((group == "f") & (rng.uniform(size=n) < 0.5), 0, pred)
    rows = [
        {"id": str(i), "at": "2025-01-01T00:00:00+00:00", "inputs": {"sex": g}, "output": int(p)}
        for i, (g, p) in enumerate(zip(group, pred, strict=True))
    ]
    return list(join_labels(rows, {str(i): int(v) for i, v in enumerate(y)}).records)


def test_biased_model_is_flagged_and_fair_one_is_not() -> None:
    # Fair model: group rates differ only by sampling noise (sd ~0.016 at n=2000 per group),
    # so 0.1 is > 6 sd away. Biased model: selection rate of "f" drops by ~0.25.
    fair = fairness(labelled(biased=False), "sex")  # type: ignore[arg-type]
    biased = fairness(labelled(biased=True), "sex")  # type: ignore[arg-type]
    assert not fair.flagged
    assert biased.flagged
    assert biased.demographic_parity_difference > 0.2
    assert biased.equalized_odds_difference is not None
    assert biased.equalized_odds_difference > 0.3


def test_fairness_of_string_classes_needs_the_positive_class() -> None:
    y_pred = ["approve", "approve", "deny", "deny"]
    groups = ["a", "a", "b", "b"]
    with pytest.raises(ValidationError, match="not 0/1: declare which class"):
        demographic_parity_difference(y_pred, groups)
    with pytest.raises(ValidationError, match="no prediction or label is the positive class 1"):
        demographic_parity_difference(y_pred, groups, positive=1)
    assert demographic_parity_difference(y_pred, groups, positive="approve") == 1.0
    y_true = ["approve"] * 4
    assert equalized_odds_difference(y_true, y_pred, groups, positive="approve") == 1.0
    assert demographic_parity_difference([True, False], ["a", "b"]) == 1.0


@pytest.mark.parametrize("positive", ["1", 2])
def test_a_positive_class_that_is_not_one_of_0_1_classes_is_refused(positive: object) -> None:
    y_pred, groups = [1, 1, 0, 0], ["a", "a", "b", "b"]
    with pytest.raises(ValidationError, match="the positive class is 0 or 1"):
        demographic_parity_difference(y_pred, groups, positive=positive)
    with pytest.raises(ValidationError, match="none of the label classes"):
        expected_calibration_error([1, 1, 0, 0], [0.9, 0.9, 0.1, 0.1], positive=positive)
    with pytest.raises(ValidationError, match="none of the label classes"):
        roc_auc(["yes", "no"], [0.9, 0.1], positive="Yes")
    assert demographic_parity_difference(y_pred, groups, positive=0) == 1.0
    assert close(expected_calibration_error([1, 1, 0, 0], [0.9, 0.9, 0.1, 0.1], positive=1), 0.1)


def test_0_1_labels_of_one_class_take_a_declared_0_or_1_of_either_type() -> None:
    # as a window of both classes does: a boolean window of negatives with positive = 1
    assert close(expected_calibration_error([False, False], [0.25, 0.75], positive=1), 0.5)
    assert close(expected_calibration_error([False, True], [0.25, 0.75], positive=1), 0.25)
    assert close(expected_calibration_error([0, 0], [0.25, 0.75], positive=True), 0.5)
    assert demographic_parity_difference([False, False], ["a", "b"], positive=1) == 0.0


@pytest.mark.parametrize(
    "classes",
    [[0, 0], [0, 1], [False, False], [True, False], ["a", "a"], ["a", "b"], [2, 2], [2, 3]],
)
@pytest.mark.parametrize("positive", [0, 1, True, False, 1.0, "1", 2, 3, "a", "b", "c"])
def test_performance_and_fairness_refuse_the_same_declared_classes(
    classes: list[Any], positive: Any
) -> None:
    def refused(found: Any) -> bool:
        try:
            found()
        except ValidationError:
            return True
        return False

    assert refused(lambda: binary_positive(classes, positive)) == refused(
        lambda: positive_class(classes, classes, positive=positive)
    )


def test_a_declared_class_absent_from_a_window_of_its_own_type_measures() -> None:
    groups = ["a", "a", "b", "b"]
    assert demographic_parity_difference(["deny"] * 4, groups, positive="approve") == 0.0
    assert demographic_parity_difference([0, 0, 0, 0], groups, positive=1) == 0.0
    assert demographic_parity_difference([2, 2, 2, 2], groups, positive=3) == 0.0
    assert close(expected_calibration_error(["no", "no"], [0.1, 0.1], positive="yes"), 0.1)


@pytest.mark.parametrize(
    ("classes", "positive"),
    [(["deny"] * 4, 1), ([2, 2, 2, 2], "3"), (["deny", "deny", "hold", "hold"], "approve")],
    ids=["number-among-strings", "string-among-numbers", "neither-of-two-classes"],
)
def test_a_declared_class_no_value_could_be_is_refused(classes: list[Any], positive: Any) -> None:
    with pytest.raises(ValidationError, match="no prediction or label is the positive class"):
        demographic_parity_difference(classes, ["a", "a", "b", "b"], positive=positive)
    with pytest.raises(ValidationError, match="none of the label classes"):
        expected_calibration_error(classes, [0.1] * 4, positive=positive)


def test_ece_of_one_class_other_than_0_1_needs_the_positive_class() -> None:
    with pytest.raises(ValidationError, match="does not say which class is positive"):
        expected_calibration_error(["no", "no"], [0.05, 0.05])
    assert close(expected_calibration_error(["no", "no"], [0.05, 0.05], positive="yes"), 0.05)
    assert close(expected_calibration_error(["no", "yes"], [0.0, 1.0], positive="yes"), 0.0)
    rows = [
        {"id": str(i), "at": "2025-01-01T00:00:00+00:00", "inputs": {}, "output": "no"}
        for i in range(3)
    ]
    records = join_labels(rows, {str(i): "no" for i in range(3)}).records
    found = performance(records, task="classification", score=lambda _: 0.05)
    assert (found.accuracy, found.expected_calibration_error) == (1.0, None)
    declared = performance(records, task="classification", score=lambda _: 0.05, positive="yes")
    assert declared.expected_calibration_error == pytest.approx(0.05)


def test_rmse_and_roc_auc_refuse_values_that_are_not_finite() -> None:
    with pytest.raises(ValidationError, match="finite"):
        rmse([0.0, 0.0], [100.0, math.nan])
    with pytest.raises(ValidationError, match="finite"):
        rmse([0.0, math.inf], [100.0, 1.0])
    with pytest.raises(ValidationError, match="must be numbers"):
        rmse(["a", "b"], [1.0, 2.0])
    with pytest.raises(ValidationError, match="finite"):
        roc_auc([0, 1, 0], [0.9, 0.1, math.nan])


def test_fairness_refuses_labels_predictions_and_groups_of_different_lengths() -> None:
    y_pred, groups = [1, 0, 1, 0], ["a", "a", "b", "b"]
    for y_true in ([1], [1, 0, 1]):  # one label would broadcast to every prediction
        with pytest.raises(ValidationError, match="of one length"):
            equalized_odds_difference(y_true, y_pred, groups)
    with pytest.raises(ValidationError, match="of one length"):
        demographic_parity_difference(y_pred, groups[:3])


@pytest.mark.parametrize("missing", [None, math.nan], ids=["none", "nan"])
def test_a_missing_prediction_or_label_is_no_class(missing: Any) -> None:
    groups = ["a", "b", "a"]
    with pytest.raises(ValidationError, match=r"1 of 3 predicted classes are missing"):
        demographic_parity_difference([1, missing, 1], groups)
    with pytest.raises(ValidationError, match=r"1 of 3 predicted classes are missing"):
        equalized_odds_difference(["y", "y", "n"], ["y", missing, "n"], groups, positive="y")
    with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
        equalized_odds_difference([1, missing, 1], [1, 1, 1], groups)
    with pytest.raises(ValidationError, match=r"1 of 2 labels are missing"):
        expected_calibration_error([2, missing], [0.5, 0.5])
    with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
        roc_auc([1, missing, 0], [0.9, 0.5, 0.1])
    assert demographic_parity_difference([1, 1, 1], groups) == 0.0


@pytest.mark.parametrize("missing", [None, math.nan], ids=["none", "nan"])
def test_accuracy_refuses_a_missing_prediction_or_label_instead_of_counting_it_wrong(
    missing: Any,
) -> None:
    with pytest.raises(ValidationError, match=r"1 of 3 predicted classes are missing"):
        accuracy([1, 0, 1], [1, missing, 1])
    with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
        accuracy([1, missing, 1], [1, 0, 1])
    records = join_labels(
        [{"id": str(i), "at": "t", "output": {"label": i % 2, "score": 0.5}} for i in range(3)],
        {"0": 0, "1": missing, "2": 0},
    ).records
    for score in (None, lambda output: output["score"]):
        with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
            performance(
                records,
                task="classification",
                prediction=lambda output: output["label"],
                score=score,
            )
    assert accuracy([1, 0, 1], [1, 0, 0]) == pytest.approx(2 / 3)


def test_a_nan_among_string_classes_is_missing_not_the_class_nan() -> None:
    labels: list[Any] = ["yes", math.nan, "no"]
    with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
        roc_auc(labels, [0.9, 0.5, 0.1], positive="yes")
    with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
        expected_calibration_error(labels, [0.9, 0.5, 0.1], positive="yes")
    rows = [
        {"id": str(i), "at": "t", "inputs": {"group": "ab"[i % 2]}, "output": out}
        for i, out in enumerate(["yes", math.nan, "no"])
    ]
    joined = join_labels(rows, {"0": "yes", "1": "no", "2": math.nan}).records
    with pytest.raises(ValidationError, match=r"1 of 3 labels are missing"):
        performance([r._replace(output="no") for r in joined], task="classification")
    with pytest.raises(ValidationError, match=r"1 of 3 predicted classes are missing"):
        fairness(rows, "group", positive="yes")
    with pytest.raises(ValidationError, match=r"1 of 3 predicted classes are missing"):
        fairness(joined, "group", positive="yes")


@pytest.mark.parametrize(
    ("labels", "positive", "single"),
    [
        ([True, 1, 1.0], None, True),  # one class written three ways
        ([False, 0], None, True),
        (["yes", "yes"], None, True),  # which class is positive is not known yet
        (["no", "no"], "yes", True),
        ([True, 0], None, False),
        (["yes", "no"], "yes", False),
    ],
)
def test_single_class_reads_the_labels_as_roc_auc_does(
    labels: list[Any], positive: Any, single: bool
) -> None:
    assert single_class(labels, positive) is single
    if not single:
        roc_auc(labels, [0.9, 0.1], positive=positive)


def test_true_1_and_1_0_are_one_class_to_every_metric() -> None:
    labels: list[Any] = [True, 1, 1.0, False, 0, 0.0]
    predicted: list[Any] = [1, True, 1.0, 0.0, False, 1]
    scores, groups = [0.9, 0.8, 0.7, 0.2, 0.1, 0.6], ["a", "a", "a", "b", "b", "b"]
    numbers = [1, 1, 1, 0, 0, 0]
    assert accuracy(labels, predicted) == accuracy(numbers, [1, 1, 1, 0, 0, 1]) == 5 / 6
    assert roc_auc(labels, scores) == roc_auc(numbers, scores) == 1.0
    assert expected_calibration_error(labels, scores) == expected_calibration_error(numbers, scores)
    assert equalized_odds_difference(labels, predicted, groups) == equalized_odds_difference(
        numbers, [1, 1, 1, 0, 0, 1], groups
    )
    records = join_labels(
        [{"id": str(i), "at": "t", "output": p} for i, p in enumerate(predicted)],
        {str(i): label for i, label in enumerate(labels)},
    ).records
    found = performance(records, task="classification", score=lambda o: scores[predicted.index(o)])
    assert found.roc_auc is not None  # two classes, not four


@pytest.mark.parametrize(
    ("labels", "predicted"),
    [
        ([1, 0, "1", 0], [1, 0, 1, 0]),  # "1" among numbers in the labels
        (["1", "0", "1", "0"], [1, 0, 1, 0]),  # labels strings, predictions numbers
        ([True, False, True, False], ["True", "False", "True", "False"]),
    ],
    ids=["within-labels", "labels-against-predictions", "booleans-against-their-names"],
)
def test_strings_mixed_with_numbers_are_refused_by_every_metric_alike(
    labels: list[Any], predicted: list[Any]
) -> None:
    scores, groups = [0.9, 0.1, 0.8, 0.2], ["a", "a", "b", "b"]
    mixed = "mix classes of different kinds"
    with pytest.raises(ValidationError, match=mixed):
        accuracy(labels, predicted)
    with pytest.raises(ValidationError, match=mixed):
        equalized_odds_difference(labels, predicted, groups, positive=1)
    with pytest.raises(ValidationError, match=mixed):
        demographic_parity_difference(labels + predicted, groups * 2, positive=1)
    if len({type(v) for v in labels}) > 1:
        for metric in (roc_auc, expected_calibration_error):
            with pytest.raises(ValidationError, match=mixed):
                metric(labels, scores)


def test_groups_are_read_by_the_rule_of_classes() -> None:
    y_pred = [1, 1, 0, 0, 1, 0]
    groups: list[object] = [True, True, 1, 1.0, False, 0]  # True, 1 and 1.0: one group
    assert sorted(group_rates(None, y_pred, groups)) == ["0", "1"]
    assert close(demographic_parity_difference(y_pred, groups), 0.0)
    with pytest.raises(ValidationError, match=r"groups mix kinds: number \(1\), string \('1'\)"):
        group_rates(None, [1, 0], [1, "1"])  # "1" is not 1, nor one group with it
    with pytest.raises(ValidationError, match="1 of 2 groups are missing"):
        group_rates(None, [1, 0], ["a", None])


@pytest.mark.parametrize(
    ("truth", "predicted"),
    [
        ([0, 1], [[0, 1], [1, 0]]),
        ([[0, 1], [1, 0]], [0, 1]),
        ([0, 1], [{"label": 0}, 1]),
        ([0, 1], np.array([[0, 1], [1, 0]])),
        ([0, 1], [np.array([0, 1]), 1]),
    ],
)
def test_a_collection_is_no_class(truth: Any, predicted: Any) -> None:
    with pytest.raises(ValidationError, match="single classes, not collections: got"):
        accuracy(truth, predicted)


def test_fairness_leaves_out_the_records_missing_the_attribute() -> None:
    logged = [
        {"inputs": {"group": "a"}, "output": 1},
        {"inputs": {"group": "a"}, "output": 0},
        {"inputs": {"group": "b"}, "output": 0},
        {"inputs": {"group": None}, "output": 1},
        {"inputs": {"group": math.nan}, "output": 1},
        {"inputs": {}, "output": 1},
        {"inputs": None, "output": 1},
    ]
    found = fairness(logged, "group")
    assert set(found.groups) == {"a", "b"}
    assert close(found.demographic_parity_difference, 0.5)
    with pytest.raises(ValidationError, match="no prediction logs a value of the attribute"):
        fairness(logged[3:], "group")


def test_fairness_refuses_an_attribute_logged_as_a_collection() -> None:
    logged = [
        {"inputs": {"group": "a"}, "output": 1},
        {"inputs": {"group": ["a", "b"]}, "output": 0},
    ]
    with pytest.raises(ValidationError, match=r"attribute 'group'.*got \['a', 'b'\]"):
        fairness(logged, "group")
    with pytest.raises(ValidationError, match=r"groups must be single groups.*got \{'k': 1\}"):
        demographic_parity_difference([1, 0], ["a", {"k": 1}])


@pytest.mark.parametrize("labels", [["fraud", "legit"], [2, 3], ["0", "1"]])
def test_two_classes_other_than_0_1_need_the_positive_class_declared(labels: list[Any]) -> None:
    """The larger class is not taken for the positive one: for "fraud"/"legit" that would be
    "legit", and a perfect fraud model would read as an AUC of 0."""
    truth = [labels[0], labels[0], labels[1], labels[1]]
    scores = [0.9, 0.8, 0.2, 0.1]  # a perfect model of labels[0]
    for metric in (roc_auc, expected_calibration_error):
        with pytest.raises(ValidationError, match="declare which class is positive"):
            metric(truth, scores)
    with pytest.raises(ValidationError, match="declare which class is positive"):
        single_class(truth)
    assert roc_auc(truth, scores, positive=labels[0]) == 1.0
    assert roc_auc(truth, scores, positive=labels[1]) == 0.0
    assert close(expected_calibration_error(truth, scores, positive=labels[0]), 0.15)


def test_0_1_and_boolean_labels_need_no_positive_class() -> None:
    scores = [0.9, 0.8, 0.2, 0.1]
    assert roc_auc([1, 1, 0, 0], scores) == roc_auc([True, True, False, False], scores) == 1.0
    assert roc_auc([1.0, 1.0, 0.0, 0.0], scores) == 1.0


@pytest.mark.parametrize(
    ("high", "low"), [((8, 10), (7, 10)), ((6, 10), (5, 10)), ((3, 10), (2, 10))]
)
def test_equal_parity_gaps_get_one_decision_at_the_threshold(
    high: tuple[int, int], low: tuple[int, int]
) -> None:
    """Each gap is exactly 1/10: in floats 8/10 - 7/10 came out above 0.1 and 6/10 - 5/10
    below it, so one was flagged and the other not."""
    predicted, groups = [], []
    for group, (selected, size) in (("a", high), ("b", low)):
        predicted += [1] * selected + [0] * (size - selected)
        groups += [group] * size
    assert demographic_parity_difference(predicted, groups) == 0.1
    records = [
        {"id": str(i), "at": "2025-01-01T00:00:00+00:00", "inputs": {"g": g}, "output": p}
        for i, (p, g) in enumerate(zip(predicted, groups, strict=True))
    ]
    found = fairness(records, "g", threshold=0.1)
    assert (found.demographic_parity_difference, found.flagged) == (0.1, False)
    # every label positive: each group's true positive rate is its selection rate
    assert equalized_odds_difference([1] * len(predicted), predicted, groups) == 0.1
    joined = join_labels(records, {str(i): 1 for i in range(len(predicted))}).records
    assert fairness(joined, "g", threshold=0.1).equalized_odds_difference == 0.1


def test_rmse_of_huge_finite_errors_is_finite() -> None:
    assert rmse([0.0, 0.0], [1e200, -1e200]) == pytest.approx(1e200, rel=1e-12)
    assert rmse([1e308, 0.0], [-1e308, 0.0]) == pytest.approx(math.sqrt(2) * 1e308, rel=1e-12)
    with pytest.raises(ValidationError, match="beyond"):
        rmse([1.7e308, 1.7e308], [-1.7e308, -1.7e308])  # 3.4e308: no float holds it


def test_rmse_of_no_error_is_zero() -> None:
    assert rmse([1.5, 2.0], [1.5, 2.0]) == 0.0


def test_ece_refuses_probabilities_that_are_not_numbers() -> None:
    with pytest.raises(ValidationError, match="probabilities must be numbers"):
        expected_calibration_error([0, 1], ["a", 0.2])
    with pytest.raises(ValidationError, match="probabilities must be finite numbers"):
        expected_calibration_error([0, 1], [0.5, math.nan])


def test_fairness_of_one_group_cannot_be_measured_rather_than_reading_fair() -> None:
    from mintaka.monitoring.metrics import TooFewGroups

    with pytest.raises(TooFewGroups, match="only one group of the attribute 'sex'"):
        demographic_parity_difference([1, 0, 1], ["f", "f", "f"], attribute="sex")
    with pytest.raises(TooFewGroups, match="cannot be measured"):
        equalized_odds_difference([1, 0, 1], [1, 1, 0], ["f", "f", "f"])
    logged = [{"inputs": {"sex": "f"}, "output": 1}, {"inputs": {"sex": "f"}, "output": 0}]
    with pytest.raises(TooFewGroups):
        fairness(logged, "sex")
    assert demographic_parity_difference([1, 0], ["f", "m"]) == 1.0
