"""What a backend sees in its cloud: unmanaged resources, and the state of managed ones."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record
from mintaka.domain.registry import BackendVersion
from mintaka.domain.serving import TrafficMap


class ResourceKind(StrEnum):
    MODEL = "model"
    MODEL_VERSION = "model_version"
    ENDPOINT = "endpoint"


class DiscoveredResource(Record):
    """A resource in the cloud, managed by Mintaka or not (the input for migration)."""

    kind: ResourceKind
    name: str
    backend_id: str
    managed: bool
    extra: JSONDict = Field(default_factory=dict)


class ObservedModel(Record):
    """A registered model as the cloud reports it now, with its versions and aliases."""

    name: str
    versions: tuple[BackendVersion, ...]
    aliases: dict[str, int] = Field(default_factory=dict)


class ObservedEndpoint(Record):
    name: str
    traffic: TrafficMap
    extra: JSONDict = Field(default_factory=dict)


class Difference(Record):
    """One difference between Mintaka's records and the cloud, reported by sync."""

    kind: str
    subject: str
    recorded: JSONDict | str | int | None
    observed: JSONDict | str | int | None
    detected_at: AwareDatetime
