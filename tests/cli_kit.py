"""Running the ``mintaka`` command in-process (a uniquely named module shared by the CLI tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mintaka.cli.app import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``mintaka ARGS``; returns the exit status, stdout and stderr."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def init_home(capsys: pytest.CaptureFixture[str], home: Path) -> Path:
    """``mintaka --home HOME init``: the home the other commands open."""
    code, _, err = cli(capsys, "--home", str(home), "init")
    assert code == 0, err
    return home
