"""Experiment runs mirrored into MLflow tracking on Databricks.

A Mintaka experiment ``churn`` is the MLflow experiment ``<experiment_root>/churn``, created with
the workspace folder it sits in (Databricks refuses an experiment whose folder does not exist); a
run carries its Mintaka id in the ``mintaka.run_id`` tag, by which it is found again (and
deduplicated when a create's answer was lost and the SDK retried it). An experiment of that name
in the workspace's trash (deleted, not yet purged) holds the name, and Databricks takes no run
into it: creating a run there is a ``Conflict`` that says how to restore it, since it may be
someone else's, which Mintaka leaves as it is.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mintaka.domain.runs import Run, RunStatus
from mintaka.errors import Conflict, NotFound
from mintaka.interfaces import RunTracking
from mintaka_databricks.errors import BACKEND
from mintaka_databricks.filters import filter_value, starting_with
from mintaka_databricks.workspace import WorkspaceAccess

RUN_TAG = "mintaka.run_id"
RUN_FIELDS_TAG = "mintaka.run"  # code commit, datasets, environment as JSON
_BATCH = 100
_SCOPE = 100  # experiments per run search
_STATUS = {"RUNNING": RunStatus.RUNNING, "FINISHED": RunStatus.FINISHED}


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _active(experiment: Any) -> str:
    """The id of ``experiment`` (as ``get-by-name`` answers), refused when it is in the trash:
    Databricks creates no run in a deleted experiment, and restoring it is its owner's call."""
    if experiment.lifecycle_stage not in (None, "active"):
        raise Conflict(
            f"MLflow experiment {experiment.name} (id {experiment.experiment_id}) is in the "
            "workspace's trash, so no run can be created in it: restore it (from the trash in "
            "the workspace, or MLflow's restore_experiment) or use another experiment name"
        )
    return str(experiment.experiment_id)


class MlflowRuns(WorkspaceAccess, RunTracking):
    """``Capability.RUNS`` over the workspace's MLflow tracking server."""

    _runs: dict[str, tuple[str, str]]  # Mintaka run id -> (MLflow run id, experiment id)
    _experiments: set[str]  # experiment ids this backend has used, searched first

    def _experiment_id(self, experiment: str) -> str:
        name = f"{self.settings.experiment_root.rstrip('/')}/{experiment}"
        try:
            found = self._call(
                f"reading experiment {name}", lambda: self.client.experiments.get_by_name(name)
            )
            if found.experiment is not None and found.experiment.experiment_id:
                return _active(found.experiment)
        except NotFound:
            pass
        folder = posixpath.dirname(name)
        self._call(f"creating folder {folder}", lambda: self.client.workspace.mkdirs(folder))
        try:
            created = self._call(
                f"creating experiment {name}",
                lambda: self.client.experiments.create_experiment(name),
            )
            return str(created.experiment_id)
        except Conflict:  # made meanwhile, or by our own create whose answer was lost
            again = self._call(
                f"reading experiment {name}", lambda: self.client.experiments.get_by_name(name)
            )
            assert again.experiment is not None
            return _active(again.experiment)

    def _search_runs(self, run_id: str) -> list[Any]:
        """Runs tagged with ``run_id``, oldest first: in the experiments this backend used, then
        (for a run another process created) in every experiment under the experiment root.

        A run search names its experiments (MLflow finds nothing in none), so the second scope
        is listed first, and searched ``_SCOPE`` experiments at a time.
        """
        where = f"tags.`{RUN_TAG}` = {filter_value(run_id)}"
        known = sorted(self._experiments)
        for scope in self._chunks(known):
            if found := self._runs_in(scope, where, run_id):
                return found
        others = [e for e in self._experiments_under_root() if e not in self._experiments]
        for scope in self._chunks(others):
            if found := self._runs_in(scope, where, run_id):
                return found
        return []

    @staticmethod
    def _chunks(ids: list[str]) -> list[list[str]]:
        return [ids[i : i + _SCOPE] for i in range(0, len(ids), _SCOPE)]

    def _runs_in(self, scope: list[str], where: str, run_id: str) -> list[Any]:
        found = self._call(
            f"finding run {run_id}",
            lambda: list(self.client.experiments.search_runs(experiment_ids=scope, filter=where)),
        )
        return sorted(found, key=lambda r: (r.info.start_time or 0, r.info.run_id or ""))

    def _experiments_under_root(self) -> list[str]:
        root = self.settings.experiment_root.rstrip("/")
        inside = root + "/"
        found = self._call(
            f"listing experiments under {root}",
            lambda: list(
                self.client.experiments.search_experiments(filter=f"name {starting_with(inside)}")
            ),
        )
        # ``_`` and ``%`` in the root are wildcards to LIKE: another root may match it there.
        return sorted(
            str(e.experiment_id)
            for e in found
            if e.experiment_id and str(e.name or "").startswith(inside)
        )

    def _locate(self, run_id: str) -> str:
        if run_id in self._runs:
            return self._runs[run_id][0]
        found = self._search_runs(run_id)
        if not found:
            raise NotFound(f"run {run_id!r} not found in Databricks MLflow tracking")
        info = found[0].info
        self._experiments.add(str(info.experiment_id))
        self._runs[run_id] = (str(info.run_id), str(info.experiment_id))
        return str(info.run_id)

    def create_run(self, run: Run) -> dict[str, str]:
        from databricks.sdk.service.ml import RunTag

        try:
            mlflow_id = self._locate(run.id)
        except NotFound:
            experiment_id = self._experiment_id(run.experiment)
            fields = {
                "code_commit": run.code_commit,
                "dataset_ids": list(run.dataset_ids),
                "environment": dict(run.environment),
            }
            self._call(
                f"creating run {run.id}",
                lambda: self.client.experiments.create_run(
                    experiment_id=experiment_id,
                    run_name=run.id,
                    start_time=_ms(run.started_at),
                    tags=[
                        RunTag(key=RUN_TAG, value=run.id),
                        RunTag(key=RUN_FIELDS_TAG, value=json.dumps(fields, sort_keys=True)),
                    ],
                ),
            )
            self._experiments.add(experiment_id)
            first, *duplicates = self._search_runs(run.id)
            for duplicate in duplicates:  # a retried create whose first answer was lost
                dup_id = str(duplicate.info.run_id)
                self._call(
                    f"deleting duplicate run {dup_id}",
                    lambda dup_id=dup_id: self.client.experiments.delete_run(dup_id),  # type: ignore[misc]
                )
            mlflow_id = str(first.info.run_id)
            self._runs[run.id] = (mlflow_id, experiment_id)
            if run.params or run.metrics:
                self.log_params(run.id, run.params)
                self.log_metrics(run.id, run.metrics)
            if run.status is not RunStatus.RUNNING:
                self.end_run(run.id, run.status)
        return {"run_id": mlflow_id, "experiment_id": self._runs[run.id][1]}

    def _mlflow_run(self, run_id: str) -> Any:
        mlflow_id = self._locate(run_id)
        answer = self._call(
            f"reading run {run_id}", lambda: self.client.experiments.get_run(mlflow_id)
        )
        if answer.run is None:
            raise NotFound(f"run {run_id!r} not found in Databricks MLflow tracking")
        return answer.run

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from databricks.sdk.service.ml import Param

        current = self._mlflow_run(run_id)
        logged = {p.key: p.value for p in (current.data.params or [])} if current.data else {}
        clash = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        if clash:
            raise Conflict(f"run {run_id}: parameters already logged with other values: {clash}")
        items = [Param(key=k, value=v) for k, v in params.items() if k not in logged]
        mlflow_id = self._runs[run_id][0]
        for start in range(0, len(items), _BATCH):
            chunk = items[start : start + _BATCH]
            self._call(
                f"logging params of {run_id}",
                lambda chunk=chunk: self.client.experiments.log_batch(  # type: ignore[misc]
                    run_id=mlflow_id, params=chunk
                ),
            )

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        from databricks.sdk.service.ml import Metric

        mlflow_id = self._locate(run_id)
        at = _ms(self.context.clock.now())
        items = [Metric(key=k, value=float(v), timestamp=at, step=0) for k, v in metrics.items()]
        if not items:
            self._mlflow_run(run_id)  # still NotFound for a missing run
        for start in range(0, len(items), _BATCH):
            chunk = items[start : start + _BATCH]
            self._call(
                f"logging metrics of {run_id}",
                lambda chunk=chunk: self.client.experiments.log_batch(  # type: ignore[misc]
                    run_id=mlflow_id, metrics=chunk
                ),
            )

    def end_run(self, run_id: str, status: RunStatus) -> None:
        from databricks.sdk.service.ml import UpdateRunStatus

        mlflow_id = self._locate(run_id)
        final = UpdateRunStatus.FINISHED if status is RunStatus.FINISHED else UpdateRunStatus.FAILED
        if status is RunStatus.RUNNING:
            final = UpdateRunStatus.RUNNING
        self._call(
            f"ending run {run_id}",
            lambda: self.client.experiments.update_run(
                run_id=mlflow_id, status=final, end_time=_ms(self.context.clock.now())
            ),
        )

    def get_run(self, run_id: str) -> Run:
        run = self._mlflow_run(run_id)
        info, data = run.info, run.data
        tags = {t.key: t.value for t in (data.tags or [])} if data else {}
        fields = json.loads(tags.get(RUN_FIELDS_TAG) or "{}")
        experiment = self._call(
            f"reading experiment {info.experiment_id}",
            lambda: self.client.experiments.get_experiment(str(info.experiment_id)),
        )
        name = str(experiment.experiment.name if experiment.experiment else "")
        root = self.settings.experiment_root.rstrip("/") + "/"
        status = info.status.value if info.status is not None else "RUNNING"
        return Run(
            id=run_id,
            experiment=name[len(root) :] if name.startswith(root) else name,
            status=_STATUS.get(status, RunStatus.FAILED),
            code_commit=fields.get("code_commit"),
            dataset_ids=tuple(fields.get("dataset_ids") or ()),
            params={p.key: p.value for p in (data.params or [])} if data else {},
            metrics={m.key: float(m.value) for m in (data.metrics or [])} if data else {},
            environment=fields.get("environment") or {},
            started_at=datetime.fromtimestamp((info.start_time or 0) / 1000, tz=UTC),
            ended_at=None
            if info.end_time is None
            else datetime.fromtimestamp(info.end_time / 1000, tz=UTC),
            backend=BACKEND,
            backend_ids={"run_id": str(info.run_id), "experiment_id": str(info.experiment_id)},
        )
