"""The plugin manager: entry-point discovery, allow/block lists and a typed facade over hooks.

Plugins are found through the ``mintaka`` entry-point group. Two environment variables make runs
hermetic:

- ``MINTAKA_PLUGINS``: comma-separated entry-point names; when set, only these load.
- ``MINTAKA_DISABLE_PLUGINS``: comma-separated entry-point names that never load.

The built-in local backend registers through the same hook as any third-party plugin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from mintaka import hookspecs
from mintaka.errors import PluginError
from mintaka.interfaces import CAPABILITY_INTERFACES, Backend

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mintaka"


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend class and the plugin that registered it."""

    name: str
    cls: type[Backend]
    plugin: str


class BackendRegistry:
    """Collects backend classes from ``mintaka_register_backends`` and checks each one."""

    def __init__(self) -> None:
        self._entries: dict[str, BackendEntry] = {}
        self._current_plugin = "?"

    def add(self, backend: type[Backend]) -> None:
        """Register a backend class; refuses a class whose declarations do not hold."""
        if not (isinstance(backend, type) and issubclass(backend, Backend)):
            raise PluginError(f"{backend!r} is not a mintaka Backend subclass")
        name = getattr(backend, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"{backend.__qualname__}.name must be an identifier, got {name!r}")
        if name in self._entries:
            other = self._entries[name]
            raise PluginError(
                f"backend {name!r} registered twice (by {other.plugin} and {self._current_plugin})"
            )
        unknown_emulated = set(backend.emulated) - set(backend.capabilities)
        if unknown_emulated:
            raise PluginError(f"backend {name!r} emulates undeclared {sorted(unknown_emulated)}")
        missing = [
            f"{cap.value} needs {iface.__name__}"
            for cap, iface in CAPABILITY_INTERFACES.items()
            if cap in backend.capabilities
            and cap not in backend.emulated
            and not issubclass(backend, iface)
        ]
        if missing:
            raise PluginError(
                f"backend {name!r} declares capabilities it does not implement: "
                + ", ".join(missing)
            )
        if getattr(backend, "__abstractmethods__", None):
            raise PluginError(
                f"backend {name!r} leaves abstract methods unimplemented: "
                + ", ".join(sorted(backend.__abstractmethods__))
            )
        self._entries[name] = BackendEntry(name, backend, self._current_plugin)

    def __iter__(self) -> Iterator[BackendEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> BackendEntry:
        try:
            return self._entries[name]
        except KeyError:
            from mintaka.errors import NotFound

            known = ", ".join(sorted(self._entries)) or "none"
            hint = ""
            if name in KNOWN_EXTRAS:
                hint = (
                    f": install it with `pip install 'mintaka[{name}]'`, "
                    f"or in a checkout `uv sync --extra {name}`"
                )
            raise NotFound(f"no backend named {name!r} (installed: {known}){hint}") from None


# The backends Mintaka ships as extras of its own package, each named as its extra.
KNOWN_EXTRAS = frozenset({"sagemaker", "databricks"})


def _names(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginManager:
    """Typed facade over ``pluggy.PluginManager`` for Mintaka's hooks."""

    def __init__(self, *, load_entry_points: bool = True, extra: Iterable[object] = ()) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.failed: dict[str, str] = {}
        if load_entry_points:
            self._load_entry_points()
        for plugin in extra:
            self._pm.register(plugin)
        self._check_pending()
        self._backends: BackendRegistry | None = None

    def _check_pending(self) -> None:
        """Fail loudly on a ``mintaka_*`` hook implementation that matches no hookspec."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r}: {exc}") from exc

    def _load_entry_points(self) -> None:
        allow = _names("MINTAKA_PLUGINS")
        block = _names("MINTAKA_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen or ep.name in block or (allow is not None and ep.name not in allow):
                continue
            seen.add(ep.name)
            self._register_entry_point(ep)

    def _register_entry_point(self, ep: EntryPoint) -> None:
        try:
            plugin: Any = ep.load()
        except ImportError as exc:
            # A plugin whose extra is not installed is reported, not fatal.
            self.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("mintaka plugin %r failed to load: %s", ep.name, exc)
            return
        self._pm.register(plugin, name=ep.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (tests, notebooks) and re-check hook names."""
        self._pm.register(plugin, name=name)
        self._check_pending()
        self._backends = None

    @property
    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self._pm.list_name_plugin() if name is not None)

    def backends(self) -> BackendRegistry:
        """Every backend class registered by every loaded plugin, collected once."""
        if self._backends is None:
            registry = BackendRegistry()
            for impl in reversed(self._pm.hook.mintaka_register_backends.get_hookimpls()):
                registry._current_plugin = impl.plugin_name
                impl.function(registry=registry)
            self._backends = registry
        return self._backends

    @property
    def hook(self) -> Any:
        return self._pm.hook
