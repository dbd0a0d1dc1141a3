"""Model versions as both Databricks registries keep them, over MLflow's REST paths.

Mintaka's id, digest, idempotency key and flavor are tags on each version, written with it in one
``model-versions/create``; user tags may not use their prefix. That create carries no idempotency
token, and the SDK retries a POST whose answer was lost, so a create is reconciled by the
idempotency key: a key already present returns that version, and a duplicate made by a retried
request is deleted again, keeping the first. Each registry states its paths, how it checks a model
and deletes a version, and what makes a new version ready.

Unity Catalog's ``model-versions/search`` answers without the versions' tags and aliases (MLflow
documents this for its ``search_model_versions``): there each listed version is read again with
``model-versions/get`` where its tags matter, and a create is reconciled among the versions of its
own ``source`` only, so that registering does not read every version of the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mintaka.domain.registry import ApprovalStatus, BackendVersion, VersionOrigin, VersionRequest
from mintaka.errors import NotFound, ValidationError
from mintaka_databricks.filters import filter_value
from mintaka_databricks.names import mintaka_name
from mintaka_databricks.settings import DatabricksSettings
from mintaka_databricks.workspace import (
    APPROVAL_TAG,
    DIGEST_TAG,
    FLAVOR_TAG,
    ID_TAG,
    KEY_TAG,
    TAG_PREFIX,
    WorkspaceAccess,
)

PENDING = "PENDING_REGISTRATION"
READY = "READY"


def is_ready(raw: Mapping[str, Any]) -> bool:
    """Whether version ``raw`` holds a registered model: not still registering (creating it
    again finishes it) nor failed to register (a left-over with no model files)."""
    return raw.get("status") == READY


def tag_map(raw: Mapping[str, Any]) -> dict[str, str]:
    """The tags of a registry object as MLflow lists them (``[{"key": …, "value": …}]``)."""
    return {str(t["key"]): str(t.get("value", "")) for t in raw.get("tags") or []}


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)}


def check_user_tags(tags: Mapping[str, str]) -> None:
    reserved = sorted(k for k in tags if k.startswith(TAG_PREFIX))
    if reserved:
        raise ValidationError(
            f"tag keys starting with {TAG_PREFIX!r} are reserved for Mintaka's projections on "
            f"Databricks: {reserved}"
        )


def version_source(settings: DatabricksSettings, request: VersionRequest) -> str:
    """Where the version's bytes came from: the mirrored artifact root, or the local file URI.

    In Unity Catalog the version's files are also uploaded into the version itself (settings
    ``upload_artifacts``); the digest tag binds governance to the bytes wherever they live.
    """
    if settings.artifact_root:
        digest = request.artifact_digest.split(":", 1)[1]
        return f"{settings.artifact_root.rstrip('/')}/{digest}"
    return Path(request.artifact_path).resolve().as_uri()


def tagged_fields(raw: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    """The ``BackendVersion`` fields read alike from either registry's version ``raw``."""
    approval = tags.get(APPROVAL_TAG)
    return {
        "version": int(raw["version"]),
        "artifact_uri": str(raw.get("source", "")),
        "artifact_digest": tags.get(DIGEST_TAG),
        "tags": user_tags(tags),
        "approval": ApprovalStatus(approval) if approval in set(ApprovalStatus) else None,
        "mintaka_id": tags.get(ID_TAG),
        "origin": VersionOrigin(
            produced_by=f"mlflow-run:{raw['run_id']}", run_ids={"run_id": str(raw["run_id"])}
        )
        if raw.get("run_id")
        else None,
    }


class KeyedVersions(WorkspaceAccess):
    """Models listed and versions searched and created, shared by both registries."""

    _CREATE_VERSION_PATH: str
    _SEARCH_VERSIONS_PATH: str

    if TYPE_CHECKING:  # each registry reads models and deletes versions its own way

        def _listed_models(self) -> list[tuple[str, str]]: ...

        def _require_model(self, full: str) -> None: ...

        def _delete(self, full: str, version: int) -> None: ...

        def _raw_version(self, full: str, version: int) -> dict[str, Any]: ...

        def _ready(
            self,
            name: str,
            full: str,
            listed: Mapping[str, Any],
            request: VersionRequest,
        ) -> BackendVersion:
            """The version ``listed`` (as a search lists it) once the registry has it ready,
            its files those of ``request`` where the registry keeps them."""

    def _mintaka_model(self, full: str, leaf: str) -> str | None:
        """The Mintaka model that listed model ``full`` (its leaf ``leaf``) is, or ``None``."""
        return mintaka_name(leaf)

    def list_models(self) -> list[str]:
        return sorted(
            self._mintaka_model(full, leaf) or full for full, leaf in self._listed_models()
        )

    def _search_versions(self, full: str) -> Iterator[dict[str, Any]]:
        return self._pages(
            self._SEARCH_VERSIONS_PATH,
            "model_versions",
            f"listing versions of {full}",
            {"filter": f"name = {filter_value(full)}"},
        )

    # Whether a version listed by ``_SEARCH_VERSIONS_PATH`` carries its tags and aliases.
    _SEARCH_LISTS_TAGS = True

    def _complete(self, full: str, listed: dict[str, Any]) -> dict[str, Any]:
        """``listed`` (as the search lists it) with its tags and aliases."""
        if self._SEARCH_LISTS_TAGS:
            return listed
        return self._raw_version(full, int(listed["version"]))

    def _listed_versions(self, full: str) -> list[dict[str, Any]]:
        """Every version of ``full``, tags and aliases included."""
        return [self._complete(full, v) for v in self._search_versions(full)]

    def _with_key(self, full: str, key: str, source: str) -> list[dict[str, Any]]:
        found = []
        for listed in self._search_versions(full):
            if not self._SEARCH_LISTS_TAGS and listed.get("source") != source:
                continue
            complete = self._complete(full, listed)
            if tag_map(complete).get(KEY_TAG) == key:
                found.append(complete)
        return sorted(found, key=lambda v: int(v["version"]))

    def create_version(self, request: VersionRequest) -> BackendVersion:
        check_user_tags(request.tags)
        full = self._full_name(request.name)
        self._require_model(full)
        source = version_source(self.settings, request)
        existing = self._with_key(full, request.idempotency_key, source)
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
                "source": source,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            }
            if request.description:
                body["description"] = request.description
            self._rest("POST", self._CREATE_VERSION_PATH, f"registering {full}", body=body)
            existing = self._with_key(full, request.idempotency_key, source)
            if not existing:
                raise NotFound(f"{full}: the version just created is not listed")
        first, *duplicates = existing
        for duplicate in duplicates:  # made by a retry of a create whose answer was lost
            self._delete(full, int(duplicate["version"]))
        return self._ready(request.name, full, first, request)


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
        check_user_tags(tags)
        for key, value in tags.items():
            self._set_tag(name, version, key, value)

    def delete_tag(self, name: str, version: int, key: str) -> None:
        check_user_tags({key: ""})
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
