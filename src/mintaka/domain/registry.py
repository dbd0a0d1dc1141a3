"""Models, versions, aliases and stages: the registry as every cloud has it."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import Field, field_validator

from mintaka.domain.base import AwareDatetime, JSONDict, Record
from mintaka.domain.names import Alias, ModelName, validate_tag


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Stage(StrEnum):
    """Lifecycle stage of a model version; production is where governance bites hardest."""

    NONE = "none"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class ApprovalStatus(StrEnum):
    """Approval as projected onto a cloud registry (core's approval records stay authoritative)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Flavor(StrEnum):
    SKLEARN = "sklearn"
    PYFUNC = "pyfunc"
    OPAQUE = "opaque"


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        validate_tag(key, value)
    return tags


class Signature(Record):
    """Input and output columns of a model, name -> dtype."""

    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)


def features_signature(features: Sequence[str] | str) -> Signature:
    """A signature naming input columns in training order (``"a,b,c"`` or a sequence), so
    that a model which does not name its features is fed them in the right order."""
    from mintaka.errors import ValidationError

    names = [f.strip() for f in (features.split(",") if isinstance(features, str) else features)]
    if not names or not all(names) or len(set(names)) != len(names):
        raise ValidationError(
            f"features are distinct, non-empty column names in training order: {features!r}"
        )
    return Signature(inputs=dict.fromkeys(names, "double"))


class RegisteredModel(Record):
    """A named model: the group that versions belong to."""

    name: ModelName
    owner: str
    risk_tier: RiskTier = RiskTier.MEDIUM
    description: str = ""
    created_at: AwareDatetime
    backend: str


class ModelVersion(Record):
    """One registered version of a model, bound to the digest of its bytes."""

    id: str
    name: ModelName
    version: int = Field(ge=1)
    artifact_uri: str
    artifact_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    flavor: Flavor = Flavor.OPAQUE
    signature: Signature = Field(default_factory=Signature)
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: tuple[Alias, ...] = ()
    owner: str
    risk_tier: RiskTier = RiskTier.MEDIUM
    stage: Stage = Stage.NONE
    description: str = ""
    run_id: str | None = None
    code_commit: str | None = None
    dataset_ids: tuple[str, ...] = ()
    created_at: AwareDatetime
    backend: str
    backend_ids: dict[str, str] = Field(default_factory=dict)

    _validate_tags = field_validator("tags")(_check_tags)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class VersionRequest(Record):
    """What core asks a backend registry to create; the backend picks the version number."""

    name: ModelName
    artifact_path: str
    artifact_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    flavor: Flavor = Flavor.OPAQUE
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    mintaka_id: str  # the local backend records an empty one as none: not made by Mintaka
    idempotency_key: str

    _validate_tags = field_validator("tags")(_check_tags)


class VersionOrigin(Record):
    """Where the cloud says a version came from, as far as it records it: what produced it (a
    SageMaker training job or pipeline execution ARN, an MLflow run), the commit and the
    repository of its code. Adoption records it on the version's lineage."""

    produced_by: str | None = None
    code_commit: str | None = None
    repository: str | None = None
    # The backend ids of the run that produced it, named as the backend's runs name them
    # (``Run.backend_ids``): a run Mintaka recorded with these ids is linked on adoption.
    run_ids: dict[str, str] = Field(default_factory=dict)

    def attrs(self) -> dict[str, str]:
        """The fields the cloud gave, as lineage attributes (``origin_<field>``)."""
        given = self.model_dump(exclude={"run_ids"})
        return {f"origin_{k}": v for k, v in given.items() if v}


class BackendVersion(Record):
    """A model version as a backend reports it: the cloud's view, for sync and discovery.
    ``origin`` is what the cloud records of where it came from (None: nothing)."""

    name: str
    version: int = Field(ge=1)
    artifact_uri: str
    artifact_digest: str | None = None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    stage: Stage | None = None
    approval: ApprovalStatus | None = None
    mintaka_id: str | None = None
    backend_ids: dict[str, str] = Field(default_factory=dict)
    origin: VersionOrigin | None = None
    extra: JSONDict = Field(default_factory=dict)
