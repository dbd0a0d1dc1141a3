"""Reading and writing batch-scoring files: CSV with the standard library, Parquet with pyarrow."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mintaka.errors import ValidationError
from mintaka.files import open_atomic

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValidationError(
            f"{path}: unknown format {path.suffix!r}; use .csv or .parquet"
        ) from None


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ValidationError(f"input file {path} does not exist")
    if file_format(path) == "csv":
        with path.open(newline="") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` atomically: a partial output file never appears under ``path``."""
    if file_format(path) == "csv":
        with open_atomic(path, "w", durable=False, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with open_atomic(path, "wb", durable=False) as binary:
            pq.write_table(pa.Table.from_pylist(rows), binary)
