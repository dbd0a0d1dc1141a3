"""``mintaka lineage ...``: walk the lineage graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from mintaka.cli.output import console, emit_json
from mintaka.cli.state import platform

if TYPE_CHECKING:
    from mintaka.domain.lineage import LineageGraph

app = typer.Typer(
    help="Lineage: where a model came from, and what a dataset fed.", no_args_is_help=True
)


def render(graph: LineageGraph, direction: str) -> Tree:
    """Draw the graph as a tree from its root (a node reached twice is shown twice)."""
    labels = {
        node.id: f"[bold]{node.kind.value}[/] {escape(node.label or node.key)}"
        for node in graph.nodes
    }
    children: dict[str, list[str]] = {}
    for edge in graph.edges:
        src, dst = (edge.src, edge.dst) if direction == "down" else (edge.dst, edge.src)
        children.setdefault(src, []).append(dst)

    def grow(branch: Tree, node: str, path: frozenset[str]) -> None:
        for child in sorted(children.get(node, [])):
            if child not in path:
                grow(branch.add(labels.get(child, escape(child))), child, path | {child})

    reached = {dst for dsts in children.values() for dst in dsts}
    root_kind = graph.root.split(":", 1)[0]
    others = sorted(
        n.id
        for n in graph.nodes
        if n.id != graph.root and n.kind.value == root_kind and n.id not in reached
    )
    tops = [graph.root, *others]
    if len(tops) == 1:
        tree = Tree(labels.get(graph.root, escape(graph.root)))
        grow(tree, graph.root, frozenset({graph.root}))
        return tree
    tree = Tree(f"[bold]{len(tops)} {root_kind} versions[/]")
    for top in tops:
        grow(tree.add(labels.get(top, escape(top))), top, frozenset({top}))
    return tree


@app.command("upstream")
def upstream(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION, NAME@ALIAS or KIND:KEY.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What a model version was made from: runs and datasets."""
    graph = platform(ctx).lineage_upstream(ref)
    if as_json:
        emit_json(graph)
    else:
        console.print(render(graph, "up"))


@app.command("downstream")
def downstream(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(help="Dataset name (every version of it) or id, or KIND:KEY."),
    ],
    stage: Annotated[
        str | None,
        typer.Option(
            help="Only model versions in this stage (production: also those holding a "
            "production alias or live traffic), with the paths to them."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Everything made from a dataset: runs, model versions, deployments."""
    graph = platform(ctx).lineage_downstream(ref, stage=stage)
    if as_json:
        emit_json(graph)
    else:
        console.print(render(graph, "down"))


@app.command("trace")
def trace(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(metavar="PREDICTION_ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """From a prediction back to the model version, its run and its training data."""
    found = platform(ctx).serving.trace(prediction_id)
    if as_json:
        emit_json(
            {
                "prediction": found.prediction,
                "version": found.version,
                "upstream": found.upstream,
                "decisions": found.decisions,
            }
        )
        return
    p = found.prediction
    console.print(
        Text.assemble(
            ("prediction", "bold"),
            f" {prediction_id}: {p['endpoint']}/{p['route']} -> "
            f"{found.version.ref} output={p['output']} at {p['at']}",
        )
    )
    for decision in found.decisions:
        console.print(
            Text(f"  decision {decision['id']}: {decision['decision']} ({decision['actor']})")
        )
    console.print(render(found.upstream, "up"))


@app.command("decide")
def decide(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(metavar="PREDICTION_ID")],
    decision: Annotated[str, typer.Option("--decision", help="What the business decided.")],
) -> None:
    """Record the decision taken on a prediction, so lineage runs forward to it."""
    decision_id = platform(ctx).serving.record_decision(prediction_id, decision)
    console.print(f"recorded decision {decision_id} on {prediction_id}")
