"""Unity Catalog names derived from Mintaka's, and back.

A Mintaka model name is lower case letters, digits and single dashes (``credit-risk``). Unity
Catalog folds names to lower case and needs quoting for dashes in SQL, so the model is stored as
``<catalog>.<schema>.credit_risk``. Mintaka names never contain ``_``, so the mapping is one to
one and reversible; a registry name that does not map back exactly is not Mintaka's.
The workspace model registry keeps names as written and compares them with case, so a name such
as ``ChurnModel`` is none of Mintaka's: ``churnmodel`` would be another model there.
"""

from __future__ import annotations

from mintaka.domain.names import validate_model_name
from mintaka.errors import InvalidName


def uc_leaf(name: str) -> str:
    return name.replace("-", "_")


def mintaka_name(leaf: str) -> str | None:
    """The Mintaka model name stored as ``leaf``, or ``None`` when none is: only a name whose
    registry name is exactly ``leaf``, case included (a registry that folds case folds ``leaf``
    before asking)."""
    candidate = leaf.replace("_", "-")
    if uc_leaf(candidate) != leaf:
        return None
    try:
        return validate_model_name(candidate)
    except InvalidName:
        return None


def table_prefix(endpoint: str) -> str:
    """The inference-table prefix of an endpoint: ``<endpoint>`` with underscores."""
    return endpoint.replace("-", "_")
