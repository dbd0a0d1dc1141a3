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


def test_features_recorded_after_adoption_let_the_version_serve(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import httpx

    from mintaka import Conflict, Platform
    from mintaka.local.server import InferenceServer

    home = init_home(capsys, tmp_path / "h")
    artifact = sklearn_artifact(tmp_path, 0.5)

    def answers(plat: Platform, *rows: dict[str, float]) -> list[httpx.Response]:
        with InferenceServer(plat) as server:
            server.start()
            url = f"{server.url}/endpoints/scoring/invocations"
            return [httpx.post(url, json={"inputs": r}) for r in rows]

    with Platform(home) as plat:
        plat.register_model("m", artifact, flavor="sklearn")  # no signature
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        [refused] = answers(plat, row(0))
        assert refused.status_code == 400
        assert "order of its input columns is unknown" in refused.json()["error"]
        assert "mintaka models features NAME:VERSION a,b,c" in refused.json()["error"]
    code, out, err = cli(capsys, "--home", str(home), "models", "features", "m:1", "a,b,c")
    assert code == 0, err
    assert "m:1 inputs: a, b, c" in out
    with Platform(home) as plat:
        events = len(plat.audit.events())
        assert plat.set_features("m", 1, FEATURES).signature.inputs  # the same: nothing new
        assert len(plat.audit.events()) == events
        with pytest.raises(Conflict, match="already records its inputs"):
            plat.set_features("m", 1, "c,b,a")
        forwards = row(0)
        backwards = dict(reversed(list(forwards.items())))
        first, second = answers(plat, forwards, backwards)
        assert first.status_code == second.status_code == 200
        output = [r.json()["predictions"][0]["output"] for r in (first, second)]
        assert output[0] == output[1]


@pytest.mark.parametrize("value", [True, "1_0", "\u0661", "", None, [1.0]])
def test_a_feature_that_is_not_a_plain_number_is_refused(tmp_path: Path, value: object) -> None:
    predictor = load_predictor(sklearn_artifact(tmp_path, 0.5), Flavor.SKLEARN, features=FEATURES)
    with pytest.raises(ValidationError, match="features must be numbers"):
        predictor.predict([{**row(0), "b": value}])


@pytest.mark.parametrize("value", [1, 1.5, "2.5", " -3e-1 ", "7"])
def test_numbers_and_their_text_are_features(tmp_path: Path, value: object) -> None:
    predictor = load_predictor(sklearn_artifact(tmp_path, 0.5), Flavor.SKLEARN, features=FEATURES)
    [answer] = predictor.predict([{**row(0), "b": value}])
    assert 0.0 <= answer <= 1.0
