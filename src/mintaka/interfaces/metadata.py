"""Lineage metadata pushed to the cloud's own lineage service, and discovery / sync."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from mintaka.domain.discovery import DiscoveredResource, ObservedEndpoint, ObservedModel
from mintaka.domain.governance import Identity
from mintaka.domain.lineage import LineageEdge, LineageNode


class LineageMetadata(ABC):
    """``Capability.LINEAGE_METADATA``."""

    @abstractmethod
    def push_lineage(self, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]) -> None:
        """Write nodes and edges; idempotent, so pushing twice creates nothing new."""

    @abstractmethod
    def read_lineage(self, node_id: str) -> list[LineageEdge]:
        """Edges touching ``node_id`` as the cloud records them."""


class Discovery(ABC):
    """``Capability.DISCOVERY``: every model and endpoint in the cloud, managed or not."""

    @abstractmethod
    def discover(self) -> list[DiscoveredResource]: ...


class StateObserver(ABC):
    """``Capability.SYNC``: the cloud's current view of resources, for core to compare."""

    @abstractmethod
    def observe_model(self, name: str) -> ObservedModel: ...

    @abstractmethod
    def observe_endpoint(self, name: str) -> ObservedEndpoint: ...


class CallerIdentity(ABC):
    """``Capability.IDENTITY``: who the cloud says is calling."""

    @abstractmethod
    def whoami(self) -> Identity: ...
