"""A spy on a backend instance: proves that core refused something before any backend call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mintaka import Backend
from mintaka.interfaces import CAPABILITY_INTERFACES, StoreResidentRegistry


def interface_methods() -> frozenset[str]:
    """Every method any backend interface defines: all the ways core can reach a backend."""
    return frozenset(
        name
        for iface in (*CAPABILITY_INTERFACES.values(), StoreResidentRegistry)
        for name in getattr(iface, "__abstractmethods__", ())
    )


@dataclass
class BackendSpy:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def install(cls, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> BackendSpy:
        spy = cls()
        for name in sorted(interface_methods()):
            original = getattr(backend, name, None)
            if callable(original):
                monkeypatch.setattr(backend, name, spy._wrap(name, original))
        return spy

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return original(*args, **kwargs)

        return recorded

    @property
    def called(self) -> list[str]:
        return [name for name, _, _ in self.calls]
