"""scikit-learn models saved with skops, byte for byte reproducible.

skops writes a zip archive whose entries carry the current time and whose array files are named
after Python object ids, so the same model saved twice gives two digests. :func:`dumps` rewrites
the archive with a fixed timestamp, array files and object ids renumbered in order of first
appearance in the schema, and sorted entries, so the same fitted model always has the same
artifact digest. :func:`load` only admits the types skops trusts by default plus the ones
named by the caller.

An artifact of this flavor holds ``model.skops`` at its top, or is a single ``.skops`` file under
any name (a file and a directory holding only it have the same digest, so both are accepted).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from mintaka.errors import ValidationError

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILENAME = "model.skops"
SUFFIX = ".skops"
SCHEMA = "schema.json"
NEEDS = f"{FILENAME} at the artifact's top, or an artifact that is a single {SUFFIX} file"


def model_file(paths: Collection[str]) -> str | None:
    """Which of an artifact's files (relative paths) holds the model: ``model.skops`` at the
    top, else the artifact's only file when it is a ``.skops`` file; None when neither."""
    if FILENAME in paths:
        return FILENAME
    if len(paths) == 1:
        (only,) = paths
        if "/" not in only and only.lower().endswith(SUFFIX):
            return only
    return None


def dumps(model: Any) -> bytes:
    from skops.io import dumps as skops_dumps

    raw = skops_dumps(model)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        schema = json.loads(source.read(SCHEMA))
        files = set(source.namelist()) - {SCHEMA}
        renames: dict[str, str] = {}
        ids: dict[int, int] = {}

        def collect_ids(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("__id__"), int):
                    ids.setdefault(node["__id__"], len(ids) + 1)
                for value in node.values():
                    collect_ids(value)
            elif isinstance(node, list):
                for value in node:
                    collect_ids(value)

        def rename(node: Any) -> Any:
            if isinstance(node, dict):
                return {key: rename(value) for key, value in node.items()}
            if isinstance(node, list):
                return [rename(value) for value in node]
            if isinstance(node, str) and node in files:
                if node not in renames:
                    renames[node] = f"{len(renames):06d}{Path(node).suffix}"
                return renames[node]
            if isinstance(node, int) and not isinstance(node, bool) and node in ids:
                return ids[node]  # object ids (memo keys and references to them)
            return node

        collect_ids(schema)

        schema = rename(schema)
        unreferenced = files - set(renames)
        if unreferenced:
            raise ValidationError(f"skops archive holds unreferenced files: {sorted(unreferenced)}")
        entries = {SCHEMA: json.dumps(schema, sort_keys=True).encode()}
        entries.update({renames[name]: source.read(name) for name in files})
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name])
    return out.getvalue()


def save(model: Any, directory: Path) -> Path:
    """Write ``model`` to ``directory/model.skops`` and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FILENAME).write_bytes(dumps(model))
    return directory


def _model_path(directory: Path) -> Path:
    """The skops file to load from ``directory`` (or ``directory`` itself, a file); a
    ValidationError naming what the flavor needs when there is none, rather than the OSError
    of opening a file that is not there."""
    if not directory.is_dir():
        return directory
    if (directory / FILENAME).is_file():
        return directory / FILENAME
    entries = list(directory.iterdir())
    name = model_file([entries[0].name]) if len(entries) == 1 and entries[0].is_file() else None
    if name is None:
        raise ValidationError(f"sklearn artifact at {directory} lacks {NEEDS}")
    return directory / name


def require_archive(path: Path) -> None:
    """Refuse a model file that is not a skops archive (a zip holding ``schema.json``): a file
    named ``*.skops`` is taken for one, and skops fails on any other with a raw zip error."""
    try:
        with zipfile.ZipFile(path) as archive:
            if SCHEMA in archive.namelist():
                return
    except zipfile.BadZipFile:
        pass
    raise ValidationError(
        f"sklearn model {path} is not a skops archive (a zip file holding {SCHEMA}); save the "
        "model with skops, or give the artifact flavor 'opaque' to store it without serving"
    )


def load(directory: Path, trusted: Sequence[str] = ()) -> Any:
    """Load a model saved by :func:`save`, refusing any type not explicitly trusted."""
    from skops.io import get_untrusted_types
    from skops.io import load as skops_load

    path = _model_path(directory)
    require_archive(path)
    untrusted = sorted(set(get_untrusted_types(file=path)) - set(trusted))
    if untrusted:
        raise ValidationError(f"model at {path} needs untrusted types: {', '.join(untrusted)}")
    return skops_load(path, trusted=list(trusted))
