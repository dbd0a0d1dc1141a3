"""Reading and writing batch-scoring files: CSV with the standard library, Parquet with pyarrow."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

from mintaka.errors import ValidationError
from mintaka.files import open_atomic

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

BATCH_SCORED: Final = "(batch)"
"""The ``endpoint`` of the predictions batch scoring logs (their ``route`` is the batch id): no
endpoint can be named so, so an endpoint's metrics, capture and monitors never read batch-scored
rows, and lineage never takes an endpoint's prediction for a batch's."""

LOGGED_AS_BATCH: Final = "batch"
"""The ``endpoint`` batch scoring logged its predictions under before :data:`BATCH_SCORED`; an
endpoint may be named so too, so such a row is batch-scored only where lineage records its
batch."""


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValidationError(
            f"{path}: unknown format {path.suffix!r}; use .csv or .parquet"
        ) from None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV (UTF-8, with a header) or Parquet file; a malformed file is a
    ``ValidationError`` naming it, before anything is scored."""
    if not path.exists():
        raise ValidationError(f"input file {path} does not exist")
    if file_format(path) == "csv":
        return _csv_rows(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(f"{path} is not a readable Parquet file: {exc}") from None
    _check_columns(path, table.column_names)
    return list(table.to_pylist())


def column_names(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file, read from its header or schema only."""
    if file_format(path) == "csv":
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                return list(csv_reader(path, handle).fieldnames or ())
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{path} is not UTF-8 text: {exc}") from None
        except csv.Error as exc:
            raise ValidationError(f"{path} is not a readable CSV file: {exc}") from None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(f"{path} is not a readable Parquet file: {exc}") from None


def csv_reader(path: Path, handle: IO[str]) -> csv.DictReader[str]:
    """A ``DictReader`` over ``handle`` (the CSV file ``path``) whose header names each column
    once: a repeated name would hand every row only its last column of that name."""
    reader = csv.DictReader(handle)
    _check_columns(path, reader.fieldnames or ())
    return reader


def _check_columns(path: Path, names: Iterable[str]) -> None:
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise ValidationError(f"{path}: column {', '.join(map(repr, repeated))} named twice")


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        # utf-8-sig: the byte-order mark a spreadsheet writes is not part of the first column name
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv_reader(path, handle)
            for row in reader:
                if None in row:  # csv puts the fields beyond the header under the key None
                    raise ValidationError(
                        f"{path}, line {reader.line_num}: more fields than the header names"
                    )
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise ValidationError(f"{path} is not a readable CSV file: {exc}") from None
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` atomically: a partial output file never appears under ``path``."""
    if file_format(path) == "csv":
        with open_atomic(path, "w", durable=False, encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with open_atomic(path, "wb", durable=False) as binary:
            pq.write_table(pa.Table.from_pylist(rows), binary)
