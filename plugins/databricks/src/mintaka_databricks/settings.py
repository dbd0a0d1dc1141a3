"""How the Databricks backend is configured: the workspace, the Unity Catalog schema, timeouts."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from mintaka.domain.names import (
    check_name_map,
    mintaka_name_in,
    validate_endpoint_name,
    validate_model_name,
)
from mintaka.errors import ValidationError
from mintaka.interfaces import BackendSettings
from mintaka_databricks.filters import filter_value
from mintaka_databricks.names import mintaka_name, uc_leaf

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")  # a Model Serving endpoint
WORKSPACE_MODEL_NAME = re.compile(r"^[^./:%]{1,256}$")  # a workspace registered model


def _searchable(name: str) -> str:
    """``name``, refused when no MLflow search filter can name it (both kinds of quote): the
    versions of such a model, or the experiments under such a folder, could never be found."""
    try:
        filter_value(name)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    return name


class DatabricksSettings(BackendSettings):
    """Where the workspace is and where Mintaka keeps its models in it.

    ``token`` is a personal access token; it is never logged nor shown by ``describe()``. Without
    one the SDK's own resolution applies (environment, ``~/.databrickscfg``, OAuth ...).
    ``retry_timeout_seconds`` bounds the SDK's retries of 429, 503 and connection errors;
    ``http_timeout_seconds`` bounds one HTTP request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field(min_length=1)
    token: SecretStr | None = None
    catalog: str = Field(default="main", pattern=_IDENTIFIER)
    schema_name: str = Field(default="default", alias="schema", pattern=_IDENTIFIER)
    registry: Literal["uc", "workspace"] = "uc"
    """Where models are kept: Unity Catalog (backend ``databricks``) or the workspace model
    registry (backend ``databricks_workspace``, which sets it)."""
    retry_timeout_seconds: int = Field(default=300, ge=1)
    http_timeout_seconds: int = Field(default=60, ge=1)
    endpoint_timeout_seconds: int = Field(default=1200, ge=1)
    """How long a serving endpoint may take to apply a config change."""
    poll_seconds: float = Field(default=5.0, gt=0)
    """Pause between polls of a changing endpoint or a running job."""
    experiment_root: str = Field(default="/Shared/mintaka", pattern=r"^/")
    """Workspace folder under which Mintaka's MLflow experiments are created (the folder too,
    when missing)."""
    upload_artifacts: bool = True
    """Upload a version's model files into its Unity Catalog model version (through the Files
    API, as MLflow does), so that Model Serving can load them and adoption read them back. Off:
    the version only names its source (``artifact_root``) and holds no files."""
    artifact_root: str | None = None
    """Where the content-addressed artifacts are mirrored (``s3://...``, ``/Volumes/...``); a
    version's source is ``<artifact_root>/<digest hex>``. Unset: the local file URI."""
    warehouse_id: str | None = None
    """SQL warehouse that reads inference tables back (captured requests)."""
    statement_timeout_seconds: int = Field(default=600, ge=1)
    """How long reading an inference table may take, a SQL warehouse starting up included."""
    capture_page_rows: int = Field(default=1000, ge=1)
    """How many inference-table rows one statement reads: a statement's inline result may hold
    25 MiB, so a window is read in pages of this many requests (lower it for large payloads).
    Requests of one millisecond without a ``databricks_request_id`` are read in one statement
    when a page ends among them, which may then hold more rows."""
    step_runner: str = "/Workspace/Shared/mintaka/run_step"
    """Base path of the workspace notebook each pipeline task runs: Mintaka's step runner,
    uploaded by ``submit`` as a Python notebook to this path followed by ``-`` and the first 12
    hex digits of the SHA-256 of its source (``.../run_step-0123456789ab``), so that a task runs
    the runner it was compiled for whatever another Mintaka release uploads meanwhile (through
    the Workspace API, so an absolute workspace path; a notebook's path has no extension)."""
    prune_step_runners: bool = False
    """Let a submit that uploads its release's step runner delete, once its run has started, the
    runners of other releases beside it that no job or active run visible to Mintaka's identity
    runs. Off by default: a runner run only by a job that identity cannot see, or by a submit of
    another release racing the clean-up, would be deleted under it."""
    workload_size: Literal["Small", "Medium", "Large"] = "Small"
    scale_to_zero: bool = True
    """The served entities of endpoints Mintaka creates; a change keeps what each runs on."""
    endpoint_names: dict[str, str] = Field(default_factory=dict)
    """Mintaka endpoint name -> serving endpoint whose name Mintaka cannot use (``churn_api``),
    so that an endpoint made before Mintaka can be adopted under a Mintaka name."""

    model_names: dict[str, str] = Field(default_factory=dict)
    """Mintaka model name -> workspace registered model whose name Mintaka cannot use
    (``ChurnModel``), so that a model made before Mintaka can be adopted under a Mintaka name.
    The workspace model registry only: Unity Catalog's names all read as Mintaka names."""

    @field_validator("endpoint_names")
    @classmethod
    def _endpoint_names_one_to_one(cls, names: dict[str, str]) -> dict[str, str]:
        return check_name_map(names, "serving endpoint", validate_endpoint_name, ENDPOINT_NAME)

    @field_validator("model_names")
    @classmethod
    def _model_names_one_to_one(cls, names: dict[str, str]) -> dict[str, str]:
        what = "workspace registered model"
        check_name_map(names, what, validate_model_name, WORKSPACE_MODEL_NAME)
        for theirs in names.values():
            ours = mintaka_name(theirs)
            if ours is not None:  # reachable as it is: it would have two Mintaka names
                raise ValueError(f"{what} {theirs!r} is Mintaka's {ours!r} already: use that")
            _searchable(theirs)
        return names

    @field_validator("experiment_root")
    @classmethod
    def _experiment_root_searchable(cls, value: str) -> str:
        return _searchable(value)

    @model_validator(mode="after")
    def _model_names_in_the_workspace_registry(self) -> DatabricksSettings:
        if self.model_names and self.registry != "workspace":
            raise ValueError(
                "model_names applies to the workspace model registry (backend "
                "databricks_workspace): every Unity Catalog model name reads as a Mintaka name"
            )
        return self

    def registered_model_of(self, name: str) -> str:
        """The workspace registered model that is Mintaka model ``name``."""
        return self.model_names.get(name, uc_leaf(name).lower())

    def model_name_of(self, registered: str) -> str | None:
        """The Mintaka model that workspace registered model ``registered`` is, or ``None``: a
        mapped name, else the name it reads as unless that Mintaka name is mapped elsewhere."""
        if registered in self.model_names.values():
            return mintaka_name_in(self.model_names, registered)
        ours = mintaka_name(registered)
        return None if ours in self.model_names else ours

    def endpoint_of(self, name: str) -> str:
        """The serving endpoint that is Mintaka endpoint ``name``."""
        return self.endpoint_names.get(name, name)

    def endpoint_name_of(self, endpoint: str) -> str:
        """The Mintaka name of serving endpoint ``endpoint`` (itself unless mapped)."""
        return mintaka_name_in(self.endpoint_names, endpoint)

    @field_validator("step_runner")
    @classmethod
    def _step_runner_in_the_workspace(cls, value: str) -> str:
        parts = value.split("/")
        if (
            not value.startswith("/")
            or posixpath.splitext(value)[1]
            or parts[1] in ("Volumes", "dbfs")
            or value.rstrip("/") == "/Workspace"
            or any(p in ("", ".", "..") for p in parts[1:])
        ):
            raise ValueError(
                "step_runner is the workspace notebook Mintaka uploads its step runner to: an "
                "absolute workspace path without an extension "
                f"(/Workspace/Shared/mintaka/run_step), not {value!r}"
            )
        return value

    @field_validator("host")
    @classmethod
    def _has_scheme(cls, value: str) -> str:
        # Without a scheme the SDK assumes https, which silently misdirects a plain-HTTP host.
        if "://" not in value:
            value = f"https://{value}"
        return value.rstrip("/")


class DatabricksWorkspaceSettings(DatabricksSettings):
    """The workspace-registry backend's settings: the same, with ``registry = "workspace"``.

    ``catalog`` and ``schema`` still name where inference tables are written.
    """

    registry: Literal["uc", "workspace"] = "workspace"
