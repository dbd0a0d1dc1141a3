"""The fixtures every conformance test runs on, and the one a backend overrides.

A backend opts in by subclassing :class:`AbstractBackendFixtures` (usually through the
``Abstract*Tests`` classes, which already do) and overriding ``backend``. The suite then builds a
real :class:`mintaka.Platform` over that backend in a temporary home, with an injected
:class:`~mintaka.ManualClock` and an :class:`~mintaka.IdFactory` seeded per test, and registers the
backend class in-process, so the run needs no entry point and reads no user configuration.

Why ``backend`` yields a class and settings rather than an instance: ``Platform`` builds its backend
itself from (class, settings, :class:`~mintaka.BackendContext`), exactly as in production, so the
suite also exercises the backend's settings model and its registration checks. The mocked cloud
(moto, a fake server, ...) is started by the backend's own ``backend`` fixture and stays up while
that fixture is active; the suite never imports a mock.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest

from mintaka import Backend, Capability, IdFactory, ManualClock, Platform, hookimpl
from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE
from mintaka.plugins import BackendRegistry, PluginManager
from mintaka.store import default_url
from mintaka_conformance.scenarios import (
    MakeArtifact,
    ModelScenario,
    Names,
    ServableModel,
    build_model_scenario,
    build_servable_model,
    cleanup_models,
)
from mintaka_conformance.spy import BackendSpy

ACTOR = "conformance"


@dataclass(frozen=True)
class BackendUnderTest:
    """The backend a conformance run exercises: its class and the settings to build it with."""

    cls: type[Backend]
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cls.name

    def lacks(self, capability: Capability) -> bool:
        return capability not in self.cls.capabilities


def lacks_reason(backend: str, capability: Capability) -> str:
    """The skip reason of a test whose backend lacks ``capability`` (the error's own words)."""
    return f"backend '{backend}' lacks capability '{capability.value}'"


class InProcessPlugin:
    """A plugin object registering exactly one backend class, for a hermetic plugin manager."""

    def __init__(self, cls: type[Backend]) -> None:
        self.cls = cls

    @hookimpl
    def mintaka_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(self.cls)


class OutOfBand(Protocol):
    """Changes made through the cloud's own API, behind Mintaka's back (for the sync tests)."""

    def move_alias(self, name: str, alias: str, version: int) -> None: ...

    def delete_version(self, name: str, version: int) -> None: ...

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None: ...


class BackendOutOfBand:
    """The default out-of-band actor: the backend's own methods, called without the Platform.

    Core never hears of these calls, which is what sync must notice. A cloud backend should rather
    override ``out_of_band`` with one that calls the vendor SDK directly against its mock.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend: Any = backend

    def move_alias(self, name: str, alias: str, version: int) -> None:
        self.backend.set_alias(name, alias, version)

    def delete_version(self, name: str, version: int) -> None:
        self.backend.delete_version(name, version)

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self.backend.set_tags(name, version, dict(tags))


@dataclass(frozen=True)
class Traffic:
    """Requests one route took: ``answered`` answered, ``failed`` failed on by the server (an
    HTTP 5xx), ``refused`` refused as invalid (an HTTP 4xx)."""

    answered: int = 0
    failed: int = 0
    refused: int = 0


class SendTraffic(Protocol):
    """Makes the cloud count ``traffic`` on ``route`` of Mintaka endpoint ``endpoint``, at the
    platform clock's now, as its own metrics count real requests (for the metrics tests)."""

    def __call__(self, endpoint: str, route: str, traffic: Traffic) -> None: ...


def seed_for(nodeid: str) -> int:
    """A stable seed per test: the same ids on every run, distinct ids between tests."""
    return zlib.crc32(nodeid.encode())


class AbstractBackendFixtures:
    """Fixtures of the conformance suite; override ``backend`` (and optionally ``out_of_band``)."""

    __mintaka_conformance__: ClassVar[bool] = True

    @pytest.fixture
    def backend(self) -> BackendUnderTest:
        """Override: return (or yield, to clean up) the backend class and its settings."""
        raise NotImplementedError(
            "a conformance test class must override the `backend` fixture to return a "
            "mintaka_conformance.BackendUnderTest(BackendClass, settings)"
        )

    @pytest.fixture(autouse=True)
    def _mintaka_requires(self, request: pytest.FixtureRequest, backend: BackendUnderTest) -> None:
        """Skip, with the reason the matrix reports, a test whose capabilities are not declared."""
        request.node.user_properties.append(("mintaka_backend", backend.name))
        for mark in request.node.iter_markers("requires"):
            for capability in mark.args:
                if backend.lacks(Capability(capability)):
                    pytest.skip(lacks_reason(backend.name, Capability(capability)))

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def ids(self, request: pytest.FixtureRequest) -> IdFactory:
        return IdFactory(seed=seed_for(request.node.nodeid))

    @pytest.fixture
    def names(self, request: pytest.FixtureRequest) -> Names:
        """Unique, valid resource names, so tests sharing one (fake) cloud never collide."""
        return Names(seed_for(request.node.nodeid))

    @pytest.fixture
    def conformance_home(self, tmp_path: Path) -> Path:
        return tmp_path / "mintaka-home"

    @pytest.fixture
    def platform(
        self,
        backend: BackendUnderTest,
        conformance_home: Path,
        clock: ManualClock,
        ids: IdFactory,
    ) -> Iterator[Platform]:
        """A Platform over the backend under test, hermetic: no entry points, no user config."""
        plugins = PluginManager(load_entry_points=False, extra=[InProcessPlugin(backend.cls)])
        # The suite checks backends, not governance: the open policy lets every change through.
        conformance_home.mkdir(parents=True, exist_ok=True)
        (conformance_home / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())
        with Platform(
            conformance_home,
            backend=backend.name,
            backend_settings=dict(backend.settings),
            store_url=default_url(conformance_home),
            actor=ACTOR,
            clock=clock,
            ids=ids,
            plugins=plugins,
        ) as plat:
            yield plat

    @pytest.fixture
    def cloud(self, platform: Platform) -> Any:
        """The backend instance the platform uses: read it to see the cloud's own view."""
        return platform.backend

    @pytest.fixture
    def spy(self, platform: Platform, monkeypatch: pytest.MonkeyPatch) -> BackendSpy:
        """Records every interface method called on the backend from now on."""
        return BackendSpy.install(platform.backend, monkeypatch)

    @pytest.fixture
    def out_of_band(self, platform: Platform) -> OutOfBand:
        """Override to change the cloud through its own SDK; the default bypasses the Platform."""
        return BackendOutOfBand(platform.backend)

    @pytest.fixture
    def make_artifact(self, tmp_path: Path) -> MakeArtifact:
        """A fresh artifact directory holding ``content`` as ``model.bin``."""
        counter = iter(range(1_000_000))

        def make(content: bytes) -> Path:
            root = tmp_path / "artifacts" / f"a{next(counter)}"
            root.mkdir(parents=True)
            (root / "model.bin").write_bytes(content)
            return root

        return make

    @pytest.fixture
    def hold_pipeline_run(self) -> Callable[[str], None]:
        """Override to make the cloud keep the next run of the named pipeline running until it
        has been read a few times (a fake's pacing), so a test can act on a running run. The
        default cannot: a test that needs it is skipped, and the matrix shows it unproven."""

        def cannot(_pipeline: str) -> None:
            pytest.skip(
                "these fixtures cannot hold a pipeline run running (override hold_pipeline_run)"
            )

        return cannot

    @pytest.fixture
    def serve_unregistered(self, names: Names) -> Callable[[Path], tuple[str, str]]:
        """Override to make, through the cloud's own API and not its registry, an endpoint whose
        one route serves the model files under the given directory (deployed straight from
        them, as an endpoint made before Mintaka often is); return the endpoint's name and the
        route Mintaka reads there. The default cannot: a test that needs it is skipped, and the
        matrix shows it unproven."""

        def cannot(_files: Path) -> tuple[str, str]:
            pytest.skip(
                "these fixtures cannot deploy model files without the registry "
                "(override serve_unregistered)"
            )

        return cannot

    @pytest.fixture
    def send_traffic(self) -> SendTraffic:
        """Override to make the cloud count requests a route answered, failed on (5xx) and
        refused (4xx), through its data plane or its mock's metrics, at the platform clock's
        now. The default cannot: a test that needs it is skipped, and the matrix shows it
        unproven."""

        def cannot(endpoint: str, route: str, traffic: Traffic) -> None:
            pytest.skip("these fixtures cannot send traffic to count (override send_traffic)")

        return cannot

    @pytest.fixture
    def data_plane(self, platform: Platform) -> None:
        """Override to start what answers invocations (the local backend's inference server);
        a cloud's mock usually answers by itself, so the default does nothing."""
        return None

    @pytest.fixture
    def servable(self, platform: Platform, names: Names, tmp_path: Path) -> Iterator[ServableModel]:
        """A model with two servable scikit-learn versions (v1 and v2) over three features."""
        built = build_servable_model(platform, names, tmp_path)
        yield built
        cleanup_models(platform.backend, [built.name])

    @pytest.fixture
    def scenario(
        self,
        platform: Platform,
        clock: ManualClock,
        names: Names,
        make_artifact: MakeArtifact,
        tmp_path: Path,
    ) -> Iterator[ModelScenario]:
        """A model with three versions, tags, two aliases, and a run trained on a dataset."""
        built = build_model_scenario(platform, clock, names, make_artifact, tmp_path)
        yield built
        cleanup_models(platform.backend, [built.name])
