"""Shared fixtures: an isolated home, an injected clock, seeded ids, a clean environment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from artifact_kit import SERVABLE_FUNCTION, MakeArtifact

from mintaka import IdFactory, ManualClock, Platform
from mintaka.governance.policy import DEFAULT_POLICY, OPEN_POLICY


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
def make_artifact(tmp_path: Path) -> MakeArtifact:
    """Build an artifact directory holding ``content`` as ``model.bin``."""
    counter = iter(range(1_000_000))

    def make(content: bytes) -> Path:
        root = tmp_path / f"artifact-{next(counter)}"
        root.mkdir()
        (root / "model.bin").write_bytes(content)
        return root

    return make


@pytest.fixture
def make_servable(make_artifact: MakeArtifact) -> MakeArtifact:
    """As ``make_artifact``, plus a ``pyfunc.json``: registered with ``flavor="pyfunc"`` it is a
    version the local inference server can serve (an endpoint may give it traffic)."""

    def make(content: bytes) -> Path:
        root = make_artifact(content)
        (root / "pyfunc.json").write_text(json.dumps({"function": SERVABLE_FUNCTION}))
        return root

    return make


@pytest.fixture
def governed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Make a home governed by the shipped default policy with ``roles`` as its ``[roles]``
    table, in place of the open policy the other tests run under."""

    def make(roles: str) -> Path:
        monkeypatch.delenv("MINTAKA_POLICY")
        home = tmp_path / "h"
        home.mkdir()
        policy = DEFAULT_POLICY.read_text().replace("[roles]\n", roles, 1)
        (home / "policy.toml").write_text(policy)
        return home

    return make


@pytest.fixture
def as_(home: Path, clock: ManualClock) -> Iterator[Callable[[str], Platform]]:
    """Open the same home as a given identity (closed at the end of the test)."""
    opened: list[Platform] = []

    def open_as(actor: str) -> Platform:
        plat = Platform(home, actor=actor, clock=clock, ids=IdFactory(len(opened) + 1))
        opened.append(plat)
        return plat

    yield open_as
    for plat in opened:
        plat.close()
