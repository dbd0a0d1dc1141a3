"""Unity Catalog registered models, versions, aliases and tags.

Two REST surfaces share this state, as they do on Databricks: the Unity Catalog API
(``/api/2.1/unity-catalog/models``, what ``WorkspaceClient.registered_models`` and
``.model_versions`` call) and MLflow's Unity Catalog registry API
(``/api/2.0/mlflow/unity-catalog/...``), the only way to create a version (the SDK has no call for
it) and to tag models and versions. A version is created ``PENDING_REGISTRATION`` and becomes
``READY`` when finalized, as MLflow does after uploading the artifacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .context import WorkspaceContext
from .model_versions import NamedVersions, version_number
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
    page_answer,
)

PENDING = "PENDING_REGISTRATION"
READY = "READY"
FAILED = "FAILED_REGISTRATION"

_IDENTIFIER = re.compile(r"^[^.\s/\x00-\x1f]{1,255}$")
_VERSION_LIKE_ALIAS = re.compile(r"^[vV]\d+$")


@dataclass
class UcModelVersion:
    version: int
    source: str
    id: str
    created_at: int
    created_by: str
    storage_location: str
    status: str = PENDING
    status_message: str | None = None
    run_id: str | None = None
    run_workspace_id: int | None = None
    comment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    dependencies: list[Any] | None = None
    updated_at: int = 0
    updated_by: str = ""


@dataclass
class UcModel:
    catalog_name: str
    schema_name: str
    name: str
    id: str
    created_at: int
    created_by: str
    storage_location: str
    owner: str
    comment: str | None = None
    updated_at: int = 0
    updated_by: str = ""
    versions: dict[int, UcModelVersion] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    next_version: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.catalog_name}.{self.schema_name}.{self.name}"

    def aliases_of(self, version: int) -> list[str]:
        return sorted(alias for alias, target in self.aliases.items() if target == version)


class UnityCatalogModels(NamedVersions[UcModel, UcModelVersion]):
    """The registered models of the metastore, keyed by lower-case full name.

    Unity Catalog names are case-insensitive and stored in lower case, so ``Main.Default.M`` and
    ``main.default.m`` are the same model. ``schemas`` lists the ``catalog.schema`` pairs that
    exist; ``None`` accepts any.
    """

    def __init__(self, ctx: WorkspaceContext, schemas: set[str] | None) -> None:
        self.ctx = ctx
        self.schemas = schemas
        self.models: dict[str, UcModel] = {}
        self.auto_finalize = False
        """When true, versions created through MLflow's API are ``READY`` at once."""

    # Out-of-band API: changes made "behind the client's back".

    def create_model(self, full_name: str, comment: str | None = None) -> UcModel:
        with self.ctx.lock:
            catalog, schema, name = _split_full_name(full_name)
            return self._create_model(catalog, schema, name, comment, self.ctx.user)

    def model(self, full_name: str) -> UcModel:
        with self.ctx.lock:
            return self._model(full_name)

    def add_version(
        self,
        full_name: str,
        source: str = "dbfs:/fake/model",
        *,
        status: str = READY,
        run_id: str | None = None,
        comment: str | None = None,
    ) -> UcModelVersion:
        with self.ctx.lock:
            version = self._create_version(self._model(full_name), source, run_id, comment, {})
            version.status = status
            return version

    def set_status(
        self, full_name: str, version: int, status: str, message: str | None = None
    ) -> None:
        with self.ctx.lock:
            found = self._version(self._model(full_name), version)
            found.status = status
            found.status_message = message

    def set_alias(self, full_name: str, alias: str, version: int) -> None:
        with self.ctx.lock:
            model = self._model(full_name)
            self._version(model, version)
            model.aliases[alias] = version

    def delete_alias(self, full_name: str, alias: str) -> None:
        with self.ctx.lock:
            self._model(full_name).aliases.pop(alias, None)

    # Shared by both REST surfaces.

    def _model(self, full_name: str) -> UcModel:
        model = self.models.get(full_name.lower())
        if model is None:
            raise not_found(f"Routine or Model '{full_name}' does not exist.")
        return model

    def _version(self, model: UcModel, version: int | str) -> UcModelVersion:
        number = version_number(version)
        found = model.versions.get(number)
        if found is None:
            raise not_found(f"Model version {number} of '{model.full_name}' does not exist.")
        return found

    def _create_model(
        self, catalog: str, schema: str, name: str, comment: str | None, user: str
    ) -> UcModel:
        for label, part in (("catalog_name", catalog), ("schema_name", schema), ("name", name)):
            if not _IDENTIFIER.match(part):
                raise invalid(f"Invalid {label} '{part}': names cannot contain '.', '/' or spaces.")
        catalog, schema, name = catalog.lower(), schema.lower(), name.lower()
        if self.schemas is not None and f"{catalog}.{schema}" not in self.schemas:
            raise ApiError(
                404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{catalog}.{schema}' does not exist."
            )
        full_name = f"{catalog}.{schema}.{name}"
        if full_name in self.models:
            raise already_exists(f"Routine or Model '{full_name}' already exists.")
        model_id = self.ctx.new_uuid()
        now = self.ctx.now_ms()
        model = UcModel(
            catalog_name=catalog,
            schema_name=schema,
            name=name,
            id=model_id,
            created_at=now,
            created_by=user,
            updated_at=now,
            updated_by=user,
            owner=user,
            comment=comment,
            storage_location=f"s3://fake-metastore/{self.ctx.metastore_id}/models/{model_id}",
        )
        self.models[full_name] = model
        return model

    def _create_version(
        self,
        model: UcModel,
        source: str,
        run_id: str | None,
        comment: str | None,
        tags: dict[str, str],
    ) -> UcModelVersion:
        number = model.next_version
        model.next_version += 1
        version_id = self.ctx.new_uuid()
        now = self.ctx.now_ms()
        version = UcModelVersion(
            version=number,
            source=source,
            id=version_id,
            created_at=now,
            created_by=self.ctx.user,
            updated_at=now,
            updated_by=self.ctx.user,
            storage_location=f"{model.storage_location}/versions/{version_id}",
            run_id=run_id,
            comment=comment,
            tags=dict(tags),
        )
        model.versions[number] = version
        model.updated_at = now
        return version

    # Rendering.

    def _alias_info(self, model: UcModel, alias: str) -> dict[str, Any]:
        return {
            "alias_name": alias,
            "version_num": model.aliases[alias],
            "catalog_name": model.catalog_name,
            "schema_name": model.schema_name,
            "model_name": model.name,
        }

    def _model_info(self, model: UcModel, include_aliases: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": model.name,
            "catalog_name": model.catalog_name,
            "schema_name": model.schema_name,
            "full_name": model.full_name,
            "owner": model.owner,
            "created_at": model.created_at,
            "created_by": model.created_by,
            "updated_at": model.updated_at,
            "updated_by": model.updated_by,
            "metastore_id": self.ctx.metastore_id,
            "storage_location": model.storage_location,
        }
        if model.comment is not None:
            body["comment"] = model.comment
        if include_aliases:
            body["aliases"] = [self._alias_info(model, a) for a in sorted(model.aliases)]
        return body

    def _version_info(
        self, model: UcModel, version: UcModelVersion, include_aliases: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model_name": model.name,
            "catalog_name": model.catalog_name,
            "schema_name": model.schema_name,
            "version": version.version,
            "id": version.id,
            "source": version.source,
            "status": version.status,
            "storage_location": version.storage_location,
            "created_at": version.created_at,
            "created_by": version.created_by,
            "updated_at": version.updated_at,
            "updated_by": version.updated_by,
            "metastore_id": self.ctx.metastore_id,
        }
        for key, value in (
            ("run_id", version.run_id),
            ("run_workspace_id", version.run_workspace_id),
            ("comment", version.comment),
        ):
            if value is not None:
                body[key] = value
        if include_aliases:
            body["aliases"] = [
                self._alias_info(model, a) for a in model.aliases_of(version.version)
            ]
        return body

    def _mlflow_model(self, model: UcModel) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": model.full_name,
            "creation_timestamp": model.created_at,
            "last_updated_timestamp": model.updated_at,
            "user_id": model.created_by,
            "aliases": [
                {"alias": alias, "version": str(target)}
                for alias, target in sorted(model.aliases.items())
            ],
            "tags": key_values(model.tags),
        }
        if model.comment is not None:
            body["description"] = model.comment
        return body

    def _mlflow_version(self, model: UcModel, version: UcModelVersion) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": model.full_name,
            "version": str(version.version),
            "creation_timestamp": version.created_at,
            "last_updated_timestamp": version.updated_at,
            "user_id": version.created_by,
            "source": version.source,
            "status": version.status,
            "storage_location": version.storage_location,
            "aliases": [
                {"alias": alias, "version": str(version.version)}
                for alias in model.aliases_of(version.version)
            ],
            "tags": key_values(version.tags),
        }
        for key, value in (
            ("run_id", version.run_id),
            ("description", version.comment),
            ("status_message", version.status_message),
        ):
            if value is not None:
                body[key] = value
        if version.run_workspace_id is not None:
            body["run_tracking_server_id"] = str(version.run_workspace_id)
        return body

    # Routes.

    def register(self, router: Router) -> None:
        uc = "/api/2.1/unity-catalog/models"
        router.add("POST", uc, self.create)
        router.add("GET", uc, self.list_models)
        router.add("GET", uc + "/{full_name}", self.get)
        router.add("PATCH", uc + "/{full_name}", self.update)
        router.add("DELETE", uc + "/{full_name}", self.delete)
        router.add("GET", uc + "/{full_name}/versions", self.list_versions)
        router.add("GET", uc + "/{full_name}/versions/{version}", self.get_version)
        router.add("PATCH", uc + "/{full_name}/versions/{version}", self.update_version)
        router.add("DELETE", uc + "/{full_name}/versions/{version}", self.delete_version)
        router.add("PUT", uc + "/{full_name}/aliases/{alias}", self.put_alias)
        router.add("DELETE", uc + "/{full_name}/aliases/{alias}", self.remove_alias)
        router.add("GET", uc + "/{full_name}/aliases/{alias}", self.get_by_alias)

        ml = "/api/2.0/mlflow/unity-catalog"
        router.add("POST", ml + "/registered-models/create", self.ml_create_model)
        router.add("GET", ml + "/registered-models/get", self.ml_get_model)
        router.add("PATCH", ml + "/registered-models/update", self.ml_update_model)
        router.add("DELETE", ml + "/registered-models/delete", self.ml_delete_model)
        router.add("GET", ml + "/registered-models/search", self.ml_search_models)
        router.add("POST", ml + "/registered-models/tags", self.ml_set_model_tag)
        router.add("DELETE", ml + "/registered-models/tags", self.ml_delete_model_tag)
        router.add("POST", ml + "/registered-models/alias", self.ml_set_alias)
        router.add("DELETE", ml + "/registered-models/alias", self.ml_delete_alias)
        router.add("GET", ml + "/registered-models/alias", self.ml_get_by_alias)
        router.add("POST", ml + "/model-versions/create", self.ml_create_version)
        router.add("POST", ml + "/model-versions/finalize", self.ml_finalize_version)
        router.add("GET", ml + "/model-versions/get", self.ml_get_version)
        router.add("PATCH", ml + "/model-versions/update", self.ml_update_version)
        router.add("DELETE", ml + "/model-versions/delete", self.ml_delete_version)
        router.add("GET", ml + "/model-versions/search", self.ml_search_versions)
        router.add("GET", ml + "/model-versions/get-download-uri", self.ml_download_uri)
        router.add("POST", ml + "/model-versions/tags", self.ml_set_version_tag)
        router.add("DELETE", ml + "/model-versions/tags", self.ml_delete_version_tag)

    # /api/2.1/unity-catalog/models

    def create(self, req: Request) -> dict[str, Any]:
        catalog = req.require("catalog_name")
        schema = req.require("schema_name")
        name = req.require("name")
        model = self._create_model(catalog, schema, name, req.arg("comment"), self.ctx.user)
        return self._model_info(model, include_aliases=False)

    def list_models(self, req: Request) -> dict[str, Any]:
        catalog = req.arg("catalog_name")
        schema = req.arg("schema_name")
        if schema and not catalog:
            raise invalid("catalog_name is required when schema_name is given.")
        page_size = _page_size(req.int_arg("max_results"), default=100, maximum=1000)
        models = [
            m
            for key, m in sorted(self.models.items())
            if (not catalog or m.catalog_name == catalog.lower())
            and (not schema or m.schema_name == schema.lower())
        ]
        return page_answer(
            "registered_models",
            models,
            req.arg("page_token"),
            page_size,
            lambda m: self._model_info(m, False),
        )

    def get(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        return self._model_info(model, req.bool_arg("include_aliases"))

    def update(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        if req.arg("comment") is not None:
            model.comment = req.arg("comment")
        if req.arg("owner") is not None:
            model.owner = req.arg("owner")
        new_name = req.arg("new_name")
        if new_name and new_name.lower() != model.name:
            if not _IDENTIFIER.match(new_name):
                raise invalid(f"Invalid name '{new_name}'.")
            target = f"{model.catalog_name}.{model.schema_name}.{new_name.lower()}"
            if target in self.models:
                raise already_exists(f"Routine or Model '{target}' already exists.")
            del self.models[model.full_name]
            model.name = new_name.lower()
            self.models[model.full_name] = model
        model.updated_at = self.ctx.now_ms()
        model.updated_by = self.ctx.user
        return self._model_info(model, include_aliases=False)

    def delete(self, req: Request) -> None:
        model = self._model(req.params["full_name"])
        del self.models[model.full_name]

    def list_versions(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        page_size = _page_size(req.int_arg("max_results"), default=100, maximum=1000)
        # The service promises no order; newest first is what it tends to return.
        versions = [model.versions[n] for n in sorted(model.versions, reverse=True)]
        return page_answer(
            "model_versions",
            versions,
            req.arg("page_token"),
            page_size,
            lambda v: self._version_info(model, v, False),
        )

    def get_version(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        version = self._version(model, req.params["version"])
        return self._version_info(model, version, req.bool_arg("include_aliases"))

    def update_version(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        version = self._version(model, req.params["version"])
        if req.arg("comment") is not None:
            version.comment = req.arg("comment")
        version.updated_at = self.ctx.now_ms()
        version.updated_by = self.ctx.user
        return self._version_info(model, version, include_aliases=False)

    def delete_version(self, req: Request) -> None:
        model = self._model(req.params["full_name"])
        version = self._version(model, req.params["version"])
        del model.versions[version.version]
        for alias in model.aliases_of(version.version):
            del model.aliases[alias]

    def put_alias(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        alias = req.params["alias"]
        _validate_alias(alias)
        version = self._version(model, req.require("version_num"))
        model.aliases[alias] = version.version
        model.updated_at = self.ctx.now_ms()
        return self._alias_info(model, alias)

    def remove_alias(self, req: Request) -> None:
        model = self._model(req.params["full_name"])
        alias = req.params["alias"]
        if alias not in model.aliases:
            raise not_found(f"Alias '{alias}' does not exist for model '{model.full_name}'.")
        del model.aliases[alias]

    def get_by_alias(self, req: Request) -> dict[str, Any]:
        model = self._model(req.params["full_name"])
        alias = req.params["alias"]
        if alias not in model.aliases:
            raise not_found(f"Alias '{alias}' does not exist for model '{model.full_name}'.")
        version = self._version(model, model.aliases[alias])
        return self._version_info(model, version, req.bool_arg("include_aliases"))

    # /api/2.0/mlflow/unity-catalog

    def ml_create_model(self, req: Request) -> dict[str, Any]:
        catalog, schema, name = _split_full_name(req.require("name"))
        try:
            model = self._create_model(catalog, schema, name, req.arg("description"), self.ctx.user)
        except ApiError as error:
            if error.error_code == "RESOURCE_ALREADY_EXISTS":
                raise ApiError(409, "ALREADY_EXISTS", error.message) from None
            raise
        model.tags.update(_tag_map(req.arg("tags")))
        return {"registered_model": self._mlflow_model(model)}

    def ml_get_model(self, req: Request) -> dict[str, Any]:
        return {"registered_model": self._mlflow_model(self._model(req.require("name")))}

    def ml_update_model(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        if req.arg("description") is not None:
            model.comment = req.arg("description")
        model.updated_at = self.ctx.now_ms()
        return {"registered_model": self._mlflow_model(model)}

    def ml_delete_model(self, req: Request) -> None:
        model = self._model(req.require("name"))
        del self.models[model.full_name]

    def ml_search_models(self, req: Request) -> dict[str, Any]:
        page_size = _page_size(req.int_arg("max_results"), default=100, maximum=1000)
        models = [self.models[key] for key in sorted(self.models)]
        return page_answer(
            "registered_models", models, req.arg("page_token"), page_size, self._mlflow_model
        )

    def ml_set_model_tag(self, req: Request) -> None:
        model = self._model(req.require("name"))
        model.tags[req.require("key")] = str(req.arg("value", ""))

    def ml_delete_model_tag(self, req: Request) -> None:
        model = self._model(req.require("name"))
        key = req.require("key")
        if key not in model.tags:
            raise not_found(f"Tag '{key}' does not exist on model '{model.full_name}'.")
        del model.tags[key]

    def ml_set_alias(self, req: Request) -> None:
        model = self._model(req.require("name"))
        alias = req.require("alias")
        _validate_alias(alias)
        model.aliases[alias] = self._version(model, req.require("version")).version

    def ml_delete_alias(self, req: Request) -> None:
        model = self._model(req.require("name"))
        alias = req.require("alias")
        if alias not in model.aliases:
            raise not_found(f"Alias '{alias}' does not exist for model '{model.full_name}'.")
        del model.aliases[alias]

    def ml_get_by_alias(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        alias = req.require("alias")
        if alias not in model.aliases:
            raise not_found(f"Alias '{alias}' does not exist for model '{model.full_name}'.")
        return {"model_version": self._mlflow_version(model, model.versions[model.aliases[alias]])}

    def ml_create_version(self, req: Request) -> dict[str, Any]:
        model = self._model(req.require("name"))
        source = req.require("source")
        version = self._create_version(
            model, source, req.arg("run_id"), req.arg("description"), _tag_map(req.arg("tags"))
        )
        tracking_server = req.arg("run_tracking_server_id")
        if tracking_server and str(tracking_server).isdigit():
            version.run_workspace_id = int(tracking_server)
        version.dependencies = req.arg("model_version_dependencies")
        if self.auto_finalize:
            version.status = READY
        return {"model_version": self._mlflow_version(model, version)}

    def ml_finalize_version(self, req: Request) -> dict[str, Any]:
        model, version = self._named_version(req)
        if version.status == FAILED:
            raise ApiError(
                400, "INVALID_STATE", f"Model version {version.version} failed registration."
            )
        version.status = READY
        version.status_message = None
        version.updated_at = self.ctx.now_ms()
        return {"model_version": self._mlflow_version(model, version)}

    def ml_get_version(self, req: Request) -> dict[str, Any]:
        model, version = self._named_version(req)
        return {"model_version": self._mlflow_version(model, version)}

    def ml_update_version(self, req: Request) -> dict[str, Any]:
        model, version = self._named_version(req)
        if req.arg("description") is not None:
            version.comment = req.arg("description")
        version.updated_at = self.ctx.now_ms()
        return {"model_version": self._mlflow_version(model, version)}

    def ml_delete_version(self, req: Request) -> None:
        model, version = self._named_version(req)
        del model.versions[version.version]
        for alias in model.aliases_of(version.version):
            del model.aliases[alias]

    def ml_search_versions(self, req: Request) -> dict[str, Any]:
        conditions = _parse_equality_filter(req.arg("filter") or "")
        unknown = set(conditions) - {"name", "run_id"}
        if unknown:
            raise invalid(f"Unsupported filter attribute(s): {', '.join(sorted(unknown))}")
        page_size = _page_size(req.int_arg("max_results"), default=10000, maximum=10000)
        found: list[dict[str, Any]] = []
        for key in sorted(self.models):
            model = self.models[key]
            if "name" in conditions and conditions["name"].lower() != key:
                continue
            for number in sorted(model.versions, reverse=True):
                version = model.versions[number]
                if "run_id" in conditions and version.run_id != conditions["run_id"]:
                    continue
                listed = self._mlflow_version(model, version)
                # As on Databricks, the search leaves out tags and aliases (model-versions/get
                # has them).
                del listed["tags"], listed["aliases"]
                found.append(listed)
        return page_answer("model_versions", found, req.arg("page_token"), page_size)

    def ml_download_uri(self, req: Request) -> dict[str, Any]:
        _, version = self._named_version(req)
        return {"artifact_uri": version.storage_location}

    def ml_set_version_tag(self, req: Request) -> None:
        _, version = self._named_version(req)
        version.tags[req.require("key")] = str(req.arg("value", ""))
        version.updated_at = self.ctx.now_ms()

    def ml_delete_version_tag(self, req: Request) -> None:
        _, version = self._named_version(req)
        key = req.require("key")
        if key not in version.tags:
            raise not_found(f"Tag '{key}' does not exist on version {version.version}.")
        del version.tags[key]


def _split_full_name(full_name: str) -> tuple[str, str, str]:
    parts = full_name.split(".")
    if len(parts) != 3 or not all(parts):
        raise invalid(
            f"Invalid model name '{full_name}': expected a three-level name catalog.schema.model."
        )
    return parts[0], parts[1], parts[2]


def _validate_alias(alias: str) -> None:
    if not alias or len(alias) > 255 or not _IDENTIFIER.match(alias):
        raise invalid(f"Invalid alias name '{alias}'.")
    if alias.lower() == "latest":
        raise invalid("'latest' is a reserved alias name.")
    if _VERSION_LIKE_ALIAS.match(alias):
        raise invalid(f"Alias name '{alias}' is reserved: it looks like a version ('v<number>').")


def _tag_map(tags: Any) -> dict[str, str]:
    if not tags:
        return {}
    return {str(tag["key"]): str(tag.get("value", "")) for tag in tags}


def _page_size(requested: int | None, *, default: int, maximum: int) -> int:
    if requested is None or requested == 0:
        return default
    if requested < 0:
        raise invalid(f"max_results must be non-negative, got {requested}.")
    return min(requested, maximum)


_CONDITION = re.compile(rf"""^\s*(?:\w+\.)?"?(\w+)"?\s*=\s*({FILTER_STRING})\s*$""")


def _parse_equality_filter(text: str) -> dict[str, str]:
    """``name='a' AND run_id='b'`` -> ``{"name": "a", "run_id": "b"}``; nothing more."""
    conditions: dict[str, str] = {}
    if not text.strip():
        return conditions
    for clause in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
        found = _CONDITION.match(clause)
        if found is None:
            raise invalid(f"Unsupported filter: {text!r}")
        conditions[found.group(1)] = filter_string(found.group(2))
    return conditions
