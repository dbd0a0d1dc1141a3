"""Governance records: approvals, policy decisions, exceptions and identities."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record


class IdentitySource(StrEnum):
    """How the acting identity was established; some tiers require an authenticated one."""

    FLAG = "flag"
    ENVIRONMENT = "environment"
    BACKEND = "backend"
    OS_USER = "os_user"


class Identity(Record):
    name: str
    source: IdentitySource
    detail: JSONDict = Field(default_factory=dict)

    @property
    def authenticated(self) -> bool:
        return self.source is IdentitySource.BACKEND


class Approval(Record):
    """A sign-off bound to the artifact digest: changed bytes are unapproved bytes."""

    id: str
    model: str
    version: int
    artifact_digest: str
    approver: Identity
    role: str
    at: AwareDatetime
    comment: str = ""


class PolicyDecision(Record):
    id: str
    action: str
    subject: str
    allowed: bool
    controls_checked: tuple[str, ...]
    unmet: tuple[str, ...] = ()
    exceptions_applied: tuple[str, ...] = ()
    policy_digest: str
    actor: str
    at: AwareDatetime


class PolicyException(Record):
    """A documented, expiring override of one control for one model version."""

    id: str
    model: str
    version: int
    control: str
    justification: str
    requester: str
    approver: str
    expires_at: AwareDatetime
