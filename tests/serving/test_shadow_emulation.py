from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from serving_kit import FEATURES, row, sklearn_artifact

from mintaka import Capability, Emulation, IdFactory, ManualClock, Platform, hookimpl
from mintaka.domain.registry import Signature
from mintaka.local.backend import LocalBackend
from mintaka.local.server import InferenceServer
from mintaka.plugins import BackendRegistry, PluginManager


class MirroredLocal(LocalBackend):
    """The local backend as a cloud without shadow traffic: core has to mirror."""

    name = "mirrored"
    emulated: ClassVar[dict[Capability, Emulation]] = {
        **LocalBackend.emulated,
        Capability.SERVING_SHADOW: Emulation(
            how="core copies requests sent through Mintaka to the shadow route",
            limits="requests that bypass Mintaka are not mirrored",
        ),
    }


class Plugin:
    @hookimpl
    def mintaka_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(MirroredLocal)


@pytest.fixture
def mirrored(tmp_path: Path) -> Iterator[tuple[Platform, InferenceServer]]:
    plugins = PluginManager(load_entry_points=False, extra=[Plugin()])
    with Platform(
        tmp_path / "h", backend="mirrored", plugins=plugins, clock=ManualClock(), ids=IdFactory(1)
    ) as plat:
        signature = Signature(inputs=dict.fromkeys(FEATURES, "float"))
        for c in (1.0, 0.01):
            plat.register_model(
                "credit", sklearn_artifact(tmp_path, c), flavor="sklearn", signature=signature
            )
        plat.serving.create_endpoint("scoring", "credit:1", route="blue")
        plat.serving.deploy("scoring", "credit:2", route="green")
        server = InferenceServer(plat, poll_interval=0.02)
        server.start()
        try:
            yield plat, server
        finally:
            server.stop()


def test_core_mirrors_the_shadow_share_when_the_cloud_cannot(
    mirrored: tuple[Platform, InferenceServer],
) -> None:
    plat, server = mirrored
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="green", shadow_percent=50)
    assert plat.backend.get_endpoint("scoring").traffic.shadow is None  # the cloud never sees it
    assert plat.serving.get_endpoint("scoring").traffic.shadow == "green"
    server.reload()
    answers = [plat.serving.invoke("scoring", row(i)) for i in range(10)]
    plat.serving._mirror.drain()
    server.predlog.flush()
    assert {a["route"] for a in answers} == {"blue"}
    assert plat.serving._mirror.sent == 5
    captured = plat.backend.read_captured("scoring")
    assert sum(1 for c in captured if c.route == "green") == 5
    assert sum(1 for c in captured if c.route == "blue") == 10


def test_an_unreachable_shadow_never_fails_the_caller(
    mirrored: tuple[Platform, InferenceServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, server = mirrored
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="green", shadow_percent=100)
    server.reload()
    original = plat.backend.invoke

    def flaky(name: str, payload: object, route: str | None = None) -> dict[str, object]:
        if route == "green":
            raise RuntimeError("shadow is down")
        return original(name, payload, route)

    monkeypatch.setattr(plat.backend, "invoke", flaky)
    assert plat.serving.invoke("scoring", row(0))["route"] == "blue"
    plat.serving._mirror.drain()
    assert plat.serving._mirror.failed == 1
