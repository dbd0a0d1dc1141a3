"""Experiment runs and dataset versions: where a model version comes from."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class DatasetVersion(Record):
    """An immutable version of a dataset, identified by the digest of its bytes."""

    id: str
    name: str = Field(min_length=1, max_length=256)
    uri: str
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")
    rows: int | None = None
    profile: JSONDict | None = None
    created_at: AwareDatetime


class Run(Record):
    """One training or evaluation run, with what it needs for reproduction."""

    id: str
    experiment: str = Field(min_length=1, max_length=256)
    status: RunStatus = RunStatus.RUNNING
    code_commit: str | None = None
    dataset_ids: tuple[str, ...] = ()
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    backend: str
    backend_ids: dict[str, str] = Field(default_factory=dict)
