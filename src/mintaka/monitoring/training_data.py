"""A dataset version's file read back: where its URI points, and that it still holds the bytes
registered.

A dataset is registered by the digest of its bytes, but its file stays where it was: a newer
file written to the same path is another dataset version, and a model trained on the old one must
not be judged against the new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.domain.runs import DatasetVersion


def file_path(uri: str) -> Path | None:
    """The local path a ``file:`` URI names, its percent-encoding decoded (``Path.as_uri``
    writes a space as ``%20``); ``None`` for a URI of any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def registered_file(dataset: DatasetVersion) -> Path:
    """The file of ``dataset``, checked to hold the bytes it was registered with: a
    ``ValidationError`` naming the dataset version when it is not on this machine, is gone, or
    was rewritten since."""
    from mintaka.artifacts.digest import manifest_of

    named = f"dataset {dataset.id} ({dataset.name})"
    path = file_path(dataset.uri)
    if path is None:
        raise ValidationError(f"{named} is at {dataset.uri}, not a file on this machine")
    if not path.is_file():
        raise ValidationError(f"the file of {named} is gone from {path}")
    if manifest_of(path).digest != dataset.digest:
        raise ValidationError(
            f"{path} no longer holds {named}: it was rewritten after it was registered (as "
            f"{dataset.digest}); restore that file to measure against it"
        )
    return path
