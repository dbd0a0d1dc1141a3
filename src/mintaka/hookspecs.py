"""Every pluggy hook Mintaka calls, in one module.

Hooks are registry-shaped: a plugin is handed a registry and adds to it, rather than returning
objects for core to collect. Observer hooks return nothing. A misspelled ``mintaka_*`` hook
implementation fails at start-up (``check_pending``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mintaka.domain.audit import AuditEvent
    from mintaka.plugins import BackendRegistry

PROJECT = "mintaka"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration -------------------------------------------------------------------------------


@hookspec
def mintaka_register_backends(registry: BackendRegistry) -> None:
    """Add backend classes with ``registry.add(BackendClass)``.

    Called once, when the plugin manager is first asked for backends. Every implementation is
    called; the order does not matter, and a name registered twice is a ``PluginError``.
    """


# -- observers ------------------------------------------------------------------------------------


@hookspec
def mintaka_audit_event(event: AuditEvent) -> None:
    """Called after an audit event is committed to the chain.

    Observers must not raise; an exception is logged and the event stays committed.
    """


@hookspec
def mintaka_lineage_event(kind: str, payload: dict[str, Any]) -> None:
    """Called after lineage nodes or edges are committed (``kind`` is ``"node"`` or ``"edge"``)."""
