"""Registry interfaces: one ABC per capability, so a backend implements only what it declares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from mintaka.domain.registry import ApprovalStatus, BackendVersion, Stage, VersionRequest


class ModelRegistry(ABC):
    """``Capability.REGISTRY``: models and immutable, numbered versions."""

    @abstractmethod
    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        """Create the model (group) if missing; idempotent. Returns its backend ids."""

    @abstractmethod
    def create_version(self, request: VersionRequest) -> BackendVersion:
        """Upload the artifact and create a new version; the backend picks the number.

        Must be idempotent on ``request.idempotency_key``: a retry after a lost response returns
        the version created the first time instead of creating another.
        """

    @abstractmethod
    def get_version(self, name: str, version: int) -> BackendVersion:
        """Raise :class:`~mintaka.errors.NotFound` when the model or version is missing."""

    @abstractmethod
    def list_versions(self, name: str) -> list[BackendVersion]:
        """Versions in ascending order; ``NotFound`` when the model is missing."""

    @abstractmethod
    def list_models(self) -> list[str]:
        """Names of every model in the registry, managed by Mintaka or not."""


class StoreResidentRegistry(ABC):
    """A registry whose state is a set of tables in the control-plane store's own database.

    Core then creates a version inside the store transaction that records it: one commit instead
    of two, and no version that the registry holds and the store never heard of after a crash.
    Only a registry that lives in that database may offer this; core never holds the store's
    write lock across a call that could leave the machine. Not a capability: what a backend can
    do is the same either way.
    """

    @abstractmethod
    def resides_in(self, store_url: str) -> bool:
        """Whether this registry's tables are in the database at ``store_url``."""

    @abstractmethod
    def create_version_in(self, conn: Connection, request: VersionRequest) -> BackendVersion:
        """``create_version`` inside the caller's write transaction on the store.

        It neither commits nor rolls back: the version exists once the caller commits, and not at
        all if the caller rolls back.
        """


class ModelAliases(ABC):
    """``Capability.REGISTRY_ALIASES``: named pointers that move between versions."""

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: int) -> None: ...

    @abstractmethod
    def delete_alias(self, name: str, alias: str) -> None: ...

    @abstractmethod
    def get_aliases(self, name: str) -> dict[str, int]: ...


class ModelTags(ABC):
    """``Capability.REGISTRY_TAGS``: key/value tags on versions."""

    @abstractmethod
    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def delete_tag(self, name: str, version: int, key: str) -> None: ...


class ModelStages(ABC):
    """``Capability.REGISTRY_STAGES``: the lifecycle stage projected onto the cloud."""

    @abstractmethod
    def set_stage(self, name: str, version: int, stage: Stage) -> None: ...


class ApprovalProjection(ABC):
    """``Capability.REGISTRY_APPROVAL``: core's approval record projected onto the registry."""

    @abstractmethod
    def set_approval(self, name: str, version: int, status: ApprovalStatus) -> None: ...


class VersionDeletion(ABC):
    """``Capability.REGISTRY_DELETE``: a version removed from the cloud registry."""

    @abstractmethod
    def delete_version(self, name: str, version: int) -> None: ...


class ArtifactFetch(ABC):
    """``Capability.REGISTRY_FETCH``: a version's model bytes, read back as the cloud holds them.

    Core uses it to adopt versions that Mintaka did not create (``mintaka adopt model``): the
    bytes are digested and stored content-addressed like a registration's, so every recorded
    version is bound to bytes Mintaka has verified.
    """

    @abstractmethod
    def fetch_artifact(self, name: str, version: int, into: Path) -> Path:
        """Write the model files of ``name:version`` under the empty directory ``into`` and
        return the file or directory to digest (inside ``into``).

        The files are the model's as the cloud serves them (an archive the cloud requires, such
        as SageMaker's ``model.tar.gz``, unpacked), so bytes Mintaka registered come back with
        the digest they were registered with. ``NotFound`` when the version, or its bytes, are
        not there.
        """


@dataclass(frozen=True)
class ServedBytes:
    """What ``ServedRegistration.fetch_served`` read: the file or directory to digest (inside the
    directory core gave it), and ``slot``, the backend's identity of what the route served when
    it was read (on SageMaker the Model and its model data). It changes when the route is
    redeployed, so ``register_served`` can refuse to register other bytes than those read."""

    path: Path
    slot: str


class ServedRegistration(ABC):
    """``Capability.REGISTRY_FROM_SERVING``: register what an endpoint serves as a version.

    An endpoint deployed without the registry (on SageMaker, a Model made straight from its
    ``ModelDataUrl``) serves bytes that no version describes, so core cannot record its routes.
    Core uses this to adopt it (``mintaka adopt served``): the backend registers what the slot
    serves as a new version of a model, then core adopts that version like any other (its bytes
    read back, digested and stored) and the endpoint becomes adoptable.
    """

    @abstractmethod
    def register_served(
        self, endpoint: str, route: str, model: str, served: str | None = None
    ) -> BackendVersion:
        """Register what ``route`` of ``endpoint`` serves as a new version of ``model``
        (created when the cloud has no such model), leaving the live endpoint as it is; from then
        on the endpoint reads ``route`` as serving that version.

        ``served`` is the ``slot`` of the ``ServedBytes`` core read with ``fetch_served``: when
        the route no longer serves what it identifies (redeployed in between), ``Conflict`` and
        nothing is registered, so the version core records is the one whose bytes it digested.

        Idempotent: a route that already reads as serving a version of ``model`` returns that
        version, and a retry after a lost response creates no second one. ``NotFound`` for a
        missing endpoint or route; ``Conflict`` when the route serves a version of another model;
        ``ValidationError`` when what the slot serves cannot be one version (several containers,
        model data in a form the registry cannot hold).
        """

    def fetch_served(self, endpoint: str, route: str, into: Path) -> ServedBytes | None:
        """Write the bytes ``route`` of ``endpoint`` serves into ``into`` as
        ``ArtifactFetch.fetch_artifact`` writes a version's, and return them with the identity
        of the slot they were read from; the cloud is only read. The bytes must be the ones
        ``register_served`` registers for that slot. ``NotFound`` and ``ValidationError`` as for
        ``register_served``.

        Core reads them before ``register_served`` so that bytes it would refuse to adopt are
        refused before anything is registered. None (the default, for a backend that cannot read
        them first) makes core register first and then read the registered version's bytes
        back through ``ArtifactFetch``: the weaker guarantee, as bytes refused then leave the
        version registered in the cloud (adopting again returns it).
        """
        return None
