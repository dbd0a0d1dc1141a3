"""``mintaka conformance ...``: run every installed backend's conformance suite, publish the matrix.

Each plugin says where its backends' conformance test module is through the
``mintaka_conformance_suites`` hook (see :mod:`mintaka.hookspecs`); the command runs each module in
a fresh pytest process with the ``mintaka-conformance`` plugin's report option, keeps the per-test
outcomes in a JSON file and renders the backend x capability page from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mintaka.cli.output import console, err_console, table
from mintaka.errors import ConfigurationError, PluginError

if TYPE_CHECKING:
    from mintaka.plugins import PluginManager

app = typer.Typer(
    help="Run the shared conformance suite and publish the backend x capability matrix.",
    no_args_is_help=True,
)


@dataclass
class ConformanceSuites:
    """Handed to ``mintaka_conformance_suites``: maps a backend name to its test module."""

    targets: dict[str, str] = field(default_factory=dict)

    def add(self, backend: str, target: str | Path) -> None:
        """Register the test file path or dotted module that opts ``backend`` into the suite."""
        if backend in self.targets and self.targets[backend] != str(target):
            raise PluginError(f"two conformance suites registered for backend {backend!r}")
        self.targets[backend] = str(target)


def collect_suites(plugins: PluginManager) -> dict[str, str]:
    suites = ConformanceSuites()
    plugins.hook.mintaka_conformance_suites(suites=suites)
    return suites.targets


@app.command()
def matrix(
    output: Annotated[Path, typer.Option(help="The page to write.")] = Path("docs/conformance.md"),
    results: Annotated[Path, typer.Option(help="Per-test outcomes, read and rewritten.")] = Path(
        "docs/conformance-results.json"
    ),
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="Run the suites, or only re-render.")
    ] = True,
    only: Annotated[
        list[str] | None, typer.Option("--backend", help="Run only this backend (repeatable).")
    ] = None,
) -> None:
    """Run each installed backend's conformance suite and write the matrix page."""
    from mintaka.plugins import PluginManager

    plugins = PluginManager()
    backends = plugins.backends()
    for name in only or []:
        backends.get(name)  # NotFound names the installed ones, before anything runs or is written
    try:
        from mintaka_conformance import matrix as kit
    except ImportError as exc:
        # the page is rendered from the kit's test catalogue, so --no-run needs it as well
        raise ConfigurationError(
            "the conformance kit (mintaka-conformance) is not installed: "
            "`pip install mintaka-conformance`, or in a checkout `uv sync --all-packages` "
            "(or run `uv run --all-packages mintaka conformance matrix ...`)"
        ) from exc
    installed = [entry.name for entry in backends]
    suites = collect_suites(plugins)
    recorded = kit.load_results(results)
    recorded = {name: rows for name, rows in recorded.items() if name in installed}
    summary = []
    for name in installed:
        target = suites.get(name)
        if run and target is not None and (not only or name in only):
            with console.status(f"running the conformance suite of {escape(name)}"):
                recorded[name] = kit.run_suite(name, target)
        rows = recorded.get(name)
        counts = {o: sum(r["outcome"] == o for r in rows or []) for o in ("passed", "failed")}
        summary.append(
            (
                name,
                target or "-",
                "not run" if rows is None else str(counts["passed"]),
                "-" if rows is None else str(counts["failed"]),
            )
        )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(kit.dump_results(recorded))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(kit.render_installed(recorded))
    table("conformance", ["backend", "suite", "passed", "failed"], summary)
    console.print(f"wrote {escape(str(output))} and {escape(str(results))}")
    if any(row[3] not in ("-", "0") for row in summary):
        err_console.print("[red]some conformance tests failed[/]")
        raise typer.Exit(1)
