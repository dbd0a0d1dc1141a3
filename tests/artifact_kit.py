"""The type of the shared ``make_artifact`` fixture, for tests that take it (a uniquely named
module: every test folder's ``conftest`` is imported as ``conftest``)."""

from __future__ import annotations

from mintaka_conformance.scenarios import MakeArtifact

__all__ = ["MakeArtifact"]
