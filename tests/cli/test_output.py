"""How the CLI's tables read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mintaka.cli import output

RUN_ID = "prun-24b9450c1e09a83d0000058b"
ROWS = [
    (RUN_ID, "credit-default-training", "succeeded", "auc=0.8608, accuracy=0.8",
     "2026-11-28T04:14:05.123456+00:00"),
    ("prun-2", None, "failed", "", datetime(2026, 11, 28, 4, 15, 6, 999, tzinfo=UTC)),
    ("prun-3", "p", "running", "", "2026-11-28T04:16:07Z"),
]  # fmt: skip
COLUMNS = ["run", "pipeline", "status", "metrics", "started"]


def test_instants_read_to_the_second(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output.console, "width", 140)
    output.table("runs", COLUMNS, ROWS)
    out = capsys.readouterr().out
    for instant in ("2026-11-28 04:14:05 ", "2026-11-28 04:15:06 ", "2026-11-28 04:16:07 "):
        assert instant in out
    assert "T04" not in out
    output.table("notes", ["id", "note"], [("a", "seen 2026-11-28T04:16:07Z"), ("b", 7)])
    assert "seen 2026-11-28T04:16:07Z" in capsys.readouterr().out  # only a whole cell is one


def test_a_table_that_fits_is_a_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output.console, "width", 140)
    output.table("runs", COLUMNS, ROWS)
    assert f"│ {RUN_ID} │ credit-default-training │" in capsys.readouterr().out


def test_a_table_that_fits_once_cells_wrap_at_spaces_stays_a_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output.console, "width", 100)
    output.table("runs", COLUMNS, ROWS)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert f"│ {RUN_ID} │ credit-default-training │" in out
    assert "…" not in out
    words = {w for line in lines for w in line.replace("│", " ").split()}
    assert {"auc=0.8608,", "accuracy=0.8", "2026-11-28", "04:14:05"} <= words  # none broken


def test_a_table_wider_than_the_terminal_becomes_one_record_per_row(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is cut or broken mid-word: each row is its first cell, then its other cells one
    per line under their column's name; empty cells are left out."""
    monkeypatch.setattr(output.console, "width", 64)
    output.table("runs", COLUMNS, ROWS)
    out = capsys.readouterr().out
    lines = [line.rstrip() for line in out.splitlines()]
    assert max(len(line) for line in lines) <= 64
    assert lines[:6] == [
        "runs",
        f"run {RUN_ID}",
        "  pipeline  credit-default-training",
        "  status    succeeded",
        "  metrics   auc=0.8608, accuracy=0.8",
        "  started   2026-11-28 04:14:05",
    ]
    assert lines[6:9] == ["run prun-2", "  status    failed", "  started   2026-11-28 04:15:06"]


def test_a_field_value_is_shown_whole_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = "sha256:" + "4d" * 32
    monkeypatch.setattr(output.console, "width", 60)
    output.fields("churn:1", [("digest", digest), ("stage", "none")])
    out = capsys.readouterr().out
    assert "…" not in out
    assert digest in "".join(line.strip(" │") for line in out.splitlines())


def test_table_and_field_cells_are_shown_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """Tags, descriptions and messages may hold square brackets: shown, never read as markup."""
    from rich.text import Text

    from mintaka.cli.output import fields, table

    table("t", ["name", "note"], [("m", "[bold] kept"), ("n", "[/x] kept"), ("o", Text("NO"))])
    fields("f", [("tags", {"team": "[risk]"})])
    out = capsys.readouterr().out
    assert "[bold] kept" in out
    assert "[/x] kept" in out
    assert "team=[risk]" in out


@pytest.mark.parametrize("width", [140, 40])
def test_a_title_is_printed_as_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """A title names what is listed (a model, a cloud's name): square brackets in it are not
    markup, whether the rows print as a table or as records."""
    monkeypatch.setattr(output.console, "width", width)
    output.table("versions of m[/]", COLUMNS, ROWS)
    output.fields("[red]card[/red]", [("owner", "ann")])
    out = capsys.readouterr().out
    assert "versions of m[/]" in out
    assert "[red]card[/red]" in out
