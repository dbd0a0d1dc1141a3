"""SageMaker ML Lineage: artifacts, contexts, actions, associations and ``QueryLineage``.

moto 5.2.5 implements none of these. The extension keeps every lineage entity in
:class:`~.state.LineageState` on moto's backend (so moto's reset clears it) and answers as the API
reference describes: a context or action is named by its ``...Name`` and its ARN ends in that name;
an artifact's name is optional and its ARN ends in a generated id; a duplicate name is refused with
``ValidationException`` ("... already exists"); a missing entity is ``ResourceNotFound``;
``Update*`` merges ``Properties`` and applies ``PropertiesToRemove``; adding an association that
exists changes nothing; both ends of an association must exist.

``QueryLineage`` walks associations from ``StartArns``: ``Descendants`` follows them source ->
destination, ``Ascendants`` destination -> source, ``Both`` (the default) does both walks, each up
to ``MaxDepth`` (default 10) associations away. ``Vertices`` are the entities reached (the start
entities included) that pass ``Filters``; ``Edges`` are the associations walked, when
``IncludeEdges`` is true (the default).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

from .errors import ResourceNotFound, ValidationError
from .state import LineageEntity, LineageState, state_of

ASSOCIATION_TYPES = ("ContributedTo", "AssociatedWith", "DerivedFrom", "Produced", "SameAs")
DIRECTIONS = ("Both", "Ascendants", "Descendants")
ACTION_STATUSES = ("Unknown", "InProgress", "Completed", "Failed", "Stopping", "Stopped")
DEFAULT_MAX_DEPTH = 10
MAX_PROPERTIES = 30  # LineageEntityParameters / ArtifactProperties hold at most 30 entries

# The entity kind, and the field names each kind uses in requests and answers.
_FIELDS = {
    "Artifact": ("ArtifactName", "ArtifactArn", "ArtifactType"),
    "Context": ("ContextName", "ContextArn", "ContextType"),
    "Action": ("ActionName", "ActionArn", "ActionType"),
}
_ARN_KIND = {"artifact": "Artifact", "context": "Context", "action": "Action"}


def lineage_of(backend: SageMakerModelBackend) -> LineageState:
    return state_of(backend).lineage


def _arn(backend: SageMakerModelBackend, kind: str, name: str) -> str:
    return arn_formatter(kind.lower(), name, backend.account_id, backend.region_name)


def _find(lineage: LineageState, arn: str | None) -> LineageEntity | None:
    return lineage.entities.get(arn or "")


def _named(lineage: LineageState, kind: str, name_or_arn: str) -> LineageEntity:
    """A context or action by name (or ARN); ResourceNotFound when there is none."""
    found = lineage.entities.get(name_or_arn)
    if found is None:
        found = next(
            (e for e in lineage.entities.values() if e.kind == kind and e.name == name_or_arn),
            None,
        )
    if found is None or found.kind != kind:
        raise ResourceNotFound(f"{kind} {name_or_arn} does not exist.")
    return found


def _page(
    items: list[dict[str, Any]], max_results: int | None, token: str | None
) -> dict[str, Any]:
    start = int(token) if token and token.isdigit() else 0
    size = max_results or 50
    page: dict[str, Any] = {"items": items[start : start + size]}
    if start + size < len(items):
        page["NextToken"] = str(start + size)
    return page


def _check_properties(properties: dict[str, Any], kind: str) -> dict[str, Any]:
    if len(properties) > MAX_PROPERTIES:
        raise ValidationError(
            f"{kind} Properties hold at most {MAX_PROPERTIES} entries; {len(properties)} given."
        )
    return properties


def _check_source(source: Any, kind: str) -> dict[str, Any]:
    if not isinstance(source, dict) or not source.get("SourceUri"):
        raise ValidationError(f"{kind} Source needs a SourceUri.")
    return dict(source)


def _create(self: SageMakerResponse, kind: str) -> ActionResult:
    backend = self.sagemaker_backend
    lineage = lineage_of(backend)
    name_field, arn_field, type_field = _FIELDS[kind]
    name = self._get_param(name_field)
    entity_type = self._get_param(type_field)
    if kind != "Artifact" and not name:
        raise ValidationError(f"{name_field} is required.")
    if not entity_type:
        raise ValidationError(f"{type_field} is required.")
    source = _check_source(self._get_param("Source"), kind)
    status = self._get_param("Status")
    if kind == "Action" and status is not None and status not in ACTION_STATUSES:
        raise ValidationError(f"Status must be one of {list(ACTION_STATUSES)}; got {status!r}.")
    with lineage.lock:
        if name and any(e.kind == kind and e.name == name for e in lineage.entities.values()):
            raise ValidationError(f"{kind} {_arn(backend, kind, name)} already exists.")
        if kind == "Artifact":
            lineage.issued += 1
            seed = f"{name or ''}|{source['SourceUri']}|{lineage.issued}"
            arn = _arn(backend, kind, hashlib.sha256(seed.encode()).hexdigest()[:32])
        else:
            arn = _arn(backend, kind, name)
        now = utcnow()
        lineage.entities[arn] = LineageEntity(
            kind=kind,
            name=name,
            arn=arn,
            type=entity_type,
            source=source,
            description=self._get_param("Description"),
            status=status or ("Unknown" if kind == "Action" else None),
            properties=_check_properties(dict(self._get_param("Properties") or {}), kind),
            created=now,
            modified=now,
        )
    return ActionResult({arn_field: arn})


def _describe(entity: LineageEntity) -> dict[str, Any]:
    name_field, arn_field, type_field = _FIELDS[entity.kind]
    body: dict[str, Any] = {
        arn_field: entity.arn,
        "Source": entity.source,
        type_field: entity.type,
        "Properties": dict(entity.properties),
        "CreationTime": entity.created,
        "LastModifiedTime": entity.modified,
    }
    if entity.name:
        body[name_field] = entity.name
    if entity.description is not None:
        body["Description"] = entity.description
    if entity.status is not None:
        body["Status"] = entity.status
    return body


def _summary(entity: LineageEntity) -> dict[str, Any]:
    body = _describe(entity)
    body.pop("Properties")
    body.pop("Description", None)
    return body


def _update(self: SageMakerResponse, entity: LineageEntity) -> None:
    properties = {**entity.properties, **(self._get_param("Properties") or {})}
    for key in self._get_param("PropertiesToRemove") or []:
        properties.pop(key, None)
    entity.properties = _check_properties(properties, entity.kind)
    if self._get_param("Description") is not None:
        entity.description = self._get_param("Description")
    status = self._get_param("Status")
    if status is not None:
        if entity.kind != "Action" or status not in ACTION_STATUSES:
            raise ValidationError(f"Status must be one of {list(ACTION_STATUSES)}.")
        entity.status = status
    entity.modified = utcnow()


def _list(self: SageMakerResponse, kind: str, answer_field: str) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    type_field = _FIELDS[kind][2]
    source_uri = self._get_param("SourceUri")
    wanted_type = self._get_param(type_field)
    after, before = self._get_param("CreatedAfter"), self._get_param("CreatedBefore")
    with lineage.lock:
        found = [
            e
            for e in lineage.entities.values()
            if e.kind == kind
            and source_uri in (None, e.source.get("SourceUri"))
            and wanted_type in (None, e.type)
            and _in_window(e.created, after, before)
        ]
    descending = self._get_param("SortOrder", "Descending") == "Descending"
    if self._get_param("SortBy") == "Name":
        found.sort(key=lambda e: e.name or "", reverse=descending)
    else:
        found.sort(key=lambda e: e.created, reverse=descending)
    page = _page(
        [_summary(e) for e in found], self._get_param("MaxResults"), self._get_param("NextToken")
    )
    page[answer_field] = page.pop("items")
    return ActionResult(page)


def _in_window(at: datetime, after: Any, before: Any) -> bool:
    stamp = at.timestamp()
    return (after is None or stamp > _seconds(after)) and (
        before is None or stamp < _seconds(before)
    )


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


# --- artifacts, contexts, actions ---------------------------------------------------------------


def create_artifact(self: SageMakerResponse) -> ActionResult:
    return _create(self, "Artifact")


def describe_artifact(self: SageMakerResponse) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    arn = self._get_param("ArtifactArn")
    with lineage.lock:
        entity = _find(lineage, arn)
        if entity is None or entity.kind != "Artifact":
            raise ResourceNotFound(f"Artifact {arn} does not exist.")
        return ActionResult(_describe(entity))


def update_artifact(self: SageMakerResponse) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    arn = self._get_param("ArtifactArn")
    with lineage.lock:
        entity = _find(lineage, arn)
        if entity is None or entity.kind != "Artifact":
            raise ResourceNotFound(f"Artifact {arn} does not exist.")
        _update(self, entity)
    return ActionResult({"ArtifactArn": arn})


def list_artifacts(self: SageMakerResponse) -> ActionResult:
    return _list(self, "Artifact", "ArtifactSummaries")


def _describe_named(kind: str) -> Callable[[SageMakerResponse], ActionResult]:
    """DescribeContext / DescribeAction: the entity named by ``ContextName`` / ``ActionName``."""
    name_field = _FIELDS[kind][0]

    def describe(self: SageMakerResponse) -> ActionResult:
        lineage = lineage_of(self.sagemaker_backend)
        with lineage.lock:
            return ActionResult(_describe(_named(lineage, kind, self._get_param(name_field))))

    describe.__name__ = f"describe_{kind.lower()}"
    return describe


def _update_named(kind: str) -> Callable[[SageMakerResponse], ActionResult]:
    """UpdateContext / UpdateAction."""
    name_field, arn_field, _ = _FIELDS[kind]

    def update(self: SageMakerResponse) -> ActionResult:
        lineage = lineage_of(self.sagemaker_backend)
        with lineage.lock:
            entity = _named(lineage, kind, self._get_param(name_field))
            _update(self, entity)
        return ActionResult({arn_field: entity.arn})

    update.__name__ = f"update_{kind.lower()}"
    return update


def create_context(self: SageMakerResponse) -> ActionResult:
    return _create(self, "Context")


describe_context = _describe_named("Context")
update_context = _update_named("Context")


def list_contexts(self: SageMakerResponse) -> ActionResult:
    return _list(self, "Context", "ContextSummaries")


def create_action(self: SageMakerResponse) -> ActionResult:
    return _create(self, "Action")


describe_action = _describe_named("Action")
update_action = _update_named("Action")


def list_actions(self: SageMakerResponse) -> ActionResult:
    return _list(self, "Action", "ActionSummaries")


# --- associations -------------------------------------------------------------------------------


def add_association(self: SageMakerResponse) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    source, destination = self._get_param("SourceArn"), self._get_param("DestinationArn")
    kind = self._get_param("AssociationType") or "AssociatedWith"
    if kind not in ASSOCIATION_TYPES:
        raise ValidationError(
            f"AssociationType must be one of {list(ASSOCIATION_TYPES)}; got {kind!r}."
        )
    with lineage.lock:
        ends = [_find(lineage, source), _find(lineage, destination)]
        for arn, entity in zip((source, destination), ends, strict=True):
            if entity is None:
                raise ResourceNotFound(f"Entity {arn} does not exist.")
        src, dst = ends
        assert src is not None
        assert dst is not None
        lineage.associations.setdefault(
            (source, destination),
            {
                "SourceArn": source,
                "DestinationArn": destination,
                "SourceType": src.type,
                "DestinationType": dst.type,
                "AssociationType": kind,
                "SourceName": src.name or src.arn.rsplit("/", 1)[-1],
                "DestinationName": dst.name or dst.arn.rsplit("/", 1)[-1],
                "CreationTime": utcnow(),
            },
        )
    return ActionResult({"SourceArn": source, "DestinationArn": destination})


def delete_association(self: SageMakerResponse) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    source, destination = self._get_param("SourceArn"), self._get_param("DestinationArn")
    with lineage.lock:
        if lineage.associations.pop((source, destination), None) is None:
            raise ResourceNotFound(f"Association {source} -> {destination} does not exist.")
    return ActionResult({"SourceArn": source, "DestinationArn": destination})


def list_associations(self: SageMakerResponse) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    wanted = {
        key: self._get_param(key)
        for key in (
            "SourceArn",
            "DestinationArn",
            "SourceType",
            "DestinationType",
            "AssociationType",
        )
    }
    after, before = self._get_param("CreatedAfter"), self._get_param("CreatedBefore")
    with lineage.lock:
        found = [
            dict(a)
            for a in lineage.associations.values()
            if all(value in (None, a[key]) for key, value in wanted.items())
            and _in_window(a["CreationTime"], after, before)
        ]
    sort_by = self._get_param("SortBy") or "CreationTime"
    found.sort(
        key=lambda a: a[sort_by], reverse=self._get_param("SortOrder", "Descending") == "Descending"
    )
    page = _page(found, self._get_param("MaxResults"), self._get_param("NextToken"))
    page["AssociationSummaries"] = page.pop("items")
    return ActionResult(page)


# --- QueryLineage -------------------------------------------------------------------------------


def _matches(entity: LineageEntity, filters: dict[str, Any]) -> bool:
    if filters.get("Types") and entity.type not in filters["Types"]:
        return False
    if filters.get("LineageTypes") and entity.kind not in filters["LineageTypes"]:
        return False
    if not _in_window(entity.created, filters.get("CreatedAfter"), filters.get("CreatedBefore")):
        return False
    if not _in_window(entity.modified, filters.get("ModifiedAfter"), filters.get("ModifiedBefore")):
        return False
    return all(entity.properties.get(k) == v for k, v in (filters.get("Properties") or {}).items())


def query_lineage(self: SageMakerResponse) -> ActionResult:
    lineage = lineage_of(self.sagemaker_backend)
    starts = list(self._get_param("StartArns") or [])
    direction = self._get_param("Direction") or "Both"
    if direction not in DIRECTIONS:
        raise ValidationError(f"Direction must be one of {list(DIRECTIONS)}; got {direction!r}.")
    depth = self._get_param("MaxDepth")
    depth = DEFAULT_MAX_DEPTH if depth is None else int(depth)
    if not 0 <= depth <= 10:
        raise ValidationError(f"MaxDepth must be between 0 and 10; got {depth}.")
    include_edges = self._get_param("IncludeEdges")
    filters = self._get_param("Filters") or {}
    with lineage.lock:
        for arn in starts:
            if arn not in lineage.entities:
                raise ResourceNotFound(f"Entity {arn} does not exist.")
        reached: set[str] = set(starts)
        edges: list[dict[str, Any]] = []
        if direction in ("Both", "Descendants"):
            down, walked = _walk(lineage, starts, depth, forward=True)
            reached |= down
            edges += walked
        if direction in ("Both", "Ascendants"):
            up, walked = _walk(lineage, starts, depth, forward=False)
            reached |= up
            edges += walked
        vertices = [
            {"Arn": e.arn, "Type": e.type, "LineageType": e.kind}
            for arn in sorted(reached)
            if (e := lineage.entities.get(arn)) is not None and _matches(e, filters)
        ]
    unique_edges = {(e["SourceArn"], e["DestinationArn"]): e for e in edges}
    body: dict[str, Any] = {"Vertices": vertices}
    body["Edges"] = (
        [unique_edges[k] for k in sorted(unique_edges)] if include_edges in (None, True) else []
    )
    return ActionResult(body)


def _walk(
    lineage: LineageState, starts: Iterable[str], depth: int, *, forward: bool
) -> tuple[set[str], list[dict[str, Any]]]:
    """Entities within ``depth`` associations of ``starts`` (downstream when ``forward``), and
    the associations walked to reach them."""
    reached = set(starts)
    frontier = set(starts)
    edges: list[dict[str, Any]] = []
    for _ in range(depth):
        following: set[str] = set()
        for (src, dst), association in lineage.associations.items():
            here, there = (src, dst) if forward else (dst, src)
            if here not in frontier:
                continue
            edges.append(
                {
                    "SourceArn": association["SourceArn"],
                    "DestinationArn": association["DestinationArn"],
                    "AssociationType": association["AssociationType"],
                }
            )
            if there not in reached:
                following.add(there)
        if not following:
            break
        reached |= following
        frontier = following
    return reached, edges


OPERATIONS: dict[str, Callable[[SageMakerResponse], ActionResult | EmptyResult]] = {
    "create_artifact": create_artifact,
    "describe_artifact": describe_artifact,
    "update_artifact": update_artifact,
    "list_artifacts": list_artifacts,
    "create_context": create_context,
    "describe_context": describe_context,
    "update_context": update_context,
    "list_contexts": list_contexts,
    "create_action": create_action,
    "describe_action": describe_action,
    "update_action": update_action,
    "list_actions": list_actions,
    "add_association": add_association,
    "delete_association": delete_association,
    "list_associations": list_associations,
    "query_lineage": query_lineage,
}
