"""``mintaka discover``, ``mintaka sync`` and ``mintaka adopt ...``: compare the cloud with the
store, and bring what already runs in the cloud under management."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mintaka.cli.models import FeaturesOpt
from mintaka.cli.output import console, emit_json, err_console, progress_bar, table
from mintaka.cli.state import platform
from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.domain.discovery import Difference
    from mintaka.migration import ModelAdoption

adopt_app = typer.Typer(
    help="Adopt models and endpoints that were created outside Mintaka.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why this is adopted (recorded for auditors).")
]
OwnerOpt = Annotated[
    str | None,
    typer.Option(
        help="Accountable owner of the adopted versions "
        "[default: the model's recorded owner, else you]."
    ),
]
TierOpt = Annotated[str | None, typer.Option(help="Risk tier: low, medium or high.")]
RunOpt = Annotated[
    str | None, typer.Option("--run", help="The recorded run that trained the model.")
]
DatasetOpt = Annotated[
    list[str] | None,
    typer.Option("--dataset", help="A recorded dataset it was trained on (repeatable)."),
]
CodeCommitOpt = Annotated[
    str | None, typer.Option("--code-commit", help="The commit of the training code.")
]
FlavorOpt = Annotated[
    str | None, typer.Option(help="sklearn, pyfunc or opaque [default: read from the bytes].")
]


def discover(
    ctx: typer.Context,
    unrecorded: Annotated[
        bool, typer.Option("--unrecorded", help="Only what the store does not record yet.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the models, versions and endpoints in the backend's cloud, and whether Mintaka
    records them (`mintaka adopt` brings the others under management)."""
    from mintaka.domain.discovery import ResourceKind

    found = platform(ctx).migration.discover()
    if unrecorded:
        found = [c for c in found if not c.recorded]
    if as_json:
        emit_json(
            [
                {
                    "kind": c.kind.value,
                    "name": c.name,
                    "backend_id": c.backend_id,
                    "recorded": c.recorded,
                    "managed": c.managed,
                    "usable_name": c.usable_name,
                    "extra": c.extra,
                }
                for c in found
            ]
        )
        return
    table(
        "in the cloud",
        ["name", "kind", "recorded", "managed", "backend id"],
        [
            (
                c.name,
                c.kind.value,
                "yes" if c.recorded else "no",
                "yes" if c.managed else "no",
                c.backend_id,
            )
            for c in found
        ],
    )
    unusable = sorted(
        {c.name for c in found if not c.usable_name and c.kind is not ResourceKind.MODEL_VERSION}
    )
    if unusable:
        console.print(
            f"[yellow]names Mintaka cannot use[/]: {escape(', '.join(unusable))}; adopt them "
            "under names the backend's settings map to them (docs/migration.md)"
        )


def _shown(value: object) -> str:
    """A recorded or observed value as compact JSON (``None``: nothing on that side)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def _next_step(difference: Difference, missing: frozenset[str] = frozenset()) -> str | None:
    """What to run about ``difference``, where one command settles it (``missing``: the
    versions the same sync found missing in the cloud, which no command can point at)."""
    from mintaka.sync import ENDPOINT_SUBJECT, DifferenceKind, subject_of

    # What to do about each kind of difference sync reports.
    next_steps: dict[str, str] = {
        DifferenceKind.VERSION_UNRECORDED: "mintaka adopt model {model} --reason TEXT",
        DifferenceKind.ROUTES: "mintaka adopt endpoint {endpoint} --reason TEXT (records what the "
        "cloud serves now), or point the routes back at the recorded versions in the cloud",
        DifferenceKind.APPROVAL: "mintaka approve {subject}",
        DifferenceKind.ALIAS: "mintaka models alias {model}:{recorded} {alias} (puts the recorded "
        "one back)",
        DifferenceKind.STAGE: "mintaka models stage {subject} {recorded} (puts the recorded stage "
        "back)",
        DifferenceKind.ENDPOINT_MISSING: "mintaka endpoints delete {endpoint} (drops the record "
        "of the endpoint deleted in the cloud)",
    }
    subject = difference.subject
    endpoint = subject.removeprefix(ENDPOINT_SUBJECT)
    recorded = difference.recorded if isinstance(difference.recorded, dict) else {}
    if difference.kind == DifferenceKind.TRAFFIC and recorded.get("weights"):
        weights = " ".join(f"{route}={w}" for route, w in recorded["weights"].items())
        shadow = recorded.get("shadow")
        mirror = f" --shadow {shadow} --shadow-percent {recorded.get('shadow_percent', 0)}"
        return (
            f"mintaka endpoints traffic {endpoint} {weights}{mirror if shadow else ''} (puts the "
            f"recorded traffic back), or mintaka adopt endpoint {endpoint} --reason TEXT (records "
            "the cloud's)"
        )
    if difference.kind == DifferenceKind.TAGS:
        observed = difference.observed if isinstance(difference.observed, dict) else {}
        if not recorded or set(observed) - set(recorded):
            return None  # a tag only the cloud has is removed there, not by a Mintaka command
        pairs = " ".join(shlex.quote(f"{key}={value}") for key, value in sorted(recorded.items()))
        return f"mintaka models tag {subject} {pairs} (puts the recorded tags back)"
    if difference.kind == DifferenceKind.ALIAS and (
        f"{subject_of(subject)}:{difference.recorded}" in missing
    ):
        return None  # the version is gone from the cloud: no alias can point at it there
    if difference.kind == DifferenceKind.KILLED:
        if recorded.get("killed"):
            return f"mintaka kill {endpoint} (pulls the recorded kill switch in the cloud again)"
        return None  # killed in the cloud only: whoever pulled it decides (`mintaka kill`)
    hint = next_steps.get(difference.kind)
    if hint is None or (difference.kind == DifferenceKind.ALIAS and difference.recorded is None):
        return None
    return hint.format(
        model=subject_of(subject),
        alias=subject.partition("@")[2],
        recorded=difference.recorded,
        endpoint=endpoint,
        subject=subject,
    )


def sync(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Compare the store's records with the cloud, changing neither; report and audit every
    difference (exit 1 when there is one, for schedulers and CI)."""
    from mintaka.sync import DifferenceKind

    found = platform(ctx).sync()
    if as_json:
        emit_json(found)
    elif not found:
        console.print("in step: the cloud matches the records")
    else:
        table(
            f"{len(found)} difference(s)",
            ["subject", "kind", "recorded", "in the cloud", "since"],
            [
                (d.subject, d.kind, _shown(d.recorded), _shown(d.observed), d.detected_at)
                for d in found
            ],
        )
        missing = frozenset(d.subject for d in found if d.kind == DifferenceKind.VERSION_MISSING)
        steps = [step for d in found if (step := _next_step(d, missing))]
        if steps:
            console.print("next steps:")
            for step in dict.fromkeys(steps):
                console.print(f"  {escape(step)}", soft_wrap=True)
    if found:
        raise typer.Exit(1)


def _artifacts(values: list[str]) -> dict[int, Path]:
    supplied: dict[int, Path] = {}
    for value in values:
        number, sep, path = value.partition("=")
        if not sep or not number.strip().isdigit() or not path:
            raise ValidationError(f"--artifact {value!r}: use VERSION=PATH, e.g. 3=./model")
        supplied[int(number)] = Path(path)
    return supplied


@adopt_app.command("model")
def adopt_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name in the cloud.")],
    reason: ReasonOpt,
    version: Annotated[
        list[int] | None,
        typer.Option("--version", "-v", help="Only this version (repeatable) [default: all]."),
    ] = None,
    artifact: Annotated[
        list[str] | None,
        typer.Option(
            "--artifact",
            help="VERSION=PATH: that version's bytes, where the backend cannot read them back.",
        ),
    ] = None,
    owner: OwnerOpt = None,
    tier: TierOpt = None,
    run: RunOpt = None,
    dataset: DatasetOpt = None,
    code_commit: CodeCommitOpt = None,
    flavor: FlavorOpt = None,
    features: FeaturesOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the cloud's versions of NAME that Mintaka does not record yet, each bound to the
    digest of its bytes, with the lineage you attest (--run, --dataset, --code-commit)."""
    plat = platform(ctx)
    supplied = _artifacts(artifact or [])
    with _fetch_progress() as fetching:
        adoption = plat.migration.adopt_model(
            name,
            reason=reason,
            owner=owner,
            tier=tier,
            versions=version,
            artifacts=supplied,
            run_id=run,
            dataset_ids=dataset or (),
            code_commit=code_commit,
            flavor=flavor,
            features=features or (),
            on_fetch=fetching,
        )
    if as_json:
        _emit_adoption(adoption)
        return
    if not adoption.adopted and version:  # those asked for; others may be unrecorded
        recorded = ", ".join(f"{adoption.model}:{n}" for n in adoption.already_recorded)
        console.print(f"nothing to adopt: Mintaka records {recorded} already")
        return
    if not adoption.adopted:
        console.print(
            f"nothing to adopt: {escape(name)} has no version that Mintaka does not record"
        )
        return
    table(
        f"adopted {len(adoption.adopted)} version(s) of {name}",
        ["version", "digest", "flavor", "tags", "aliases"],
        [
            (
                v.ref,
                v.artifact_digest[:19],
                v.flavor.value,
                ", ".join(f"{k}={val}" for k, val in sorted(v.tags.items())),
                ", ".join(v.aliases),
            )
            for v in adoption.adopted
        ],
    )
    _findings(adoption.findings)


@adopt_app.command("served")
def adopt_served(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint's name in the cloud.")],
    route: Annotated[
        str, typer.Argument(help="The route (or the cloud's slot name, e.g. AllTraffic).")
    ],
    model: Annotated[str, typer.Option("--model", help="The model to register it under.")],
    reason: ReasonOpt,
    owner: OwnerOpt = None,
    tier: TierOpt = None,
    run: RunOpt = None,
    dataset: DatasetOpt = None,
    code_commit: CodeCommitOpt = None,
    flavor: FlavorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register what ROUTE of a live ENDPOINT serves (deployed without the registry) as a new
    version of --model in the cloud's registry, and adopt that version; the endpoint is left as
    it is and can be adopted next."""
    with _fetch_progress() as fetching:
        adoption = platform(ctx).migration.adopt_served(
            endpoint,
            route,
            model,
            reason=reason,
            owner=owner,
            tier=tier,
            run_id=run,
            dataset_ids=dataset or (),
            code_commit=code_commit,
            flavor=flavor,
            on_fetch=fetching,
        )
    from mintaka.domain.names import route_name_of

    route = route_name_of(route)  # as Mintaka reads it (AllTraffic: alltraffic)
    if as_json:
        _emit_adoption(adoption, endpoint=endpoint, route=route)
        return
    slot, next_step = escape(f"{endpoint} {route}"), escape(f"mintaka adopt endpoint {endpoint}")
    if not adoption.adopted:
        served = ", ".join(f"{adoption.model}:{n}" for n in adoption.already_recorded)
        console.print(
            f"already adopted: {slot} serves {served or 'a recorded version'}; next: {next_step}"
        )
        return
    for version in adoption.adopted:
        console.print(
            f"registered what {slot} serves as [bold]{version.ref}[/] "
            f"(digest {version.artifact_digest[:19]}, {version.flavor.value}); next: {next_step}"
        )
    _findings(adoption.findings)


@adopt_app.command("endpoint")
def adopt_endpoint(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name in the cloud.")],
    reason: ReasonOpt,
    monitor: Annotated[
        Path | None,
        typer.Option(help="A monitor spec (TOML) to attach once the endpoint is adopted."),
    ] = None,
    capture: Annotated[
        bool,
        typer.Option(
            "--capture",
            help="Also turn the cloud's request capture on, so monitors see the traffic "
            "(changes the live endpoint).",
        ),
    ] = False,
    sample: Annotated[
        int, typer.Option("--capture-sample", min=1, max=100, help="Percent of requests.")
    ] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Record a live endpoint whose routes serve recorded versions, with its traffic as its
    first deployment; rollouts, rollback, the kill switch and sync then work on it."""
    from mintaka.cli.monitoring import read_monitor_spec

    plat = platform(ctx)
    spec = read_monitor_spec(monitor) if monitor is not None else None
    if spec is not None and spec.endpoint != name:
        raise ValidationError(f"{monitor}: the monitor watches {spec.endpoint!r}, not {name!r}")
    if spec is not None:  # refused before the endpoint is adopted, not after
        plat.monitoring.check_monitor(spec, endpoint_recorded=False)
    from mintaka.domain.monitoring import CaptureConfig

    adoption = plat.migration.adopt_endpoint(
        name, reason=reason, capture=CaptureConfig(sample_percent=sample) if capture else None
    )
    monitor_id = plat.monitoring.add_monitor(spec) if spec is not None else None
    if as_json:
        emit_json(
            {
                "endpoint": adoption.endpoint,
                "adopted": adoption.adopted,
                "known_good": adoption.known_good,
                "findings": list(adoption.findings),
                "monitor": monitor_id,
            }
        )
        return
    endpoint = adoption.endpoint
    weights = ", ".join(f"{r}={w}%" for r, w in sorted(endpoint.traffic.weights.items()))
    if adoption.adopted:
        state = "known-good" if adoption.known_good else "not known-good (the gate did not pass)"
        console.print(f"adopted endpoint [bold]{endpoint.name}[/]: {weights}; {state}")
    else:
        console.print(f"endpoint {endpoint.name} is already recorded: {weights}")
    if capture:
        console.print(f"request capture is on for {endpoint.name} ({sample}% of requests)")
    if monitor_id is not None:
        console.print(f"monitor {monitor_id} watches {endpoint.name}")
    _findings(adoption.findings)


@contextmanager
def _fetch_progress() -> Iterator[Callable[[object, int, int], None]]:
    """An ``on_fetch`` that shows versions' bytes being read (count and time taken), from the
    first read on: input refused before any read leaves no trace on the terminal."""
    progress = progress_bar(err_console, "reading bytes")
    task = progress.add_task("adopt", total=None)

    def fetching(_version: object, index: int, total: int) -> None:
        progress.start()
        progress.update(task, completed=index, total=total)

    try:
        yield fetching
    finally:
        if progress.live.is_started:
            progress.stop()


def _emit_adoption(adoption: ModelAdoption, **more: str) -> None:
    emit_json(
        {
            "model": adoption.model,
            **more,
            "adopted": list(adoption.adopted),
            "already_recorded": list(adoption.already_recorded),
            "findings": list(adoption.findings),
        }
    )


def _findings(findings: tuple[str, ...]) -> None:
    if findings:
        console.print("[yellow]to act on:[/]")
        for finding in findings:
            console.print(f"  - {escape(finding)}")
