from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from mintaka import Backend, Capability, Platform, PluginError, UnsupportedCapability, hookimpl
from mintaka.interfaces import Emulation, ModelAliases
from mintaka.local.backend import LocalBackend
from mintaka.plugins import BackendRegistry, PluginManager

HELLO_SOURCE = Path(__file__).parent / "hello_plugin"


def install_hello(site: Path) -> Path:
    """Install the throwaway plugin the way pip would: package files plus a .dist-info."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / "mintaka_hello-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mintaka-hello\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[mintaka]\nhello = mintaka_hello\n")
    (info / "RECORD").write_text("")
    return site


def run_cli(
    *args: str, extra_path: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MINTAKA_")}
    paths = [str(HELLO_SOURCE)] + ([str(extra_path)] if extra_path else [])
    environ["PYTHONPATH"] = os.pathsep.join([*paths, environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "mintaka", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def test_third_party_plugin_is_listed_by_mintaka_backends(tmp_path: Path) -> None:
    site = install_hello(tmp_path / "site")
    result = run_cli("backends", "--json", extra_path=site)
    assert result.returncode == 0, result.stderr
    listed = {b["name"]: b for b in json.loads(result.stdout)["backends"]}
    assert {"local", "hello"} <= set(listed)
    assert listed["hello"]["plugin"] == "hello"
    assert listed["hello"]["capabilities"] == {"registry": "native"}


def test_disable_and_allow_lists_make_runs_hermetic(tmp_path: Path) -> None:
    site = install_hello(tmp_path / "site")
    disabled = run_cli("backends", "--json", extra_path=site, MINTAKA_DISABLE_PLUGINS="hello")
    names = [b["name"] for b in json.loads(disabled.stdout)["backends"]]
    assert "local" in names
    assert "hello" not in names
    allowed = run_cli("backends", "--json", extra_path=site, MINTAKA_PLUGINS="hello")
    assert [b["name"] for b in json.loads(allowed.stdout)["backends"]] == ["hello"]


def test_third_party_backend_registers_models_through_the_platform(tmp_path: Path) -> None:
    sys.path.insert(0, str(HELLO_SOURCE))
    try:
        import mintaka_hello

        manager = PluginManager(load_entry_points=False, extra=[mintaka_hello])
        artifact = tmp_path / "m.bin"
        artifact.write_bytes(b"x")
        with Platform(tmp_path / "home", backend="hello", plugins=manager) as plat:
            assert plat.register_model("m", artifact).version == 1
            with pytest.raises(UnsupportedCapability) as info:
                plat.set_alias("m", "champion", 1)
    finally:
        sys.path.remove(str(HELLO_SOURCE))
    assert info.value.backend == "hello"
    assert info.value.capability == "registry.aliases"
    assert str(info.value) == "backend 'hello' lacks capability 'registry.aliases'"


def test_misspelled_hook_fails_at_start_up() -> None:
    class Typo:
        @hookimpl
        def mintaka_register_backend(self, registry: BackendRegistry) -> None:
            """Missing the final s."""

    with pytest.raises(PluginError, match="mintaka_register_backend"):
        PluginManager(load_entry_points=False, extra=[Typo()])


def test_a_backend_must_implement_what_it_declares() -> None:
    class Liar(LocalBackend):
        name = "liar"
        capabilities: ClassVar[frozenset[Capability]] = LocalBackend.capabilities | {
            Capability.SERVING_NATIVE_ROLLOUT
        }
        emulated: ClassVar[Mapping[Capability, Emulation]] = {}  # claimed as native

    with pytest.raises(PluginError, match=r"serving\.native_rollout needs NativeRollout"):
        BackendRegistry().add(Liar)


def test_a_backend_name_registered_twice_is_refused() -> None:
    registry = BackendRegistry()
    registry.add(LocalBackend)
    with pytest.raises(PluginError, match="registered twice"):
        registry.add(LocalBackend)


def test_abstract_backend_is_refused() -> None:
    class Half(Backend, ModelAliases):
        name = "half"
        capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.REGISTRY_ALIASES})

    with pytest.raises(PluginError, match="abstract methods"):
        BackendRegistry().add(Half)


def test_local_backend_comes_from_the_same_hook() -> None:
    entry = PluginManager().backends().get("local")
    assert entry.cls is LocalBackend
    assert entry.plugin == "local"


def test_every_capability_has_exactly_one_interface() -> None:
    from mintaka.interfaces import CAPABILITY_INTERFACES

    assert set(CAPABILITY_INTERFACES) == set(Capability)
    assert len(set(CAPABILITY_INTERFACES.values())) == len(Capability)
