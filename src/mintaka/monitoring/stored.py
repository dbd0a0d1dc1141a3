"""Monitors as stored: reading a stored monitor record as a spec, whatever release stored it.

Earlier releases stored fields no release reads now, and owners, escalation steps and runbook
URLs as given; these readers drop what is retired and tidy what can be, so a stored monitor keeps
working, and tell what can still be known of one that no longer reads as a spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from mintaka.domain.monitoring import MAX_ESCALATION_MINUTES, MonitorSpec, Signal
from mintaka.errors import ValidationError

RETIRED_MONITOR_FIELDS = ("unmeasured_runs",)  # stored by earlier versions, no longer read


def _stored_monitor(raw: Mapping[str, Any], monitor_id: str = "") -> MonitorSpec:
    """A monitor as stored, read as a spec: the fields earlier versions stored and none reads
    now are left out, so a monitor stored before they were retired still loads, and its
    signals' handlers are read as :func:`_stored_handlers` reads them. A record that still
    does not read as a spec is a ``ValidationError`` naming ``monitor_id``, so callers can
    tell it from a failure of their own and go on with the other monitors."""
    kept = {k: v for k, v in raw.items() if k not in RETIRED_MONITOR_FIELDS}
    if isinstance(kept.get("signals"), list):
        kept["signals"] = [_stored_handlers(s) for s in kept["signals"]]
    try:
        return MonitorSpec.model_validate(kept)
    except PydanticValidationError as exc:
        name = f"monitor {monitor_id}" if monitor_id else "a stored monitor"
        why = f"{name} is stored in a form this release cannot read: {exc}"
        raise ValidationError(why) from exc


def _is_stored(raw: Mapping[str, Any], spec: MonitorSpec) -> bool:
    """Whether the stored monitor ``raw`` is ``spec``; one that no longer reads is not."""
    try:
        return _stored_monitor(raw) == spec
    except ValidationError:
        return False


def _unread_monitor(endpoint: str, raw: Mapping[str, Any]) -> MonitorSpec:
    """What can be told of a stored monitor this release cannot read as a spec: its endpoint,
    model and signal names, the rest left at their defaults (the audit event of its removal
    keeps the spec as stored). Only for taking it off duty: nothing measures with it."""
    model = raw.get("model")
    return MonitorSpec.model_construct(
        endpoint=endpoint,
        model=model if isinstance(model, str) else "",
        signals=[_named_signal(name) for name in _stored_signal_names(raw)],
    )


def _named_signal(name: str) -> Signal:
    """A signal of a monitor this release cannot read, known by its ``name`` alone."""
    known: dict[str, Any] = {"name": name}
    return Signal.model_construct(**known)


def _stored_signal_names(raw: Mapping[str, Any]) -> list[str]:
    """The signal names of a stored monitor, read without reading the rest of its spec."""
    found = raw.get("signals")
    if not isinstance(found, list):
        return []
    return [str(s["name"]) for s in found if isinstance(s, Mapping) and "name" in s]


def _stored_handlers(signal: Any) -> Any:
    """A stored signal with the blanks around its owner, escalation steps and runbook URL
    dropped (a blank runbook URL read as none) and its steps read as :func:`_stored_step` reads
    them: earlier releases stored them as given, and
    :meth:`MonitoringService.raise_alert` now refuses them, so its alerts would fail instead of
    being ticketed for the person meant. One that still forges printed lines (a control
    character) is kept as stored: its alerts are that signal's failure."""
    if not isinstance(signal, Mapping):
        return signal
    found = dict(signal)
    if isinstance(found.get("owner"), str):
        found["owner"] = found["owner"].strip()
    if isinstance(found.get("runbook_url"), str):
        found["runbook_url"] = found["runbook_url"].strip() or None
    if isinstance(found.get("escalation"), list):
        found["escalation"] = [
            _stored_step(step) if isinstance(step, Mapping) else step
            for step in found["escalation"]
        ]
    return found


def _stored_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """A stored escalation step with the blanks around its owner dropped, and a delay later
    than :data:`MAX_ESCALATION_MINUTES` (earlier releases stored any) read as that cap."""
    found = dict(step)
    if isinstance(found.get("to"), str):
        found["to"] = found["to"].strip()
    minutes = found.get("after_minutes")
    if isinstance(minutes, int | float) and minutes > MAX_ESCALATION_MINUTES:
        found["after_minutes"] = MAX_ESCALATION_MINUTES
    return found
