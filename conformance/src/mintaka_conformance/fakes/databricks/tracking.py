"""MLflow experiments and runs with MLflow's rules: immutable params, batch limits, filters.

An experiment is named by its absolute workspace path, whose parent folder must exist in the
workspace tree, as on Databricks (``RESOURCE_DOES_NOT_EXIST`` "Parent directory ... does not
exist.").
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import WorkspaceContext
from .routing import (
    FILTER_STRING,
    ApiError,
    Request,
    Router,
    already_exists,
    filter_string,
    invalid,
    key_values,
    not_found,
    paginate,
)
from .workspace import WorkspaceTree

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_PARAM_VALUE_LENGTH = 6000


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    created: int
    updated: int
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class TrackedRun:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    start_time: int
    artifact_uri: str
    status: str = "RUNNING"
    end_time: int | None = None
    lifecycle_stage: str = "active"
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def latest_metrics(self) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for metric in self.metrics:
            current = latest.get(metric["key"])
            if current is None or (metric["step"], metric["timestamp"]) >= (
                current["step"],
                current["timestamp"],
            ):
                latest[metric["key"]] = metric
        return [latest[key] for key in sorted(latest)]


class Tracking:
    def __init__(self, ctx: WorkspaceContext, workspace: WorkspaceTree) -> None:
        self.ctx = ctx
        self.workspace = workspace
        self.experiments: dict[str, Experiment] = {}
        self.runs: dict[str, TrackedRun] = {}

    # Out-of-band API.

    def run(self, run_id: str) -> TrackedRun:
        with self.ctx.lock:
            return self._run(run_id)

    def experiment_by_name(self, name: str) -> Experiment:
        with self.ctx.lock:
            return self._experiment_named(name)

    # Helpers.

    def _experiment(self, experiment_id: str) -> Experiment:
        experiment = self.experiments.get(str(experiment_id))
        if experiment is None:
            raise not_found(f"No Experiment with id={experiment_id} exists")
        return experiment

    def _experiment_named(self, name: str) -> Experiment:
        for experiment in self.experiments.values():
            if experiment.name == name:
                return experiment
        raise not_found(f"Node named '{name}' does not exist.")

    def _run(self, run_id: str) -> TrackedRun:
        found = self.runs.get(run_id)
        if found is None:
            raise not_found(f"Run '{run_id}' not found.")
        return found

    def _active_run(self, run_id: str) -> TrackedRun:
        found = self._run(run_id)
        if found.lifecycle_stage != "active":
            raise invalid(
                f"The run {run_id} must be in the 'active' state. "
                f"Current state is {found.lifecycle_stage}."
            )
        return found

    def _render_experiment(self, experiment: Experiment) -> dict[str, Any]:
        return {
            "experiment_id": experiment.experiment_id,
            "name": experiment.name,
            "artifact_location": experiment.artifact_location,
            "lifecycle_stage": experiment.lifecycle_stage,
            "creation_time": experiment.created,
            "last_update_time": experiment.updated,
            "tags": key_values(experiment.tags),
        }

    def _render_info(self, run: TrackedRun) -> dict[str, Any]:
        info: dict[str, Any] = {
            "run_id": run.run_id,
            "run_uuid": run.run_id,
            "run_name": run.run_name,
            "experiment_id": run.experiment_id,
            "user_id": run.user_id,
            "status": run.status,
            "start_time": run.start_time,
            "artifact_uri": run.artifact_uri,
            "lifecycle_stage": run.lifecycle_stage,
        }
        if run.end_time is not None:
            info["end_time"] = run.end_time
        return info

    def _render_run(self, run: TrackedRun) -> dict[str, Any]:
        return {
            "info": self._render_info(run),
            "data": {
                "metrics": run.latest_metrics(),
                "params": key_values(run.params),
                "tags": key_values(run.tags),
            },
            "inputs": {},
        }

    # Routes.

    def register(self, router: Router) -> None:
        base = "/api/2.0/mlflow"
        router.add("POST", base + "/experiments/create", self.create_experiment)
        router.add("GET", base + "/experiments/get", self.get_experiment)
        router.add("GET", base + "/experiments/get-by-name", self.get_by_name)
        router.add("POST", base + "/experiments/delete", self.delete_experiment)
        router.add("POST", base + "/experiments/set-experiment-tag", self.set_experiment_tag)
        router.add("POST", base + "/runs/create", self.create_run)
        router.add("GET", base + "/runs/get", self.get_run)
        router.add("POST", base + "/runs/update", self.update_run)
        router.add("POST", base + "/runs/delete", self.delete_run)
        router.add("POST", base + "/runs/restore", self.restore_run)
        router.add("POST", base + "/runs/log-batch", self.log_batch)
        router.add("POST", base + "/runs/log-metric", self.log_metric)
        router.add("POST", base + "/runs/log-parameter", self.log_parameter)
        router.add("POST", base + "/runs/set-tag", self.set_tag)
        router.add("POST", base + "/runs/delete-tag", self.delete_tag)
        router.add("POST", base + "/runs/search", self.search_runs)
        router.add("POST", base + "/experiments/search", self.search_experiments)
        router.add("GET", base + "/metrics/get-history", self.metric_history)

    def create_experiment(self, req: Request) -> dict[str, Any]:
        name = req.require("name")
        if not name.startswith("/"):
            raise invalid(
                f"Got an invalid experiment name '{name}'. "
                "An experiment name must be an absolute path within the Databricks workspace."
            )
        parent = posixpath.dirname(name.rstrip("/")) or "/"
        folder = self.workspace.objects.get(parent)
        if folder is None or folder.object_type != "DIRECTORY":
            raise not_found(f"Parent directory {parent} does not exist.")
        for existing in self.experiments.values():
            if existing.name == name:
                state = " in deleted state" if existing.lifecycle_stage == "deleted" else ""
                raise already_exists(
                    f"Experiment with name '{name}' already exists{state}.", status=400
                )
        experiment_id = str(self.ctx.next_number("experiment", start=1000001))
        now = self.ctx.now_ms()
        experiment = Experiment(
            experiment_id=experiment_id,
            name=name,
            artifact_location=req.arg("artifact_location")
            or f"dbfs:/databricks/mlflow-tracking/{experiment_id}",
            created=now,
            updated=now,
            tags={t["key"]: t.get("value", "") for t in req.arg("tags") or []},
        )
        self.experiments[experiment_id] = experiment
        return {"experiment_id": experiment_id}

    def get_experiment(self, req: Request) -> dict[str, Any]:
        experiment = self._experiment(req.require("experiment_id"))
        return {"experiment": self._render_experiment(experiment)}

    def get_by_name(self, req: Request) -> dict[str, Any]:
        experiment = self._experiment_named(req.require("experiment_name"))
        return {"experiment": self._render_experiment(experiment)}

    def delete_experiment(self, req: Request) -> None:
        experiment = self._experiment(req.require("experiment_id"))
        experiment.lifecycle_stage = "deleted"
        experiment.updated = self.ctx.now_ms()

    def set_experiment_tag(self, req: Request) -> None:
        experiment = self._experiment(req.require("experiment_id"))
        experiment.tags[req.require("key")] = str(req.arg("value", ""))

    def create_run(self, req: Request) -> dict[str, Any]:
        experiment = self._experiment(req.require("experiment_id"))
        if experiment.lifecycle_stage != "active":
            raise invalid(
                f"The experiment {experiment.experiment_id} must be in the 'active' state."
            )
        run_id = self.ctx.new_hex()
        tags = {t["key"]: t.get("value", "") for t in req.arg("tags") or []}
        run_name = req.arg("run_name") or tags.get("mlflow.runName") or f"run-{run_id[:8]}"
        tags["mlflow.runName"] = run_name
        run = TrackedRun(
            run_id=run_id,
            experiment_id=experiment.experiment_id,
            run_name=run_name,
            user_id=req.arg("user_id") or self.ctx.user,
            start_time=req.int_arg("start_time") or self.ctx.now_ms(),
            artifact_uri=f"{experiment.artifact_location}/{run_id}/artifacts",
            tags=tags,
        )
        self.runs[run_id] = run
        return {"run": self._render_run(run)}

    def get_run(self, req: Request) -> dict[str, Any]:
        return {"run": self._render_run(self._run(req.arg("run_id") or req.require("run_uuid")))}

    def update_run(self, req: Request) -> dict[str, Any]:
        run = self._run(req.arg("run_id") or req.require("run_uuid"))
        status = req.arg("status")
        if status is not None:
            if status not in RUN_STATUSES:
                raise invalid(f"Invalid run status: {status}")
            run.status = status
        if req.arg("end_time") is not None:
            run.end_time = req.int_arg("end_time")
        if req.arg("run_name"):
            run.run_name = req.arg("run_name")
            run.tags["mlflow.runName"] = run.run_name
        return {"run_info": self._render_info(run)}

    def delete_run(self, req: Request) -> None:
        self._run(req.require("run_id")).lifecycle_stage = "deleted"

    def restore_run(self, req: Request) -> None:
        self._run(req.require("run_id")).lifecycle_stage = "active"

    def _apply_params(self, run: TrackedRun, params: list[dict[str, Any]]) -> None:
        for param in params:
            key, value = str(param["key"]), str(param.get("value", ""))
            if len(value) > MAX_PARAM_VALUE_LENGTH:
                raise invalid(
                    f"Param value for '{key}' had length {len(value)}, "
                    f"which exceeded length limit of {MAX_PARAM_VALUE_LENGTH}"
                )
            old = run.params.get(key)
            if old is not None and old != value:
                raise invalid(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{old}' for run ID='{run.run_id}'. "
                    f"Attempted logging new value '{value}'."
                )
        for param in params:
            run.params[str(param["key"])] = str(param.get("value", ""))

    def _metric(self, run: TrackedRun, metric: dict[str, Any]) -> dict[str, Any]:
        for name in ("key", "value", "timestamp"):
            if metric.get(name) is None:
                raise invalid(f"Missing value for required parameter '{name}' in metric.")
        try:
            value = float(metric["value"])
            timestamp = int(metric["timestamp"])
            step = int(metric.get("step") or 0)
        except (TypeError, ValueError):
            raise invalid(f"Invalid metric {metric!r}") from None
        return {"key": str(metric["key"]), "value": value, "timestamp": timestamp, "step": step}

    def log_batch(self, req: Request) -> None:
        run = self._active_run(req.require("run_id"))
        metrics = req.arg("metrics") or []
        params = req.arg("params") or []
        tags = req.arg("tags") or []
        for label, items, limit in (
            ("metrics", metrics, MAX_METRICS_PER_BATCH),
            ("params", params, MAX_PARAMS_PER_BATCH),
            ("tags", tags, MAX_TAGS_PER_BATCH),
        ):
            if len(items) > limit:
                raise invalid(
                    f"A batch logging request can contain at most {limit} {label}. "
                    f"Got {len(items)} {label}."
                )
        parsed = [self._metric(run, m) for m in metrics]
        self._apply_params(run, params)
        run.metrics.extend(parsed)
        for tag in tags:
            run.tags[str(tag["key"])] = str(tag.get("value", ""))

    def log_metric(self, req: Request) -> None:
        run = self._active_run(req.arg("run_id") or req.require("run_uuid"))
        run.metrics.append(self._metric(run, dict(req.body)))

    def log_parameter(self, req: Request) -> None:
        run = self._active_run(req.arg("run_id") or req.require("run_uuid"))
        self._apply_params(run, [{"key": req.require("key"), "value": req.arg("value", "")}])

    def set_tag(self, req: Request) -> None:
        run = self._active_run(req.arg("run_id") or req.require("run_uuid"))
        run.tags[req.require("key")] = str(req.arg("value", ""))

    def delete_tag(self, req: Request) -> None:
        run = self._active_run(req.require("run_id"))
        key = req.require("key")
        if key not in run.tags:
            raise not_found(f"No tag with name: {key} in run with id {run.run_id}")
        del run.tags[key]

    def search_runs(self, req: Request) -> dict[str, Any]:
        experiment_ids = [str(e) for e in req.args("experiment_ids")]
        conditions = _parse_run_filter(req.arg("filter") or "")
        stages = _stages(req.arg("run_view_type"))
        # As MLflow's own store: no experiment ids, no runs (a search never spans them all).
        runs = [
            run
            for run in self.runs.values()
            if run.experiment_id in experiment_ids
            and run.lifecycle_stage in stages
            and all(condition(run) for condition in conditions)
        ]
        runs.sort(key=lambda r: (-r.start_time, r.run_id))
        page, token = _page(req, runs, limit=50000)
        return {"runs": [self._render_run(r) for r in page], **token}

    def search_experiments(self, req: Request) -> dict[str, Any]:
        conditions = _parse_experiment_filter(req.arg("filter") or "")
        stages = _stages(req.arg("view_type"))
        found = sorted(
            (
                e
                for e in self.experiments.values()
                if e.lifecycle_stage in stages and all(c(e.name) for c in conditions)
            ),
            key=lambda e: (-e.created, e.experiment_id),
        )
        page, token = _page(req, found, limit=3000)
        return {"experiments": [self._render_experiment(e) for e in page], **token}

    def metric_history(self, req: Request) -> dict[str, Any]:
        run = self._run(req.arg("run_id") or req.require("run_uuid"))
        key = req.require("metric_key")
        return {"metrics": [m for m in run.metrics if m["key"] == key]}


def _stages(view: str | None) -> set[str]:
    """The lifecycle stages a search's view type admits (``ACTIVE_ONLY`` by default)."""
    return {"ACTIVE_ONLY": {"active"}, "DELETED_ONLY": {"deleted"}}.get(
        view or "ACTIVE_ONLY", {"active", "deleted"}
    )


def _page(req: Request, items: list[Any], *, limit: int) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items``, and the answer's ``next_page_token`` field (none on the last)."""
    size = req.int_arg("max_results") or 1000
    if size > limit:
        raise invalid(f"Invalid value for max_results: {size}. It must be at most {limit}.")
    page, token = paginate(items, req.arg("page_token"), size)
    return page, {"next_page_token": token} if token else {}


_CLAUSE = re.compile(
    r"""^\s*(?P<kind>tags|tag|params|param|attributes|attribute|attr|run)\.
    (?:`(?P<bq>[^`]+)`|"(?P<dq>[^"]+)"|(?P<plain>[\w.]+))
    \s*(?P<op>=|!=)\s*(?P<value>"""
    + FILTER_STRING
    + r""")\s*$""",
    re.VERBOSE | re.IGNORECASE,
)


_NAME_CLAUSE = re.compile(
    r"^\s*(?:attributes\.|attribute\.)?name\s+(?P<op>=|!=|LIKE|ILIKE)\s+(?P<value>"
    + FILTER_STRING
    + r")\s*$",
    re.IGNORECASE,
)


def _parse_experiment_filter(text: str) -> list[Callable[[str], bool]]:
    """The subset of MLflow's experiment filter a backend needs: ``name`` compared with ``=``,
    ``!=``, ``LIKE`` or ``ILIKE`` (``%`` and ``_`` wildcards), joined with ``AND``."""
    if not text.strip():
        return []
    conditions: list[Callable[[str], bool]] = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        found = _NAME_CLAUSE.match(clause)
        if found is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid filter '{text}'.")
        op, value = found.group("op").upper(), filter_string(found.group("value"))
        if op in ("LIKE", "ILIKE"):
            pattern = "".join(
                ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in value
            )
            flags = re.IGNORECASE | re.DOTALL if op == "ILIKE" else re.DOTALL
            conditions.append(_matches(re.compile(pattern, flags)))
        else:
            conditions.append(_equals(value, op == "="))
    return conditions


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda name: pattern.fullmatch(name) is not None


def _equals(value: str, equal: bool) -> Callable[[str], bool]:
    return lambda name: (name == value) is equal


def _parse_run_filter(text: str) -> list[Any]:
    """The subset of MLflow's run filter a backend needs: ``=``/``!=`` on tags, params and
    attributes (``run_name``, ``status``, ``run_id``), joined with ``AND``."""
    if not text.strip():
        return []
    conditions: list[Any] = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(clause)
        if found is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid filter '{text}'.")
        kind = found.group("kind").lower()
        key = found.group("bq") or found.group("dq") or found.group("plain")
        value = filter_string(found.group("value"))
        negate = found.group("op") == "!="

        def read(run: TrackedRun, kind: str = kind, key: str = key) -> str | None:
            if kind.startswith("tag"):
                return run.tags.get(key)
            if kind.startswith("param"):
                return run.params.get(key)
            attributes = {
                "run_name": run.run_name,
                "status": run.status,
                "run_id": run.run_id,
                "user_id": run.user_id,
            }
            if key not in attributes:
                raise invalid(f"Invalid attribute key '{key}' in filter.")
            return attributes[key]

        def condition(
            run: TrackedRun, read: Any = read, value: str = value, negate: bool = negate
        ) -> bool:
            return bool(read(run) == value) != negate

        conditions.append(condition)
    return conditions
