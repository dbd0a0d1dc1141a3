"""A dataset version's file read back: where its URI points, that it still holds the bytes
registered, and a seeded uniform sample of its rows, read as a stream.

A dataset is registered by the digest of its bytes, but its file stays where it was: a newer
file written to the same path is another dataset version, and a model trained on the old one must
not be judged against the new one. A sample of the rows stands for the whole file (not its first
rows, which a file sorted by time or id would bias), without holding the file in memory.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mintaka.errors import NotALockFile, ValidationError
from mintaka.files import file_lock, file_path, newest_change, remove_entry

if TYPE_CHECKING:
    from mintaka.domain.runs import DatasetVersion

log = logging.getLogger(__name__)
SAMPLE_ROWS = 10_000  # the most rows of a training file scored for a prediction reference
SAMPLE_SEED = 0  # the same file gives the same sample on every run
_PARQUET_BATCH = 8_192  # rows of a Parquet file read at a time


COPIES = Path("tmp") / "datasets"  # under the Mintaka home: where the checked copies are made
STALE_COPY_SECONDS = 3600.0  # a copy no process holds, unchanged this long, is swept
_HELD = ".held"  # the lock file of a copy: locked while its process uses the copy


@contextmanager
def registered_copy(dataset: DatasetVersion, home: Path) -> Iterator[Path]:
    """A private copy of the file of ``dataset``, hashed as it is copied and checked to hold the
    bytes it was registered with; removed on leaving the context. The check and the use are one
    read of the file: a file rewritten after the check cannot be used in place of the bytes
    checked. A ``ValidationError`` naming the dataset version when its file is not on this
    machine, is gone, was rewritten since it was registered, or cannot be read or copied (an
    unreadable file, no room left for the copy).

    The copy is made in a directory of its own under ``<home>/tmp/datasets``, locked while this
    process uses it; copies a stopped process left there are swept first (see
    :func:`sweep_copies`), so they never pile up, nor hold data outside the Mintaka home."""
    from mintaka.artifacts.digest import Manifest, ManifestEntry, copy_hashed

    named = f"dataset {dataset.id} ({dataset.name})"
    path = file_path(dataset.uri)
    if path is None:
        raise ValidationError(f"{named} is at {dataset.uri}, not a file on this machine")
    gone = ValidationError(f"the file of {named} is gone from {path}")
    try:
        present = path.is_file()
    except OSError as exc:  # a directory on its path that cannot be searched
        raise ValidationError(
            f"the file of {named} at {path} cannot be checked: {exc.strerror or exc}"
        ) from None
    if not present:
        raise gone
    sweep_copies(home)
    with _held_directory(home, named) as private:
        copy = private / path.name  # the same suffix: the same format
        try:
            size, sha256 = copy_hashed(path, copy, sync=False)
        except (FileNotFoundError, IsADirectoryError):
            raise gone from None
        except OSError as exc:  # unreadable, or no room for the copy
            raise ValidationError(
                f"the file of {named} at {path} could not be copied to {private} to be "
                f"checked: {exc.strerror or exc}"
            ) from None
        if Manifest((ManifestEntry(path.name, size, sha256),)).digest != dataset.digest:
            raise ValidationError(
                f"{path} no longer holds {named}: it was rewritten after it was registered (as "
                f"{dataset.digest}); restore that file to measure against it"
            )
        yield copy


@contextmanager
def _held_directory(home: Path, named: str) -> Iterator[Path]:
    """A new private directory under ``<home>/tmp/datasets``, locked while in use and removed
    (with what is in it) on leaving the context; a ``ValidationError`` naming ``named`` when it
    cannot be made."""
    root = home / COPIES
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Path(tempfile.mkdtemp(prefix="copy-", dir=root))
    except OSError as exc:
        raise ValidationError(
            f"no private copy of {named} can be made under {root}: {exc.strerror or exc}"
        ) from None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(private / _HELD, shared=True))
        except OSError as exc:
            shutil.rmtree(private, ignore_errors=True)
            raise ValidationError(
                f"no private copy of {named} can be made under {root}: {exc.strerror or exc}"
            ) from None
        try:
            yield private
        finally:  # removed while still held: no sweep takes it for a left copy meanwhile
            shutil.rmtree(private, ignore_errors=True)


def sweep_copies(home: Path, min_age_seconds: float = STALE_COPY_SECONDS) -> int:
    """Remove the checked copies under ``<home>/tmp/datasets`` that a process stopped before it
    could (killed, out of memory); returns how many it removed. A copy goes only when no
    process holds its lock and nothing in it changed for ``min_age_seconds``: one being made or
    used, in this process or another, stays.

    The sweep only tidies up, so it never fails its caller (a monitoring pass, a data gate): an
    entry whose age cannot be read or that cannot be removed is left with a warning, and a
    directory of copies that cannot be listed is not swept this time."""
    root = home / COPIES
    try:
        entries = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError as exc:
        log.warning("checked copies under %s not swept, it cannot be listed: %s", root, exc)
        return 0
    now = time.time()
    cutoff = now - min_age_seconds
    removed = 0
    for entry in entries:
        try:
            newest = newest_change(entry, now)  # None: gone meanwhile
            if newest is not None and newest <= cutoff and _remove_unheld(entry):
                removed += 1
        except OSError as exc:  # one entry that cannot be read keeps no other from going
            log.warning("left %s among the checked copies, it cannot be swept: %s", entry, exc)
    return removed


def _remove_unheld(entry: Path) -> bool:
    """Remove ``entry`` unless a process holds its lock; whether it is gone now.

    The lock file is opened as it is, never created nor followed, and without waiting: a
    directory whose lock is missing, a link or anything but a plain file is not a copy a live
    process holds (a named pipe there would hang the sweep, a link would have it touch a file
    outside the Mintaka home), so it goes."""
    if entry.is_symlink() or not entry.is_dir():
        return remove_entry(entry)
    with contextlib.ExitStack() as held:
        try:
            if not held.enter_context(file_lock(entry / _HELD, wait=False, create=False)):
                return False  # in use
        except (FileNotFoundError, NotADirectoryError, NotALockFile):
            pass  # not a lock a live process made: the copy goes
        return remove_entry(entry)


def sample_rows(
    path: Path, size: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED
) -> list[dict[str, Any]]:
    """A uniform sample of up to ``size`` rows of the CSV or Parquet file ``path``, in file
    order, the same for the same file and ``seed``; the file is read once, as a stream, so only
    the sample is held."""
    return _sample(_stream_rows(path), size, seed)


@dataclass(frozen=True)
class FeatureSample:
    """A uniform sample of the rows of a file a model can score (see :func:`feature_sample`),
    and how many rows of the file were left out as ones it cannot."""

    rows: list[dict[str, Any]]
    skipped: int
    read: int


def feature_sample(
    path: Path,
    kinds: Mapping[str, str],
    size: int = SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
) -> FeatureSample:
    """A uniform sample of up to ``size`` of the rows of ``path`` that hold every feature of
    ``kinds`` (feature -> ``"float"``, ``"int"`` or ``"text"``), each as its kind: a number as
    a number (a CSV holds only text), not text a model would score as text. A row missing a
    feature, or whose number is not a finite number (a whole one for ``"int"``), is skipped and
    counted: one empty cell in a training file must not fail the scoring of all the others."""
    read = 0
    skipped = 0

    def usable() -> Iterator[dict[str, Any]]:
        nonlocal read, skipped
        for row in _stream_rows(path):
            read += 1
            typed = _typed_row(row, kinds)
            if typed is None:
                skipped += 1
            else:
                yield typed

    rows = _sample(usable(), size, seed)
    return FeatureSample(rows, skipped, read)


class SampleCache:
    """The samples of registered files drawn within one pass of the monitoring runner: the
    versions (and signals) judged against one training file, with the same inputs, copy, hash
    and sample it once. Each pass starts with none, so a file rewritten between passes is
    caught, and sweeps the copies a stopped pass left (see :func:`sweep_copies`). A checked copy
    (see :func:`registered_copy`) is kept only while its sample is drawn: the samples are what
    the pass goes on to use, so it needs room for one training file at a time, not for every
    file it judges."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._samples: dict[tuple[Any, ...], FeatureSample] = {}
        sweep_copies(home)

    def __enter__(self) -> SampleCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the samples of this pass."""
        self._samples.clear()

    def feature_sample(
        self,
        dataset: DatasetVersion,
        kinds: Mapping[str, str],
        size: int = SAMPLE_ROWS,
        seed: int = SAMPLE_SEED,
    ) -> FeatureSample:
        """:func:`feature_sample` of the :func:`registered_copy` of ``dataset``, drawn once for
        each set of feature kinds, size and seed; the copy is removed once the sample is drawn
        (a failure is not kept). Each call gets its own copy of the rows: a model that edits the
        rows it scores in place must not change what the next version of the pass is scored
        on."""
        key = (dataset.uri, dataset.digest, tuple(sorted(kinds.items())), size, seed)
        if key not in self._samples:
            with registered_copy(dataset, self._home) as checked:
                self._samples[key] = feature_sample(checked, kinds, size, seed)
        drawn = self._samples[key]
        return FeatureSample([dict(row) for row in drawn.rows], drawn.skipped, drawn.read)


def _typed_row(row: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Any] | None:
    """``row`` with each feature of ``kinds`` as its kind, or None when one is missing or is not
    a value of its kind."""
    typed = dict(row)
    for feature, kind in kinds.items():
        value = _typed_value(row.get(feature), kind)
        if value is None:
            return None
        typed[feature] = value
    return typed


def _typed_value(value: Any, kind: str) -> Any:
    """``value`` as a ``kind`` value, or None when it is missing or is not one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if kind == "text":
        return value
    from mintaka.flavors.loader import number_of

    number = number_of(value)
    if number is None or not math.isfinite(number):
        return None
    if kind == "int":
        return int(number) if number.is_integer() else None
    return number


def _sample(rows: Iterable[dict[str, Any]], size: int, seed: int) -> list[dict[str, Any]]:
    """A uniform sample of up to ``size`` of ``rows``, in their order, the same for the same
    rows and ``seed`` (reservoir sampling, Li's algorithm L: it draws at each row it keeps, not
    at every row)."""
    rng = random.Random(seed)
    kept: list[tuple[int, dict[str, Any]]] = []
    weight = 1.0
    upcoming = size
    for index, row in enumerate(rows):
        if index < size:
            kept.append((index, row))
            if index == size - 1:
                weight, upcoming = _next_keep(rng, size, weight, index)
        elif index == upcoming:
            kept[rng.randrange(size)] = (index, row)
            weight, upcoming = _next_keep(rng, size, weight, index)
    return [row for _, row in sorted(kept, key=lambda pair: pair[0])]


def _next_keep(rng: random.Random, size: int, weight: float, index: int) -> tuple[float, int]:
    """The next weight of algorithm L and the index of the next row it keeps after ``index``."""
    weight *= math.exp(math.log(_open_unit(rng)) / size)
    if weight >= 1.0:
        return weight, index + 1
    return weight, index + 1 + math.floor(math.log(_open_unit(rng)) / math.log1p(-weight))


def _open_unit(rng: random.Random) -> float:
    """A uniform draw from the open interval (0, 1), whose logarithm is finite."""
    while True:
        drawn = rng.random()
        if drawn > 0.0:
            return drawn


def _stream_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a CSV (UTF-8, with a header) or Parquet file, one at a time; a malformed
    file is a ``ValidationError`` naming it."""
    from mintaka.serving.batch import file_format

    if file_format(path) == "csv":
        yield from _csv_stream(path)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(f"{path} is not a readable Parquet file: {exc}") from None


def _csv_stream(path: Path) -> Iterator[dict[str, Any]]:
    from mintaka.serving.batch import csv_reader

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv_reader(path, handle)
            for row in reader:
                if None in row:
                    raise ValidationError(
                        f"{path}, line {reader.line_num}: more fields than the header names"
                    )
                yield row
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise ValidationError(f"{path} is not a readable CSV file: {exc}") from None
