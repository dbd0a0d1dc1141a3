"""SageMaker's lineage contexts and associations for moto, which (5.2.5) implements none of them.

Only what the backend's lineage translation calls: ``CreateContext``, ``DescribeContext``,
``UpdateContext``, ``AddAssociation`` and ``ListAssociations``, with AWS's behaviour as the API
reference describes it (a duplicate context name is refused, a missing context is
``ResourceNotFound``, ``UpdateContext`` merges ``Properties``, adding an existing association
changes nothing). State lives on moto's SageMaker backend, so moto's reset clears it. It belongs
with the SageMaker fake in ``mintaka_conformance.fakes.sagemaker`` and should move there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.sagemaker.exceptions import ResourceNotFound, ValidationError
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

OPERATIONS = (
    "create_context",
    "describe_context",
    "update_context",
    "add_association",
    "list_associations",
)


@dataclass
class Lineage:
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    associations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _lineage(backend: SageMakerModelBackend) -> Lineage:
    found = backend.__dict__.get("mintaka_lineage_fake")
    if found is None:
        found = backend.__dict__["mintaka_lineage_fake"] = Lineage()
    assert isinstance(found, Lineage)
    return found


def _context(lineage: Lineage, name: str) -> dict[str, Any]:
    if name not in lineage.contexts:
        raise ResourceNotFound(f"Context {name} does not exist.")
    return lineage.contexts[name]


def create_context(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    lineage = _lineage(backend)
    name = self._get_param("ContextName")
    arn = arn_formatter("context", name, backend.account_id, backend.region_name)
    now = datetime.now(UTC)
    with lineage.lock:
        if name in lineage.contexts:
            raise ValidationError(f"Context {arn} already exists.")
        lineage.contexts[name] = {
            "ContextName": name,
            "ContextArn": arn,
            "Source": self._get_param("Source"),
            "ContextType": self._get_param("ContextType"),
            "Description": self._get_param("Description") or "",
            "Properties": dict(self._get_param("Properties") or {}),
            "CreationTime": now,
            "LastModifiedTime": now,
        }
    return ActionResult({"ContextArn": arn})


def describe_context(self: SageMakerResponse) -> ActionResult:
    lineage = _lineage(self.sagemaker_backend)
    with lineage.lock:
        return ActionResult(dict(_context(lineage, self._get_param("ContextName"))))


def update_context(self: SageMakerResponse) -> ActionResult:
    lineage = _lineage(self.sagemaker_backend)
    with lineage.lock:
        context = _context(lineage, self._get_param("ContextName"))
        properties = {**context["Properties"], **(self._get_param("Properties") or {})}
        for key in self._get_param("PropertiesToRemove") or []:
            properties.pop(key, None)
        context["Properties"] = properties
        if self._get_param("Description") is not None:
            context["Description"] = self._get_param("Description")
        context["LastModifiedTime"] = datetime.now(UTC)
        return ActionResult({"ContextArn": context["ContextArn"]})


def add_association(self: SageMakerResponse) -> ActionResult:
    lineage = _lineage(self.sagemaker_backend)
    source, destination = self._get_param("SourceArn"), self._get_param("DestinationArn")
    with lineage.lock:
        by_arn = {c["ContextArn"]: c for c in lineage.contexts.values()}
        for arn in (source, destination):
            if arn not in by_arn:
                raise ResourceNotFound(f"Entity {arn} does not exist.")
        lineage.associations.setdefault(
            (source, destination),
            {
                "SourceArn": source,
                "DestinationArn": destination,
                "SourceType": "Context",
                "DestinationType": "Context",
                "AssociationType": self._get_param("AssociationType") or "AssociatedWith",
                "SourceName": by_arn[source]["ContextName"],
                "DestinationName": by_arn[destination]["ContextName"],
                "CreationTime": datetime.now(UTC),
            },
        )
    return ActionResult({"SourceArn": source, "DestinationArn": destination})


def list_associations(self: SageMakerResponse) -> ActionResult:
    lineage = _lineage(self.sagemaker_backend)
    source, destination = self._get_param("SourceArn"), self._get_param("DestinationArn")
    with lineage.lock:
        found = [
            dict(a)
            for (src, dst), a in lineage.associations.items()
            if source in (None, src) and destination in (None, dst)
        ]
    return ActionResult({"AssociationSummaries": found})


@contextmanager
def lineage_installed() -> Iterator[None]:
    """Add the lineage operations to moto's SageMaker responses for the block."""
    native = [name for name in OPERATIONS if hasattr(SageMakerResponse, name)]
    if native:
        raise RuntimeError(f"moto now implements {native}: use moto's own and drop this fake")
    for name in OPERATIONS:
        setattr(SageMakerResponse, name, globals()[name])
    try:
        yield
    finally:
        for name in OPERATIONS:
            delattr(SageMakerResponse, name)
