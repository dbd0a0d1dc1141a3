"""Governance records: approvals, policy decisions, exceptions and identities."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record
from mintaka.errors import ValidationError

IDENTITY_MAX_LENGTH = 256


class IdentitySource(StrEnum):
    """How the acting identity was established; some tiers require an authenticated one."""

    FLAG = "flag"
    ENVIRONMENT = "environment"
    BACKEND = "backend"
    OS_USER = "os_user"


# What can forge a line of a log or report that prints a name: line and paragraph separators
# (with the control characters, Cc), and the bidirectional overrides and isolates that make text
# read in another order than it is stored. Other format characters (ZWNJ and ZWJ are part of
# the spelling of names in many scripts) and every kind of space are part of real names.
_FORGING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


def validate_identity_name(value: str, what: str) -> str:
    """``value`` without surrounding blanks, as an identity every audit event names: not empty,
    no character that could forge a line in any log or report that prints it (a control
    character, a line or paragraph separator, a bidirectional override or isolate), at most 256
    characters. ``what`` says where it came from."""
    name = value.strip()
    if not name:
        raise ValidationError(f"{what} is blank: name who acts")
    forging = next((c for c in name if _forges(c)), None)
    if forging is not None:
        raise ValidationError(
            f"{what} {name!r} holds U+{ord(forging):04X}: no control, line-separator or "
            "text-direction character can be part of a name"
        )
    if len(name) > IDENTITY_MAX_LENGTH:
        raise ValidationError(f"{what} is longer than {IDENTITY_MAX_LENGTH} characters")
    return name


def _forges(char: str) -> bool:
    return unicodedata.category(char) in _FORGING_CATEGORIES or char in _BIDI_CONTROLS


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
