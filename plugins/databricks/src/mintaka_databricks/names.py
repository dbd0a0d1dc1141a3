"""Unity Catalog names derived from Mintaka's, and back.

A Mintaka model name is lower case letters, digits and single dashes (``credit-risk``). Unity
Catalog folds names to lower case and needs quoting for dashes in SQL, so the model is stored as
``<catalog>.<schema>.credit_risk``. Mintaka names never contain ``_``, so the mapping is one to
one and reversible; a Unity Catalog name that does not map back is not Mintaka's.
"""

from __future__ import annotations

from mintaka.domain.names import validate_model_name
from mintaka.errors import InvalidName


def uc_leaf(name: str) -> str:
    return name.replace("-", "_")


def mintaka_name(leaf: str) -> str | None:
    """The Mintaka model name stored as ``leaf``, or ``None`` when none is."""
    candidate = leaf.lower().replace("_", "-")
    if uc_leaf(candidate) != leaf.lower():
        return None
    try:
        return validate_model_name(candidate)
    except InvalidName:
        return None


def table_prefix(endpoint: str) -> str:
    """The inference-table prefix of an endpoint: ``<endpoint>`` with underscores."""
    return endpoint.replace("-", "_")
