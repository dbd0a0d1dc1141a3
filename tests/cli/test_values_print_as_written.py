"""Free text the CLI prints (tag values, feature names, identities, paths) is printed as written:
square brackets in it are not read as Rich markup, which would drop or restyle them, or stop the
command with a traceback after its change is committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli, init_home

BRACKETED = ["[/]", "[red]x", "[bold]y[/bold]", "a[/b]\\"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines as long as they are written, long temporary paths included."""
    from mintaka.cli import output

    monkeypatch.setattr(output.console, "width", 1000)


@pytest.fixture
def home(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> list[str]:
    """A home holding ``churn:1``, as the options that open it."""
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"weights")
    h = ["--home", str(init_home(capsys, tmp_path / "h")), "--as", "dana"]
    code, _, err = cli(capsys, *h, "models", "register", "churn", "--artifact", str(artifact))
    assert code == 0, err
    return h


@pytest.mark.parametrize("value", BRACKETED)
def test_a_tag_value_is_printed_as_written(
    capsys: pytest.CaptureFixture[str], home: list[str], value: str
) -> None:
    code, out, err = cli(capsys, *home, "models", "tag", "churn:1", f"note={value}")
    assert code == 0, err
    assert f"churn:1 tags: {{'note': {value!r}}}" in out
    code, out, _ = cli(capsys, *home, "models", "show", "churn:1", "--json")
    assert json.loads(out)["tags"] == {"note": value}


@pytest.mark.parametrize("column", BRACKETED)
def test_a_feature_name_is_printed_as_written(
    capsys: pytest.CaptureFixture[str], home: list[str], column: str
) -> None:
    code, out, err = cli(capsys, *home, "models", "features", "churn:1", f"a,{column}")
    assert code == 0, err
    assert f"churn:1 inputs: a, {column}" in out


def test_a_home_path_is_printed_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "h[/]"
    code, out, err = cli(capsys, "--home", str(home), "init")
    assert code == 0, err
    assert f"initialised {home} (backend local" in out
    code, out, err = cli(capsys, "--home", str(home), "init")
    assert code == 0, err
    assert f"{home} is already initialised" in out


def test_an_approver_is_printed_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.governance.policy import DEFAULT_POLICY

    monkeypatch.delenv("MINTAKA_POLICY", raising=False)
    home = tmp_path / "h"
    home.mkdir()
    roles = '[roles]\n"[bold]rita[/]" = ["model-risk"]\n'
    (home / "policy.toml").write_text(DEFAULT_POLICY.read_text().replace("[roles]\n", roles, 1))
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"m")
    h = ["--home", str(init_home(capsys, home))]
    code, _, err = cli(
        capsys, *h, "--as", "dana", "models", "register", "m", "--artifact", str(artifact),
        "--tier", "high",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli(capsys, *h, "--as", "[bold]rita[/]", "approve", "m:1")
    assert code == 0, err
    assert "approved m:1 as [bold]rita[/] (model-risk)" in out


def test_a_scored_file_is_named_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    h = ["--home", str(init_home(capsys, tmp_path / "h")), "--as", "ops"]
    code, _, err = cli(
        capsys, *h, "models", "register", "m", "--artifact", str(make_servable(b"m")),
        "--flavor", "pyfunc",
    )  # fmt: skip
    assert code == 0, err
    source = tmp_path / "in.csv"
    source.write_text("x\n0.5\n")
    scored = tmp_path / "[/]scored.csv"
    code, out, err = cli(
        capsys, *h, "score", "m:1", "--input", str(source), "--output", str(scored)
    )
    assert code == 0, err
    assert f"scored 1 rows into {scored}" in out


def test_an_evidence_pack_is_named_as_written(
    capsys: pytest.CaptureFixture[str], home: list[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "[red]packs"
    code, out, err = cli(capsys, *home, "evidence", "export", "churn:1", "--out", str(out_dir))
    assert code == 0, err
    assert f"wrote {out_dir}" in out
