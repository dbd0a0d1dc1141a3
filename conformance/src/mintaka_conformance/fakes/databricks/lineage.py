"""Unity Catalog external metadata and external lineage (``/api/2.0/lineage-tracking/...``).

External metadata objects stand for things outside Databricks (a run, a dataset in another
system); external lineage relationships connect them with tables, model versions, paths or each
other, with custom ``properties``. A relationship between the same source and target exists
once; both ends must exist when they are external metadata; listing takes one object (flattened
into ``object_info.<kind>.<field>`` query parameters) and a direction: ``UPSTREAM`` lists the
relationships whose target is the object, ``DOWNSTREAM`` those whose source is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .context import WorkspaceContext
from .routing import ApiError, Request, Router, already_exists, invalid, not_found, page_answer

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")
_OBJECT_KINDS = ("external_metadata", "table", "model_version", "path")
SYSTEM_TYPES = frozenset(
    {
        "AMAZON_REDSHIFT", "AZURE_SYNAPSE", "CONFLUENT", "DATABRICKS", "GOOGLE_BIGQUERY", "KAFKA",
        "LOOKER", "MICROSOFT_FABRIC", "MICROSOFT_SQL_SERVER", "MONGODB", "MYSQL", "ORACLE",
        "OTHER", "POSTGRESQL", "POWER_BI", "SALESFORCE", "SAP", "SERVICENOW", "SNOWFLAKE",
        "STREAM_NATIVE", "TABLEAU", "TERADATA", "WORKDAY",
    }
)  # fmt: skip


@dataclass
class ExternalMetadata:
    name: str
    system_type: str
    entity_type: str
    id: str
    created: str
    creator: str
    description: str | None = None
    url: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    def render(self, metastore_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "system_type": self.system_type,
            "entity_type": self.entity_type,
            "id": self.id,
            "metastore_id": metastore_id,
            "create_time": self.created,
            "created_by": self.creator,
            "update_time": self.created,
            "updated_by": self.creator,
            "owner": self.creator,
            "properties": dict(self.properties),
            "columns": list(self.columns),
        }
        for key, value in (("description", self.description), ("url", self.url)):
            if value is not None:
                body[key] = value
        return body


@dataclass
class Relationship:
    id: str
    source: dict[str, Any]
    target: dict[str, Any]
    properties: dict[str, str]
    columns: list[Any]

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "target": self.target,
            "properties": dict(self.properties),
            "columns": list(self.columns),
        }


def _key(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True)


class Lineage:
    """External metadata objects and the lineage relationships between them and other objects."""

    def __init__(self, ctx: WorkspaceContext) -> None:
        self.ctx = ctx
        self.metadata: dict[str, ExternalMetadata] = {}
        self.relationships: dict[str, Relationship] = {}

    # Helpers.

    def _now(self) -> str:
        return datetime.fromtimestamp(self.ctx.now_ms() / 1000, tz=UTC).isoformat()

    def _metadata(self, name: str) -> ExternalMetadata:
        found = self.metadata.get(name)
        if found is None:
            raise not_found(f"External metadata object '{name}' does not exist.")
        return found

    def _object(self, raw: Any, role: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise invalid(f"Missing required field: {role}")
        given = [kind for kind in _OBJECT_KINDS if raw.get(kind)]
        if len(given) != 1:
            raise invalid(
                f"{role} must set exactly one of: {', '.join(_OBJECT_KINDS)}; got {given or 'none'}"
            )
        kind = given[0]
        value = raw[kind]
        if not isinstance(value, dict) or not value.get("name"):
            raise invalid(f"{role}.{kind}.name is required.")
        if kind == "external_metadata":
            self._metadata(str(value["name"]))
        return {kind: {k: v for k, v in value.items() if v is not None}}

    def _info(self, relationship: Relationship, other: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"external_lineage_info": relationship.render()}
        kind, value = next(iter(other.items()))
        if kind == "external_metadata":
            found = self.metadata.get(str(value["name"]))
            if found is not None:
                body["external_metadata_info"] = {
                    "name": found.name,
                    "system_type": found.system_type,
                    "entity_type": found.entity_type,
                    "event_time": found.created,
                }
        return body

    # Routes.

    def register(self, router: Router) -> None:
        meta = "/api/2.0/lineage-tracking/external-metadata"
        router.add("POST", meta, self.create_metadata)
        router.add("GET", meta, self.list_metadata)
        router.add("GET", meta + "/{name}", self.get_metadata)
        router.add("DELETE", meta + "/{name}", self.delete_metadata)
        lineage = "/api/2.0/lineage-tracking/external-lineage"
        router.add("POST", lineage, self.create_relationship)
        router.add("GET", lineage, self.list_relationships)
        router.add("DELETE", lineage, self.delete_relationship)

    def create_metadata(self, req: Request) -> dict[str, Any]:
        name = str(req.require("name"))
        if not _NAME.match(name):
            raise invalid(f"Invalid external metadata name '{name}'.")
        system_type = str(req.require("system_type"))
        if system_type not in SYSTEM_TYPES:
            raise invalid(f"Invalid system_type '{system_type}'.")
        entity_type = str(req.require("entity_type"))
        if name in self.metadata:
            raise already_exists(f"External metadata object '{name}' already exists.")
        found = ExternalMetadata(
            name=name,
            system_type=system_type,
            entity_type=entity_type,
            id=self.ctx.new_uuid(),
            created=self._now(),
            creator=self.ctx.user,
            description=req.arg("description"),
            url=req.arg("url"),
            properties={str(k): str(v) for k, v in (req.arg("properties") or {}).items()},
            columns=list(req.arg("columns") or []),
        )
        self.metadata[name] = found
        return found.render(self.ctx.metastore_id)

    def list_metadata(self, req: Request) -> dict[str, Any]:
        size = _page_size(req)
        items = [self.metadata[n] for n in sorted(self.metadata)]
        return page_answer(
            "external_metadata",
            items,
            req.arg("page_token"),
            size,
            lambda m: m.render(self.ctx.metastore_id),
        )

    def get_metadata(self, req: Request) -> dict[str, Any]:
        return self._metadata(req.params["name"]).render(self.ctx.metastore_id)

    def delete_metadata(self, req: Request) -> None:
        found = self._metadata(req.params["name"])
        end = _key({"external_metadata": {"name": found.name}})
        attached = [
            r for r in self.relationships.values() if end in (_key(r.source), _key(r.target))
        ]
        for relationship in attached:
            del self.relationships[relationship.id]
        del self.metadata[found.name]

    def create_relationship(self, req: Request) -> dict[str, Any]:
        source = self._object(req.arg("source"), "source")
        target = self._object(req.arg("target"), "target")
        if _key(source) == _key(target):
            raise invalid("A lineage relationship cannot connect an object to itself.")
        for existing in self.relationships.values():
            if _key(existing.source) == _key(source) and _key(existing.target) == _key(target):
                raise already_exists("This external lineage relationship already exists.")
        relationship = Relationship(
            id=self.ctx.new_uuid(),
            source=source,
            target=target,
            properties={str(k): str(v) for k, v in (req.arg("properties") or {}).items()},
            columns=list(req.arg("columns") or []),
        )
        self.relationships[relationship.id] = relationship
        return relationship.render()

    def list_relationships(self, req: Request) -> dict[str, Any]:
        direction = req.require("lineage_direction")
        if direction not in ("UPSTREAM", "DOWNSTREAM"):
            raise invalid(f"Invalid lineage_direction '{direction}'.")
        prefix = "object_info."
        fields: dict[str, dict[str, Any]] = {}
        for name, values in req.query.items():
            if name.startswith(prefix) and values:
                kind, _, attribute = name[len(prefix) :].partition(".")
                fields.setdefault(kind, {})[attribute] = values[0]
        if len(fields) != 1 or next(iter(fields)) not in _OBJECT_KINDS:
            raise invalid("object_info must name exactly one object, e.g. object_info.table.name.")
        wanted = _key(fields)
        size = _page_size(req)
        found = []
        for relationship in self.relationships.values():
            mine, other = (
                (relationship.target, relationship.source)
                if direction == "UPSTREAM"
                else (relationship.source, relationship.target)
            )
            if _key(mine) == wanted:
                found.append(self._info(relationship, other))
        return page_answer("external_lineage_relationships", found, req.arg("page_token"), size)

    def delete_relationship(self, req: Request) -> None:
        prefix = "external_lineage_relationship."
        given = {k[len(prefix) :]: v[0] for k, v in req.query.items() if k.startswith(prefix) and v}
        relationship_id = given.get("id")
        if relationship_id:
            if relationship_id not in self.relationships:
                raise not_found(
                    f"External lineage relationship '{relationship_id}' does not exist."
                )
            del self.relationships[relationship_id]
            return
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", "external_lineage_relationship.id is required."
        )


def _page_size(req: Request) -> int:
    """The external lineage APIs' ``page_size``: 100 when absent, else 1-1000."""
    size = req.int_arg("page_size") or 100
    if not 0 < size <= 1000:
        raise invalid("page_size must be between 1 and 1000.")
    return size
