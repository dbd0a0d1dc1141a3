"""Registers the local reference backend through the same hook as any third-party plugin."""

from __future__ import annotations

from mintaka.hookspecs import hookimpl
from mintaka.plugins import BackendRegistry


@hookimpl
def mintaka_register_backends(registry: BackendRegistry) -> None:
    from mintaka.local.backend import LocalBackend

    registry.add(LocalBackend)
