"""``mintaka datasets ...``: list and show the recorded dataset versions, whose ids the
``--dataset`` options of ``models register`` and ``adopt model`` take."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mintaka.cli.output import emit_json, fields, table
from mintaka.cli.state import platform

if TYPE_CHECKING:
    from mintaka.domain.runs import DatasetVersion
    from mintaka.platform import Platform

app = typer.Typer(help="Recorded dataset versions (the ids --dataset takes).", no_args_is_help=True)


def _recorded(plat: Platform, name: str | None) -> list[DatasetVersion]:
    """Every recorded dataset version (only ``name``'s when given), by name, oldest first."""
    return plat.list_datasets() if name is None else plat.find_datasets(name)


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


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only this dataset's versions.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts (profiles: datasets show).")
    ] = False,
) -> None:
    """List recorded dataset versions by name, oldest first."""
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
    dataset_id: Annotated[str, typer.Argument(metavar="DATASET_ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show one dataset version: where it was read, its digest, schema and profiled columns."""
    dataset = platform(ctx).get_dataset(dataset_id)
    if as_json:
        emit_json(dataset)
        return
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
