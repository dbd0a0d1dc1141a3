"""pytest plugin of the conformance suite (entry point ``pytest11``).

It registers the ``requires`` marker, gives conformance tests a per-test timeout where
pytest-timeout is installed and none is configured, and, with ``--mintaka-conformance-report=PATH``,
writes one JSON row per conformance test (backend, area, test, parameter, outcome, skip reason),
which ``mintaka conformance matrix`` renders. It imports nothing from Mintaka at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DEFAULT_TIMEOUT_SECONDS = 60
REPORT_FORMAT = "mintaka-conformance-report/1"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mintaka-conformance", "Mintaka conformance suite")
    group.addoption(
        "--mintaka-conformance-report",
        metavar="PATH",
        default=None,
        help="write the outcome of every conformance test to PATH as JSON",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip unless the backend under test declares every capability",
    )
    path = config.getoption("mintaka_conformance_report")
    if path:
        # Under pytest-xdist each worker collects and runs tests and the controller receives
        # their reports: every process labels its items, only the controller writes the file.
        writes = not hasattr(config, "workerinput")
        report = ConformanceReport(Path(path), writes=writes)
        config.pluginmanager.register(report, "mintaka-conformance-report")


def is_conformance_item(item: pytest.Item) -> bool:
    cls = getattr(item, "cls", None)
    return bool(cls is not None and getattr(cls, "__mintaka_conformance__", False))


def describe(item: pytest.Item) -> dict[str, str]:
    """Which area and abstract test an item runs, whatever the subclass is called."""
    name = getattr(item, "originalname", item.name)
    area = "?"
    cls: type = getattr(item, "cls", None) or object
    for klass in cls.__mro__:
        if name in vars(klass) and "area" in vars(klass):
            area = str(vars(klass)["area"])
            break
    callspec = getattr(item, "callspec", None)
    return {"area": area, "test": name, "param": callspec.id if callspec else ""}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("timeout"):
        return
    configured = config.getoption("timeout", None) or config.getini("timeout")
    if configured and float(configured) > 0:
        return
    for item in items:
        if is_conformance_item(item) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_SECONDS))


class ConformanceReport:
    """Collects one row per conformance test and writes them at the end of the session.

    Each conformance item carries what it tests (``describe``) as a user property, so its
    reports say it wherever the item ran (in this process or a pytest-xdist worker)."""

    PROPERTY = "mintaka_conformance"

    def __init__(self, path: Path, *, writes: bool = True) -> None:
        self.path = path
        self.writes = writes
        self.rows: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if is_conformance_item(item):
                item.user_properties.append((self.PROPERTY, describe(item)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        described = next((v for k, v in report.user_properties if k == self.PROPERTY), None)
        if not isinstance(described, dict):
            return
        row = self.rows.setdefault(
            report.nodeid, {**described, "backend": None, "outcome": None, "reason": ""}
        )
        for key, value in report.user_properties:
            if key == "mintaka_backend":
                row["backend"] = value
        if report.failed:
            row["outcome"] = "failed"
        elif report.skipped and row["outcome"] != "failed":
            row["outcome"] = "skipped"
            longrepr = report.longrepr
            if isinstance(longrepr, tuple) and len(longrepr) == 3:
                row["reason"] = str(longrepr[2]).removeprefix("Skipped: ")
        elif report.when == "call" and report.passed and row["outcome"] is None:
            row["outcome"] = "passed"

    def pytest_sessionfinish(self) -> None:
        if not self.writes:
            return
        rows = sorted(
            (r for r in self.rows.values() if r["outcome"] is not None),
            key=lambda r: (str(r["backend"]), r["area"], r["test"], r["param"]),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"format": REPORT_FORMAT, "tests": rows}, indent=1) + "\n")
