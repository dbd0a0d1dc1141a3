"""A model version named in an MLflow registry request, read alike by both fake registries.

MLflow's Unity Catalog surface and the workspace registry take a version as the request's ``name``
and ``version`` fields and refuse a version that is no number the same way; each registry says
in its own words that a model or version does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .routing import Request, invalid

ModelT = TypeVar("ModelT")
VersionT = TypeVar("VersionT")


def version_number(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid model version number: {value!r}") from None


class NamedVersions(Generic[ModelT, VersionT]):
    """``_named_version`` for a registry that finds its models and their versions."""

    if TYPE_CHECKING:  # each registry finds them, and says they are missing, its own way

        def _model(self, name: str) -> ModelT: ...

        def _version(self, model: ModelT, version: int | str) -> VersionT: ...

    def _named_version(self, req: Request) -> tuple[ModelT, VersionT]:
        """The model of the request's ``name`` and its version of the request's ``version``."""
        model = self._model(req.require("name"))
        return model, self._version(model, req.require("version"))
