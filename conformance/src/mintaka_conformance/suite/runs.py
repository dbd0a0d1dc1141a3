"""Runs: experiment runs mirrored into the cloud's tracking service, and what core keeps of them."""

from __future__ import annotations

from typing import Any

import pytest

from mintaka import Capability, Conflict, NotFound, Platform, RunStatus
from mintaka_conformance.fixtures import AbstractBackendFixtures
from mintaka_conformance.scenarios import CODE_COMMIT, ModelScenario, Names


class AbstractRunTests(AbstractBackendFixtures):
    area = "runs"

    def test_run_keeps_code_commit_datasets_and_metrics(
        self, platform: Platform, scenario: ModelScenario
    ) -> None:
        """The backend MUST let core record a run with its code commit, datasets, params and
        metrics."""
        run = platform.get_run(scenario.run.id)
        assert run.code_commit == CODE_COMMIT
        assert run.dataset_ids == (scenario.dataset.id,)
        assert run.params == {"max_depth": "4", "learning_rate": "0.1"}
        assert run.metrics == {"auc": 0.91, "logloss": 0.33}
        assert run.status is RunStatus.FINISHED
        assert run.backend == platform.backend.name

    def test_version_from_a_run_inherits_its_lineage(self, scenario: ModelScenario) -> None:
        """The backend MUST let a version registered from a run carry the run's params, metrics and
        data."""
        version = scenario.version(1)
        assert version.run_id == scenario.run.id
        assert version.params == scenario.run.params
        assert version.metrics == scenario.run.metrics
        assert version.dataset_ids == (scenario.dataset.id,)
        assert version.code_commit == CODE_COMMIT

    @pytest.mark.requires(Capability.RUNS)
    def test_run_is_mirrored_to_the_cloud(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST hold a run with the experiment, params, metrics and final status core
        logged."""
        seen = cloud.get_run(scenario.run.id)
        assert seen.id == scenario.run.id
        assert seen.experiment == scenario.run.experiment
        assert seen.params == scenario.run.params
        assert seen.metrics == scenario.run.metrics
        assert seen.status is RunStatus.FINISHED

    @pytest.mark.requires(Capability.RUNS)
    def test_params_and_metrics_accumulate(
        self, platform: Platform, cloud: Any, names: Names
    ) -> None:
        """The backend MUST accumulate params and metrics logged in several calls, the latest
        metric winning."""
        run = platform.start_run(names.model("exp"), params={"a": 1}, code_commit_=CODE_COMMIT)
        platform.log_params(run.id, {"b": 2})
        platform.log_metrics(run.id, {"loss": 0.5})
        platform.log_metrics(run.id, {"loss": 0.25, "acc": 0.8})
        platform.end_run(run.id, RunStatus.FAILED)
        seen = cloud.get_run(run.id)
        assert seen.params == {"a": "1", "b": "2"}
        assert seen.metrics == {"loss": 0.25, "acc": 0.8}
        assert seen.status is RunStatus.FAILED

    @pytest.mark.requires(Capability.RUNS)
    def test_create_run_is_idempotent(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST treat creating a run that exists as a no-op returning the same ids."""
        run = cloud.get_run(scenario.run.id)
        assert cloud.create_run(run) == cloud.create_run(run)
        assert cloud.get_run(scenario.run.id).metrics == scenario.run.metrics

    @pytest.mark.requires(Capability.RUNS)
    def test_missing_run_raises_not_found(self, cloud: Any) -> None:
        """The backend MUST raise NotFound for a run it does not hold."""
        with pytest.raises(NotFound):
            cloud.get_run("run-does-not-exist")
        with pytest.raises(NotFound):
            cloud.log_metrics("run-does-not-exist", {"x": 1.0})

    @pytest.mark.requires(Capability.RUNS)
    def test_param_logged_twice_with_another_value_conflicts(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST refuse with Conflict to change a parameter already logged on a run."""
        with pytest.raises(Conflict):
            cloud.log_params(scenario.run.id, {"max_depth": "9"})
        assert cloud.get_run(scenario.run.id).params["max_depth"] == "4"
