"""Policy as code: risk tiers and, per tier, the controls a model version must satisfy.

A policy is a TOML file validated by pydantic. ``MINTAKA_POLICY`` (a path) wins, then
``<home>/policy.toml``, otherwise the default shipped with Mintaka (``default_policy.toml``
beside this module). ``open_policy.toml`` beside it allows everything, for sandboxes and
conformance runs. Its
digest (sha256 of the file's bytes) is recorded on every decision, so any decision can be traced
to the exact policy text in force.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from mintaka.domain.names import ALIAS_RULE, validate_alias
from mintaka.domain.registry import RiskTier
from mintaka.domain.serving import RolloutStrategy
from mintaka.errors import ConfigurationError, InvalidName, invalid_fields

DEFAULT_POLICY = Path(__file__).with_name("default_policy.toml")
OPEN_POLICY = Path(__file__).with_name("open_policy.toml")
POLICY_FILE = "policy.toml"
MODEL_CARD_FIELDS = ("intended_use", "limitations", "training_data", "evaluation", "owner")


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None

    def breach(self, value: float | None) -> str | None:
        if value is None:
            return "not measured"
        if self.min is not None and value < self.min:
            return f"{value:.4g} < {self.min}"
        if self.max is not None and value > self.max:
            return f"{value:.4g} > {self.max}"
        return None


MAX_POLICY_DAYS = 36500  # a hundred years: anything longer is a typo, and overflows date sums


class TierControls(BaseModel):
    """The controls of one risk tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvals: int = Field(default=0, ge=0, le=10)
    approver_roles: tuple[str, ...] = ()
    require_authenticated_approvers: bool = False
    documentation: tuple[str, ...] = ()
    evaluation: dict[str, Threshold] = Field(default_factory=dict)
    allowed_strategies: tuple[RolloutStrategy, ...] = tuple(RolloutStrategy)
    monitors_required: bool = False
    revalidation_days: int | None = Field(default=None, gt=0, le=MAX_POLICY_DAYS)
    unkill_roles: tuple[str, ...] = ()
    allow_pickle: bool = False
    superseded_grace_days: int = Field(
        default=30,
        ge=0,
        le=MAX_POLICY_DAYS,
        description="days a superseded version is kept (for rollback) before it is retired",
    )

    @property
    def signs_off(self) -> bool:
        """Whether versions of this tier can be approved at all (an approver role is named);
        without one, core has no approval verdict for a cloud's approval field."""
        return bool(self.approver_roles)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        unknown = set(self.documentation) - set(MODEL_CARD_FIELDS)
        if unknown:
            raise ValueError(f"unknown model-card fields {sorted(unknown)}")
        if self.approvals and not self.approver_roles:
            raise ValueError("a tier that needs approvals must name the approver roles")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    production_aliases: tuple[str, ...] = ("champion", "production")
    roles: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    tiers: dict[RiskTier, TierControls]
    digest: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _every_tier(self) -> Self:
        missing = set(RiskTier) - set(self.tiers)
        if missing:
            raise ValueError(f"the policy must define every tier; missing {sorted(missing)}")
        return self

    @model_validator(mode="after")
    def _aliases_an_alias_can_have(self) -> Self:
        """A production alias no alias can ever be would never match a real one, and would
        silently take promotion gating away."""
        invalid = [a for a in self.production_aliases if not _is_alias(a)]
        if invalid:
            raise ValueError(f"production_aliases {invalid} are not aliases ({ALIAS_RULE})")
        return self

    def controls(self, tier: RiskTier) -> TierControls:
        return self.tiers[tier]

    def roles_of(self, identity: str) -> tuple[str, ...]:
        return self.roles.get(identity, ())


def _is_alias(value: str) -> bool:
    try:
        validate_alias(value)
    except InvalidName:
        return False
    return True


def parse_policy(data: bytes, source: str) -> Policy:
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"policy {source} is not valid UTF-8 TOML: {exc}") from exc
    raw.pop("digest", None)
    raw.pop("source", None)
    try:
        return Policy(**raw, digest="sha256:" + hashlib.sha256(data).hexdigest(), source=source)
    except PydanticValidationError as exc:
        raise ConfigurationError(f"policy {source} is invalid: {invalid_fields(exc)}") from exc


def load_policy(home: Path | None = None, path: Path | None = None) -> Policy:
    """The policy in force: ``path``, else ``MINTAKA_POLICY``, else ``<home>/policy.toml``,
    else the shipped default."""
    if path is None and os.environ.get("MINTAKA_POLICY"):
        path = Path(os.environ["MINTAKA_POLICY"])
    chosen = path or (home / POLICY_FILE if home is not None else None)
    if chosen is None or not chosen.exists():
        if path is not None:
            raise ConfigurationError(f"policy file {path} does not exist")
        chosen = DEFAULT_POLICY
    try:
        data = chosen.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"policy {chosen} cannot be read: {exc.strerror or exc}") from exc
    return parse_policy(data, str(chosen))
