"""Names, validated once in core against the strictest rules of every cloud Mintaka targets.

The intersection (see docs/architecture.md):

- SageMaker entity names: ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$``, endpoint names case-insensitive.
- Vertex AI resource ids start with a letter; aliases ``[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]``.
- Azure ML endpoints and deployments: a leading letter, 3-32 characters, single dashes.
- Unity Catalog identifiers are case-insensitive.

So a Mintaka name is lower-case, starts with a letter, ends with a letter or digit, and uses single
dashes only. A backend that needs another form (``catalog.schema.model``) derives it from its
configuration; it never receives a name that one of the other clouds would refuse.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Annotated, Final

from pydantic import AfterValidator

from mintaka.errors import InvalidName

MODEL_NAME_RULE: Final = (
    "lower-case letters, digits and single dashes, starting with a letter, 1-63 chars"
)
ENDPOINT_NAME_RULE: Final = (
    "lower-case letters, digits and single dashes, starting with a letter, 3-32 chars"
)
ROUTE_NAME_RULE: Final = ENDPOINT_NAME_RULE
ALIAS_RULE: Final = (
    "lower-case letters, digits and single dashes, starting with a letter, 2-63 chars, "
    "not 'latest' or 'default'"
)
TAG_KEY_RULE: Final = "1-128 chars: letters, digits and _ . : / - , starting with a letter or _"
TAG_VALUE_RULE: Final = "at most 256 printable characters"
DATASET_NAME_RULE: Final = (
    "1-256 characters, not blank, with no surrounding blanks and no control, line-separator, "
    "text-direction or non-UTF-8 character"
)
EXPERIMENT_NAME_RULE: Final = DATASET_NAME_RULE

_MODEL = re.compile(r"(?=.{1,63}\Z)[a-z](?:-?[a-z0-9]){0,62}")
_ENDPOINT = re.compile(r"(?=.{3,32}\Z)[a-z](?:-?[a-z0-9]){1,31}")
_ALIAS = re.compile(r"(?=.{2,63}\Z)[a-z](?:-?[a-z0-9]){1,62}")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,127}")
RESERVED_ALIASES: Final = frozenset({"latest", "default"})


def _check(kind: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidName(kind, value, rule)
    return value


def validate_model_name(value: object) -> str:
    """Return ``value`` if it is a valid model name, else raise :class:`InvalidName`."""
    return _check("model name", value, _MODEL, MODEL_NAME_RULE)


def validate_endpoint_name(value: object) -> str:
    """Return ``value`` if it is a valid endpoint or deployment name."""
    return _check("endpoint name", value, _ENDPOINT, ENDPOINT_NAME_RULE)


def validate_route_name(value: object, *, given_as: str | None = None) -> str:
    """Return ``value`` if it is a valid route name: the endpoint name rule (a route becomes a
    SageMaker production variant or an Azure ML deployment), reported as a route's; ``given_as``
    says where the name came from (``--route``)."""
    rule = ROUTE_NAME_RULE if given_as is None else f"{ROUTE_NAME_RULE} (given as {given_as})"
    return _check("route name", value, _ENDPOINT, rule)


def is_endpoint_name(value: str) -> bool:
    """Whether ``value`` is a valid endpoint name (a name found in a cloud may not be)."""
    return _ENDPOINT.fullmatch(value) is not None


_NOT_IN_NAMES = re.compile(r"[^a-z0-9]+")


def route_name_of(slot: str) -> str:
    """The route name of a serving slot a cloud names (a SageMaker production variant, a
    Databricks served entity): the slot's own name where Mintaka can use it, as it is for every
    slot Mintaka makes, else one derived from it. Lower case, every run of other characters a
    dash, ``v-`` before a leading digit, at most 32 characters: SageMaker's default
    ``AllTraffic`` is ``alltraffic``, a served entity ``churn_model-1`` is ``churn-model-1``."""
    try:
        return validate_route_name(slot)
    except InvalidName:
        pass
    derived = _NOT_IN_NAMES.sub("-", slot.lower()).strip("-")
    if not derived[:1].isalpha():
        derived = f"v-{derived}".rstrip("-")
    derived = derived[:32].rstrip("-")
    if len(derived) < 3:
        derived = f"{derived}-slot"
    return validate_route_name(derived)


def route_names_of(slots: Iterable[str], what: str = "serving slot") -> dict[str, str]:
    """Route name -> slot name for one endpoint's slots; two slots that would read as one
    route are refused rather than confused."""
    routes: dict[str, str] = {}
    for slot in slots:
        route = route_name_of(slot)
        if route in routes:
            raise InvalidName(what, slot, f"reads as route {route!r}, as {routes[route]!r} does")
        routes[route] = slot
    return routes


def check_name_map(
    names: dict[str, str],
    what: str,
    rule: Callable[[object], str],
    cloud_name: re.Pattern[str],
    *,
    ignore_case: bool = False,
) -> dict[str, str]:
    """A backend setting that maps Mintaka names to cloud names Mintaka cannot use (a SageMaker
    group ``ChurnModel``), checked one to one: each key passes ``rule``, each value matches
    ``cloud_name`` and is no name Mintaka could use itself (it would be reachable under two
    names), and no two keys share a value (compared without case where the cloud's names are
    case-insensitive, as ``mintaka_name_in`` then reads them). Raises ``ValueError``."""
    for mintaka, theirs in names.items():
        rule(mintaka)
        if not cloud_name.match(theirs):
            raise ValueError(f"{theirs!r} is not a valid {what} name in the cloud")
        try:
            rule(theirs)
        except InvalidName:
            continue
        raise ValueError(f"{what} {theirs!r} is a valid Mintaka name already: use it as is")
    values = {v.lower() if ignore_case else v for v in names.values()}
    if len(values) != len(names):
        raise ValueError(f"two Mintaka names map to one {what}")
    return names


def mintaka_name_in(names: dict[str, str], theirs: str, *, ignore_case: bool = False) -> str:
    """The Mintaka name that ``names`` maps to cloud name ``theirs``; ``theirs`` if none does.
    ``ignore_case`` for a cloud whose names are case-insensitive (SageMaker writes them lower
    case in ARNs)."""
    wanted = theirs.lower() if ignore_case else theirs
    for mintaka, mapped in names.items():
        if (mapped.lower() if ignore_case else mapped) == wanted:
            return mintaka
    return theirs


def validate_alias(value: object) -> str:
    """Return ``value`` if it is a valid, non-reserved alias."""
    alias = _check("alias", value, _ALIAS, ALIAS_RULE)
    if alias in RESERVED_ALIASES:
        raise InvalidName("alias", value, ALIAS_RULE)
    return alias


_VERSION_LIKE = re.compile(r"v[0-9]+")


def validate_new_alias(value: object) -> str:
    """:func:`validate_alias`, and not ``v`` followed by digits, which Unity Catalog and MLflow
    refuse as an alias (it reads as a version). An alias that already exists stays readable and
    deletable under :func:`validate_alias`."""
    alias = validate_alias(value)
    if _VERSION_LIKE.fullmatch(alias):
        raise InvalidName("alias", value, f"{ALIAS_RULE}, not v followed by digits")
    return alias


def validate_tag(key: object, value: object) -> tuple[str, str]:
    """Return the pair if the key and value are valid for a tag on every cloud."""
    _check("tag key", key, _TAG_KEY, TAG_KEY_RULE)
    if not isinstance(value, str) or len(value) > 256 or not value.isprintable():
        raise InvalidName("tag value", value, TAG_VALUE_RULE)
    return str(key), value


# What can forge a line of a log or report that prints a name: line and paragraph separators
# (with the control characters, Cc), and the bidirectional overrides and isolates that make text
# read in another order than it is stored. A lone surrogate (Cs: what Python makes of a byte
# that is not UTF-8 in argv, the environment or a file name) has no encoding to store or print.
# Other format characters (ZWNJ and ZWJ are part of the spelling of names in many scripts) and
# every kind of space are part of real names.
_FORGING_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


def forging_character(text: str) -> str | None:
    """The first character of ``text`` that could forge a line in a log or report printing it,
    or make it read in another order than stored (a control character, a line or paragraph
    separator, a bidirectional override or isolate), or that cannot be written as UTF-8 (a lone
    surrogate); None when there is none. The rule for every free-form name Mintaka prints:
    identities, dataset names."""
    return next(
        (c for c in text if unicodedata.category(c) in _FORGING_CATEGORIES or c in _BIDI_CONTROLS),
        None,
    )


def _check_free_form(kind: str, value: object, rule: str) -> str:
    """``value`` if it is a free-form name Mintaka prints: not blank, at most 256 characters,
    with no character that could forge a printed line (see :func:`forging_character`), and no
    blanks around it. ``" train"`` would print as ``train`` does yet name another; it is
    refused rather than trimmed, so a name stored is the name given."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > 256
        or forging_character(value) is not None
    ):
        raise InvalidName(kind, value, rule)
    if value != value.strip():
        raise InvalidName(kind, value, f"surrounding blanks are not part of a name: {rule}")
    return value


def validate_dataset_name(value: object) -> str:
    """Return ``value`` if it is a valid dataset name: free-form (a dataset is named by its
    owner, not by a cloud), but not blank, at most 256 characters, with no character that
    could forge a printed line (see :func:`forging_character`) and no surrounding blanks."""
    return _check_free_form("dataset name", value, DATASET_NAME_RULE)


def validate_experiment_name(value: object) -> str:
    """Return ``value`` if it is a valid experiment name: free-form like a dataset name, and
    under the same rule, as ``runs list``, lineage labels and audit events print it."""
    return _check_free_form("experiment name", value, EXPERIMENT_NAME_RULE)


def validate_version(value: object) -> int:
    """Return a positive version number; strings of digits are accepted."""
    if isinstance(value, bool):
        raise InvalidName("version", value, "a positive integer")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if not isinstance(value, int) or not 1 <= value < 2**31:  # an INTEGER column everywhere
        raise InvalidName("version", value, "a positive integer")
    return value


ModelName = Annotated[str, AfterValidator(validate_model_name)]
EndpointName = Annotated[str, AfterValidator(validate_endpoint_name)]
RouteName = Annotated[str, AfterValidator(validate_route_name)]
Alias = Annotated[str, AfterValidator(validate_alias)]


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` into (name, version, alias)."""
    if not isinstance(ref, str):
        raise InvalidName("model reference", ref, "NAME, NAME:VERSION or NAME@ALIAS")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return validate_model_name(name), None, validate_alias(alias)
    if ":" in ref:
        name, _, version = ref.partition(":")
        return validate_model_name(name), validate_version(version), None
    return validate_model_name(ref), None, None
