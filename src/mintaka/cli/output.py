"""Rendering for the CLI: rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


def to_jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout, with nothing else, so scripts can parse it."""
    print(json.dumps(to_jsonable(value), indent=2, sort_keys=True, default=str))


_INSTANT = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:\+00:00|Z)?$")


def _table_cell(cell: Any) -> Text:
    """A cell as people read it: UTC instants to the second (``--json`` keeps them whole), and
    its text as written (square brackets are not markup); a ``Text`` is kept with its style."""
    if isinstance(cell, Text):
        return cell
    if cell is None:
        return Text("")
    if isinstance(cell, datetime):
        cell = cell.isoformat()
    text = str(cell)
    found = _INSTANT.match(text)
    return Text(f"{found[1]} {found[2]}" if found else text)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table when it fits the terminal with no word broken (cells wrap at spaces, the columns
    that need it least first); else each row as a record (its first cell, then one
    ``column  value`` line per non-empty cell), so that nothing is cut or broken mid-word. The
    first column (the name or id to type in the next command) is never wrapped."""
    cells = [[_table_cell(cell) for cell in row] for row in rows]
    widths = _column_widths(columns, cells, console.width)
    if widths is None:
        console.print(_records(title, columns, cells))
        return
    grid = Table(title=_title(title), title_justify="left")
    for index, column in enumerate(columns):
        grid.add_column(column, no_wrap=index == 0, width=widths[index], overflow="fold")
    for row in cells:
        grid.add_row(*row)
    console.print(grid)


def _title(title: str) -> Text:
    """A table's title as written: it names what the table lists, a model or a path included,
    so square brackets in it are not markup."""
    return Text(title, style="table.title")


def _column_widths(
    columns: Sequence[str], cells: Sequence[Sequence[Text]], width: int
) -> list[int | None] | None:
    """Each column's width in a table ``width`` wide: None throughout when the table fits as it
    is; else every column at least its longest word (the first column whole), the room left
    given to the columns that need the least of it to fit whole; None when even that is too
    wide (or the table has so few columns that it reads best as it is)."""

    def column(index: int) -> list[Text]:
        return [row[index] for row in cells if index < len(row)]

    natural = [max([len(name), *(c.cell_len for c in column(i))]) for i, name in enumerate(columns)]
    shortest = [
        natural[0],
        *(
            max(len(w) for w in [*name.split(), *(w for c in column(i) for w in c.plain.split())])
            for i, name in enumerate(columns)
            if i > 0
        ),
    ]
    room = width - (3 * len(columns) + 1)  # the frame: a rule and two spaces per column
    if sum(natural) <= room or len(columns) <= 2:
        return [None] * len(columns)
    if sum(shortest) > room:
        return None
    widths = list(shortest)
    spare = room - sum(widths)
    for i in sorted(range(len(columns)), key=lambda i: natural[i] - shortest[i]):
        given = min(spare, natural[i] - widths[i])
        widths[i] += given
        spare -= given
    return list(widths)


def _records(title: str, columns: Sequence[str], cells: Sequence[Sequence[Text]]) -> Group:
    """Rows as records, for a table wider than the terminal (psql's expanded display)."""
    parts: list[Any] = [Text(title, style="italic")] if title else []
    names = max((len(c) for c in columns[1:]), default=0)
    for row in cells:
        if not row:
            continue
        parts.append(Text.assemble((f"{columns[0]} ", "dim"), (row[0].plain, "bold")))
        record = Table.grid(padding=(0, 2))
        record.add_column(style="dim", no_wrap=True, min_width=names)
        record.add_column(overflow="fold")
        for name, cell in zip(columns[1:], row[1:], strict=False):
            if cell.plain:
                record.add_row(name, cell)
        parts.append(Padding(record, (0, 0, 0, 2), expand=False))
    return Group(*parts)


def fields(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    grid = Table(title=_title(title), title_justify="left", show_header=False)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # a digest or a URI is shown whole, wrapped if need be
    for key, value in pairs:
        grid.add_row(key, value if isinstance(value, Text) else Text(_cell(value)))
    console.print(grid)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def progress_bar(on: Console = console, label: str = "{task.description}") -> Progress:
    """A transient bar with a count and the time taken, for work over many items; nothing at all
    when ``on`` is not a terminal (a log or a pipe keeps only the result)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=on,
        transient=True,
        disable=not on.is_terminal,
    )
