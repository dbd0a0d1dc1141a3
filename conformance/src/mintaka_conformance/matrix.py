"""The backend x capability matrix: run each backend's suite, keep the results, render the page.

The page has a static part, derived from what backends declare and from the suite's own test
docstrings, and a results part, rendered from a JSON file of per-test outcomes (the committed
``docs/conformance-results.json``). Rendering is pure, so a fast test can check that the committed
page still matches the declarations and docstrings without running the suite again.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mintaka.capabilities import Capability
from mintaka.interfaces import Backend, Emulation
from mintaka_conformance.expected import EXPECTED, Expectation
from mintaka_conformance.plugin import REPORT_FORMAT

RESULTS_FORMAT = "mintaka-conformance-results/1"
Results = dict[str, list[dict[str, str]]]  # backend -> rows (area, test, param, outcome, reason)


@dataclass(frozen=True)
class TestInfo:
    area: str
    name: str
    doc: str
    requires: tuple[Capability, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.area, self.name)


@dataclass(frozen=True)
class BackendInfo:
    name: str
    plugin: str
    description: str
    capabilities: frozenset[Capability]
    emulated: Mapping[Capability, Emulation] = field(default_factory=dict)

    @classmethod
    def of(cls, backend: type[Backend], plugin: str) -> BackendInfo:
        return cls(
            name=backend.name,
            plugin=plugin,
            description=backend.description,
            capabilities=frozenset(backend.capabilities),
            emulated=dict(backend.emulated),
        )


def catalogue() -> list[TestInfo]:
    """Every test of the suite, in area order, from the abstract classes themselves."""
    from mintaka_conformance.suite import AREAS

    tests: list[TestInfo] = []
    for area_class in AREAS:
        area = str(vars(area_class)["area"])
        for name, function in vars(area_class).items():
            if not (name.startswith("test_") and callable(function)):
                continue
            requires = tuple(
                Capability(cap)
                for mark in getattr(function, "pytestmark", [])
                if mark.name == "requires"
                for cap in mark.args
            )
            doc = " ".join((inspect.getdoc(function) or "").split())
            tests.append(TestInfo(area, name, doc, requires))
    return tests


def installed_backends() -> list[BackendInfo]:
    from mintaka.plugins import PluginManager

    return [BackendInfo.of(entry.cls, entry.plugin) for entry in PluginManager().backends()]


# -- results ------------------------------------------------------------------------------------


def load_results(path: Path) -> Results:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not a {RESULTS_FORMAT} file")
    return {name: list(rows) for name, rows in data["backends"].items()}


def dump_results(results: Results) -> str:
    body = {
        "format": RESULTS_FORMAT,
        "backends": {
            name: sorted(rows, key=lambda r: (r["area"], r["test"], r["param"]))
            for name, rows in sorted(results.items())
        },
    }
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def run_suite(backend: str, target: str, *, cwd: Path | None = None) -> list[dict[str, str]]:
    """Run one backend's conformance module in a fresh pytest process; its rows for ``backend``."""
    with tempfile.TemporaryDirectory(prefix="mintaka-conformance-") as scratch:
        report = Path(scratch) / "report.json"
        is_path = target.endswith(".py") or os.sep in target or "/" in target
        command = [
            sys.executable,
            "-m",
            "pytest",
            *([target] if is_path else ["--pyargs", target]),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--mintaka-conformance-report={report}",
        ]
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1) or not report.exists():
            raise RuntimeError(
                f"the conformance suite of {backend!r} did not run ({' '.join(command)}):\n"
                + (done.stdout[-4000:] + done.stderr[-4000:])
            )
        data = json.loads(report.read_text())
    if data.get("format") != REPORT_FORMAT:
        raise RuntimeError(f"unexpected report format from {target}")
    keep = ("area", "test", "param", "outcome", "reason")
    return [{k: str(row[k]) for k in keep} for row in data["tests"] if row["backend"] == backend]


# -- rendering ----------------------------------------------------------------------------------

LEGEND = (
    "**pass**: every test that names the capability passed. **fail**: at least one failed. "
    "**untested**: declared, but no behaviour test names it yet (core still refuses it on "
    "backends that lack it). **not supported**: not declared; the suite checks that core refuses "
    "it with `UnsupportedCapability`. **not run**: no results recorded for this backend. "
    "*native* or *emulated* says how the backend provides it; **(expected)** marks a capability "
    "that the cloud can do but the backend does not declare."
)


def _outcomes(rows: Iterable[Mapping[str, str]]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        found.setdefault((row["area"], row["test"]), []).append(row["outcome"])
    return found


def _capability_cell(
    capability: Capability,
    backend: BackendInfo,
    tests: Sequence[TestInfo],
    outcomes: Mapping[tuple[str, str], list[str]] | None,
    expected: Expectation | None,
) -> str:
    if capability not in backend.capabilities:
        missing = expected is not None and expected.support(capability) is not None
        return "not supported" + (" **(expected)**" if missing else "")
    how = "emulated" if capability in backend.emulated else "native"
    naming = [t for t in tests if capability in t.requires]
    if not naming:
        return f"untested ({how})"
    if outcomes is None:
        return f"not run ({how})"
    seen = [o for t in naming for o in outcomes.get(t.key, [])]
    if "failed" in seen:
        return f"**fail** ({how})"
    if "passed" in seen:
        return f"pass ({how})"
    return f"not run ({how})"


def _test_cell(outcomes: Mapping[tuple[str, str], list[str]] | None, test: TestInfo) -> str:
    if outcomes is None or test.key not in outcomes:
        return "not run"
    counts = Counter(outcomes[test.key])
    words = {"passed": "pass", "failed": "**fail**", "skipped": "skip"}
    if len(outcomes[test.key]) == 1:
        return words[outcomes[test.key][0]]
    return ", ".join(
        f"{counts[o]} {words[o]}" for o in ("passed", "failed", "skipped") if counts[o]
    )


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render(backends: Sequence[BackendInfo], tests: Sequence[TestInfo], results: Results) -> str:
    """The whole of ``docs/conformance.md``."""
    names = [b.name for b in backends]
    outcomes = {name: _outcomes(rows) for name, rows in results.items()}
    lines = [
        "# Conformance matrix",
        "",
        "<!-- Generated by `mintaka conformance matrix` from the installed backends' declared",
        "     capabilities, the suite's test docstrings and docs/conformance-results.json.",
        "     Do not edit by hand; tests/conformance/test_matrix_page.py checks it. -->",
        "",
        "Every backend runs the shared suite of `mintaka-conformance` against itself (see",
        "[writing a backend](writing-a-backend.md)). Tests name capabilities, never backends: a",
        "test that needs a capability the backend does not declare is skipped with the reason",
        "`backend 'B' lacks capability 'X'`, and the error-contract tests then check that core",
        "refuses the operation with `UnsupportedCapability` instead of doing nothing.",
        "",
        "## Backends",
        "",
        _row(["backend", "plugin", "description"]),
        _row(["---"] * 3),
        *(_row([f"`{b.name}`", f"`{b.plugin}`", b.description or "-"]) for b in backends),
        "",
        "## Backend x capability",
        "",
        LEGEND,
        "",
        _row(["capability", *(f"`{n}`" for n in names)]),
        _row(["---"] * (len(names) + 1)),
    ]
    for capability in Capability:
        lines.append(
            _row(
                [
                    f"`{capability.value}`",
                    *(
                        _capability_cell(
                            capability, b, tests, outcomes.get(b.name), EXPECTED.get(b.name)
                        )
                        for b in backends
                    ),
                ]
            )
        )
    lines += ["", "## Emulated capabilities", ""]
    emulations = [(b.name, c, e) for b in backends for c, e in sorted(b.emulated.items())]
    if not emulations:
        lines.append("None of the installed backends emulates a capability.")
    for name, capability, emulation in emulations:
        lines.append(
            f"- `{name}` / `{capability.value}`: {emulation.how} *Cannot cover:* {emulation.limits}"
        )
    clouds = list(EXPECTED)
    lines += [
        "",
        "## What each cloud can do",
        "",
        "Written down in `mintaka_conformance.expected` from the shared notes on the clouds; a",
        "test fails when an installed backend declares less than this.",
        "",
        _row(["capability", *(f"`{c}`" for c in clouds)]),
        _row(["---"] * (len(clouds) + 1)),
    ]
    for capability in Capability:
        cells = [str(EXPECTED[c].support(capability) or "-") for c in clouds]
        lines.append(_row([f"`{capability.value}`", *cells]))
    lines += ["", "## Tests", ""]
    for area in dict.fromkeys(t.area for t in tests):
        lines += [
            f"### {area}",
            "",
            _row(["test", "requires", *(f"`{n}`" for n in names)]),
            _row(["---"] * (len(names) + 2)),
        ]
        for test in (t for t in tests if t.area == area):
            needs = ", ".join(f"`{c.value}`" for c in test.requires) or "-"
            lines.append(
                _row(
                    [
                        f"`{test.name}`: {test.doc}",
                        needs,
                        *(_test_cell(outcomes.get(n), test) for n in names),
                    ]
                )
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_installed(results: Results) -> str:
    return render(installed_backends(), catalogue(), results)


__all__ = [
    "BackendInfo",
    "Results",
    "TestInfo",
    "catalogue",
    "dump_results",
    "installed_backends",
    "load_results",
    "render",
    "render_installed",
    "run_suite",
]
