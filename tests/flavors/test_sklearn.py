from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mintaka import Platform
from mintaka.domain.registry import Flavor
from mintaka.errors import NotFound, ValidationError
from mintaka.flavors import sklearn as flavor
from mintaka.flavors.loader import (
    detect_flavor,
    flavor_of_files,
    load_predictor,
    require_flavor_files,
)

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


def test_a_single_skops_file_under_any_name_loads(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, Y)
    (tmp_path / "clf.skops").write_bytes(flavor.dumps(model))
    predictor = load_predictor(tmp_path, Flavor.SKLEARN, features=tuple("abcd"))
    rows = [dict(zip("abcd", map(float, row), strict=True)) for row in X[:3]]
    assert predictor.predict(rows) == list(model.predict_proba(X[:3])[:, -1])
    assert detect_flavor(tmp_path) is Flavor.SKLEARN
    assert detect_flavor(tmp_path / "clf.skops") is Flavor.SKLEARN


def test_loading_without_the_model_file_is_a_validation_error(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, Y)
    (tmp_path / "clf.skops").write_bytes(flavor.dumps(model))
    (tmp_path / "README.md").write_text("the model")
    with pytest.raises(ValidationError, match=r"lacks model\.skops"):
        load_predictor(tmp_path, Flavor.SKLEARN)
    assert detect_flavor(tmp_path) is Flavor.OPAQUE


@pytest.mark.parametrize(
    ("paths", "declared", "needs"),
    [
        (["clf.skops", "README.md"], Flavor.SKLEARN, r"needs model\.skops"),
        (["sub/model.skops"], Flavor.SKLEARN, r"needs model\.skops"),
        (["model.bin"], Flavor.PYFUNC, r"needs pyfunc\.json"),
    ],
)
def test_a_declared_flavor_must_match_the_files(
    paths: list[str], declared: Flavor, needs: str
) -> None:
    with pytest.raises(ValidationError, match=needs):
        require_flavor_files(paths, declared)


@pytest.mark.parametrize(
    ("paths", "declared"),
    [
        (["model.skops", "README.md"], Flavor.SKLEARN),
        (["clf.SKOPS"], Flavor.SKLEARN),
        (["pyfunc.json", "weights.bin"], Flavor.PYFUNC),
        (["anything.bin"], Flavor.OPAQUE),
    ],
)
def test_files_that_hold_what_the_flavor_loads_are_accepted(
    paths: list[str], declared: Flavor
) -> None:
    require_flavor_files(paths, declared)
    assert flavor_of_files(paths) is declared


@pytest.mark.parametrize(
    "content",
    [b"not a zip", flavor.dumps(LogisticRegression().fit(X, Y))[:100], b"PK\x05\x06" + bytes(18)],
)
def test_a_skops_named_file_that_is_no_skops_archive_fails_to_load_typed(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "churn.skops").write_bytes(content)
    with pytest.raises(ValidationError, match=r"churn\.skops is not a skops archive"):
        load_predictor(tmp_path, Flavor.SKLEARN)


def test_a_skops_named_file_that_is_no_skops_archive_is_refused_at_registration(
    platform: Platform, tmp_path: Path
) -> None:
    artifact = tmp_path / "a"
    artifact.mkdir()
    (artifact / "churn.skops").write_bytes(b"not a zip")
    ingested = platform.artifacts.ingest(artifact)
    for given in (artifact, artifact / "churn.skops", ingested):
        with pytest.raises(ValidationError, match="not a skops archive"):
            platform.register_model("churn", given, flavor="sklearn")
    with pytest.raises(NotFound):
        platform.list_versions("churn")
    assert platform.register_model("churn", artifact).ref == "churn:1"  # opaque bytes are fine
