"""The checks an alert, and a signal that will raise alerts, pass before anything is written:
names and handlers that cannot forge a printed line, finite numbers, and details the store and
the audit chain can write as they were given."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from numbers import Real
from typing import TYPE_CHECKING, Any

from mintaka.audit.chain import canonical_bytes
from mintaka.domain.names import forging_character
from mintaka.errors import MintakaError, ValidationError
from mintaka.numbers import as_float

if TYPE_CHECKING:
    from mintaka.domain.monitoring import Signal


def _check_signal_name(name: str) -> None:
    """Refuse a signal name that could pass for another signal's ticket or forge a line where
    it is printed: tickets are keyed ``ENDPOINT:SIGNAL`` and ``ENDPOINT:SIGNAL:unmeasured``
    (endpoint names hold no colon), so a name holding one is ambiguous."""
    bad = forging_character(name)
    if not name.strip() or name != name.strip() or ":" in name or bad is not None:
        raise ValidationError(
            f"signal name {name!r} must be non-empty, without surrounding blanks, a colon (tickets"
            " are keyed ENDPOINT:SIGNAL) or control and text-direction characters"
        )


def _check_printed(what: str, text: str) -> None:
    """Refuse an alert's ``text`` (its signal, endpoint or owner) that is blank, has blanks
    around it, or holds a character that could forge a line where tickets and audit events
    print it (a newline, an escape sequence, a text-direction override)."""
    if not text.strip() or text != text.strip() or forging_character(text) is not None:
        raise ValidationError(
            f"{what} {text!r} must be non-empty, without surrounding blanks or control and "
            "text-direction characters"
        )


def _check_alert(signal: str, endpoint: str, value: float, threshold: float) -> None:
    """Refuse an alert that would store a name that is not a string or forges printed lines,
    or a value or threshold that is not a finite real number (a boolean, a string or None is
    none, and an integer beyond the float range is infinite, as :func:`as_float` reads it):
    NaN compares false with everything, so a ticket holding it could not say how far the
    signal went, and JSON has no way to write it."""
    for what, text in (("signal", signal), ("endpoint", endpoint)):
        if not isinstance(text, str):
            raise ValidationError(f"alert {what} must be a string, not {type(text).__name__}")
        _check_printed(what, text)
    for what, number in (("value", value), ("threshold", threshold)):
        if isinstance(number, bool) or not isinstance(number, Real):
            raise ValidationError(f"alert {what} {number!r} is not a real number")
        if not math.isfinite(as_float(number)):
            raise ValidationError(f"alert {what} {number} is not a finite number")


def _check_details(signal: str, details: Mapping[str, Any]) -> None:
    """Refuse an alert's ``details`` that are not plain JSON (a set, an object), hold a number
    that is not finite, or that the audit chain cannot write as its ``alert.raise`` event: the
    ticket stores them as JSON, which has no way to write NaN or a set (a server database
    refuses them mid-write, and the audit event would record NaN as null), and the chain's
    RFC 8785 encoding refuses an integer beyond 2^53 and text that is not UTF-8 (a lone
    surrogate). A key that is not a string would be stored as text the alert never held."""
    try:
        json.dumps(details, allow_nan=False)
        _check_keys(details)
        canonical_bytes(details)
    except (TypeError, ValueError, MintakaError) as exc:
        raise ValidationError(
            f"details of alert {signal!r} must be JSON without NaN or infinity, with string "
            f"keys, integers within 2^53 and UTF-8 text: {exc}"
        ) from None


def _check_keys(value: Any) -> None:
    """Raise ``TypeError`` on a map in ``value``, at any depth, with a key that is not a
    string: JSON writes such a key as text, so the details read back would differ."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"key {key!r} is not a string")
            _check_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item)


def _check_handlers(signal: Signal) -> None:
    """Refuse a signal whose owner or escalation step (who becomes the ticket's owner when it
    is due) names someone :meth:`MonitoringService.raise_alert` refuses, or whose runbook URL
    it refuses: its alerts would fail on every pass instead of being ticketed."""
    _check_printed(f"signal {signal.name!r} owner", signal.owner)
    for step, escalation in enumerate(signal.escalation, start=1):
        _check_printed(f"signal {signal.name!r} escalation step {step}", escalation.to)
    if signal.runbook_url is not None:
        _check_printed(f"signal {signal.name!r} runbook_url", signal.runbook_url)
