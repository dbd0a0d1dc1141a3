"""Serving commands: ``mintaka serve``, ``endpoints ...``, ``rollout``, ``rollback``, ``kill``,
``unkill`` and ``score``."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mintaka.cli.output import console, emit_json, err_console, fields, table
from mintaka.cli.state import platform
from mintaka.rollout.steps import MAX_BAKE_SECONDS, STEPPED_STRATEGIES

if TYPE_CHECKING:
    from mintaka.domain.serving import Endpoint

app = typer.Typer(help="Endpoints, routes and traffic.", no_args_is_help=True)

# The exit status of `mintaka rollout` stopped by SIGTERM: 128 + the signal's number, as a shell
# reports a process the signal ended (Ctrl-C exits 130, 128 + SIGINT).
SIGTERM_STATUS = 128 + signal.SIGTERM

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Reason = Annotated[str, typer.Option(help="Why (audited).")]


def _weights(pairs: list[str]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for pair in pairs:
        route, sep, value = pair.partition("=")
        text = value.strip()
        if not sep or not text.isascii() or not text.lstrip("-").isdigit():
            raise typer.BadParameter(f"expected ROUTE=PERCENT, got {pair!r}")
        if route in weights:
            raise typer.BadParameter(f"route {route!r} is given twice")
        weights[route] = int(text)
    return weights


def _status(endpoint: Endpoint) -> str:
    """The endpoint's status, saying when its release is marked and not recorded: under way,
    or stopped before it was recorded (the cloud may be serving already)."""
    from mintaka.serving.ops import RELEASE_UNRECORDED

    if endpoint.extra == RELEASE_UNRECORDED:
        return (
            f"{endpoint.status.value} (a release is under way, or was interrupted: unkill "
            "completes it, kill pulls the switch again)"
        )
    return endpoint.status.value


def show_endpoint(endpoint: Endpoint) -> None:
    fields(
        endpoint.name,
        [
            ("status", _status(endpoint)),
            ("routes", [f"{r.name} -> {r.model}:{r.version}" for r in endpoint.routes]),
            ("traffic", endpoint.traffic.weights),
            (
                "shadow",
                f"{endpoint.traffic.shadow} ({endpoint.traffic.shadow_percent}%)"
                if endpoint.traffic.shadow
                else None,
            ),
            ("backend", endpoint.backend),
        ],
    )


def _route_option(route: str | None) -> str | None:
    """The ``--route`` given, checked here so a bad one is reported as the option's."""
    from mintaka.domain.names import validate_route_name

    return None if route is None else validate_route_name(route, given_as="--route")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    model: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS to serve.")],
    route: Annotated[str | None, typer.Option(help="Route name [default: MODEL-vN].")] = None,
    reason: Reason = "",
    monitor: Annotated[
        Path | None,
        typer.Option(
            help="A monitor spec (TOML, as `monitor add` takes) of this endpoint and model, "
            "recorded with the endpoint (it counts for a tier's monitors_required)."
        ),
    ] = None,
) -> None:
    """Create an endpoint serving one model version with all traffic."""
    from mintaka.cli.monitoring import read_monitor_spec

    plat = platform(ctx)
    spec = read_monitor_spec(monitor) if monitor is not None else None
    endpoint = plat.serving.create_endpoint(
        name, model, route=_route_option(route), reason=reason, monitor=spec
    )
    show_endpoint(endpoint)
    if spec is not None:
        records = plat.monitoring.monitor_records(endpoint.name)
        [monitor_id] = [i for i, m in records if m == spec]
        console.print(f"monitor {monitor_id} watches {endpoint.name}")


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    model: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS to add.")],
    route: Annotated[str | None, typer.Option(help="Route name [default: MODEL-vN].")] = None,
    reason: Reason = "",
) -> None:
    """Add a route for a model version, taking no traffic until you move some to it."""
    show_endpoint(
        platform(ctx).serving.deploy(name, model, route=_route_option(route), reason=reason)
    )


@app.command("traffic")
def traffic(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    weights: Annotated[list[str], typer.Argument(help="ROUTE=PERCENT ..., summing to 100.")],
    shadow: Annotated[str | None, typer.Option(help="Route receiving a copy.")] = None,
    shadow_percent: Annotated[int, typer.Option(help="Share of requests copied.")] = 0,
    reason: Reason = "",
) -> None:
    """Set the traffic split (and optionally a shadow route)."""
    show_endpoint(
        platform(ctx).serving.set_traffic(
            name, _weights(weights), shadow=shadow, shadow_percent=shadow_percent, reason=reason
        )
    )


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List endpoints."""
    found = platform(ctx).serving.list_endpoints()
    if as_json:
        emit_json(found)
        return
    table(
        "endpoints",
        ["name", "status", "traffic", "shadow"],
        [
            (
                e.name,
                _status(e),
                ", ".join(f"{k}={v}" for k, v in e.traffic.weights.items()),
                e.traffic.shadow,
            )
            for e in found
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one endpoint."""
    endpoint = platform(ctx).serving.get_endpoint(name)
    if as_json:
        emit_json(endpoint)
    else:
        show_endpoint(endpoint)


@app.command("history")
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    as_json: JsonOpt = False,
) -> None:
    """Every traffic change on an endpoint: what ran when, and who moved it."""
    found = platform(ctx).serving.deployment_history(name)
    if as_json:
        emit_json(found)
        return
    table(
        f"{name} deployments",
        ["at", "traffic", "strategy", "actor", "known good", "reason"],
        [
            (
                d.at.isoformat(),
                ", ".join(f"{k}={v}" for k, v in d.traffic.weights.items()),
                d.strategy.value,
                d.actor,
                "yes" if d.known_good else "",
                d.reason,
            )
            for d in found
        ],
    )


@app.command("delete")
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument()], reason: Reason = "") -> None:
    """Delete an endpoint."""
    platform(ctx).serving.delete_endpoint(name, reason=reason)
    console.print(f"deleted endpoint {name}")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8080,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            help="Load pickle-family artifacts (can run arbitrary code) of versions whose "
            "policy tier sets allow_pickle."
        ),
    ] = False,
    max_body_mib: Annotated[
        float,
        typer.Option(
            min=0.001, max=4096, help="Largest request body in MiB; larger ones are answered 413."
        ),
    ] = 16,
    predict_workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=1024,
            help="Threads that call each endpoint's models; an endpoint's requests past them "
            "wait for one of its own.",
        ),
    ] = 8,
    stop_grace: Annotated[
        float,
        typer.Option(
            min=0,
            max=3600,
            help="Seconds a stop gives requests under way to finish; a model still predicting "
            "then is left behind.",
        ),
    ] = 10.0,
) -> None:
    """Serve every endpoint of the local backend over HTTP until interrupted."""
    from mintaka.local.server import InferenceServer, serve_forever

    server = InferenceServer(
        platform(ctx),
        allow_pickle=allow_pickle,
        max_body_bytes=int(max_body_mib * 1024 * 1024),
        predict_workers=predict_workers,
        stop_grace=stop_grace,
    )
    endpoints = sorted(server.endpoints) or "no endpoints yet"
    console.print(f"starting the inference server on {escape(host)}:{port} for {endpoints}")
    serve_forever(
        server,
        host,
        port,
        lambda urls: console.print(f"serving on {escape(' and '.join(urls))} (Ctrl-C stops)"),
    )


def rollout(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    to: Annotated[str, typer.Option("--to", help="Route to roll out.")],
    strategy: Annotated[
        str, typer.Option(help=f"One of: {', '.join(STEPPED_STRATEGIES)}.")
    ] = "canary",
    bake: Annotated[
        float, typer.Option(min=0, max=MAX_BAKE_SECONDS, help="Seconds to bake each step.")
    ] = 60.0,
    max_error_rate: Annotated[
        float | None, typer.Option(min=0, max=1, help="SLA: highest error rate.")
    ] = 0.01,
    p99_ms: Annotated[float | None, typer.Option(help="SLA: highest p99 latency (ms).")] = None,
    min_requests: Annotated[int, typer.Option(min=0, help="Requests needed to judge a step.")] = 20,
    native: Annotated[
        bool,
        typer.Option(
            "--native",
            help="Hand the plan to the cloud's own deployment policy (it walks the steps and "
            "rolls back on its alarms); follow it with `mintaka rollout-status`. Its steps are "
            "canary 10/100, linear 25/50/75/100 (without it, canary is 10/50/100); a plan the "
            "cloud cannot walk as written is refused.",
        ),
    ] = False,
) -> None:
    """Shift traffic to a route step by step, verifying the SLA; roll back on a breach.

    Ctrl-C or SIGTERM (what process managers and container runtimes send) mid-way puts back the
    traffic the rollout started from and records it; the exit status is then 130 for Ctrl-C,
    143 for SIGTERM."""
    from mintaka.domain.serving import SLA, RolloutStrategy, TrafficPlan
    from mintaka.rollout.controller import RolloutController, plan_steps

    if strategy not in STEPPED_STRATEGIES:
        raise typer.BadParameter(
            f"{strategy!r} is not one of {', '.join(STEPPED_STRATEGIES)}", param_hint="--strategy"
        )
    if p99_ms is not None and not (0 < p99_ms < math.inf):  # also refuses nan
        raise typer.BadParameter(f"{p99_ms} is not a finite number above 0", param_hint="--p99-ms")
    plat = platform(ctx)
    current = plat.serving.get_endpoint(endpoint)
    live = [r for r, w in current.traffic.weights.items() if w > 0 and r != to]
    if len(live) != 1:
        raise typer.BadParameter(
            f"{endpoint} must have exactly one live route besides {to!r}, has {live}"
        )
    plan = plan_steps(
        TrafficPlan(
            endpoint=endpoint,
            strategy=RolloutStrategy(strategy),
            sla=SLA(
                max_error_rate=max_error_rate, p99_latency_ms=p99_ms, min_requests=min_requests
            ),
        ),
        challenger=to,
        champion=live[0],
        bake_seconds=bake,
        native=native,
    )

    if native:
        from mintaka.rollout import native as native_rollout

        rollout_id = native_rollout.start(plat, plan)
        console.print(
            f"started native rollout [bold]{rollout_id}[/] of {to} on {endpoint}; follow it with "
            f"`mintaka rollout-status {endpoint} {rollout_id}`"
        )
        return

    def wait(seconds: float) -> None:
        import time

        console.print(f"  baking {seconds:.0f}s ...")
        time.sleep(seconds)

    try:
        with _sigterm_stops_rollout():
            result = RolloutController(plat, wait=wait).run(plan)
    except RolloutTerminated:
        weights = plat.serving.get_endpoint(endpoint).traffic.weights
        err_console.print(f"rollout stopped by SIGTERM; traffic now {escape(str(weights))}")
        raise typer.Exit(SIGTERM_STATUS) from None
    for step in result.steps:
        verdict = "[red]breach[/]" if step.breaches else "[green]ok[/]"
        breaches = escape("; ".join(step.breaches))
        console.print(f"step {step.index} {escape(str(step.weights))}: {verdict} {breaches}")
    if result.promoted:
        console.print(f"[green]rolled out[/] {to} on {endpoint}")
    elif result.killed_because:
        console.print(
            f"[red]kill switch pulled[/] on {endpoint} ({escape(str(result.killed_because))}); "
            f"traffic now {escape(str(result.rolled_back_to))}"
        )
        raise typer.Exit(1)
    else:
        console.print(f"[red]rolled back[/] {endpoint} to {escape(str(result.rolled_back_to))}")
        raise typer.Exit(1)


class RolloutTerminated(KeyboardInterrupt):
    """SIGTERM stopping `mintaka rollout`: raised wherever the rollout is (mid-bake, say), so it
    unwinds as Ctrl-C does and the controller puts back the traffic it started from."""

    def __init__(self) -> None:
        super().__init__("SIGTERM")


@contextmanager
def _sigterm_stops_rollout() -> Iterator[None]:
    """While the rollout runs, SIGTERM (what process managers and container runtimes send)
    raises :class:`RolloutTerminated`, once: a second SIGTERM does not interrupt the restore the
    first one set off. The handler found before is put back afterwards, whenever a SIGTERM
    lands; one landing once the rollout has ended goes to that handler."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can handle signals
        return
    from mintaka.rollout.controller import signals_held

    raised = ended = False
    previous = signal.getsignal(signal.SIGTERM)
    # A handler not set from Python (None) was the default one.
    outside = signal.SIG_DFL if previous is None else previous

    def terminate(signum: int, _frame: FrameType | None) -> None:
        nonlocal raised
        if ended:  # the rollout is over: the handler found before takes it
            signal.signal(signum, outside)
            signal.raise_signal(signum)
        elif signum in signal.pthread_sigmask(signal.SIG_BLOCK, ()):
            # The rollout holds SIGTERM back here (see ``signals_held``), and another thread
            # took it: pending again on this thread, it is delivered as the hold ends.
            signal.pthread_kill(threading.get_ident(), signum)
        elif not raised:
            raised = True
            raise RolloutTerminated

    try:
        try:
            signal.signal(signal.SIGTERM, terminate)
            yield
        finally:
            ended = True
    finally:  # a SIGTERM from here on goes to the handler put back
        with signals_held():
            signal.signal(signal.SIGTERM, outside)


def rollout_status(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    rollout_id: Annotated[str, typer.Argument(metavar="ROLLOUT_ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Where a native rollout stands; its end is recorded (a rollback also raises an alert).
    Exits 1 when the cloud rolled it back or it failed, or when a kill stopped it before its
    end was recorded (``unknown``)."""
    from mintaka.rollout import native as native_rollout

    found = native_rollout.status(platform(ctx), endpoint, rollout_id)
    if as_json:
        emit_json({"endpoint": endpoint, "rollout": rollout_id, "status": found.value})
    else:
        colour = {"succeeded": "green", "in_progress": "cyan"}.get(found.value, "red")
        console.print(
            f"native rollout {escape(rollout_id)} on {endpoint}: [{colour}]{found.value}[/]"
        )
    ended_badly = (
        native_rollout.NativeRolloutStatus.ROLLED_BACK,
        native_rollout.NativeRolloutStatus.FAILED,
        native_rollout.NativeRolloutStatus.UNKNOWN,
    )
    if found in ended_badly:
        raise typer.Exit(1)


def rollback(
    ctx: typer.Context, endpoint: Annotated[str, typer.Argument()], reason: Reason = ""
) -> None:
    """Restore the endpoint's last known-good traffic."""
    show_endpoint(platform(ctx).serving.rollback(endpoint, reason=reason))


def kill(
    ctx: typer.Context, endpoint: Annotated[str, typer.Argument()], reason: Reason = ""
) -> None:
    """Kill switch: traffic goes back to the last known-good split whose live versions are
    all approved under the policy; without one, the endpoint refuses every request until
    released with unkill."""
    from mintaka.domain.serving import EndpointStatus

    killed = platform(ctx).serving.kill(endpoint, reason=reason)
    show_endpoint(killed)
    if killed.status is EndpointStatus.KILLED:  # the switch, not a return to approved traffic
        console.print(f"{killed.name} is killed: it refuses every request until unkill")
        _switch_limits(ctx)
    else:
        console.print(
            f"{killed.name} is not killed: its traffic went back to the last known-good, "
            "approved split"
        )


def unkill(
    ctx: typer.Context, endpoint: Annotated[str, typer.Argument()], reason: Reason = ""
) -> None:
    """Release the kill switch."""
    show_endpoint(platform(ctx).serving.unkill(endpoint, reason=reason))
    _switch_limits(ctx)


def _switch_limits(ctx: typer.Context) -> None:
    """What the backend's kill switch cannot do, when it stands in for one the cloud lacks: the
    operator pulling it needs to know (a delay before it holds, a slow release)."""
    from rich.text import Text

    from mintaka.capabilities import Capability

    backend = platform(ctx).backend
    emulation = backend.emulated.get(Capability.SERVING_KILL)
    if emulation is not None and emulation.limits:
        console.print(
            Text(f"note: {backend.name} has no kill switch of its own: {emulation.limits}")
        )


def score(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    input_path: Annotated[Path, typer.Option("--input", help="CSV or Parquet file.")],
    output_path: Annotated[Path, typer.Option("--output", help="CSV or Parquet file.")],
) -> None:
    """Score a file with a registered version; every row gets a logged prediction id."""
    result = platform(ctx).serving.score_batch(model, input_path, output_path)
    console.print(
        f"scored {result['rows']} rows into {escape(str(result['output']))} "
        f"(batch {result['batch_id']})"
    )
