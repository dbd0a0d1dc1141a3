"""Mintaka: one vendor-neutral, governed MLOps control plane over the ML services you run.

The flat public API. Importing it never imports a cloud SDK: backends load their SDK lazily.
"""

from __future__ import annotations

from mintaka.capabilities import Capability
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
from mintaka.hookspecs import hookimpl
from mintaka.interfaces import Backend, BackendContext, BackendSettings, Emulation
from mintaka.platform import Platform

__version__ = "0.1.0"

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
