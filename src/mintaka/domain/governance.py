"""Governance records: approvals, policy decisions, exceptions and identities."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record
from mintaka.domain.names import forging_character
from mintaka.errors import ValidationError

IDENTITY_MAX_LENGTH = 256


class IdentitySource(StrEnum):
    """How the acting identity was established; some tiers require an authenticated one."""

    FLAG = "flag"
    ENVIRONMENT = "environment"
    BACKEND = "backend"
    OS_USER = "os_user"


def validate_identity_name(value: str, what: str) -> str:
    """``value`` without surrounding blanks, as an identity every audit event names: not empty,
    no character that could forge a line in any log or report that prints it (a control
    character, a line or paragraph separator, a bidirectional override or isolate), at most 256
    characters. ``what`` says where it came from."""
    name = value.strip()
    if not name:
        raise ValidationError(f"{what} is blank: name who acts")
    forging = forging_character(name)
    if forging is not None:
        raise ValidationError(
            f"{what} {name!r} holds U+{ord(forging):04X}: no control, line-separator, "
            "text-direction or non-UTF-8 character can be part of a name"
        )
    if len(name) > IDENTITY_MAX_LENGTH:
        raise ValidationError(f"{what} is longer than {IDENTITY_MAX_LENGTH} characters")
    return name


def validate_owner(value: str | None) -> str | None:
    """An accountable owner as :func:`validate_identity_name` reads an identity (trimmed), or
    None when none is given. An owner is compared with the acting identity to keep developers
    from approving their own versions, so it must be spelled the way an identity is."""
    return None if value is None else validate_identity_name(value, "owner")


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
