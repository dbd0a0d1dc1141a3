"""The example plugin in examples/mintaka-memory opts into the suite from one test file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mintaka.cli.conformance import collect_suites
from mintaka.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mintaka-memory"


def install_example(site: Path) -> None:
    """Install the example the way pip would, entry point included, without touching the venv."""
    info = site / "mintaka_memory-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mintaka-memory\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[mintaka]\nmemory = mintaka_memory.plugin\n")
    (info / "RECORD").write_text("")


def test_example_declares_its_entry_point() -> None:
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points.mintaka]\nmemory = "mintaka_memory.plugin"' in text


def test_example_passes_the_suite_through_its_one_test_file(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    install_example(site)
    path = os.pathsep.join([str(site), str(EXAMPLE / "src"), os.environ.get("PYTHONPATH", "")])
    pytester._monkeypatch.setenv("PYTHONPATH", path)
    found = pytester.run(
        "python",
        "-c",
        "from mintaka.plugins import PluginManager; "
        "print(sorted(e.name for e in PluginManager().backends()))",
    )
    assert "'memory'" in found.stdout.str()
    result = pytester.runpytest_subprocess(
        str(EXAMPLE / "tests" / "test_memory_conformance.py"),
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        # A representative part; `mintaka conformance matrix` runs the whole file.
        "TestMemoryRegistry or TestMemorySync",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 25


def test_matrix_finds_suites_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    import mintaka_memory.plugin

    from mintaka.local import plugin as local_plugin

    plugins = PluginManager(load_entry_points=False, extra=[local_plugin, mintaka_memory.plugin])
    suites = collect_suites(plugins)
    assert suites == {
        "local": str(ROOT / "tests" / "conformance" / "test_local_conformance.py"),
        "memory": str(EXAMPLE / "tests" / "test_memory_conformance.py"),
    }
