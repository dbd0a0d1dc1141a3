"""The backend base class: a name, declared capabilities, and how it is configured."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mintaka.capabilities import Capability
from mintaka.clock import Clock, IdFactory, SystemClock
from mintaka.errors import UnsupportedCapability


class Support(StrEnum):
    NATIVE = "native"
    EMULATED = "emulated"


@dataclass(frozen=True)
class Emulation:
    """How core stands in for a capability the cloud lacks, and what that cannot cover."""

    how: str
    limits: str


class BackendSettings(BaseModel):
    """Base of every backend's settings model; backends subclass it with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BackendContext:
    """What core hands a backend: where it may keep local files, the injected clock and ids.

    ``store_url`` is the control-plane store's URL; only the local backend, whose data plane
    writes the prediction log there, uses it. ``actor`` names the acting identity, for a backend
    that starts work which records its own audit events (the local backend's pipeline worker),
    so that work is audited under the identity that asked for it.
    """

    home: Path
    clock: Clock = field(default_factory=SystemClock)
    ids: IdFactory = field(default_factory=IdFactory)
    store_url: str | None = None
    actor: Callable[[], str] | None = None


class Backend(ABC):
    """A translation of Mintaka's neutral operations onto one cloud.

    Subclasses also inherit the area interfaces they implement (``ModelRegistry``, ``Serving``,
    ...) and declare, in ``capabilities``, exactly the capabilities those interfaces provide.
    Core checks a capability before it dispatches, so an undeclared operation is refused with
    :class:`~mintaka.errors.UnsupportedCapability` and never reaches the backend.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    emulated: ClassVar[Mapping[Capability, Emulation]] = {}
    settings_model: ClassVar[type[BackendSettings]] = BackendSettings
    # Whether the backend computes on this machine (the local backend): running a pipeline in
    # the foreground then does what submitting it would, and stays the default.
    computes_here: ClassVar[bool] = False

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def support(cls, capability: Capability) -> Support | None:
        if capability not in cls.capabilities:
            return None
        return Support.EMULATED if capability in cls.emulated else Support.NATIVE

    def require(self, capability: Capability) -> None:
        """Raise :class:`UnsupportedCapability` unless this backend declares ``capability``."""
        if capability not in self.capabilities:
            raise UnsupportedCapability(self.name, capability.value)

    def describe(self) -> dict[str, Any]:
        """Non-secret facts about this instance (region, workspace host, ...), for display."""
        return {}

    def close(self) -> None:  # noqa: B027  # optional hook, nothing to release by default
        """Release clients and connections."""
