"""Options shared by every command, and the lazily opened Platform.

Only ``mintaka init`` and ``mintaka demo`` create a home. Every other command opens an existing
one (a directory holding ``config.toml`` or the default store, ``store.db``) and otherwise stops
with a ConfigurationError naming the path, so a mistyped ``--home`` creates nothing.
"""

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
    backend_from_env: bool = False  # the global --backend came from MINTAKA_BACKEND
    creates_home: bool = False  # set by the commands that may create the home
    _platform: Platform | None = field(default=None, repr=False)

    def platform(self) -> Platform:
        if self._platform is None:
            from mintaka.platform import Platform  # SQLAlchemy and the domain: for commands only

            if not self.creates_home:
                require_home(self.home)
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


def command_line(ctx: typer.Context, *words: str, backend: bool = True) -> str:
    """``mintaka`` with the global options this invocation was given (``--home``, ``--as``, and
    ``--backend`` unless it came from MINTAKA_BACKEND or ``backend`` is False) then ``words``:
    a next command to print that runs as written."""
    import shlex

    given = state(ctx)
    parts = ["mintaka"]
    if given.home is not None:
        parts += ["--home", str(given.home)]
    if given.actor is not None:
        parts += ["--as", given.actor]
    if backend and given.backend is not None and not given.backend_from_env:
        parts += ["--backend", given.backend]
    return shlex.join([*parts, *words])


def require_home(home: Path | None) -> Path:
    """The resolved home, which must be one: a directory with ``config.toml`` or ``store.db``."""
    from mintaka.config import CONFIG_FILE, resolve_home
    from mintaka.errors import ConfigurationError
    from mintaka.store.engine import DEFAULT_STORE_FILE

    root = resolve_home(home)
    if not any((root / marker).is_file() for marker in (CONFIG_FILE, DEFAULT_STORE_FILE)):
        if not root.exists():
            what = "it does not exist"
        elif not root.is_dir():
            what = "it is not a directory"
        else:
            what = f"it holds neither {CONFIG_FILE} nor {DEFAULT_STORE_FILE}"
        raise ConfigurationError(
            f"no Mintaka home at {root} ({what}): create it with `mintaka init`, "
            "or point --home / MINTAKA_HOME at an existing home"
        )
    return root
