"""What every part of the backend shares: the clients, translated calls, ARNs and derived names."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from mintaka.errors import NotFound
from mintaka_sagemaker.clients import ClientFactory
from mintaka_sagemaker.errors import sdk_error, translated
from mintaka_sagemaker.settings import SageMakerSettings

NAME_LIMIT = 63
_NAME_RULE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# Tag keys AWS reserves for itself; never reported as a version's tags.
SYSTEM_TAG_PREFIXES = ("aws:", "sagemaker:")


def short_hash(value: Any) -> str:
    """Eight hex characters of the sha256 of ``value``'s canonical JSON."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def request_token(key: str) -> str:
    """An idempotency token for the request ``key`` identifies: ``mk-`` and 128 bits of the key's
    sha256 (35 characters of ``[a-z0-9-]``, within both ``ClientToken``'s 1-36 and
    ``ClientRequestToken``'s 32-128). The same key always gives the same token, so a retried
    create is answered with what the first one made; two keys are never one token."""
    return "mk-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def derived_name(base: str, key: Any) -> str:
    """A SageMaker entity name from ``base`` and a hash of ``key``: the same inputs always give
    the same name (so a retried create finds what the first one made), at most 63 characters."""
    suffix = "-" + short_hash(key)
    name = base[: NAME_LIMIT - len(suffix)].rstrip("-") + suffix
    assert _NAME_RULE.match(name), name
    return name


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


class AwsCalls:
    """Mixed into the backend: one client factory, and every SDK call through the error table."""

    settings: SageMakerSettings
    clients: ClientFactory
    _arn_lock: threading.Lock
    _arn_base: str | None

    def _sm(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._call("sagemaker", operation, **params)

    def _call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        # What ``translated`` does, inline: this runs around every call the backend makes.
        try:
            result: dict[str, Any] = getattr(self.clients.get(service), operation)(**params)
        except Exception as exc:
            error = sdk_error(exc, f"{service} {operation}")
            if error is None:
                raise
            raise error from exc
        return result

    def _pages(self, service: str, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        with translated(f"{service} {operation}"):
            paginator = self.clients.get(service).get_paginator(operation)
            yield from paginator.paginate(**params)

    def _arn(self, resource: str) -> str:
        """The ARN of a SageMaker resource in this account and region (``model-package/m/1``)."""
        with self._arn_lock:
            if self._arn_base is None:
                caller = self._call("sts", "get_caller_identity")
                partition = str(caller["Arn"]).split(":")[1]
                self._arn_base = (
                    f"arn:{partition}:sagemaker:{self.settings.region}:{caller['Account']}"
                )
        return f"{self._arn_base}:{resource}"

    def _tags(self, arn: str) -> dict[str, str]:
        # ListTags pages by NextToken; followed by hand, as botocore's paginator costs more
        # Python than the one page a resource's tags nearly always fit in.
        tags: dict[str, str] = {}
        params: dict[str, Any] = {"ResourceArn": arn}
        while True:
            page = self._sm("list_tags", **params)
            tags.update(tag_dict(page.get("Tags", [])))
            token = page.get("NextToken")
            if not token:
                return tags
            params["NextToken"] = token

    def _describe_endpoint(self, name: str) -> dict[str, Any]:
        found = self._sm("describe_endpoint", EndpointName=self.settings.endpoint_of(name))
        if found.get("EndpointStatus") == "Deleting":
            raise NotFound(f"[sagemaker] endpoint {name!r} is being deleted")
        return found
