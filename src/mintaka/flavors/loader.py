"""Loading a registered model for serving: verify the bytes, refuse unsafe formats, wrap it.

Two flavors are served:

- ``sklearn``: a directory holding ``model.skops``, or a single ``.skops`` file (see
  :mod:`mintaka.flavors.sklearn`), loaded with skops and an explicit list of trusted types, never
  with pickle.
- ``pyfunc``: a directory holding ``pyfunc.json`` naming an importable function
  (``{"function": "package.module:predict"}``) that takes a list of row dicts and returns a list
  of predictions. The code comes from the installed environment, not from the artifact.

A version registered with one of these flavors must hold the file it needs
(:func:`require_flavor_files`), so a mismatch is refused when it is registered, not on every load.

A pickle-family file (``.pkl``, ``.pickle``, ``.joblib``, ``.pt``, ``.pth``, ``.dill``,
``.cloudpickle`` or a file starting with a pickle protocol header) anywhere in the artifact is
refused unless the caller explicitly allows pickle (policy decides who may).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mintaka.domain.registry import Flavor
from mintaka.errors import MintakaError, ValidationError

PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".dill", ".cloudpickle"})
PYFUNC_FILE = "pyfunc.json"
# The flavors load_predictor loads; any other is stored and governed, never served by Mintaka.
SERVED_FLAVORS = frozenset({Flavor.SKLEARN, Flavor.PYFUNC})


class UnsafeArtifact(ValidationError):
    """The artifact holds a format that can run arbitrary code when loaded."""


def pickle_files(content: Path) -> list[str]:
    found = []
    for path in sorted(content.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix.lower() in PICKLE_SUFFIXES:
            found.append(path.relative_to(content).as_posix())
            continue
        with path.open("rb") as handle:
            head = handle.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            found.append(path.relative_to(content).as_posix())
    return found


def flavor_of_files(paths: Collection[str]) -> Flavor:
    """The flavor an artifact's files (relative paths) show: ``sklearn`` for a skops model (a
    ``model.skops`` at the top, or a single ``.skops`` file), ``pyfunc`` for a ``pyfunc.json``,
    else ``opaque`` (stored and governed, never served)."""
    from mintaka.flavors import sklearn as sklearn_flavor

    if sklearn_flavor.model_file(paths) is not None:
        return Flavor.SKLEARN
    if PYFUNC_FILE in paths:
        return Flavor.PYFUNC
    return Flavor.OPAQUE


def detect_flavor(content: Path) -> Flavor:
    """The flavor the files of ``content`` (an artifact's directory, or a single file) show, as
    :func:`flavor_of_files`; only the top of a directory is looked at."""
    from mintaka.flavors.sklearn import FILENAME as SKOPS_FILE

    if not content.is_dir():
        return flavor_of_files([content.name] if content.is_file() else [])
    shown = [name for name in (SKOPS_FILE, PYFUNC_FILE) if (content / name).is_file()]
    if not shown:
        entries = list(content.iterdir())
        if len(entries) == 1 and entries[0].is_file():
            shown = [entries[0].name]
    return flavor_of_files(shown)


def require_flavor_files(paths: Collection[str], flavor: Flavor) -> None:
    """Refuse ``flavor`` for an artifact whose files (relative paths) lack the one it loads:
    such a version would be accepted, then fail on every load."""
    from mintaka.flavors import sklearn as sklearn_flavor

    if flavor is Flavor.SKLEARN and sklearn_flavor.model_file(paths) is None:
        needs = sklearn_flavor.NEEDS
    elif flavor is Flavor.PYFUNC and PYFUNC_FILE not in paths:
        needs = f"{PYFUNC_FILE} at the artifact's top"
    else:
        return
    listed = sorted(paths)
    holds = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
    raise ValidationError(
        f"flavor {flavor.value!r} needs {needs}; the artifact holds {holds} (register it with "
        f"the files the flavor needs, or as flavor 'opaque' to store it without serving)"
    )


def require_flavor_content(content: Path, paths: Collection[str], flavor: Flavor) -> None:
    """As :func:`require_flavor_files`, for bytes at hand (``content`` is the directory holding
    ``paths``): a skops model file must also be a skops archive."""
    from mintaka.flavors import sklearn as sklearn_flavor

    require_flavor_files(paths, flavor)
    model = sklearn_flavor.model_file(paths) if flavor is Flavor.SKLEARN else None
    if model is not None:
        sklearn_flavor.require_archive(content / model)


@dataclass(frozen=True)
class Predictor:
    """A loaded model: ``predict`` maps a batch of row dicts to one output per row."""

    flavor: Flavor
    features: tuple[str, ...]
    _predict: Callable[[list[dict[str, Any]]], list[Any]]

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        outputs = self._predict(rows)
        if len(outputs) != len(rows):  # the model's fault, not the caller's input
            raise MintakaError(f"model returned {len(outputs)} outputs for {len(rows)} rows")
        return outputs


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _plain_list(values: Any, ndarray: type[Any]) -> list[Any]:
    """Python values for a model's output column (numpy scalars would not serialise)."""
    if isinstance(values, ndarray) and values.dtype != object:
        return list(values.tolist())
    return [_plain(v) for v in values]


# A number as text: ASCII digits, no digit-group underscores (float() takes "1_0" as 10 and
# other scripts' digits too); NaN and infinity pass here and are refused as not finite.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII
)


def number_of(value: Any) -> float | None:
    """``value`` as a float when it is a number (not a bool) or the text of one (``_NUMBER``),
    else None: how a model input is read, wherever Mintaka reads one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _feature(value: Any) -> float:
    """One feature value as a float: a number (not a bool) or the text of one."""
    number = number_of(value)
    if number is None:
        raise ValueError(f"{value!r} is not a number")
    return number


def load_predictor(
    content: Path,
    flavor: Flavor,
    *,
    features: Sequence[str] = (),
    trusted_types: Sequence[str] = (),
    allow_pickle: bool = False,
) -> Predictor:
    """Load the model stored in ``content`` (an artifact's content directory)."""
    unsafe = pickle_files(content)
    if unsafe and not allow_pickle:
        raise UnsafeArtifact(
            f"artifact holds pickle-family files {unsafe}; loading them can run arbitrary code "
            "and the policy does not allow it"
        )
    if flavor is Flavor.SKLEARN:
        # numpy is imported here, when a model loads, so the control plane starts without it.
        import numpy as np

        from mintaka.flavors import sklearn as sklearn_flavor

        model = sklearn_flavor.load(content, trusted=trusted_types)
        names = tuple(features) or tuple(getattr(model, "feature_names_in_", ()))

        proba = getattr(model, "predict_proba", None)

        def predict(rows: list[dict[str, Any]]) -> list[Any]:
            columns = names or tuple(rows[0])
            if not names and len(columns) > 1:  # a JSON object's key order means nothing
                raise ValidationError(
                    "the model has no signature and no feature names, so the order of its "
                    "input columns is unknown: record its features in training order "
                    "(`mintaka models features NAME:VERSION a,b,c`, then restart `mintaka "
                    "serve`; new bytes take `mintaka models register ... --features a,b,c`)"
                )
            try:
                # An ndarray, not nested lists: scikit-learn's input checks on a list cost more
                # than a small model's prediction.
                matrix = np.array([[_feature(row[c]) for c in columns] for row in rows])
            except KeyError as exc:
                raise ValidationError(f"missing feature {exc.args[0]!r}") from None
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValidationError(f"features must be numbers: {exc}") from None
            if not np.isfinite(matrix).all():  # NaN, inf, or a number beyond a float's range
                raise ValidationError("features must be finite numbers")
            if proba is not None:
                return _plain_list(proba(matrix)[:, -1], np.ndarray)
            return _plain_list(model.predict(matrix), np.ndarray)

        return Predictor(flavor, names, predict)
    if flavor is Flavor.PYFUNC:
        spec_file = content / PYFUNC_FILE
        if not spec_file.exists():
            raise ValidationError(f"pyfunc artifact lacks {PYFUNC_FILE}")
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"{PYFUNC_FILE} is not JSON: {exc}") from None
        target = spec.get("function", "") if isinstance(spec, dict) else ""
        module_name, _, attribute = str(target).partition(":")
        if not module_name or not attribute:
            raise ValidationError(f"{PYFUNC_FILE} must name a function as 'module:function'")
        return Predictor(flavor, tuple(features), _pyfunc(module_name, attribute))
    raise ValidationError(f"flavor {flavor.value!r} cannot be served")


def _pyfunc(module_name: str, attribute: str) -> Callable[[list[dict[str, Any]]], list[Any]]:
    """The function a pyfunc artifact names, imported from the installed environment.

    Importing runs the module's code: whatever it raises (a missing module or dependency, an
    error at import) is reported as the artifact's, not as a crash of the caller."""
    target = f"{module_name}:{attribute}"
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        raise ValidationError(
            f"pyfunc function {target!r} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(function):
        raise ValidationError(f"pyfunc {target!r} is not a function")
    return lambda rows: list(function(rows))
