"""Pickle loads only where the server allows it and the policy's tier of the version does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serving_kit import pyfunc_artifact

from mintaka import IdFactory, ManualClock, Platform
from mintaka.governance.policy import DEFAULT_POLICY
from mintaka.local.server import InferenceServer


def _pickled(tmp_path: Path) -> Path:
    artifact = pyfunc_artifact(tmp_path, "faulty_models:echo_sum")
    (artifact / "weights.pkl").write_bytes(b"\x80\x04N.")  # a pickle protocol header
    return artifact


@pytest.mark.parametrize(("policy", "served"), [("default", False), ("open", True)])
def test_allow_pickle_on_the_server_is_not_enough_where_the_tier_forbids_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, served: bool
) -> None:
    if policy == "default":  # no tier of the shipped policy allows pickle
        monkeypatch.delenv("MINTAKA_POLICY")
        (tmp_path / "h").mkdir()
        (tmp_path / "h" / "policy.toml").write_text(DEFAULT_POLICY.read_text())
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(3), actor="ops") as plat:
        plat.register_model("m", _pickled(tmp_path), flavor="pyfunc", tier="low")
        plat.governance.set_model_card("m:1", intended_use="test", owner="ops")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
        with InferenceServer(plat, allow_pickle=True) as server:
            server.start()
            answer = httpx.post(
                f"{server.url}/endpoints/scoring/invocations", json={"inputs": {"a": 1}}
            )
    assert (answer.status_code == 200) is served
