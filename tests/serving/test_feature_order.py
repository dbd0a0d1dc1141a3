"""A model that does not name its features is fed them in the order its signature gives, never
in the order of a request's JSON keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_kit import cli, init_home
from serving_kit import FEATURES, row, sklearn_artifact

from mintaka import ValidationError
from mintaka.domain.registry import Flavor, features_signature
from mintaka.flavors.loader import load_predictor


def test_a_model_without_feature_names_refuses_rows_it_cannot_order(tmp_path: Path) -> None:
    content = sklearn_artifact(tmp_path, 0.5)  # trained on a bare array: no feature names
    unordered = load_predictor(content, Flavor.SKLEARN)
    with pytest.raises(ValidationError, match="order of its input columns is unknown"):
        unordered.predict([row(0)])
    ordered = load_predictor(content, Flavor.SKLEARN, features=FEATURES)
    forwards = row(0)
    backwards = dict(reversed(list(forwards.items())))
    assert ordered.predict([forwards]) == ordered.predict([backwards])


@pytest.mark.parametrize("given", ["a,,c", "a,b,a", " "])
def test_features_are_distinct_names(given: str) -> None:
    with pytest.raises(ValidationError, match="distinct, non-empty column names"):
        features_signature(given)


def test_models_register_records_the_features_as_the_signature(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    artifact = str(sklearn_artifact(tmp_path, 0.5))
    code, out, err = cli(
        capsys, *home, "models", "register", "m", "--artifact", artifact, "--flavor", "sklearn",
        "--features", "a, b ,c", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert '"inputs": {' in out
    from mintaka import Platform

    with Platform(tmp_path / "h") as plat:
        assert list(plat.get_model_version("m", 1).signature.inputs) == FEATURES
    code, _, err = cli(
        capsys, *home, "models", "register", "n", "--artifact", artifact, "--features", "a,a"
    )
    assert code == 1
    assert "distinct" in err
