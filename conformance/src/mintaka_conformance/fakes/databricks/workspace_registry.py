"""The workspace (pre-Unity-Catalog) MLflow model registry, with stages and stage transitions.

Paths are those of ``WorkspaceClient.model_registry`` and of the MLflow client, which differ for
two calls (``/databricks/registered-models/get`` and ``/databricks/model-versions/transition-stage``
are the SDK's; the MLflow client calls the paths without ``/databricks``): both are served.
A new version is ``PENDING_REGISTRATION`` and becomes ``READY`` once it has been read
``settle_after`` times, as the service copies artifacts in the background.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .context import WorkspaceContext
from .model_versions import NamedVersions, version_number
from .routing import (
    FILTER_STRING,
    Request,
    Router,
    already_exists,
    filter_string,
    invalid,
    key_values,
    not_found,
    page_answer,
)

STAGES = ("None", "Staging", "Production", "Archived")


@dataclass
class WsModelVersion:
    version: int
    source: str
    created: int
    user_id: str
    status: str = "PENDING_REGISTRATION"
    status_message: str | None = None
    current_stage: str = "None"
    description: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    updated: int = 0
    reads: int = 0


@dataclass
class WsModel:
    name: str
    id: str
    created: int
    user_id: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    versions: dict[int, WsModelVersion] = field(default_factory=dict)
    next_version: int = 1
    updated: int = 0


class WorkspaceRegistry(NamedVersions[WsModel, WsModelVersion]):
    def __init__(self, ctx: WorkspaceContext, settle_after: int) -> None:
        self.ctx = ctx
        self.settle_after = settle_after
        self.models: dict[str, WsModel] = {}

    # Out-of-band API.

    def model(self, name: str) -> WsModel:
        with self.ctx.lock:
            return self._model(name)

    def set_stage(self, name: str, version: int, stage: str) -> None:
        with self.ctx.lock:
            self._version(self._model(name), version).current_stage = _stage(stage)

    # Helpers.

    def _model(self, name: str) -> WsModel:
        model = self.models.get(name)
        if model is None:
            raise not_found(f"RegisteredModel '{name}' does not exist. It might have been deleted.")
        return model

    def _version(self, model: WsModel, version: Any) -> WsModelVersion:
        number = version_number(version)
        found = model.versions.get(number)
        if found is None:
            raise not_found(f"Model Version (name={model.name}, version={number}) not found")
        return found

    def _observe(self, version: WsModelVersion) -> None:
        version.reads += 1
        if version.status == "PENDING_REGISTRATION" and version.reads >= self.settle_after:
            version.status = "READY"

    def _render_version(self, model: WsModel, version: WsModelVersion) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": model.name,
            "version": str(version.version),
            "creation_timestamp": version.created,
            "last_updated_timestamp": version.updated,
            "user_id": version.user_id,
            "current_stage": version.current_stage,
            "source": version.source,
            "status": version.status,
            "tags": key_values(version.tags),
        }
        for key, value in (
            ("description", version.description),
            ("run_id", version.run_id),
            ("run_link", version.run_link),
            ("status_message", version.status_message),
        ):
            if value is not None:
                body[key] = value
        return body

    def _latest(self, model: WsModel, stages: list[str] | None = None) -> list[WsModelVersion]:
        latest: dict[str, WsModelVersion] = {}
        for number in sorted(model.versions):
            version = model.versions[number]
            latest[version.current_stage] = version
        wanted = [_stage(s) for s in stages] if stages else list(STAGES)
        return [latest[s] for s in wanted if s in latest]

    def _render_model(self, model: WsModel, databricks: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": model.name,
            "creation_timestamp": model.created,
            "last_updated_timestamp": model.updated,
            "user_id": model.user_id,
            "latest_versions": [self._render_version(model, v) for v in self._latest(model)],
            "tags": key_values(model.tags),
        }
        if model.description is not None:
            body["description"] = model.description
        if databricks:
            body["id"] = model.id
            body["permission_level"] = "CAN_MANAGE"
        return body

    # Routes.

    def register(self, router: Router) -> None:
        base = "/api/2.0/mlflow"
        router.add("POST", base + "/registered-models/create", self.create_model)
        router.add("GET", base + "/registered-models/get", self.get_model)
        router.add("GET", base + "/databricks/registered-models/get", self.get_model_databricks)
        router.add("GET", base + "/registered-models/list", self.list_models)
        router.add("GET", base + "/registered-models/search", self.search_models)
        router.add("PATCH", base + "/registered-models/update", self.update_model)
        router.add("DELETE", base + "/registered-models/delete", self.delete_model)
        router.add("POST", base + "/registered-models/set-tag", self.set_model_tag)
        router.add("DELETE", base + "/registered-models/delete-tag", self.delete_model_tag)
        router.add("POST", base + "/registered-models/get-latest-versions", self.latest_versions)
        router.add("POST", base + "/model-versions/create", self.create_version)
        router.add("GET", base + "/model-versions/get", self.get_version)
        router.add("GET", base + "/model-versions/search", self.search_versions)
        router.add("PATCH", base + "/model-versions/update", self.update_version)
        router.add("DELETE", base + "/model-versions/delete", self.delete_version)
        router.add("POST", base + "/model-versions/set-tag", self.set_version_tag)
        router.add("DELETE", base + "/model-versions/delete-tag", self.delete_version_tag)
        router.add("GET", base + "/model-versions/get-download-uri", self.download_uri)
        router.add("POST", base + "/model-versions/transition-stage", self.transition_mlflow)
        router.add(
            "POST", base + "/databricks/model-versions/transition-stage", self.transition_databricks
        )

    def create_model(self, req: Request) -> dict[str, Any]:
        name = req.require("name")
        if name in self.models:
            raise already_exists(f"Registered Model (name={name}) already exists.", status=400)
        now = self.ctx.now_ms()
        model = WsModel(
            name=name,
            id=self.ctx.new_hex(),
            created=now,
            updated=now,
            user_id=self.ctx.user,
            description=req.arg("description"),
            tags={t["key"]: t.get("value", "") for t in req.arg("tags") or []},
        )
        self.models[name] = model
        return {"registered_model": self._render_model(model)}

    def get_model(self, req: Request) -> dict[str, Any]:
        return {"registered_model": self._render_model(self._model(req.require("name")))}

    def get_model_databricks(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        return {"registered_model_databricks": self._render_model(model, databricks=True)}

    def _page(self, req: Request, items: list[Any], key: str, default: int) -> dict[str, Any]:
        size = req.int_arg("max_results") or default
        return page_answer(key, items, req.arg("page_token"), size)

    def list_models(self, req: Request) -> dict[str, Any]:
        models = [self._render_model(self.models[n]) for n in sorted(self.models)]
        return self._page(req, models, "registered_models", 100)

    def search_models(self, req: Request) -> dict[str, Any]:
        matches = _name_filter(req.arg("filter") or "")
        models = [self._render_model(self.models[n]) for n in sorted(self.models) if matches(n)]
        return self._page(req, models, "registered_models", 100)

    def update_model(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        if req.arg("description") is not None:
            model.description = req.arg("description")
        model.updated = self.ctx.now_ms()
        return {"registered_model": self._render_model(model)}

    def delete_model(self, req: Request) -> None:
        del self.models[self._model(req.require("name")).name]

    def set_model_tag(self, req: Request) -> None:
        self._model(req.require("name")).tags[req.require("key")] = str(req.arg("value", ""))

    def delete_model_tag(self, req: Request) -> None:
        model = self._model(req.require("name"))
        key = req.require("key")
        if key not in model.tags:
            raise not_found(f"No tag with name: {key} in model {model.name}")
        del model.tags[key]

    def latest_versions(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        versions = self._latest(model, req.args("stages") or None)
        return {"model_versions": [self._render_version(model, v) for v in versions]}

    def create_version(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        now = self.ctx.now_ms()
        version = WsModelVersion(
            version=model.next_version,
            source=req.require("source"),
            created=now,
            updated=now,
            user_id=self.ctx.user,
            description=req.arg("description"),
            run_id=req.arg("run_id"),
            run_link=req.arg("run_link"),
            tags={t["key"]: t.get("value", "") for t in req.arg("tags") or []},
        )
        if self.settle_after <= 0:
            version.status = "READY"
        model.next_version += 1
        model.versions[version.version] = version
        model.updated = now
        return {"model_version": self._render_version(model, version)}

    def get_version(self, req: Request) -> dict[str, Any]:
        model, version = self._named_version(req)
        self._observe(version)
        return {"model_version": self._render_version(model, version)}

    def search_versions(self, req: Request) -> dict[str, Any]:
        matches = _name_filter(req.arg("filter") or "")
        found = [
            self._render_version(model, model.versions[n])
            for name, model in sorted(self.models.items())
            if matches(name)
            for n in sorted(model.versions, reverse=True)
        ]
        return self._page(req, found, "model_versions", 10000)

    def update_version(self, req: Request) -> dict[str, Any]:
        model, version = self._named_version(req)
        if req.arg("description") is not None:
            version.description = req.arg("description")
        version.updated = self.ctx.now_ms()
        return {"model_version": self._render_version(model, version)}

    def delete_version(self, req: Request) -> None:
        model, version = self._named_version(req)
        del model.versions[version.version]

    def set_version_tag(self, req: Request) -> None:
        _, version = self._named_version(req)
        version.tags[req.require("key")] = str(req.arg("value", ""))

    def delete_version_tag(self, req: Request) -> None:
        model, version = self._named_version(req)
        key = req.require("key")
        if key not in version.tags:
            raise not_found(
                f"No tag with name: {key} in model {model.name} version {version.version}"
            )
        del version.tags[key]

    def download_uri(self, req: Request) -> dict[str, Any]:
        _, version = self._named_version(req)
        return {"artifact_uri": version.source}

    def _transition(self, req: Request) -> tuple[WsModel, WsModelVersion]:
        model, version = self._named_version(req)
        stage = _stage(req.require("stage"))
        if req.bool_arg("archive_existing_versions") and stage in ("Staging", "Production"):
            for other in model.versions.values():
                if other is not version and other.current_stage == stage:
                    other.current_stage = "Archived"
                    other.updated = self.ctx.now_ms()
        version.current_stage = stage
        version.updated = self.ctx.now_ms()
        return model, version

    def transition_mlflow(self, req: Request) -> dict[str, Any]:
        model, version = self._transition(req)
        return {"model_version": self._render_version(model, version)}

    def transition_databricks(self, req: Request) -> dict[str, Any]:
        model, version = self._transition(req)
        return {"model_version_databricks": self._render_version(model, version)}


def _stage(value: str) -> str:
    for stage in STAGES:
        if stage.lower() == str(value).lower():
            return stage
    raise invalid(
        f"Invalid Model Version stage: {value}. Value must be one of {', '.join(STAGES)}."
    )


def _name_filter(text: str) -> Any:
    """``name='x'`` or ``name LIKE 'x%'`` (the value in single or double quotes, as MLflow reads
    it); an empty filter matches everything."""
    text = text.strip()
    if not text:
        return lambda name: True
    found = re.match(rf"^name\s*(=|like|ilike)\s*({FILTER_STRING})$", text, re.IGNORECASE)
    if found is None:
        raise invalid(f"Unsupported filter: {text!r}")
    operator, value = found.group(1).lower(), filter_string(found.group(2))
    if operator == "=":
        return lambda name: name == value
    pattern = re.compile(
        "^" + re.escape(value).replace("%", ".*").replace("_", ".") + "$",
        re.IGNORECASE if operator == "ilike" else 0,
    )
    return lambda name: pattern.match(name) is not None
