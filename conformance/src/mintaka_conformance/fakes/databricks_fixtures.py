"""pytest fixtures for the fake Databricks workspace; enable with
``pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]`` in a top-level conftest.

``databricks_fake`` is a running :class:`~mintaka_conformance.fakes.databricks.FakeDatabricks`;
``databricks_client`` a real ``WorkspaceClient`` pointed at it, built in a clean environment
(``databricks_environment``) with a :class:`~mintaka_conformance.fakes.databricks.NoWaitClock`
(``databricks_clock``). Override ``databricks_fake`` to change its seed, faults or settle rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mintaka_conformance.fakes.databricks import (
    FakeDatabricks,
    NoWaitClock,
    workspace_client,
)
from mintaka_conformance.fakes.databricks.client import environment_changes

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


@pytest.fixture
def databricks_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ``DATABRICKS_*`` / ``ARM_*`` variable or ``~/.databrickscfg`` profile leaks in."""
    home = tmp_path / "databricks-home"
    home.mkdir()
    for name, value in environment_changes(home).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return home


@pytest.fixture
def databricks_fake() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(seed=0) as fake:
        yield fake


@pytest.fixture
def databricks_clock() -> NoWaitClock:
    return NoWaitClock()


@pytest.fixture
def databricks_client(
    databricks_fake: FakeDatabricks,
    databricks_environment: Path,
    databricks_clock: NoWaitClock,
) -> WorkspaceClient:
    pytest.importorskip("databricks.sdk")
    return workspace_client(databricks_fake, clock=databricks_clock)
