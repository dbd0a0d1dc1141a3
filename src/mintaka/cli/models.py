"""``mintaka models ...``: register, list, show, alias, tag, stage, archive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mintaka.cli.output import console, emit_json, fields, table
from mintaka.cli.state import platform

if TYPE_CHECKING:
    from mintaka.domain.registry import ModelVersion
    from mintaka.platform import Platform

app = typer.Typer(help="Register and manage model versions.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
FeaturesOpt = Annotated[
    str | None,
    typer.Option(
        help="Input columns in training order, comma-separated (the signature; needed to serve "
        "a model that does not name its features)."
    ),
]


def _show(version: ModelVersion) -> None:
    fields(
        f"{version.name}:{version.version}",
        [
            ("id", version.id),
            ("digest", version.artifact_digest),
            ("artifact", version.artifact_uri),
            ("flavor", version.flavor.value),
            ("stage", version.stage.value),
            ("risk tier", version.risk_tier.value),
            ("owner", version.owner),
            ("aliases", version.aliases),
            ("tags", version.tags),
            ("params", version.params),
            ("metrics", version.metrics),
            ("run", version.run_id),
            ("code commit", version.code_commit),
            ("datasets", version.dataset_ids),
            ("backend", version.backend),
            ("created", version.created_at.isoformat()),
        ],
    )


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    artifact: Annotated[str, typer.Option("--artifact", help="File or directory to register.")],
    run: Annotated[str | None, typer.Option("--run", help="Run that produced it.")] = None,
    tier: Annotated[
        str | None, typer.Option("--tier", help="Risk tier: low, medium, high.")
    ] = None,
    flavor: Annotated[
        str,
        typer.Option(
            help="sklearn (model.skops, or a single .skops file), pyfunc (pyfunc.json) or opaque."
        ),
    ] = "opaque",
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Dataset id it was trained on (see datasets list)."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE, repeatable.")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="KEY=VALUE, repeatable: an evaluation metric, e.g. auc=0.81, that the policy's "
            "evaluation thresholds are checked against.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    features: FeaturesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a new version of NAME from an artifact."""
    from mintaka.domain.registry import features_signature

    tags = dict(_pair(t) for t in tag or [])
    metrics: dict[str, float] = {}
    for key, value in (_metric(m) for m in metric or []):
        if key in metrics:
            raise typer.BadParameter(f"{key!r} is given twice", param_hint="--metric")
        metrics[key] = value
    signature = None if features is None else features_signature(features)
    version = platform(ctx).register_model(
        name,
        artifact,
        run_id=run,
        dataset_ids=dataset or [],
        tier=tier,
        flavor=flavor,
        tags=tags,
        metrics=metrics,
        description=description,
        signature=signature,
    )
    if as_json:
        emit_json(version)
    else:
        console.print(f"registered [bold]{version.ref}[/] ({version.artifact_digest})")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise typer.BadParameter(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _metric(text: str) -> tuple[str, float]:
    key, value = _pair(text)
    try:
        return key, float(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected KEY=NUMBER, got {text!r}", param_hint="--metric"
        ) from None


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="List this model's versions.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List models, or the versions of one model."""
    plat = platform(ctx)
    if name is None:
        found = plat.list_models()
        if as_json:
            emit_json(found)
            return
        table(
            "models",
            ["name", "tier", "owner", "backend", "created"],
            [
                (m.name, m.risk_tier.value, m.owner, m.backend, m.created_at.isoformat())
                for m in found
            ],
        )
        return
    versions = plat.list_versions(name)
    if as_json:
        emit_json(versions)
        return
    table(
        f"{name} versions",
        ["version", "stage", "aliases", "digest", "run", "created"],
        [
            (
                v.version,
                v.stage.value,
                ", ".join(v.aliases),
                v.artifact_digest[:19],
                v.run_id,
                v.created_at.isoformat(),
            )
            for v in versions
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one version (the latest when no version or alias is given)."""
    version = platform(ctx).get_model_version(ref)
    if as_json:
        emit_json(version)
    else:
        _show(version)


@app.command("alias")
def alias(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME:VERSION to point the alias at (with --delete: NAME, or NAME:VERSION to "
            "remove the alias only while it points there)."
        ),
    ],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
) -> None:
    """Point ALIAS at NAME:VERSION (or remove it with --delete)."""
    plat = platform(ctx)
    if delete:
        name = _alias_to_delete(plat, ref, alias_name)
        console.print(f"removed alias [bold]{name}@{alias_name}[/]")
        return
    name, _, version = ref.partition(":")
    if not version:
        raise typer.BadParameter("give the version to point at: NAME:VERSION")
    moved = plat.set_alias(name, alias_name, version)
    console.print(f"[bold]{name}@{alias_name}[/] -> {moved.ref}")


def _one_version(plat: Platform, ref: str) -> ModelVersion:
    """The version ``ref`` names, read as ``models show`` reads it (``NAME:VERSION`` or
    ``NAME@ALIAS``). A bare NAME is refused: a change meant for one version is never applied
    to whichever happens to be the latest."""
    from mintaka.domain.names import parse_model_ref
    from mintaka.errors import ValidationError

    name, version, alias = parse_model_ref(ref)
    if version is None and alias is None:
        raise ValidationError(f"give NAME:VERSION or NAME@ALIAS, not {name!r} alone")
    return plat.get_model_version(ref)


def _alias_to_delete(plat: Platform, ref: str, alias_name: str) -> str:
    """Remove ``NAME@ALIAS`` and return NAME. A ``NAME:VERSION`` ``ref`` removes it only while
    it points at that version: a version given and ignored would remove an alias the caller
    did not mean (one moved since they looked)."""
    from mintaka.domain.names import parse_model_ref
    from mintaka.errors import Conflict, ValidationError

    name, version, alias = parse_model_ref(ref)
    if alias is not None:
        raise ValidationError(f"give the model as NAME or NAME:VERSION, not {ref!r}")
    if version is not None:
        target = plat.get_model_version(name, alias=alias_name)
        if target.version != version:
            raise Conflict(
                f"{name}@{alias_name} points at {target.ref}, not {name}:{version}; nothing "
                f"removed (give {name} alone to remove it wherever it points)"
            )
    plat.delete_alias(name, alias_name)
    return name


@app.command("features")
def features_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION.")],
    columns: Annotated[str, typer.Argument(help="Input columns in training order: a,b,c.")],
) -> None:
    """Record the input columns of a version that has no signature (a model trained on a bare
    array serves only with them). A running `mintaka serve` picks them up when restarted."""
    name, _, version = ref.partition(":")
    if not version:
        raise typer.BadParameter("give the version: NAME:VERSION")
    updated = platform(ctx).set_features(name, version, columns)
    console.print(f"{updated.ref} inputs: {escape(', '.join(updated.signature.inputs))}")


@app.command("tag")
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE ...")],
) -> None:
    """Set tags on a version."""
    plat = platform(ctx)
    version = _one_version(plat, ref)
    updated = plat.set_tags(version.name, version.version, dict(_pair(p) for p in pairs))
    console.print(f"{updated.ref} tags: {escape(str(updated.tags))}")


@app.command("stage")
def stage(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    stage_name: Annotated[
        str,
        typer.Argument(
            metavar="STAGE", help="none, staging, production, or archived (as `models archive`)."
        ),
    ],
) -> None:
    """Move a version to a lifecycle stage."""
    plat = platform(ctx)
    version = _one_version(plat, ref)
    updated = plat.set_stage(version.name, version.version, stage_name)
    console.print(f"{updated.ref} is now in stage [bold]{updated.stage.value}[/]")


@app.command("archive")
def archive(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    reason: Annotated[str, typer.Option(help="Why it is archived (audited).")] = "",
) -> None:
    """Archive a version: its aliases are removed, and it can no longer be promoted or aliased."""
    plat = platform(ctx)
    version = _one_version(plat, ref)
    updated = plat.archive_version(version.name, version.version, reason=reason)
    console.print(f"archived {updated.ref}")
