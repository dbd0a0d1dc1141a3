"""The suite fails a deliberately broken backend, in the tests that name each defect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy  # noqa: F401  (see below)
import pytest

# pytester's in-process run forgets every module first imported after the test began, and numpy
# (which the suite's scenarios import) cannot be imported twice in one process: it is imported
# before, so that the tests run after this one in the same process can still import it.

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mintaka-memory" / "src"

BROKEN_SUITE = """
import pytest
from mintaka import NotFound
from mintaka_conformance import (
    AbstractBackendFixtures, AbstractErrorContractTests, AbstractLineageTests,
    AbstractRegistryTests, AbstractRunTests, AbstractServingTests, AbstractSyncTests,
    BackendUnderTest,
)
from mintaka_memory.backend import CLOUDS, MemoryBackend


class BrokenBackend(MemoryBackend):
    name = "broken"

    def set_alias(self, name, alias, version):
        self._version(name, version)
        self.cloud.aliases[name].setdefault(alias, version)  # a move is silently ignored

    def get_version(self, name, version):
        try:
            return super().get_version(name, version)
        except NotFound:
            return super().list_versions(name)[-1]  # answers instead of raising

    def create_version(self, request):
        self.cloud.keys.pop(request.idempotency_key, None)  # a retry creates a duplicate
        return super().create_version(request)

    def list_versions(self, name):
        return [self._version(name, v) for v in sorted(self.cloud.models[name])]  # KeyError

    def log_params(self, run_id, params):
        run = self._run(run_id)  # a logged parameter is silently overwritten
        self.cloud.runs[run_id] = run.model_copy(update={"params": {**run.params, **params}})

    def push_lineage(self, nodes, edges):
        self.cloud.edges.update(list(edges)[:1])  # only the first edge is kept


class BrokenFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(self, request):
        yield BackendUnderTest(BrokenBackend, {"namespace": request.node.nodeid})
        CLOUDS.pop(request.node.nodeid, None)


class TestRegistry(BrokenFixtures, AbstractRegistryTests): ...
class TestRuns(BrokenFixtures, AbstractRunTests): ...
class TestLineage(BrokenFixtures, AbstractLineageTests): ...
class TestServing(BrokenFixtures, AbstractServingTests): ...
class TestSync(BrokenFixtures, AbstractSyncTests): ...
class TestErrors(BrokenFixtures, AbstractErrorContractTests): ...
"""

# A few representative tests per area: the ones each defect must fail, and controls that pass.
EXPECTED = {
    ("registry", "test_alias_moves_between_versions", ""): "failed",
    ("registry", "test_get_missing_version_raises_not_found", ""): "failed",
    ("registry", "test_create_version_is_idempotent_on_key", ""): "failed",
    ("registry", "test_registration_tags_reach_the_cloud", ""): "passed",
    ("runs", "test_param_logged_twice_with_another_value_conflicts", ""): "failed",
    ("runs", "test_run_is_mirrored_to_the_cloud", ""): "passed",
    ("lineage", "test_pushed_lineage_reads_back", ""): "failed",
    ("lineage", "test_downstream_of_a_dataset_reaches_the_version", ""): "passed",
    ("sync", "test_alias_moved_out_of_band_is_reported_and_audited", ""): "failed",
    ("sync", "test_tags_changed_out_of_band_are_reported", ""): "passed",
    ("errors", "test_missing_model_in_the_cloud_is_not_found", ""): "failed",
    ("errors", "test_creating_a_model_twice_conflicts", ""): "passed",
    ("serving", "test_created_endpoint_reads_back", ""): "skipped",
    ("errors", "test_missing_capability_is_refused_not_ignored", "serving"): "passed",
}


def test_broken_backend_fails_the_tests_that_name_its_defects(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    pytester.makepyfile(test_broken=BROKEN_SUITE)
    report = pytester.path / "report.json"
    selected = " or ".join(sorted({test for _, test, _ in EXPECTED}))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-k", selected, f"--mintaka-conformance-report={report}"
    )
    rows = json.loads(report.read_text())["tests"]
    outcomes = {(r["area"], r["test"], r["param"]): r["outcome"] for r in rows}
    assert {key: outcomes.get(key) for key in EXPECTED} == EXPECTED
    assert {r["backend"] for r in rows} == {"broken"}
    skipped = next(r for r in rows if r["test"] == "test_created_endpoint_reads_back")
    assert skipped["reason"] == "backend 'broken' lacks capability 'serving'"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_report_is_written_from_reports_alone_as_a_pytest_xdist_controller_gets_them(
    tmp_path: Path,
) -> None:
    """Under pytest-xdist the controller collects nothing: the rows come from the reports the
    workers send, which carry what each test names; a worker writes no file."""
    from mintaka_conformance.plugin import ConformanceReport

    described = {"area": "registry", "test": "test_alias_moves_between_versions", "param": ""}
    properties = [
        (ConformanceReport.PROPERTY, described),
        ("mintaka_backend", "broken"),
    ]
    reports = [
        pytest.TestReport(
            "t.py::T::test_alias_moves_between_versions",
            ("t.py", 1, "t"),
            {},
            "failed" if when == "call" else "passed",
            None,
            when,
            user_properties=properties,
        )
        for when in ("setup", "call", "teardown")
    ]
    controller = ConformanceReport(tmp_path / "report.json")
    worker = ConformanceReport(tmp_path / "worker.json", writes=False)
    for plugin in (controller, worker):
        for report in reports:
            plugin.pytest_runtest_logreport(report)
        plugin.pytest_sessionfinish()
    rows = json.loads((tmp_path / "report.json").read_text())["tests"]
    assert rows == [{**described, "backend": "broken", "outcome": "failed", "reason": ""}]
    assert not (tmp_path / "worker.json").exists()
