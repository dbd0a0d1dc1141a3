"""Which policy Mintaka acted under, and when: the ``policy.activate`` audit events.

A decision stores only its policy's digest, so the policy's text would be lost once the file
changes. Mintaka therefore records a policy when it first acts under it: the first decision
recorded under a digest the audit chain has no ``policy.activate`` event for, or the first alias
moved, deleted or adopted under it, appends one in that change's transaction, holding the digest,
source, version, production aliases and the parsed policy. Returning to an earlier policy is
recorded again, unless another policy was activated after this process read its own (a process
still holding the policy it started with does not switch the history back): both are decided by
position in the chain (the chain head when the policy was read against the latest activation),
never by recorded times, which hosts with different clocks write. The chain head's lock is taken
before the chain is read, so two processes acting under a new policy at once record it once.

Readers judge a chain event (an alias move, the head a pack is stated as of) by the policy last
activated at or before it in chain order; an instant a caller gives (``inventory --at``) by the
events' recorded times, reading the chain in order up to the first activation recorded after it.
Whatever comes before the first activation (a store older than these events) is judged by the
earliest one recorded, and a store with none by the policy in force now.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, select

from mintaka.domain.audit import AuditEvent
from mintaka.domain.base import AwareDatetime, Record
from mintaka.errors import invalid_fields
from mintaka.governance.policy import Policy
from mintaka.store.engine import Sql
from mintaka.store.schema import audit_events

if TYPE_CHECKING:
    from mintaka.platform import Platform

ACTIVATE = "policy.activate"
_LATEST = "SELECT subject, seq FROM audit_events WHERE action = :action ORDER BY seq DESC LIMIT 1"
_SEEN = "SELECT 1 FROM audit_events WHERE action = :action AND subject = :subject LIMIT 1"


class PolicyActivation(Record):
    """One ``policy.activate`` event: a policy Mintaka acted under from ``seq`` on in the audit
    chain (recorded at ``at`` by the clock of the host that acted). ``policy`` is the policy
    parsed back from the event (None when its text no longer parses as a policy, and
    ``unreadable`` then says why); it is left out of dumps, which name the policy by digest."""

    seq: int
    at: AwareDatetime
    hash: str
    digest: str
    version: str
    source: str
    production_aliases: tuple[str, ...]
    policy: Policy | None = Field(default=None, exclude=True)
    unreadable: str = ""


def _text(value: str) -> str:
    """``value`` as UTF-8 text an audit event can hold (a path read from bytes that are not
    UTF-8 carries lone surrogates)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def record_activation(
    platform: Platform, conn: Connection, policy: Policy, *, read_after: int | None
) -> AuditEvent | None:
    """Append ``policy.activate`` for ``policy`` inside the caller's write transaction, unless
    the chain already says it is in force, or it was read when the chain head was at
    ``read_after`` and another policy was activated after that, which then stays in force.
    ``read_after`` None stands for a policy not read from a file, taken as read now."""
    platform.audit.lock(conn)
    sql = Sql(conn)
    # Every decision asks (unless its process settled it, see GovernanceService.record); the
    # usual answer, that the latest activation is this policy, takes one row of the action index.
    latest = sql.one(_LATEST, {"action": ACTIVATE})
    if latest is not None:
        subject, seq = latest
        if subject == policy.digest:
            return None
        seen = sql.one(_SEEN, {"action": ACTIVATE, "subject": policy.digest})
        if seen is not None and read_after is not None and int(seq) > read_after:
            return None
    return platform._audit(
        conn,
        ACTIVATE,
        policy.digest,
        digest=policy.digest,
        source=_text(policy.source),
        version=policy.version,
        production_aliases=list(policy.production_aliases),
        policy=policy.model_dump(mode="json", exclude={"digest", "source"}),
    )


def activations(platform: Platform) -> list[PolicyActivation]:
    """Every recorded activation, in chain order. An event that cannot be read as one (its
    bytes changed by hand into another shape, which ``audit verify`` reports) records nothing:
    the activation before it stays in force."""
    query = (
        select(audit_events.c.seq, audit_events.c.at, audit_events.c.hash, audit_events.c.canonical)
        .where(audit_events.c.action == ACTIVATE)
        .order_by(audit_events.c.seq)
    )
    with platform.store.read() as conn:
        rows = conn.execute(query).all()
    found = []
    for row in rows:
        activation = _activation(row)
        if activation is not None:
            found.append(activation)
    return found


def _activation(row: Any) -> PolicyActivation | None:
    """The activation an event row records, or None when its bytes are not of that shape."""
    try:
        body = json.loads(bytes(row.canonical))
        details = body.get("details") if isinstance(body, dict) else None
        at = datetime.fromisoformat(row.at) if isinstance(row.at, str) else None
    except (TypeError, ValueError):
        return None
    if not isinstance(details, dict) or at is None:
        return None
    digest, source = details.get("digest", ""), details.get("source", "")
    version, aliases = details.get("version", ""), details.get("production_aliases", [])
    if not (
        isinstance(digest, str)
        and isinstance(source, str)
        and isinstance(version, str)
        and isinstance(aliases, list)
        and all(isinstance(alias, str) for alias in aliases)
    ):
        return None
    policy, unreadable = _parsed(details.get("policy"), digest, source)
    try:
        return PolicyActivation(
            seq=int(row.seq),
            at=at,
            hash=row.hash,
            digest=digest,
            version=version,
            source=source,
            production_aliases=tuple(aliases),
            policy=policy,
            unreadable=unreadable,
        )
    except PydanticValidationError:  # a time without its offset
        return None


def _parsed(stored: object, digest: str, source: str) -> tuple[Policy | None, str]:
    """The policy an activation event holds, with its digest and source, or None and why not:
    the event holds none (recorded before activations kept the policy), or one this Mintaka
    cannot read."""
    if not isinstance(stored, dict):
        return None, "the activation event holds no policy text"
    try:
        return Policy.model_validate({**stored, "digest": digest, "source": source}), ""
    except PydanticValidationError as exc:
        return None, f"this Mintaka cannot read it ({invalid_fields(exc)})"


def in_force_at(
    recorded: Sequence[PolicyActivation], at: datetime | int
) -> PolicyActivation | None:
    """The activation in force at ``at``, else the earliest recorded; None when nothing is
    recorded. An audit sequence number (a chain event, or the head a pack is stated as of) is
    judged by chain order: the last activation at or before it. An instant (a ``datetime``) is
    compared with the recorded times, which need not grow along the chain: the last activation,
    in chain order, before the first one recorded after the instant (one made at it counts)."""
    chosen = recorded[0] if recorded else None
    for activation in recorded:
        if isinstance(at, datetime):
            if activation.at > at:
                break
        elif activation.seq > at:
            break
        chosen = activation
    return chosen


def policy_at(recorded: Sequence[PolicyActivation], at: datetime | int, current: Policy) -> Policy:
    """The policy that judges ``at`` (an instant or an audit sequence number, see
    :func:`in_force_at`; its tiers' controls, its roles): the activation in force then, or
    ``current`` when no activation is recorded, or when the one in force is ``current`` or holds
    no policy this Mintaka can read."""
    activation = in_force_at(recorded, at)
    if activation is None or activation.policy is None or activation.digest == current.digest:
        return current
    return activation.policy


def unreadable_at(
    recorded: Sequence[PolicyActivation], at: datetime | int, current: Policy
) -> PolicyActivation | None:
    """The activation in force at ``at`` whose policy could not be read back, when
    :func:`policy_at` judges by ``current`` in its stead (``current`` is another policy);
    None when the policy in force at ``at`` is the one that judges it."""
    activation = in_force_at(recorded, at)
    if activation is None or activation.policy is not None or activation.digest == current.digest:
        return None
    return activation


def production_aliases_at(
    recorded: Sequence[PolicyActivation], at: datetime | int, current: Policy
) -> tuple[str, tuple[str, ...]]:
    """The digest of the policy that judges ``at`` (an instant or an audit sequence number, see
    :func:`in_force_at`) and its production aliases: the activation in force then, or
    ``current`` when no activation is recorded."""
    activation = in_force_at(recorded, at)
    if activation is None:
        return current.digest, current.production_aliases
    return activation.digest, activation.production_aliases
