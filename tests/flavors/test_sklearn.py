from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mintaka.errors import ValidationError
from mintaka.flavors import sklearn as flavor

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def _double(values: np.ndarray) -> np.ndarray:
    return values * 2


@pytest.mark.parametrize(
    ("make", "trusted"),
    [
        (lambda: LogisticRegression().fit(X, Y), []),
        (lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y), []),
        (
            lambda: RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y),
            ["sklearn.tree._tree.Tree"],
        ),
    ],
)
def test_same_model_gives_same_bytes_and_round_trips(make, trusted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = flavor.dumps(make()), flavor.dumps(make())
    assert first == second
    flavor.save(make(), tmp_path)
    loaded = flavor.load(tmp_path, trusted=trusted)
    np.testing.assert_array_equal(loaded.predict(X), make().predict(X))


def test_untrusted_types_are_refused_unless_named(tmp_path: Path) -> None:
    model = make_pipeline(FunctionTransformer(_double), LogisticRegression()).fit(X, Y)
    flavor.save(model, tmp_path)
    with pytest.raises(ValidationError, match="untrusted types"):
        flavor.load(tmp_path)
    untrusted = [f"{__name__}._double"]
    assert flavor.load(tmp_path, trusted=untrusted).predict(X).shape == (200,)
