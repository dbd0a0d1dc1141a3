"""Unity Catalog models, versions, aliases and tags; stage, approval and Mintaka's ids in tags.

Versions are created through MLflow's Unity Catalog REST path (the SDK has no call for it):
``model-versions/create`` with every tag at once, then ``finalize``. That create carries no
idempotency token, and the SDK retries a POST whose answer was lost, so a create is reconciled
by the idempotency key Mintaka tags each version with: a key already present returns that version,
and a duplicate made by a retried request is deleted again, keeping the first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mintaka.domain.registry import ApprovalStatus, BackendVersion, Stage, VersionRequest
from mintaka.errors import Conflict, NotFound, ValidationError
from mintaka.interfaces import (
    ApprovalProjection,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    VersionDeletion,
)
from mintaka_databricks.names import mintaka_name
from mintaka_databricks.settings import DatabricksSettings
from mintaka_databricks.workspace import (
    APPROVAL_TAG,
    DIGEST_TAG,
    FLAVOR_TAG,
    ID_TAG,
    KEY_TAG,
    STAGE_TAG,
    TAG_PREFIX,
    WorkspaceAccess,
)

ML_UC = "/api/2.0/mlflow/unity-catalog"
PENDING = "PENDING_REGISTRATION"


def _tags(version: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in version.get("tags") or []}


def _user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)}


def _check_user_tags(tags: Mapping[str, str]) -> None:
    reserved = sorted(k for k in tags if k.startswith(TAG_PREFIX))
    if reserved:
        raise ValidationError(
            f"tag keys starting with {TAG_PREFIX!r} are reserved for Mintaka's projections on "
            f"Databricks: {reserved}"
        )


def version_source(settings: DatabricksSettings, request: VersionRequest) -> str:
    """Where the version's bytes are: the mirrored artifact root, or the local file URI.

    Mintaka does not upload artifacts to Databricks; the digest tag binds governance to the
    bytes wherever they live.
    """
    if settings.artifact_root:
        digest = request.artifact_digest.split(":", 1)[1]
        return f"{settings.artifact_root.rstrip('/')}/{digest}"
    return Path(request.artifact_path).resolve().as_uri()


class VersionTagWrites(WorkspaceAccess):
    """Version tags written over REST, shared by both registries: the paths differ, the rules
    (reserved keys, NotFound only for a missing version) do not."""

    _SET_TAG_PATH: str
    _DELETE_TAG_PATH: str

    if TYPE_CHECKING:  # each registry reads its versions its own way

        def get_version(self, name: str, version: int) -> BackendVersion: ...

    def _set_tag(self, name: str, version: int, key: str, value: str) -> None:
        full = self._full_name(name)
        self._rest(
            "POST",
            self._SET_TAG_PATH,
            f"tagging {full} version {version}",
            body={"name": full, "version": str(version), "key": key, "value": value},
        )

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        _check_user_tags(tags)
        for key, value in tags.items():
            self._set_tag(name, version, key, value)

    def delete_tag(self, name: str, version: int, key: str) -> None:
        _check_user_tags({key: ""})
        full = self._full_name(name)
        try:
            self._rest(
                "DELETE",
                self._DELETE_TAG_PATH,
                f"deleting tag {key} of {full} version {version}",
                query={"name": full, "version": str(version), "key": key},
            )
        except NotFound:
            self.get_version(name, version)  # a missing version is NotFound; a missing key is not

    def set_approval(self, name: str, version: int, status: ApprovalStatus) -> None:
        self._set_tag(name, version, APPROVAL_TAG, status.value)


class UnityCatalogRegistry(
    VersionTagWrites,
    ModelRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
):
    """``Capability.REGISTRY`` and its relatives over Unity Catalog registered models."""

    _SET_TAG_PATH = f"{ML_UC}/model-versions/tags"
    _DELETE_TAG_PATH = f"{ML_UC}/model-versions/tags"

    # -- models ---------------------------------------------------------------------------------

    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        full = self._full_name(name)
        # Conflict: it exists (or our own create answered late and the retry found it).
        with contextlib.suppress(Conflict):
            self._call(
                f"creating model {full}",
                lambda: self.client.registered_models.create(
                    catalog_name=self.settings.catalog,
                    schema_name=self.settings.schema_name,
                    name=full.rsplit(".", 1)[1],
                    comment=description or None,
                ),
            )
        return {"full_name": full}

    def _require_model(self, full: str) -> None:
        self._call(f"reading model {full}", lambda: self.client.registered_models.get(full))

    def _listed_models(self) -> list[tuple[str, str]]:
        """(registry name, leaf) of every model in the configured schema."""
        found = self._call(
            "listing models",
            lambda: list(
                self.client.registered_models.list(
                    catalog_name=self.settings.catalog, schema_name=self.settings.schema_name
                )
            ),
        )
        return [(str(m.full_name or m.name or ""), m.name or "") for m in found]

    def list_models(self) -> list[str]:
        return sorted(mintaka_name(leaf) or full for full, leaf in self._listed_models())

    # -- versions -------------------------------------------------------------------------------

    def _search_versions(self, full: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            query: dict[str, Any] = {"filter": f"name='{full}'"}
            if token:
                query["page_token"] = token
            page = self._rest(
                "GET", f"{ML_UC}/model-versions/search", f"listing versions of {full}", query=query
            )
            yield from page.get("model_versions") or []
            token = page.get("next_page_token")
            if not token:
                return

    def _with_key(self, full: str, key: str) -> list[dict[str, Any]]:
        found = [v for v in self._search_versions(full) if _tags(v).get(KEY_TAG) == key]
        return sorted(found, key=lambda v: int(v["version"]))

    def create_version(self, request: VersionRequest) -> BackendVersion:
        _check_user_tags(request.tags)
        full = self._full_name(request.name)
        self._require_model(full)
        existing = self._with_key(full, request.idempotency_key)
        if not existing:
            tags = {
                **request.tags,
                ID_TAG: request.mintaka_id,
                DIGEST_TAG: request.artifact_digest,
                KEY_TAG: request.idempotency_key,
                FLAVOR_TAG: request.flavor.value,
            }
            body: dict[str, Any] = {
                "name": full,
                "source": version_source(self.settings, request),
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            }
            if request.description:
                body["description"] = request.description
            self._rest("POST", f"{ML_UC}/model-versions/create", f"registering {full}", body=body)
            existing = self._with_key(full, request.idempotency_key)
            if not existing:
                raise NotFound(f"{full}: the version just created is not listed")
        first, *duplicates = existing
        for duplicate in duplicates:  # made by a retry of a create whose answer was lost
            self._delete(full, int(duplicate["version"]))
        number = int(first["version"])
        if first.get("status") == PENDING:
            self._rest(
                "POST",
                f"{ML_UC}/model-versions/finalize",
                f"finalizing {full} version {number}",
                body={"name": full, "version": str(number)},
            )
        return self.get_version(request.name, number)

    def _version(self, name: str, raw: Mapping[str, Any]) -> BackendVersion:
        tags = _tags(raw)
        stage = tags.get(STAGE_TAG)
        approval = tags.get(APPROVAL_TAG)
        full = str(raw.get("name", self._full_name(name)))
        return BackendVersion(
            name=name,
            version=int(raw["version"]),
            artifact_uri=str(raw.get("source", "")),
            artifact_digest=tags.get(DIGEST_TAG),
            aliases=tuple(sorted(str(a["alias"]) for a in raw.get("aliases") or [])),
            tags=_user_tags(tags),
            stage=Stage(stage) if stage in set(Stage) else None,
            approval=ApprovalStatus(approval) if approval in set(ApprovalStatus) else None,
            mintaka_id=tags.get(ID_TAG),
            backend_ids={"full_name": full, "version": str(raw["version"])},
            extra={
                "status": raw.get("status"),
                "storage_location": raw.get("storage_location"),
                "flavor": tags.get(FLAVOR_TAG),
            },
        )

    def get_version(self, name: str, version: int) -> BackendVersion:
        full = self._full_name(name)
        answer = self._rest(
            "GET",
            f"{ML_UC}/model-versions/get",
            f"reading {full} version {version}",
            query={"name": full, "version": str(version)},
        )
        return self._version(name, answer["model_version"])

    def list_versions(self, name: str) -> list[BackendVersion]:
        full = self._full_name(name)
        self._require_model(full)
        versions = [self._version(name, raw) for raw in self._search_versions(full)]
        return sorted(versions, key=lambda v: v.version)

    def _delete(self, full: str, version: int) -> None:
        self._call(
            f"deleting {full} version {version}",
            lambda: self.client.model_versions.delete(full, version),
        )

    def delete_version(self, name: str, version: int) -> None:
        self._delete(self._full_name(name), version)

    # -- aliases --------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        full = self._full_name(name)
        self._call(
            f"setting alias {alias} of {full}",
            lambda: self.client.registered_models.set_alias(full, alias, version),
        )

    def delete_alias(self, name: str, alias: str) -> None:
        full = self._full_name(name)
        self._call(
            f"deleting alias {alias} of {full}",
            lambda: self.client.registered_models.delete_alias(full, alias),
        )

    def get_aliases(self, name: str) -> dict[str, int]:
        full = self._full_name(name)
        info = self._call(
            f"reading aliases of {full}",
            lambda: self.client.registered_models.get(full, include_aliases=True),
        )
        return {
            str(a.alias_name): int(a.version_num or 0)
            for a in info.aliases or []
            if a.alias_name is not None
        }

    # -- tags, stage and approval ---------------------------------------------------------------

    def set_stage(self, name: str, version: int, stage: Stage) -> None:
        self._set_tag(name, version, STAGE_TAG, stage.value)
