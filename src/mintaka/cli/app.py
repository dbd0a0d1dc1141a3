"""The ``mintaka`` command: global options, top-level commands and error handling."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mintaka.cli import (
    artifacts,
    audit,
    conformance,
    datasets,
    governance,
    lineage,
    migration,
    models,
    monitoring,
    pipelines,
    runs,
    serving,
)
from mintaka.cli.output import console, emit_json, err_console, table
from mintaka.cli.state import CliState, command_line, platform, state
from mintaka.errors import MintakaError, invalid_fields
from mintaka.text import require_utf8

if TYPE_CHECKING:
    from mintaka.demo import DemoResult
    from mintaka.domain.monitoring import Ticket

app = typer.Typer(
    name="mintaka",
    help="One governed MLOps control plane over the ML services you already run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.add_typer(datasets.app, name="datasets")
app.add_typer(lineage.app, name="lineage")
app.add_typer(audit.app, name="audit")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(serving.app, name="endpoints")
for command in (
    serving.serve,
    serving.rollout,
    serving.rollout_status,
    serving.rollback,
    serving.kill,
    serving.unkill,
    serving.score,
):
    app.command()(command)
app.add_typer(pipelines.app, name="pipeline")
app.command("retrain")(pipelines.retrain)
app.command("retire-superseded")(pipelines.retire_superseded)
app.add_typer(conformance.app, name="conformance")
app.add_typer(monitoring.monitor_app, name="monitor")
app.add_typer(monitoring.tickets_app, name="tickets")
governance.register(app)
app.command("discover")(migration.discover)
app.command("sync")(migration.sync)
app.add_typer(migration.adopt_app, name="adopt")


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        str | None,
        typer.Option("--home", envvar="MINTAKA_HOME", help="State directory [default: .mintaka]."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--as", help="Act as this identity [default: MINTAKA_ACTOR, else OS user]."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", envvar="MINTAKA_BACKEND", help="Backend to use.")
    ] = None,
) -> None:
    if home is not None and not home.strip():  # Path("") would be the working directory
        raise typer.BadParameter("needs a directory", param_hint="--home")
    source = ctx.get_parameter_source("backend")
    from_env = source is not None and source.name == "ENVIRONMENT"
    ctx.obj = CliState(
        home=Path(home) if home is not None else None,
        actor=actor,
        backend=backend,
        backend_from_env=from_env,
    )
    ctx.call_on_close(ctx.obj.close)


@app.command()
def init(
    ctx: typer.Context,
    backend: Annotated[
        str | None,
        typer.Option(help="Backend for this home [default: the one it has, else local]."),
    ] = None,
    switch_backend: Annotated[
        bool,
        typer.Option(
            "--switch-backend",
            help="Point an initialised home at another backend. The store, its history and "
            "audit chain stay; what the old backend holds is not moved.",
        ),
    ] = False,
) -> None:
    """Create the state directory and its store, and record the backend to use.

    The backend is the one given (here or as `mintaka --backend NAME init`), else the one the
    home has: in its config.toml or, without one, the one its store was last used with; else
    local. Running it again on an initialised home changes nothing. Environment overrides
    (MINTAKA_BACKEND, MINTAKA_STORE_URL) are not written into config.toml.
    """
    from pydantic import ValidationError as PydanticValidationError

    from mintaka.config import (
        CONFIG_FILE,
        MintakaConfig,
        read_config_file,
        resolve_home,
        write_config,
    )
    from mintaka.errors import ConfigurationError
    from mintaka.files import write_atomic
    from mintaka.plugins import PluginManager

    current = state(ctx)
    given = None if current.backend_from_env else current.backend
    if backend and given and backend != given:
        raise typer.BadParameter(
            f"two backends given, {given!r} before `init` and {backend!r} after it: give one"
        )
    root = resolve_home(current.home)
    recorded = read_config_file(root)
    had = recorded.get("backend")
    where = f"{root} is initialised with backend {had!r}"
    if had is None and (had := _backend_of_store(root)) is not None:
        where = f"the store of {root} was last used with backend {had!r}"
    chosen = backend or given or (str(had) if had else "local")
    PluginManager().backends().get(chosen)  # NotFound names the installed ones
    if had and chosen != had and not switch_backend:
        raise ConfigurationError(
            f"{where}; to use {chosen!r} instead, run "
            f"`{command_line(ctx, 'init', '--backend', chosen, '--switch-backend', backend=False)}`"
        )
    current.creates_home = True
    current.backend = chosen
    try:
        config = MintakaConfig(home=root, **{**recorded, "backend": chosen})
    except PydanticValidationError as exc:
        raise ConfigurationError(
            f"invalid configuration in {root / CONFIG_FILE}: {invalid_fields(exc)}"
        ) from exc
    plat = platform(ctx)  # opens (or creates) the store and the backend before anything is written
    if had == chosen and recorded.get("backend") == chosen:
        console.print(
            f"[bold]{escape(str(plat.home))}[/] is already initialised "
            f"(backend {escape(chosen)}, config {escape(str(root / CONFIG_FILE))})"
        )
    else:
        switching = bool(had) and had != chosen
        if switching:
            _ = plat.actor  # who acts (the backend may be asked) is known before anything changes
        config_file = root / CONFIG_FILE
        before = config_file.read_bytes() if config_file.exists() else None
        path = write_config(config)
        if switching:
            try:
                plat.record_backend_switch(str(had))
            except BaseException:
                # An unaudited switch is no switch: the previous configuration comes back.
                if before is None:
                    config_file.unlink(missing_ok=True)
                else:
                    write_atomic(config_file, before)
                raise
        switched = f", switched from {had}" if had and had != chosen else ""
        console.print(
            f"initialised [bold]{escape(str(plat.home))}[/] "
            f"(backend {escape(chosen + switched)}, config {escape(str(path))})"
        )
    console.print(f"store: {plat.store.durability()}")
    _note_overrides(chosen, plat.store.safe_url)


def _backend_of_store(root: Path) -> str | None:
    """The backend named by the newest audit event of the store ``root`` would open (None when
    there is no such store yet, or it holds no event)."""
    from mintaka.audit.chain import AuditLog
    from mintaka.config import load_config
    from mintaka.errors import StoreError
    from mintaka.store import Store
    from mintaka.store.engine import default_url, sqlite_file, url_in_home

    url = load_config(root).store_url
    url = url_in_home(root, url) if url else default_url(root)
    file = sqlite_file(url)
    if file is not None and not file.is_file():
        return None
    try:
        store = Store(url, migrate=False)
    except StoreError:
        return None  # opening it again, to create it, reports why it cannot be
    try:
        return AuditLog(store).last_backend()
    except StoreError:  # unreadable here: opening it again, to use it, reports why
        return None
    finally:
        store.dispose()


def _note_overrides(chosen: str, store: str) -> None:
    """Say which environment overrides apply to later commands, since init does not record them."""

    env_backend = os.environ.get("MINTAKA_BACKEND")
    if env_backend and env_backend != chosen:
        err_console.print(
            f"note: MINTAKA_BACKEND={escape(env_backend)} is set: while it is, other commands "
            f"use that backend, not {escape(chosen)}",
            soft_wrap=True,
        )
    if os.environ.get("MINTAKA_STORE_URL"):
        err_console.print(
            f"note: MINTAKA_STORE_URL is set: this home's store is {escape(store)} while it is; "
            "config.toml does not record it",
            soft_wrap=True,
        )


@app.command()
def backends(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the installed backends and their capabilities."""
    from mintaka.plugins import PluginManager

    manager = PluginManager()
    entries = list(manager.backends())
    if as_json:
        emit_json(
            {
                "backends": [
                    {
                        "name": e.name,
                        "plugin": e.plugin,
                        "description": e.cls.description,
                        "capabilities": {
                            c.value: str(e.cls.support(c)) for c in sorted(e.cls.capabilities)
                        },
                    }
                    for e in entries
                ],
                "failed": manager.failed,
            }
        )
        return
    table(
        "backends",
        ["name", "plugin", "capabilities", "description"],
        [
            (
                e.name,
                e.plugin,
                ", ".join(
                    c.value + (" (emulated)" if c in e.cls.emulated else "")
                    for c in sorted(e.cls.capabilities)
                ),
                e.cls.description,
            )
            for e in entries
        ],
    )
    for name, reason in manager.failed.items():
        err_console.print(f"[yellow]plugin {name!r} failed to load[/]: {escape(str(reason))}")


@app.command()
def demo(ctx: typer.Context) -> None:
    """Run the lifecycle demo on the local backend (no cloud, no downloads)."""
    from rich.status import Status

    from mintaka.config import CONFIG_FILE, read_config_file, resolve_home
    from mintaka.demo import run_demo
    from mintaka.errors import ConfigurationError

    current = state(ctx)
    if current.backend not in (None, "local"):
        source = " (from MINTAKA_BACKEND)" if current.backend_from_env else ""
        raise typer.BadParameter(
            f"the demo runs on the local backend, not {current.backend!r}{source}"
        )
    root = resolve_home(current.home)
    recorded = read_config_file(root).get("backend", "local")
    if recorded != "local":
        raise ConfigurationError(
            f"{root / CONFIG_FILE} sets backend {recorded!r}; the demo runs on the local backend "
            "only: give it another --home"
        )
    current.backend = "local"
    current.creates_home = True
    plat = platform(ctx)
    console.print(f"[bold]Mintaka demo[/] in {escape(str(plat.home))} ({plat.store.durability()})")
    with Status("starting", console=console) as status:

        def step(message: str) -> None:
            console.print(f"[cyan]>[/] {escape(message)}")
            status.update(message)

        result = run_demo(plat, step)
    _demo_summary(result)


def _demo_summary(result: DemoResult) -> None:
    from rich.table import Table

    from mintaka.cli.lineage import render

    if result.already_ran:
        console.print("[dim]state left by an earlier demo run in this home[/]")
    if result.refused:
        console.print("[yellow]deployment gate refused v1 before sign-off[/]; unmet controls:")
        for check in result.refused:
            console.print(f"  - {escape(check.describe())}")
    runs = Table("pipeline run", "trigger", "status", "steps", title="training pipeline runs")
    for recorded in result.runs:
        run = recorded.run
        cached = sum(1 for s in run.steps if s.cached)
        done = sum(1 for s in run.steps if s.status.value == "succeeded")
        trigger = f"{recorded.trigger}: {recorded.reason}" if recorded.reason else recorded.trigger
        runs.add_row(
            run.id, trigger, run.status.value, f"{done}/{len(run.steps)} ({cached} cached)"
        )
    console.print(runs)
    if result.already_ran:  # the alerts of that run are in its tickets, not counted again
        console.print(f"served {result.served} predictions on credit-scoring")
    else:
        console.print(
            f"served {result.served} predictions on credit-scoring; drift monitor before the "
            f"shift: {result.calm_alerts} alerts, after: {len(result.drift_alerts)}"
        )
    for alert in result.drift_alerts:
        console.print(f"  [red]alert[/] {alert.signal}: psi {alert.value:.3f} > {alert.threshold}")
    for ticket in result.tickets:
        console.print(_ticket_line(ticket))
    for check in result.challenge:
        console.print(f"challenger: {escape(check.describe())}")
    for check in result.canary:
        console.print(f"canary {escape(check.describe())}")
    v = result.champion
    console.print(
        f"champion [bold]{v.ref}[/] tier={v.risk_tier.value} auc={v.metrics.get('auc', 0):.3f} "
        f"digest={v.artifact_digest[:23]}... (v1 was {result.first.artifact_digest[:23]}...)"
    )
    if result.retired_routes:
        console.print(f"retired idle routes: {', '.join(result.retired_routes)}")
    console.print(
        "production models that used credit-applications: "
        + (", ".join(result.production_from_source) or "none")
    )
    if result.traced is not None:
        traced = result.traced
        datasets = [n.label for n in traced.upstream.nodes if n.kind.value == "dataset"]
        console.print(
            f"prediction {traced.prediction['id']} was made by {traced.version.ref}, trained on "
            f"{', '.join(datasets)}"
        )
    _drill_and_adoption(result)
    console.print("[bold]lineage[/] (upstream of credit-default@champion):")
    console.print(render(result.lineage, "up"))
    if result.evidence is not None:
        console.print(
            f"evidence pack: {escape(str(result.evidence))} ({result.evidence_gaps} gaps)"
        )
    stored = result.artifacts
    if stored is not None and stored.ok:
        console.print(f"[green]artifacts verified[/]: {stored.checked} re-hashed")
    elif stored is not None:
        console.print(f"[red]artifacts failed[/]: {len(stored.findings)} missing or changed")
    differences = result.differences
    if differences == ():
        console.print("[green]records match the backend[/]: sync found no difference")
    elif differences is not None:
        console.print(f"[red]sync found {len(differences)} difference(s)[/] (mintaka sync)")
    if result.audit.ok:
        console.print(f"[green]audit chain verified[/]: {result.audit.events} events")
    else:
        console.print(f"[red]audit chain broken at {result.audit.first_bad_seq}[/]")
    if not result.audit.ok or (stored is not None and not stored.ok) or differences:
        raise typer.Exit(1)


def _ticket_line(ticket: Ticket) -> str:
    next_up = ", ".join(e.to for e in ticket.escalation) or "nobody"
    runbook = f", runbook {escape(ticket.runbook_url)}" if ticket.runbook_url else ""
    return (
        f"  ticket {ticket.id} for [bold]{escape(ticket.owner)}[/] (escalates to "
        f"{escape(next_up)}){runbook}"
    )


def _drill_and_adoption(result: DemoResult) -> None:
    drill = result.drill
    if drill is not None:
        console.print(
            f"kill switch pulled on credit-scoring by {drill.pulled_by}: the next request was "
            f"refused ({escape(drill.refused)})"
        )
        console.print(f"  {drill.pulled_by} could not release it: {escape(drill.release_refused)}")
        answered = "answers again" if drill.answered_after else "[red]still refuses[/]"
        console.print(f"  released by {drill.released_by}; the endpoint {answered}")
    adoption = result.adoption
    if adoption is None:
        return
    console.print("found in the backend, unrecorded: " + escape(", ".join(adoption.discovered)))
    good = "known-good" if adoption.known_good else "not yet known-good"
    for v in adoption.versions:
        console.print(
            f"adopted [bold]{v.ref}[/] ({v.flavor.value}, owner {v.owner}, tier "
            f"{v.risk_tier.value}, digest {v.artifact_digest[:23]}...) and endpoint "
            f"{adoption.endpoint} ({good})"
        )
    for finding in adoption.findings:
        console.print(f"  to act on: {escape(finding)}")
    if adoption.traced is not None:
        traced = adoption.traced
        console.print(
            f"prediction {traced.prediction['id']} on {adoption.endpoint} was made by "
            f"{traced.version.ref}, adopted"
        )


def _command() -> Any:
    """The click command behind ``app``, each sub-command's line in a command list being its
    docstring's first paragraph on one line (Typer's rich mode would keep the line breaks), and
    every help text shown as written: Typer's rich mode reads ``[default: you]`` as markup and
    drops it, so square brackets are escaped."""
    import inspect

    def tidy(group: Any) -> None:
        for param in getattr(group, "params", []):
            if getattr(param, "help", None):
                param.help = escape(param.help)
        if group.help:
            group.help = escape(group.help)
        for sub in getattr(group, "commands", {}).values():
            tidy(sub)
            if sub.short_help is None and sub.help:
                first = inspect.cleandoc(sub.help).split("\n\n")[0]
                sub.short_help = " ".join(first.split())

    command = typer.main.get_command(app)
    tidy(command)
    return command


def _check_text(argv: list[str]) -> None:
    """Refuse an argument that is not valid UTF-8 before any command runs."""
    for arg in argv:
        require_utf8(arg, "argument")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: Mintaka errors become one red line and exit status 1."""
    try:
        _check_text(sys.argv[1:] if argv is None else argv)
        # Without standalone mode click returns the code of a ``typer.Exit`` instead of exiting.
        code = _command().main(args=argv, prog_name="mintaka", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MintakaError as exc:
        # one line, however long: a path or URL in it stays whole for the reader to copy
        err_console.print(f"[red]error[/]: {escape(str(exc))}", soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except OSError as exc:  # a path the command was given or derived: not Mintaka's bug
        where = f": {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[red]error[/]: {escape(f'{exc.strerror or exc}{where}')}", soft_wrap=True
        )
        sys.exit(1)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        _show_usage_error(exc)
        sys.exit(int(getattr(exc, "exit_code", 2)))


def _is_usage_error(exc: Exception) -> bool:
    """A usage error (an unknown command or option, a bad value) from the parser: click's own,
    or that of the copy of click that Typer 0.2x bundles (a ``typer.TyperException``)."""
    import click

    bundled = getattr(typer, "TyperException", None)
    kinds = (click.ClickException, bundled) if bundled is not None else (click.ClickException,)
    return isinstance(exc, kinds) and callable(getattr(exc, "show", None))


def _show_usage_error(exc: Exception) -> None:
    """The usage, a pointer to --help and the error, on stderr, as Typer prints them."""
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
    except (ImportError, AttributeError):
        exc.show()  # type: ignore[attr-defined]
