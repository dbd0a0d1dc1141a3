"""The command lists of ``--help``: one line of prose per command, however its docstring wraps."""

from __future__ import annotations

import pytest
from cli_kit import cli


def test_a_wrapped_docstring_reads_as_one_paragraph_in_the_command_list(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that nothing wraps for width
    code, out, _ = cli(capsys, "pipeline", "--help")
    assert code == 0
    [line] = [row for row in out.splitlines() if "│ run " in row]
    # The docstring breaks after "Databricks"; the list must not.
    assert "(SageMaker Pipelines, Databricks Jobs), else on this machine" in line


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ((), "State directory [default: .mintaka]."),
        (("adopt", "model"), "[default: the model's recorded owner, else you]."),
        (("adopt", "model"), "Only this version (repeatable) [default: all]."),
        (("endpoints", "create"), "Route name [default: MODEL-vN]."),
    ],
)
def test_help_texts_show_their_square_brackets(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    shown: str,
) -> None:
    """Typer's rich mode reads ``[default: ...]`` as markup and drops it unless escaped."""
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = cli(capsys, *command, "--help")
    assert code == 0
    assert shown in out


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (("datasets", "list"), "sorted by name, each name's oldest first"),
        (("datasets", "show"), "A dataset id, or a name for its latest version."),
    ],
)
def test_datasets_help_says_how_list_sorts_and_what_show_takes(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    shown: str,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = cli(capsys, *command, "--help")
    assert code == 0
    assert shown in out
