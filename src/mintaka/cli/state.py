"""Options shared by every command, and the lazily opened Platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mintaka.platform import Platform


@dataclass
class CliState:
    home: Path | None = None
    actor: str | None = None
    backend: str | None = None
    _platform: Platform | None = field(default=None, repr=False)

    def platform(self) -> Platform:
        if self._platform is None:
            from mintaka.platform import Platform  # SQLAlchemy and the domain: for commands only

            self._platform = Platform(self.home, actor=self.actor, backend=self.backend)
        return self._platform

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()
            self._platform = None


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def platform(ctx: typer.Context) -> Platform:
    return state(ctx).platform()
