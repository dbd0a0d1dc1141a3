"""Every pluggy hook Mintaka calls, in one module.

Hooks are registry-shaped: a plugin is handed a registry and adds to it, rather than returning
objects for core to collect. Observer hooks return nothing. A misspelled ``mintaka_*`` hook
implementation fails at start-up (``check_pending``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mintaka.cli.conformance import ConformanceSuites
    from mintaka.domain.audit import AuditEvent
    from mintaka.domain.monitoring import Alert
    from mintaka.monitoring.tickets import TicketSinks
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


@hookspec
def mintaka_conformance_suites(suites: ConformanceSuites) -> None:
    """Tell ``mintaka conformance matrix`` where each of this plugin's backends opts into the suite.

    Called only by that command. Call ``suites.add(backend, target)`` once per backend, where
    ``backend`` is the name the backend registered under and ``target`` is what pytest runs:

    - the path of the test file that subclasses the ``Abstract*Tests`` classes of
      ``mintaka-conformance``, e.g. ``Path(__file__).parents[2] / "tests" / "test_conformance.py"``
      for a plugin installed from its source tree; or
    - the dotted name of a module shipped inside the plugin's distribution, for a plugin installed
      from a wheel (pytest runs it with ``--pyargs``).

    A backend without a suite appears in the matrix with its declared capabilities as "not run".
    """


@hookspec
def mintaka_ticket_sinks(sinks: TicketSinks) -> None:
    """Add ticket sinks with ``sinks.add(sink)``; each receives every ticket an alert opens,
    updates or escalates (``sink.open(ticket, event)``). Called once per Platform, on the first
    alert. The store always keeps the ticket; a sink that raises is logged, never fatal.
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


@hookspec
def mintaka_alert(alert: Alert) -> None:
    """Called after an alert is raised and audited (an SLA breach, a drift signal, ...).

    Observers (ticket sinks, pagers, retraining triggers) must not raise; the alert stands.
    """


@hookspec
def mintaka_retraining_requested(model: str, reason: str, alert: Alert) -> None:
    """Called after a drift or performance alert on a signal marked ``retrain=True``.

    ``model`` is the monitored model's name, ``reason`` a sentence naming the signal, its value and
    its threshold, and ``alert`` the alert just raised. Implementations start a pipeline, open a
    pull request, ... and return nothing; an exception is logged and the alert stands. Called once
    per alert, so a signal that keeps alerting keeps asking: deduplicate in the plugin if needed.
    """
