"""The workspace model registry (MLflow's, before Unity Catalog): the fallback registry mode.

A Mintaka model ``credit-risk`` is the workspace registered model ``credit_risk`` (the Unity
Catalog leaf, without catalog or schema: workspace model names are global to the workspace), or
the one the ``model_names`` setting maps it to (``ChurnModel``, a name Mintaka cannot use).
Versions are created through ``/api/2.0/mlflow/model-versions/create`` with every Mintaka tag at
once, reconciled by idempotency key exactly as in Unity Catalog (``mintaka_databricks.versions``).
A new version is ``PENDING_REGISTRATION`` while the service copies its artifacts; ``create_version``
polls until it leaves that status.

Stages are native (``transition-stage``, never archiving other versions: core decides every
version's stage). The workspace registry has no aliases, so each alias is a model tag
``mintaka.alias.<alias>`` whose value is the version number; an alias whose version is gone is
not reported, as Unity Catalog drops the aliases of a deleted version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from mintaka.domain.registry import BackendVersion, Stage, VersionRequest
from mintaka.errors import BackendError, Conflict, NotFound, RetryExhausted
from mintaka.interfaces import (
    ApprovalProjection,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    VersionDeletion,
)
from mintaka_databricks.errors import BACKEND
from mintaka_databricks.versions import (
    PENDING,
    KeyedVersions,
    VersionTagWrites,
    tag_map,
    tagged_fields,
)
from mintaka_databricks.workspace import FLAVOR_TAG

ML = "/api/2.0/mlflow"
ALIAS_TAG = "mintaka.alias."
FAILED = "FAILED_REGISTRATION"

# Mintaka's stages and the workspace registry's, one to one.
STAGES = {
    Stage.NONE: "None",
    Stage.STAGING: "Staging",
    Stage.PRODUCTION: "Production",
    Stage.ARCHIVED: "Archived",
}
_FROM_WORKSPACE = {v.lower(): k for k, v in STAGES.items()}


class WorkspaceModelRegistry(
    KeyedVersions,
    VersionTagWrites,
    ModelRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
):
    """``Capability.REGISTRY`` and its relatives over workspace registered models."""

    _CREATE_VERSION_PATH = f"{ML}/model-versions/create"
    _SEARCH_VERSIONS_PATH = f"{ML}/model-versions/search"
    _SET_TAG_PATH = f"{ML}/model-versions/set-tag"
    _DELETE_TAG_PATH = f"{ML}/model-versions/delete-tag"

    # -- names ----------------------------------------------------------------------------------

    def _full_name(self, name: str) -> str:
        return self.settings.registered_model_of(name)

    def _model_of(self, entity: str) -> str | None:
        return self.settings.model_name_of(entity) if "." not in entity else None

    def _mintaka_model(self, full: str, leaf: str) -> str | None:
        return self._model_of(full)

    # -- models ---------------------------------------------------------------------------------

    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        full = self._full_name(name)
        body: dict[str, Any] = {"name": full}
        if description:
            body["description"] = description
        # The workspace registry answers an existing model with 400 RESOURCE_ALREADY_EXISTS,
        # which the SDK maps to ResourceAlreadyExists (a conflict), also after a lost answer.
        with contextlib.suppress(Conflict):
            self._rest(
                "POST", f"{ML}/registered-models/create", f"creating model {full}", body=body
            )
        return {"name": full}

    def _model(self, full: str) -> dict[str, Any]:
        answer = self._rest(
            "GET", f"{ML}/registered-models/get", f"reading model {full}", query={"name": full}
        )
        return dict(answer.get("registered_model") or {})

    def _require_model(self, full: str) -> None:
        self._model(full)

    def _listed_models(self) -> list[tuple[str, str]]:
        found = self._pages(
            f"{ML}/registered-models/search", "registered_models", "listing models", {}
        )
        return [(str(m["name"]), str(m["name"])) for m in found]

    # -- versions -------------------------------------------------------------------------------

    def _raw_version(self, full: str, version: int) -> dict[str, Any]:
        answer = self._rest(
            "GET",
            f"{ML}/model-versions/get",
            f"reading {full} version {version}",
            query={"name": full, "version": str(version)},
        )
        return dict(answer["model_version"])

    def _registered(self, full: str, version: int) -> dict[str, Any]:
        """The version once it has left ``PENDING_REGISTRATION`` (polled on the backend clock)."""
        clock = self._elapsed_clock()
        deadline = clock.time() + self.settings.endpoint_timeout_seconds
        while True:
            raw = self._raw_version(full, version)
            if raw.get("status") == FAILED:
                raise BackendError(
                    f"{full} version {version} failed to register: "
                    f"{raw.get('status_message') or 'no reason given'}",
                    BACKEND,
                )
            if raw.get("status") != PENDING:
                return raw
            if clock.time() >= deadline:
                raise RetryExhausted(
                    f"{full} version {version} is still {PENDING} after "
                    f"{self.settings.endpoint_timeout_seconds}s",
                    BACKEND,
                )
            self._pause(self.settings.poll_seconds)

    def _ready(
        self,
        name: str,
        full: str,
        listed: Mapping[str, Any],
        request: VersionRequest,
    ) -> BackendVersion:
        raw = self._registered(full, int(listed["version"]))
        return self._version(name, raw, self._aliases_of(full))

    def _version(
        self, name: str, raw: Mapping[str, Any], aliases: Mapping[str, int]
    ) -> BackendVersion:
        tags = tag_map(raw)
        number = int(raw["version"])
        return BackendVersion(
            name=name,
            **tagged_fields(raw, tags),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
            stage=_FROM_WORKSPACE.get(str(raw.get("current_stage", "None")).lower()),
            backend_ids={
                "name": str(raw.get("name", self._full_name(name))),
                "version": str(number),
            },
            extra={
                "status": raw.get("status"),
                "current_stage": raw.get("current_stage"),
                "run_link": raw.get("run_link"),
                "flavor": tags.get(FLAVOR_TAG),
            },
        )

    def get_version(self, name: str, version: int) -> BackendVersion:
        full = self._full_name(name)
        raw = self._raw_version(full, version)
        return self._version(name, raw, self._aliases_of(full))

    def list_versions(self, name: str) -> list[BackendVersion]:
        full = self._full_name(name)
        model = self._model(full)
        raws = list(self._search_versions(full))
        aliases = _alias_tags(model, {int(r["version"]) for r in raws})
        return sorted((self._version(name, r, aliases) for r in raws), key=lambda v: v.version)

    def _delete(self, full: str, version: int) -> None:
        # The SDK retries a delete whose answer was lost, and the retry finds the version gone.
        with contextlib.suppress(NotFound):
            self._rest(
                "DELETE",
                f"{ML}/model-versions/delete",
                f"deleting {full} version {version}",
                query={"name": full, "version": str(version)},
            )

    def delete_version(self, name: str, version: int) -> None:
        full = self._full_name(name)
        self._raw_version(full, version)  # NotFound for a version missing before the delete
        self._delete(full, version)
        for alias, number in _alias_tags(self._model(full), None).items():
            if number == version:
                self._delete_model_tag(full, ALIAS_TAG + alias)

    # -- aliases: model tags --------------------------------------------------------------------

    def _aliases_of(self, full: str) -> dict[str, int]:
        model = self._model(full)
        versions = {int(v["version"]) for v in self._search_versions(full)}
        return _alias_tags(model, versions)

    def _delete_model_tag(self, full: str, key: str) -> None:
        with contextlib.suppress(NotFound):  # already gone
            self._rest(
                "DELETE",
                f"{ML}/registered-models/delete-tag",
                f"deleting tag {key} of {full}",
                query={"name": full, "key": key},
            )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        full = self._full_name(name)
        self._raw_version(full, version)  # NotFound for a missing version, as Unity Catalog
        self._rest(
            "POST",
            f"{ML}/registered-models/set-tag",
            f"setting alias {alias} of {full}",
            body={"name": full, "key": ALIAS_TAG + alias, "value": str(version)},
        )

    def delete_alias(self, name: str, alias: str) -> None:
        full = self._full_name(name)
        self._model(full)
        self._delete_model_tag(full, ALIAS_TAG + alias)

    def get_aliases(self, name: str) -> dict[str, int]:
        return self._aliases_of(self._full_name(name))

    # -- tags, stage and approval ---------------------------------------------------------------

    def set_stage(self, name: str, version: int, stage: Stage) -> None:
        full = self._full_name(name)
        self._rest(
            "POST",
            f"{ML}/model-versions/transition-stage",
            f"moving {full} version {version} to {stage.value}",
            body={
                "name": full,
                "version": str(version),
                "stage": STAGES[stage],
                "archive_existing_versions": False,
            },
        )


def _alias_tags(model: Mapping[str, Any], versions: set[int] | None) -> dict[str, int]:
    """The aliases kept in ``model``'s tags, those on a version in ``versions`` (all if None)."""
    found: dict[str, int] = {}
    for key, value in tag_map(model).items():
        if not key.startswith(ALIAS_TAG):
            continue
        try:
            number = int(value)
        except ValueError:  # a tag edited by hand into something that is no version
            continue
        if versions is None or number in versions:
            found[key.removeprefix(ALIAS_TAG)] = number
    return found
