"""Unity Catalog models, versions, aliases and tags; stage, approval and Mintaka's ids in tags.

Versions are created through MLflow's Unity Catalog REST path (the SDK has no call for it):
``model-versions/create`` with every tag at once, reconciled by idempotency key
(``mintaka_databricks.versions``), then the model's files are uploaded into the version (the
Files API's ``/Models/<catalog>/<schema>/<model>/<version>/``, as MLflow does through the SDK)
and the version is finalized. The same path reads them back (``registry.fetch``).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from mintaka.domain.registry import BackendVersion, Stage, VersionRequest
from mintaka.errors import BackendError, Conflict, MintakaError, NotFound, ValidationError
from mintaka.interfaces import (
    ApprovalProjection,
    ArtifactFetch,
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
from mintaka_databricks.workspace import FLAVOR_TAG, STAGE_TAG

ML_UC = "/api/2.0/mlflow/unity-catalog"


class UnityCatalogRegistry(
    ArtifactFetch,
    KeyedVersions,
    VersionTagWrites,
    ModelRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
):
    """``Capability.REGISTRY`` and its relatives over Unity Catalog registered models."""

    _CREATE_VERSION_PATH = f"{ML_UC}/model-versions/create"
    _SEARCH_VERSIONS_PATH = f"{ML_UC}/model-versions/search"
    _SET_TAG_PATH = f"{ML_UC}/model-versions/tags"
    _DELETE_TAG_PATH = f"{ML_UC}/model-versions/tags"
    _SEARCH_LISTS_TAGS = False  # Unity Catalog's search leaves out tags and aliases

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
        """(registry name, leaf) of every model in the configured schema; the leaf in lower case,
        as Unity Catalog compares names."""
        found = self._call(
            "listing models",
            lambda: list(
                self.client.registered_models.list(
                    catalog_name=self.settings.catalog, schema_name=self.settings.schema_name
                )
            ),
        )
        return [(str(m.full_name or m.name or ""), (m.name or "").lower()) for m in found]

    # -- versions -------------------------------------------------------------------------------

    def _ready(
        self,
        name: str,
        full: str,
        listed: Mapping[str, Any],
        request: VersionRequest,
    ) -> BackendVersion:
        number = int(listed["version"])
        if listed.get("status") == PENDING:
            if self.settings.upload_artifacts:
                self._upload(full, number, Path(request.artifact_path))
            self._rest(
                "POST",
                f"{ML_UC}/model-versions/finalize",
                f"finalizing {full} version {number}",
                body={"name": full, "version": str(number)},
            )
        return self.get_version(name, number)

    def _version(self, name: str, raw: Mapping[str, Any]) -> BackendVersion:
        tags = tag_map(raw)
        stage = tags.get(STAGE_TAG)
        full = str(raw.get("name", self._full_name(name)))
        return BackendVersion(
            name=name,
            **tagged_fields(raw, tags),
            aliases=tuple(sorted(str(a["alias"]) for a in raw.get("aliases") or [])),
            stage=Stage(stage) if stage in set(Stage) else None,
            backend_ids={"full_name": full, "version": str(raw["version"])},
            extra={
                "status": raw.get("status"),
                "storage_location": raw.get("storage_location"),
                "flavor": tags.get(FLAVOR_TAG),
            },
        )

    # -- the version's files ----------------------------------------------------------------------

    def _files_root(self, full: str, version: int) -> str:
        return f"/Models/{full.replace('.', '/')}/{version}"

    def _upload(self, full: str, version: int, artifact: Path) -> None:
        """Every file of ``artifact`` (a file, or a directory's files at their relative paths)
        into the pending version; overwriting, so that a retried registration can run again."""
        root = self._files_root(full, version)
        if artifact.is_dir():
            files = sorted(p for p in artifact.rglob("*") if p.is_file())
            targets = [(p, p.relative_to(artifact).as_posix()) for p in files]
        else:
            targets = [(artifact, artifact.name)]
        for source, relative in targets:
            with source.open("rb") as body:
                upload = functools.partial(
                    self.client.files.upload, f"{root}/{relative}", body, overwrite=True
                )
                try:
                    self._call(f"uploading {relative} of {full} version {version}", upload)
                except MintakaError as exc:
                    # Left pending: registering again finds the version and uploads again.
                    raise BackendError(
                        f"{exc}; the version stays pending until its files are uploaded "
                        "(where the workspace does not take model files through the Files "
                        "API, set upload_artifacts = false to register without them)",
                        BACKEND,
                    ) from exc

    def _listed_files(self, directory: str) -> Iterator[str]:
        """The path of every file below ``directory`` (the Files API lists one level)."""
        entries = self._call(
            f"listing {directory}",
            lambda: list(self.client.files.list_directory_contents(directory)),
        )
        for entry in entries:
            path = str(entry.path or "").rstrip("/")
            if entry.is_directory:
                yield from self._listed_files(path)
            else:
                yield path

    def fetch_artifact(self, name: str, version: int, into: Path) -> Path:
        """The version's files from Unity Catalog, under ``into/model``; a version that holds one
        file which Mintaka registered as that file (its digest tag says so) is that file."""
        from mintaka.artifacts import manifest_of

        full = self._full_name(name)
        recorded = self.get_version(name, version)  # NotFound for a missing version
        root = self._files_root(full, version)
        try:
            files = sorted(self._listed_files(root))
        except NotFound:
            files = []
        if not files:
            raise NotFound(f"{full} version {version} holds no model files ({root})")
        target = into / "model"
        placed: list[Path] = []
        for path in files:
            relative = PurePosixPath(path.removeprefix(root + "/"))
            if path == str(relative) or ".." in relative.parts or relative.is_absolute():
                raise ValidationError(f"{path} would land outside the model directory")
            local = target.joinpath(*relative.parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            read = functools.partial(self.client.files.download, path)
            body = self._call(f"reading {path}", read).contents
            if body is None:
                raise NotFound(f"{path} has no contents")
            with body, local.open("wb") as out:
                shutil.copyfileobj(body, out, 1024 * 1024)
            placed.append(local)
        single = placed[0] if len(placed) == 1 and placed[0].parent == target else None
        if single is not None and manifest_of(single).digest == recorded.artifact_digest:
            return single
        return target

    def _raw_version(self, full: str, version: int) -> dict[str, Any]:
        answer = self._rest(
            "GET",
            f"{ML_UC}/model-versions/get",
            f"reading {full} version {version}",
            query={"name": full, "version": str(version)},
        )
        return dict(answer["model_version"])

    def get_version(self, name: str, version: int) -> BackendVersion:
        return self._version(name, self._raw_version(self._full_name(name), version))

    def list_versions(self, name: str) -> list[BackendVersion]:
        full = self._full_name(name)
        self._require_model(full)
        versions = [self._version(name, raw) for raw in self._listed_versions(full)]
        return sorted(versions, key=lambda v: v.version)

    def _delete(self, full: str, version: int) -> None:
        # The SDK retries a delete whose answer was lost, and the retry finds the version gone.
        with contextlib.suppress(NotFound):
            self._call(
                f"deleting {full} version {version}",
                lambda: self.client.model_versions.delete(full, version),
            )

    def delete_version(self, name: str, version: int) -> None:
        full = self._full_name(name)
        self._raw_version(full, version)  # NotFound for a version missing before the delete
        self._delete(full, version)

    # -- aliases --------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        full = self._full_name(name)
        self._call(
            f"setting alias {alias} of {full}",
            lambda: self.client.registered_models.set_alias(full, alias, version),
        )

    def delete_alias(self, name: str, alias: str) -> None:
        full = self._full_name(name)
        if alias not in self.get_aliases(name):
            raise NotFound(f"alias {alias!r} of {full} not found in Unity Catalog")
        # The SDK retries a delete whose answer was lost, and the retry finds the alias gone.
        with contextlib.suppress(NotFound):
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
