"""``mintaka datasets ...``: record, list and show dataset versions, whose ids the
``--dataset`` options of ``models register`` and ``adopt model`` take."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mintaka.cli.output import console, emit_json, fields, table
from mintaka.cli.state import platform
from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.domain.runs import DatasetVersion
    from mintaka.platform import Platform

app = typer.Typer(help="Recorded dataset versions (the ids --dataset takes).", no_args_is_help=True)


def _recorded(plat: Platform, name: str | None) -> list[DatasetVersion]:
    """Every recorded dataset version (only ``name``'s when given), by name, oldest first."""
    return plat.list_datasets() if name is None else plat.find_datasets(name)


def _resolve(plat: Platform, ref: str) -> tuple[DatasetVersion, int]:
    """The dataset version ``ref`` names: the one with that id, else the latest version of the
    dataset of that name (as ``lineage downstream`` reads a name), with how many it has (0 for
    an id)."""
    from mintaka.errors import NotFound

    try:
        return plat.get_dataset(ref), 0
    except NotFound:
        named = plat.find_datasets(ref)
    if not named:
        raise NotFound(f"no dataset has the id or name {ref!r} (datasets list shows them)")
    return named[-1], len(named)


def _columns(dataset: DatasetVersion) -> list[str]:
    """The dataset's columns: its declared schema, else those its profile found."""
    if dataset.schema_:
        return list(dataset.schema_)
    return list((dataset.profile or {}).get("features", {}))


def _rows(dataset: DatasetVersion) -> int | None:
    """The declared row count, else the one its profile counted."""
    if dataset.rows is not None:
        return dataset.rows
    counted = (dataset.profile or {}).get("rows")
    return counted if isinstance(counted, int) else None


def _summary(dataset: DatasetVersion) -> dict[str, Any]:
    """The record without its profile (which can be large), and whether it has one."""
    summary = dataset.model_dump(mode="json", by_alias=True, exclude={"profile"})
    summary["profiled"] = dataset.profile is not None
    return summary


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Dataset name.")],
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="File or directory the dataset is read from."),
    ],
    categorical: Annotated[
        list[str] | None,
        typer.Option(
            "--categorical",
            metavar="COLUMN",
            help="Profile this column as categories even if its values read as numbers "
            "(repeatable).",
        ),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile/--no-profile", help="Profile a CSV or Parquet file (drift's reference)."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Record a version of dataset NAME by the digest of PATH's bytes, and print its id.

    The same bytes under the same name are the same version: registering them again prints the
    id already recorded. A CSV or Parquet file is profiled as drift monitors' reference.
    """
    from mintaka.domain.names import validate_dataset_name

    validate_dataset_name(name)
    if not path.exists():
        raise ValidationError(f"dataset path does not exist: {path}")
    columns = categorical or []
    plat = platform(ctx)
    known = {d.id for d in plat.find_datasets(name)}
    dataset = plat.register_dataset(name, path, profile=profile, categorical=columns)
    if as_json:
        emit_json(dataset)
    elif dataset.id in known:
        console.print(f"dataset {escape(name)} is already recorded as [bold]{dataset.id}[/]")
    else:
        console.print(f"recorded dataset {escape(name)} as [bold]{dataset.id}[/]")


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only this dataset's versions.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts (profiles: datasets show).")
    ] = False,
) -> None:
    """List recorded dataset versions, sorted by name, each name's oldest first."""
    found = _recorded(platform(ctx), name)
    if as_json:
        emit_json([_summary(d) for d in found])
        return
    table(
        "datasets",
        ["id", "name", "rows", "columns", "profiled", "digest", "created"],
        [
            (
                d.id,
                d.name,
                _rows(d),
                len(_columns(d)) or None,
                "yes" if d.profile is not None else "",
                d.digest.removeprefix("sha256:")[:12],
                d.created_at.isoformat(),
            )
            for d in found
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="DATASET_ID|NAME", help="A dataset id, or a name for its latest version."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show one dataset version: where it was read, its digest, schema and profiled columns."""
    dataset, versions = _resolve(platform(ctx), ref)
    if as_json:
        emit_json(dataset)
        return
    if versions:
        which = "its only version" if versions == 1 else f"the latest of {versions} versions"
        console.print(f"{escape(dataset.name)}: {which}, {dataset.id}")
    fields(
        dataset.id,
        [
            ("name", dataset.name),
            ("uri", dataset.uri),
            ("digest", dataset.digest),
            ("rows", _rows(dataset)),
            ("schema", dataset.schema_),
            ("columns", _columns(dataset)),
            ("profiled", "yes" if dataset.profile is not None else "no"),
            ("created", dataset.created_at.isoformat()),
        ],
    )
