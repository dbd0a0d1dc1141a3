"""Mintaka: one vendor-neutral, governed MLOps control plane over the ML services you run.

The flat public API. Importing it never imports a cloud SDK: backends load their SDK lazily. The
names that need pydantic or SQLAlchemy (the domain records, the backend interfaces, ``Platform``)
are imported on first use, so ``import mintaka.errors`` and the command line's help stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mintaka._lazy import lazy_names
from mintaka.capabilities import Capability
from mintaka.errors import (
    BackendError,
    ConfigurationError,
    Conflict,
    GateFailed,
    IntegrityError,
    InvalidName,
    MintakaError,
    NotFound,
    PluginError,
    PolicyViolation,
    RetryExhausted,
    StoreError,
    Throttled,
    UnsupportedCapability,
    ValidationError,
)

if TYPE_CHECKING:
    from mintaka.clock import IdFactory, ManualClock, SystemClock
    from mintaka.domain import (
        DatasetVersion,
        LineageEdge,
        LineageGraph,
        LineageNode,
        ModelVersion,
        NodeKind,
        RiskTier,
        Run,
        RunStatus,
        Stage,
    )
    from mintaka.hookspecs import hookimpl
    from mintaka.interfaces import Backend, BackendContext, BackendSettings, Emulation
    from mintaka.platform import Platform

__version__ = "0.1.0"

# The names imported on first use, by the module that defines them.
_LAZY_FROM: dict[str, tuple[str, ...]] = {
    "mintaka.clock": ("IdFactory", "ManualClock", "SystemClock"),
    "mintaka.domain": (
        "DatasetVersion",
        "LineageEdge",
        "LineageGraph",
        "LineageNode",
        "ModelVersion",
        "NodeKind",
        "RiskTier",
        "Run",
        "RunStatus",
        "Stage",
    ),
    "mintaka.hookspecs": ("hookimpl",),
    "mintaka.interfaces": ("Backend", "BackendContext", "BackendSettings", "Emulation"),
    "mintaka.platform": ("Platform",),
}
if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would hide typos
    __getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY_FROM)

__all__ = [
    "Backend",
    "BackendContext",
    "BackendError",
    "BackendSettings",
    "Capability",
    "ConfigurationError",
    "Conflict",
    "DatasetVersion",
    "Emulation",
    "GateFailed",
    "IdFactory",
    "IntegrityError",
    "InvalidName",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "ManualClock",
    "MintakaError",
    "ModelVersion",
    "NodeKind",
    "NotFound",
    "Platform",
    "PluginError",
    "PolicyViolation",
    "RetryExhausted",
    "RiskTier",
    "Run",
    "RunStatus",
    "Stage",
    "StoreError",
    "SystemClock",
    "Throttled",
    "UnsupportedCapability",
    "ValidationError",
    "__version__",
    "hookimpl",
]
