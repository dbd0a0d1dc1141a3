"""Shared fixtures: an isolated home, an injected clock, seeded ids, a clean environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mintaka import IdFactory, ManualClock, Platform
from mintaka.governance.policy import OPEN_POLICY


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's Mintaka settings or writes outside its tmp_path."""
    for variable in (
        "MINTAKA_HOME",
        "MINTAKA_BACKEND",
        "MINTAKA_STORE_URL",
        "MINTAKA_ACTOR",
        "MINTAKA_PLUGINS",
        "MINTAKA_DISABLE_PLUGINS",
        "MINTAKA_STORE_SYNC",
        "MINTAKA_POLICY",
    ):
        monkeypatch.delenv(variable, raising=False)
    # Tests about other areas run under the open policy; governance tests set their own.
    monkeypatch.setenv("MINTAKA_POLICY", str(OPEN_POLICY))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / ".mintaka"


@pytest.fixture
def platform(home: Path, clock: ManualClock) -> Iterator[Platform]:
    with Platform(home, clock=clock, ids=IdFactory(seed=1234), actor="alice") as plat:
        yield plat


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A small model artifact directory with two files."""
    root = tmp_path / "artifact"
    (root / "sub").mkdir(parents=True)
    (root / "model.bin").write_bytes(b"weights-v1")
    (root / "sub" / "config.json").write_text('{"layers": 3}')
    return root


@pytest.fixture
def make_artifact(tmp_path: Path) -> Callable[[bytes], Path]:
    """Build an artifact directory holding ``content`` as ``model.bin``."""
    counter = iter(range(1_000_000))

    def make(content: bytes) -> Path:
        root = tmp_path / f"artifact-{next(counter)}"
        root.mkdir()
        (root / "model.bin").write_bytes(content)
        return root

    return make
