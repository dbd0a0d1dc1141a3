"""Governance in core: the policy's controls evaluated at every enforcement point, identical on
every backend, before any backend call.

Enforcement points: register, approve, promote (a production alias or the production stage),
deploy and every traffic change (through :mod:`mintaka.governance.gate`), retire, and releasing
the kill switch. Each evaluation yields a :class:`PolicyDecision` (the controls checked, the
unmet ones, the exceptions applied, the policy digest) that is stored and audited; a deny raises
:class:`PolicyViolation` listing every unmet control.

Approvals bind to the artifact digest: an approval counts only for the exact bytes approved.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from mintaka.audit.chain import columns_from_canonical
from mintaka.audit.stamps import instant as _instant
from mintaka.capabilities import Capability
from mintaka.domain.audit import AuditEvent
from mintaka.domain.governance import (
    Approval,
    Identity,
    IdentitySource,
    PolicyDecision,
    PolicyException,
    validate_identity_name,
)
from mintaka.domain.registry import ModelVersion, RiskTier
from mintaka.errors import ConfigurationError, PolicyViolation, ValidationError
from mintaka.governance.policy import MODEL_CARD_FIELDS, Policy, TierControls, load_policy
from mintaka.governance.policy_history import record_activation
from mintaka.store.engine import Sql, transaction_scoped
from mintaka.store.schema import (
    approvals,
    audit_events,
    model_cards,
    model_versions,
    policy_decisions,
    policy_exceptions,
)
from mintaka.text import require_utf8


def highest_tier(tiers: Iterable[RiskTier]) -> RiskTier:
    """The riskiest of ``tiers`` (low when there are none)."""
    return max(
        tiers, key=(RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH).index, default=RiskTier.LOW
    )


# The controls a documented exception may waive: a version's own production controls. Whether a
# version is archived, a killed endpoint and the roles of those who approve are never waived.
WAIVABLE_CONTROLS = ("approvals", "documentation", "evaluation", "monitors", "rollout-strategy")

# Marks, in a transaction's scoped dict, that it recorded a policy activation (not settled
# until that transaction commits).
_ACTIVATED = "policy.activated"
_REGISTERING = ("model.register", "model.adopt")
_IN_LIST_MAX = 500
"""Versions named in one query at most; for more, the query reads every event of its action."""
"""The audited actions that bring a version under governance: their actors are its registrants."""

if TYPE_CHECKING:
    from mintaka.domain.monitoring import MonitorSpec
    from mintaka.platform import Platform


@dataclass(frozen=True)
class Control:
    """One control's outcome for one subject; ``version_id`` scopes exceptions. A control
    judged over several versions names them in ``version_ids``: it is waived only while each
    of them has an exception in force."""

    name: str
    met: bool
    detail: str = ""
    version_id: str | None = None
    version_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else self.name

    @property
    def waivable_for(self) -> tuple[str, ...]:
        """The versions whose exceptions together may waive this control (none: it is not
        waivable)."""
        return self.version_ids or ((self.version_id,) if self.version_id else ())


def resolve_identity(platform: Platform, explicit: str | None) -> Identity:
    """``--as``/``actor=``, else ``MINTAKA_ACTOR``, else the backend's caller, else the OS user.

    A given identity (even an empty one) is used or refused, never passed over: an empty
    ``--as`` falling back to the OS user would record someone other than who was named."""
    if explicit is not None:
        what = "the identity given (--as or actor=)"
        name = validate_identity_name(require_utf8(explicit, "the identity"), what)
        return Identity(name=name, source=IdentitySource.FLAG)
    if "MINTAKA_ACTOR" in os.environ:
        name = require_utf8(os.environ["MINTAKA_ACTOR"], "MINTAKA_ACTOR")
        name = validate_identity_name(name, "MINTAKA_ACTOR")
        return Identity(name=name, source=IdentitySource.ENVIRONMENT)
    if Capability.IDENTITY in platform.backend.capabilities:
        from mintaka.interfaces import CallerIdentity

        backend = platform.backend
        if isinstance(backend, CallerIdentity):
            return backend.whoami()
    name = validate_identity_name(_os_user(), "the OS user name")
    return Identity(name=name, source=IdentitySource.OS_USER)


def _os_user() -> str:
    """The OS user's name; a process with none (no ``USER`` or ``LOGNAME``, and a uid without a
    passwd entry, as in containers run as an arbitrary uid) must name who acts another way."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # KeyError from pwd before Python 3.13, OSError since
        raise ConfigurationError(
            "no OS user name to act as; set MINTAKA_ACTOR or pass --as (actor= in Python)"
        ) from None


class GovernanceService:
    """``platform.governance``: policy, model cards, approvals, exceptions and decisions."""

    def __init__(self, platform: Platform, identity: Identity) -> None:
        self.platform = platform
        self.identity = identity
        # Every policy this service has read, by digest, with the audit chain's head when it
        # last read it: a decision names its policy by digest, and the policy is recorded when
        # first acted under.
        self._read: dict[str, tuple[Policy, int]] = {}
        # The one reading (digest, head when read) the committed chain already answers for, so
        # that acting under it records nothing; any activation this service appends voids it.
        self._settled: tuple[str, int | None] | None = None
        self.policy: Policy = self._load()

    def _load(self) -> Policy:
        """Read the policy in force, noting the chain head first: an activation after that
        head may have been made under a later text of the file than the one read."""
        with self.platform.store.read() as conn:
            head = self.platform.audit.head(conn)
        policy = load_policy(self.platform.home)
        self._read[policy.digest] = (policy, head[0] if head else 0)
        return policy

    def reload_policy(self) -> Policy:
        self.policy = self._load()
        return self.policy

    # -- model cards --------------------------------------------------------------------------

    def set_model_card(self, model: str, /, **fields: str) -> dict[str, str]:
        """Set model-card fields (intended use, limitations, training data, evaluation, owner).
        The card is read under the audit chain's lock in the transaction that writes it, so
        fields set by two processes at once are both kept."""
        unknown = set(fields) - set(MODEL_CARD_FIELDS)
        if unknown:
            raise ValidationError(
                f"unknown model-card fields {sorted(unknown)}; use {', '.join(MODEL_CARD_FIELDS)}"
            )
        if any(not isinstance(v, str) or not v.strip() for v in fields.values()):
            raise ValidationError("model-card fields are non-empty text")
        for field, value in fields.items():
            require_utf8(value, f"model-card field {field}")
        version = self.platform.get_model_version(model)
        now = self.platform._now().isoformat()
        with self.platform.store.write() as conn:
            self.platform.audit.lock(conn)
            stored = conn.execute(
                select(model_cards.c.card).where(model_cards.c.version_id == version.id)
            ).first()
            card = {**dict((stored.card if stored else None) or {}), **fields}
            values = {"card": card, "updated_at": now, "updated_by": self.identity.name}
            if stored:
                conn.execute(
                    model_cards.update()
                    .where(model_cards.c.version_id == version.id)
                    .values(**values)
                )
            else:
                conn.execute(model_cards.insert().values(version_id=version.id, **values))
            event = self.platform._audit(conn, "model.card", version.ref, fields=sorted(fields))
        self.platform._after_commit([event])
        return card

    def model_card(self, version: ModelVersion | str) -> dict[str, str]:
        resolved = self.platform.get_model_version(version) if isinstance(version, str) else version
        with self.platform.store.read() as conn:
            card = conn.execute(
                select(model_cards.c.card).where(model_cards.c.version_id == resolved.id)
            ).scalar()
        return dict(card or {})

    # -- approvals ------------------------------------------------------------------------------

    def approvals(self, version: ModelVersion) -> list[Approval]:
        """The approvals of ``version`` that its audit chain answers for: the approvals table
        is mutable, so a row counts only with the ``model.approve`` event that recorded it."""
        return self._approval_rows(version)[0]

    def unrecorded_approvals(self, version: ModelVersion) -> list[Approval]:
        """Rows of the approvals table for ``version`` that no ``model.approve`` audit event
        records as they stand (written or changed outside Mintaka): they never count."""
        return self._approval_rows(version)[1]

    def _approval_rows(self, version: ModelVersion) -> tuple[list[Approval], list[Approval]]:
        return self.approval_split([version])[version.id]

    def approval_split(
        self, versions: Sequence[ModelVersion], conn: Connection | None = None
    ) -> dict[str, tuple[list[Approval], list[Approval]]]:
        """Each of ``versions``' approval rows (by version id), split into those a
        ``model.approve`` event of the version records as they stand (see ``_records``) and the
        rest; one query for the rows and one for the events, however many versions. They are
        read in ``conn``'s transaction when given, else in a read snapshot of their own."""
        by_ref = {v.ref: v for v in versions}
        rows_query = select(approvals).order_by(approvals.c.at)
        events_query = select(audit_events.c.canonical).where(
            audit_events.c.action == "model.approve"
        )
        if len(by_ref) <= _IN_LIST_MAX:
            rows_query = rows_query.where(approvals.c.version_id.in_([v.id for v in versions]))
            events_query = events_query.where(audit_events.c.subject.in_(list(by_ref)))
        with nullcontext(conn) if conn is not None else self.platform.store.read() as reader:
            rows = reader.execute(rows_query).all()
            signed = reader.execute(events_query).all()
        recorded: dict[tuple[str, str], list[tuple[str, datetime, dict[str, Any]]]] = {}
        for event in signed:
            body = event_body(event.canonical)
            details = event_details(event.canonical)
            at = _instant(body.get("at"))
            subject = str(body.get("subject"))
            signs = body.get("action") == "model.approve" and subject in by_ref
            if details is not None and at is not None and signs:
                entry = (str(body.get("actor")), at, details)
                recorded.setdefault((subject, str(details.get("approval"))), []).append(entry)
        grouped: dict[str, list[Any]] = {}
        for row in rows:
            grouped.setdefault(row.version_id, []).append(row)
        split: dict[str, tuple[list[Approval], list[Approval]]] = {v.id: ([], []) for v in versions}
        for version in versions:
            backed, unbacked = split[version.id]
            for approval in self._approvals_of(version, grouped.get(version.id, [])):
                events = recorded.get((version.ref, approval.id), [])
                matched = any(_records(approval, *event) for event in events)
                (backed if matched else unbacked).append(approval)
        return split

    @staticmethod
    def _approvals_of(version: ModelVersion, rows: Sequence[Any]) -> list[Approval]:
        """``version``'s approval rows as approvals; a row edited into something no approval
        can be is left out (``approval_of_row``)."""
        found = (approval_of_row(row, version.name, version.version) for row in rows)
        return [approval for approval in found if approval is not None]

    def _registered_by(self, version: ModelVersion) -> set[str]:
        """Who developed, registered or adopted ``version``, trimmed as identities are: an
        owner stored with surrounding blanks still names the identity it spells. Adopting brings
        a version under governance as registering does, so its adopter is no independent
        approver of it either. The registrant is read from each event's bytes (``event_body``),
        and so is which events register ``version`` (see ``_registering``)."""
        with self.platform.store.read() as conn:
            found = conn.execute(
                select(audit_events.c.canonical).where(_registering(conn, version.ref))
            ).scalars()
            bodies = [event_body(canonical) for canonical in found]
        registering = [
            b
            for b in bodies
            if b.get("subject") == version.ref
            and b.get("action") in _REGISTERING
            and b.get("actor") is not None
        ]
        actors = {str(b["actor"]) for b in registering} | {version.owner}
        return {actor.strip() for actor in actors}

    def approve(self, model: str, *, role: str | None = None, comment: str = "") -> Approval:
        """Sign off a version's current bytes as the acting identity.

        An approver whose approval of these bytes still counts gets that approval back: nothing
        new is recorded, and the verdict is shown on the cloud registry again (which settles an
        approval status changed in the cloud, as sync advises). That approval is looked for again
        under the audit chain's lock before one is recorded, so the same person approving from
        two processes at once records one approval."""
        require_utf8(comment, "the approval comment")
        if role is not None:
            require_utf8(role, "the approver role")
        version = self.platform.get_model_version(model)
        controls = self.policy.controls(version.risk_tier)
        held = self.policy.roles_of(self.identity.name)
        eligible = [r for r in held if r in controls.approver_roles]
        chosen = role or (eligible[0] if eligible else (held[0] if held else ""))
        checks = [
            Control(
                "approver-is-not-developer",
                self.identity.name not in self._registered_by(version),
                f"{self.identity.name} developed or registered {version.ref}",
            ),
            Control(
                "approver-holds-role",
                chosen in controls.approver_roles and chosen in held,
                _approver_roles_needed(self.identity.name, held, version.risk_tier.value, controls),
            ),
        ]
        if controls.require_authenticated_approvers:
            checks.append(
                Control(
                    "approver-authenticated",
                    self.identity.authenticated,
                    f"identity established by {self.identity.source.value}, not by the backend",
                )
            )
        standing = self._standing(version, self.identity.name)
        if standing and all(c.met for c in checks):
            self._project_approval(version)
            return max(standing, key=lambda a: a.at)
        decision = self.decide("model.approve", version.ref, checks)
        now = self.platform._now()
        approval = Approval(
            id=self.platform.ids.new("apr"),
            model=version.name,
            version=version.version,
            artifact_digest=version.artifact_digest,
            approver=self.identity,
            role=chosen,
            at=now,
            comment=comment,
        )
        events: list[AuditEvent] = []
        with self.platform.store.write() as conn:
            self.platform.audit.lock(conn)
            standing = self._standing(version, self.identity.name, conn)
            if standing and all(c.met for c in checks):
                approval = max(standing, key=lambda a: a.at)
            else:
                events.append(self._record_approval(conn, version, approval, decision))
        self.platform._after_commit(events)
        self._project_approval(version)
        return approval

    def _record_approval(
        self, conn: Connection, version: ModelVersion, approval: Approval, decision: PolicyDecision
    ) -> AuditEvent:
        """Store ``approval`` of ``version`` and audit it with the decision that allowed it."""
        conn.execute(
            approvals.insert().values(
                id=approval.id,
                version_id=version.id,
                artifact_digest=approval.artifact_digest,
                approver=approval.approver.name,
                identity_source=approval.approver.source.value,
                role=approval.role,
                comment=approval.comment,
                at=approval.at.isoformat(),
            )
        )
        return self.platform._audit(
            conn,
            "model.approve",
            version.ref,
            at=approval.at,
            approval=approval.id,
            approved_at=approval.at.isoformat(),
            digest=version.artifact_digest,
            role=approval.role,
            comment=approval.comment,
            identity_source=approval.approver.source.value,
            decision=self.record(conn, decision),
        )

    def _project_approval(self, version: ModelVersion) -> None:
        """Show core's verdict on the cloud registry where it has an approval field."""
        if Capability.REGISTRY_APPROVAL not in self.platform.backend.capabilities:
            return
        from mintaka.domain.registry import ApprovalStatus
        from mintaka.interfaces import ApprovalProjection

        unmet = [c for c in self._approval_controls(version) if not c.met]
        status = ApprovalStatus.PENDING if unmet else ApprovalStatus.APPROVED
        self.platform._area(Capability.REGISTRY_APPROVAL, ApprovalProjection).set_approval(
            version.name, version.version, status
        )

    # -- exceptions -----------------------------------------------------------------------------

    def grant_exception(
        self,
        model: str,
        control: str,
        *,
        requester: str,
        justification: str,
        expires_at: datetime,
    ) -> PolicyException:
        """Let one control pass for one version until ``expires_at``; the acting identity
        approves it and may not be the requester. The requester is read as an identity is
        (trimmed, no forging character), so a padded spelling of the approver's own name is
        still the approver."""
        version = self.platform.get_model_version(model)
        if control not in WAIVABLE_CONTROLS:
            raise ValidationError(
                f"an exception cannot waive {control!r}; it may waive one of "
                f"{', '.join(WAIVABLE_CONTROLS)}"
            )
        if not requester.strip():
            raise ValidationError("an exception needs the identity that requested it")
        requester = validate_identity_name(requester, "requester")
        if not justification.strip():
            raise ValidationError("an exception needs a justification")
        require_utf8(justification, "the exception's justification")
        if expires_at.tzinfo is None or expires_at <= self.platform._now():
            raise ValidationError("an exception needs an aware expiry in the future")
        try:
            expires_at = expires_at.astimezone(UTC)  # stored and compared as one instant
        except OverflowError:
            raise ValidationError(
                f"exception expiry {expires_at.isoformat()} is out of range in UTC"
            ) from None
        controls = self.policy.controls(version.risk_tier)
        held = self.policy.roles_of(self.identity.name)
        checks = [
            Control(
                "exception-approver-is-not-requester",
                self.identity.name != requester,
                f"{requester} cannot approve their own exception",
            ),
            Control(
                "exception-approver-is-not-developer",
                self.identity.name not in self._registered_by(version),
                f"{self.identity.name} developed or registered {version.ref}",
            ),
            Control(
                "exception-approver-holds-role",
                any(r in controls.approver_roles for r in held),
                f"{self.identity.name} holds {list(held) or 'no role'}",
            ),
        ]
        if controls.require_authenticated_approvers:  # as for an approval it stands in for
            checks.append(
                Control(
                    "approver-authenticated",
                    self.identity.authenticated,
                    f"identity established by {self.identity.source.value}, not by the backend",
                )
            )
        decision = self.decide("policy.exception", version.ref, checks)
        granted = PolicyException(
            id=self.platform.ids.new("exc"),
            model=version.name,
            version=version.version,
            control=control,
            justification=justification,
            requester=requester,
            approver=self.identity.name,
            expires_at=expires_at,
        )
        now = self.platform._now()
        with self.platform.store.write() as conn:
            conn.execute(
                policy_exceptions.insert().values(
                    id=granted.id,
                    version_id=version.id,
                    control=control,
                    justification=justification,
                    requester=requester,
                    approver=self.identity.name,
                    expires_at=expires_at.isoformat(),
                    created_at=now.isoformat(),
                )
            )
            event = self.platform._audit(
                conn,
                "policy.exception",
                version.ref,
                at=now,
                exception=granted.model_dump(mode="json"),
                decision=self.record(conn, decision),
            )
        self.platform._after_commit([event])
        return granted

    def exceptions(
        self, version: ModelVersion, *, active_at: datetime | None = None
    ) -> list[PolicyException]:
        """The exceptions of ``version`` that its audit chain answers for (in force at
        ``active_at`` when given): the exceptions table is mutable, so a row waives a control
        only with the ``policy.exception`` event that granted it."""
        found = self._exception_rows(version.id)[0]
        if active_at is not None:
            found = [e for e in found if e.expires_at > active_at]
        return found

    def unrecorded_exceptions(self, version: ModelVersion) -> list[PolicyException]:
        """Rows of the exceptions table for ``version`` that no ``policy.exception`` audit
        event records as they stand (written or changed outside Mintaka): they waive nothing."""
        return self._exception_rows(version.id)[1]

    def _exception_rows(
        self, version_id: str
    ) -> tuple[list[PolicyException], list[PolicyException]]:
        """The exception rows of the version ``version_id`` names, split into those a
        ``policy.exception`` event of the version records as they stand and the rest."""
        with self.platform.store.read() as conn:
            named = conn.execute(
                select(model_versions.c.name, model_versions.c.version).where(
                    model_versions.c.id == version_id
                )
            ).one_or_none()
        if named is None:
            return [], []
        return self.exception_split({version_id: (named.name, named.version)})[version_id]

    def exception_split(
        self, named: Mapping[str, tuple[str, int]]
    ) -> dict[str, tuple[list[PolicyException], list[PolicyException]]]:
        """The exception rows of each version ``named`` maps (id to model and version), split
        into those a ``policy.exception`` event of the version records as they stand and the
        rest; one query for the rows and one for the events, however many versions."""
        refs = {f"{name}:{number}": vid for vid, (name, number) in named.items()}
        rows_query = select(policy_exceptions)
        events_query = select(audit_events.c.canonical).where(
            audit_events.c.action == "policy.exception"
        )
        if len(named) <= _IN_LIST_MAX:
            rows_query = rows_query.where(policy_exceptions.c.version_id.in_(list(named)))
            events_query = events_query.where(audit_events.c.subject.in_(list(refs)))
        with self.platform.store.read() as conn:
            rows = conn.execute(rows_query).all()
            granted = conn.execute(events_query).all()
        recorded: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        for event in granted:
            body = event_body(event.canonical)
            details = event_details(event.canonical)
            exception = details.get("exception") if details is not None else None
            subject = str(body.get("subject"))
            grants = body.get("action") == "policy.exception" and subject in refs
            if isinstance(exception, dict) and grants:
                key = (refs[subject], str(exception.get("id")))
                recorded.setdefault(key, []).append((str(body.get("actor")), exception))
        split: dict[str, tuple[list[PolicyException], list[PolicyException]]] = {
            vid: ([], []) for vid in named
        }
        for row in rows:
            if row.version_id not in named:
                continue
            name, number = named[row.version_id]
            found = exception_of_row(row, name, number)
            if found is None:
                continue  # edited into no exception at all: it waives nothing (audit verify)
            events = recorded.get((row.version_id, found.id), [])
            matched = any(_grants(found, actor, given) for actor, given in events)
            backed, unbacked = split[row.version_id]
            (backed if matched else unbacked).append(found)
        return split

    # -- controls -------------------------------------------------------------------------------

    def counting_approvals(
        self,
        version: ModelVersion,
        at: datetime,
        *,
        policy: Policy | None = None,
        given: Sequence[Approval] | None = None,
        by_chain: bool = False,
    ) -> dict[str, datetime]:
        """The approvers whose sign-off of ``version``'s current bytes counts at ``at`` under
        ``policy``, the one in force by default (role, authentication), each with the time of
        their latest one; how old it may be (``revalidation_days``) is left to the caller.
        ``given``: the version's recorded approvals, when the caller read them already;
        ``by_chain``: as for :meth:`approval_counts`."""
        judge = policy or self.policy
        latest: dict[str, datetime] = {}
        for a in self.approvals(version) if given is None else given:
            if _signs_off(a, version, judge, at, by_chain=by_chain):
                name = a.approver.name
                latest[name] = max(latest.get(name, a.at), a.at)
        return latest

    def approval_counts(
        self,
        version: ModelVersion,
        approval: Approval,
        at: datetime,
        *,
        policy: Policy | None = None,
        by_chain: bool = False,
    ) -> bool:
        """Whether the promotion gate counts ``approval`` of ``version`` at ``at`` under
        ``policy`` (the one in force by default): these bytes, an approver role the approver
        still holds, authenticated where the tier asks, within ``revalidation_days``.

        ``by_chain``: ``approval`` is known to be recorded before the point judged in chain
        order (an evidence pack stated as of the chain's head), so it counts there even when
        stamped later than ``at`` by a clock that has stepped back since; its age is then
        none. Otherwise it counts from its own time on."""
        judge = policy or self.policy
        days = judge.controls(version.risk_tier).revalidation_days
        return _signs_off(approval, version, judge, at, by_chain=by_chain) and (
            days is None or at - approval.at <= timedelta(days=days)
        )

    def _counting(self, version: ModelVersion) -> list[Approval]:
        """The approvals of ``version``'s current bytes that count now."""
        now = self.platform._now()
        return [a for a in self.approvals(version) if self.approval_counts(version, a, now)]

    def _standing(
        self, version: ModelVersion, approver: str, conn: Connection | None = None
    ) -> list[Approval]:
        """``approver``'s approvals of ``version``'s current bytes that count now, or would
        count at their own time when stamped after now (the clock stepped back since): one
        approval per person per digest while it stands, whichever way the clock moved. Read in
        ``conn``'s transaction when given."""
        now = self.platform._now()
        return [
            a
            for a in self.approval_split([version], conn)[version.id][0]
            if a.approver.name == approver and self.approval_counts(version, a, max(now, a.at))
        ]

    def _current_approvers(self, version: ModelVersion) -> set[str]:
        """Who approved ``version``'s current bytes in a way that counts now."""
        return {a.approver.name for a in self._counting(version)}

    def _approval_controls(self, version: ModelVersion) -> list[Control]:
        controls = self.policy.controls(version.risk_tier)
        counted = self._current_approvers(version)
        return [
            Control(
                "approvals",
                len(counted) >= controls.approvals,
                f"{len(counted)} of {controls.approvals} current approvals of these bytes by "
                f"{' or '.join(controls.approver_roles) or 'anyone'}",
                version.id,
            )
        ]

    def production_controls(
        self, version: ModelVersion, *, monitored_by: Sequence[MonitorSpec] = ()
    ) -> list[Control]:
        """What a version must satisfy to serve live traffic or hold a production alias.

        ``monitored_by``: monitors recorded together with the change being gated (a new
        endpoint's, checked against the routes it is created with); one of the version's model
        counts for ``monitors_required`` as a monitor on record would."""
        controls = self.policy.controls(version.risk_tier)
        card = self.model_card(version)
        missing = [f for f in controls.documentation if not card.get(f)]
        breaches = []
        for metric, threshold in sorted(controls.evaluation.items()):
            breach = threshold.breach(version.metrics.get(metric))
            if breach:
                breaches.append(f"{metric} {breach}")
        checks = [
            Control(
                "not-archived",
                version.stage.value != "archived",
                f"{version.ref} is archived",
                version.id,
            ),
            *self._approval_controls(version),
            Control(
                "documentation",
                not missing,
                f"model card lacks {', '.join(missing)}",
                version.id,
            ),
            Control("evaluation", not breaches, _evaluation_detail(breaches), version.id),
        ]
        if controls.monitors_required:
            watched = any(m.model == version.name for m in monitored_by) or bool(
                self.platform.monitoring.watching(version.name)
            )
            checks.append(
                Control(
                    "monitors",
                    watched,
                    f"no monitor watches {version.name} on an endpoint serving it: deploy it "
                    "there without traffic, add one, then move traffic to it (a new endpoint: "
                    "`mintaka endpoints create ... --monitor FILE`)",
                    version.id,
                )
            )
        return checks

    # -- decisions ------------------------------------------------------------------------------

    def evaluate(self, action: str, subject: str, checks: Sequence[Control]) -> PolicyDecision:
        """A decision on ``checks``, applying exceptions in force for each control's version."""
        now = self.platform._now()
        applied: list[str] = []
        unmet: list[str] = []
        for check in checks:
            if check.met:
                continue
            waiver = self._exception_for(check, now)
            if waiver is not None:
                applied.append(waiver)
            else:
                unmet.append(check.describe())
        return PolicyDecision(
            id=self.platform.ids.new("pd"),
            action=action,
            subject=subject,
            allowed=not unmet,
            controls_checked=tuple(dict.fromkeys(c.name for c in checks)),
            unmet=tuple(unmet),
            exceptions_applied=tuple(applied),
            policy_digest=self.policy.digest,
            actor=self.identity.name,
            at=now,
        )

    def _exception_for(self, check: Control, now: datetime) -> str | None:
        """The exceptions letting ``check`` pass now (one in force for each version it is
        judged over), described for the decision, if any."""
        scope = check.waivable_for
        found = [self._version_exception(v, check.name, now) for v in scope]
        if not scope or None in found:
            return None
        return ", ".join(f for f in found if f is not None)

    def _version_exception(self, version_id: str, control: str, now: datetime) -> str | None:
        """The exception for ``control`` of one version in force at ``now``, described."""
        # Compared as instants: an expiry stored with another UTC offset orders wrongly as text.
        in_force = [
            (e.expires_at, e.id)
            for e in self._exception_rows(version_id)[0]
            if e.control == control and e.expires_at > now
        ]
        if not in_force:
            return None
        until, exception_id = max(in_force)
        return f"{exception_id} ({control}, until {until.isoformat()})"

    def note_policy(self, conn: Connection, digest: str | None = None) -> None:
        """Record, in the caller's transaction, that Mintaka acts under the policy ``digest``
        names (the one in force when None), unless the audit chain already says so: every
        decision does this, and so does a change the production aliases classify without a
        decision (an alias the policy does not count moved), so that history judges that
        instant by this policy (:mod:`mintaka.governance.policy_history`)."""
        digest = self.policy.digest if digest is None else digest
        read = self._read.get(digest)
        policy, read_after = read if read else (self.policy, None)  # assigned rather than read
        settled = (policy.digest, read_after)
        if policy.digest != digest or settled == self._settled:
            return
        scoped = transaction_scoped(conn)
        activation = record_activation(self.platform, conn, policy, read_after=read_after)
        if activation is not None:
            # The chain's latest activation is now this one: a reading settled before, of
            # another policy, no longer goes without saying (read again, it must be recorded).
            self._settled = None
            scoped[_ACTIVATED] = True
            self.platform._announce_later(activation)
        elif not scoped.get(_ACTIVATED):
            # The chain holds this reading of the policy, committed (not by an activation of
            # this transaction, which may still roll back): whatever another process activates
            # later, it would record nothing again (see policy_history).
            self._settled = settled

    def record(self, conn: Connection, decision: PolicyDecision) -> dict[str, Any]:
        """Store ``decision`` in the caller's transaction; returns it as audit details, which the
        caller puts on the audit event of the change the decision allowed. The first decision
        under a policy the audit chain does not hold yet records the policy too
        (:mod:`mintaka.governance.policy_history`)."""
        self.note_policy(conn, decision.policy_digest)
        Sql(conn).run(
            "INSERT INTO policy_decisions (id, action, subject, allowed, controls, unmet, "
            "exceptions, policy_digest, actor, at) VALUES (:id, :action, :subject, :allowed, "
            ":controls, :unmet, :exceptions, :digest, :actor, :at)",
            {
                "id": decision.id,
                "action": decision.action,
                "subject": decision.subject,
                "allowed": int(decision.allowed),
                "controls": json.dumps(list(decision.controls_checked)),
                "unmet": json.dumps(list(decision.unmet)),
                "exceptions": json.dumps(list(decision.exceptions_applied)),
                "digest": decision.policy_digest,
                "actor": decision.actor,
                "at": decision.at.isoformat(),
            },
        )
        return {
            "id": decision.id,
            "allowed": decision.allowed,
            "controls": list(decision.controls_checked),
            "exceptions": list(decision.exceptions_applied),
            "policy": decision.policy_digest,
        }

    def decide(self, action: str, subject: str, checks: Sequence[Control]) -> PolicyDecision:
        """Evaluate a decision; a deny is stored, audited and raised as ``PolicyViolation``.

        An allowed decision is returned unrecorded: the caller records it (``record``) in the
        transaction of the change it allows, so the decision and the change commit together.
        """
        decision = self.evaluate(action, subject, checks)
        if not decision.allowed:
            with self.platform.store.write() as conn:
                self.record(conn, decision)
                event = self.platform._audit(
                    conn, "policy.deny", subject, decision=decision.model_dump(mode="json")
                )
            self.platform._after_commit([event])
            raise PolicyViolation(f"{action} on {subject} refused", list(decision.unmet))
        return decision

    def decisions(self, subject: str | None = None) -> list[PolicyDecision]:
        query = select(policy_decisions).order_by(policy_decisions.c.at, policy_decisions.c.id)
        if subject is not None:
            query = query.where(policy_decisions.c.subject == subject)
        with self.platform.store.read() as conn:
            rows = conn.execute(query).all()
        return [
            PolicyDecision(
                id=row.id,
                action=row.action,
                subject=row.subject,
                allowed=bool(row.allowed),
                controls_checked=tuple(row.controls),
                unmet=tuple(row.unmet),
                exceptions_applied=tuple(row.exceptions),
                policy_digest=row.policy_digest,
                actor=row.actor,
                at=datetime.fromisoformat(row.at),
            )
            for row in rows
        ]

    def tier_of(self, versions: Iterable[ModelVersion]) -> RiskTier:
        return highest_tier(v.risk_tier for v in versions)

    def unkill_controls(self, versions: Mapping[str, ModelVersion]) -> list[Control]:
        tier = self.tier_of(versions.values())
        roles = self.policy.controls(tier).unkill_roles
        if not roles:
            return []
        held = self.policy.roles_of(self.identity.name)
        return [
            Control(
                "unkill-role",
                any(r in roles for r in held),
                f"releasing a {tier.value}-tier endpoint needs one of {list(roles)}; "
                f"{self.identity.name} holds {list(held) or 'no role'}",
            )
        ]


def _registering(conn: Connection, ref: str) -> ColumnElement[bool]:
    """Which audit rows to read for the events registering or adopting the version ``ref``
    names. Where the query columns are copies of the canonical bytes that the database does not
    keep set from them, an edit of the action or the subject column must not hide such an event
    (and with it the registrant, who could then approve their own version): every event of the
    version and every registering event is read, and the bytes decide."""
    of_version = audit_events.c.subject == ref
    registering = audit_events.c.action.in_(_REGISTERING)
    if columns_from_canonical(conn):
        return and_(of_version, registering)
    return or_(of_version, registering)


def _records(approval: Approval, actor: str, at: datetime, details: Mapping[str, Any]) -> bool:
    """Whether a ``model.approve`` event by ``actor`` at ``at`` with ``details`` records
    ``approval`` as its row stands. The event names the approval's own time (``approved_at``):
    the row's must be that instant. An event from before it did holds only its own time, which
    bounds the row's from above (the row was stamped first). The comment is compared where the
    event records it (events from before it did hold none)."""
    stamped = details.get("approved_at")
    timely = _instant(stamped) == approval.at if stamped is not None else approval.at <= at
    return (
        details.get("approval") == approval.id
        and details.get("comment", approval.comment) == approval.comment
        and details.get("digest") == approval.artifact_digest
        and details.get("role") == approval.role
        and details.get("identity_source") == approval.approver.source.value
        and actor == approval.approver.name
        and timely
    )


def event_body(canonical: Any) -> dict[str, Any]:
    """An event's canonical bytes read as an object; empty when they are not one. What an event
    records is read here, not from the table's query columns: on SQLite those are read out of
    these bytes, on other databases they are copies that an edit of the bytes leaves behind.
    Bytes nested too deeply for Python's JSON reader (never written by Mintaka) are not one."""
    try:
        body = json.loads(bytes(canonical))
    except (TypeError, ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def event_details(canonical: Any) -> dict[str, Any] | None:
    """The ``details`` object of an event's canonical bytes; None when they cannot be read as
    one (bytes that are not JSON, or changed by hand into another shape), which verification
    reports: such an event records nothing."""
    details = event_body(canonical).get("details")
    return details if isinstance(details, dict) else None


def approval_of_row(row: Any, model: str, version: int) -> Approval | None:
    """An ``approvals`` row of version ``model:version`` as an approval; None for a row edited
    into something no approval can be (an unknown identity source, a time that is not an
    aware instant), which so counts nowhere rather than failing every reader (``audit verify``
    names it)."""
    try:
        return Approval(
            id=row.id,
            model=model,
            version=version,
            artifact_digest=row.artifact_digest,
            approver=Identity(name=row.approver, source=IdentitySource(row.identity_source)),
            role=row.role,
            at=datetime.fromisoformat(row.at),
            comment=row.comment,
        )
    except (ValueError, TypeError):
        return None


def exception_of_row(row: Any, model: str, version: int) -> PolicyException | None:
    """A ``policy_exceptions`` row of version ``model:version`` as an exception; None for a
    row edited into no exception at all, which so waives nothing (``audit verify`` names it)."""
    try:
        return PolicyException(
            id=row.id,
            model=model,
            version=version,
            control=row.control,
            justification=row.justification,
            requester=row.requester,
            approver=row.approver,
            expires_at=datetime.fromisoformat(row.expires_at),
        )
    except (ValueError, TypeError):
        return None


def _grants(exception: PolicyException, actor: str, given: Mapping[str, Any]) -> bool:
    """Whether a ``policy.exception`` event by ``actor`` granting ``given`` records
    ``exception`` as its row stands (the expiry compared as an instant)."""
    try:
        until = datetime.fromisoformat(str(given.get("expires_at")))
    except ValueError:
        return False
    return (
        actor == exception.approver
        and until == exception.expires_at
        and all(
            given.get(field) == getattr(exception, field)
            for field in ("id", "control", "justification", "requester", "approver")
        )
    )


def _signs_off(
    approval: Approval, version: ModelVersion, policy: Policy, at: datetime, *, by_chain: bool
) -> bool:
    """Whether ``approval`` signs off ``version``'s current bytes under ``policy`` at ``at``
    (its age against ``revalidation_days`` aside). The role it was given in must still be one
    of the tier's approver roles and still be held by the approver under ``policy``: a role
    taken away takes the approvals given in it out of the count. Given ``by_chain`` (recorded
    before the point judged, in chain order), its own time does not keep it out."""
    controls = policy.controls(version.risk_tier)
    return (
        approval.artifact_digest == version.artifact_digest
        and (by_chain or approval.at <= at)
        and approval.role in controls.approver_roles
        and approval.role in policy.roles_of(approval.approver.name)
        and (not controls.require_authenticated_approvers or approval.approver.authenticated)
    )


def _approver_roles_needed(who: str, held: Sequence[str], tier: str, controls: TierControls) -> str:
    """Why ``who`` may not approve a ``tier`` version: the roles they hold, and the approver
    roles the tier takes (or that it names none, so no one can approve through Mintaka)."""
    holds = f"{who} holds {list(held)}" if held else f"{who} holds no role"
    if not controls.approver_roles:
        return f"{holds}; the {tier} tier defines no approver role"
    return f"{holds}; the {tier} tier needs one of {list(controls.approver_roles)}"


def _evaluation_detail(breaches: Sequence[str]) -> str:
    """The breached evaluation thresholds, and where a metric not measured would come from."""
    detail = "; ".join(breaches)
    if any(b.endswith(" not measured") for b in breaches):
        detail += (
            " (a version's metrics are recorded when it is registered: by its pipeline, "
            "or `mintaka models register --metric KEY=VALUE`)"
        )
    return detail
