"""Serving through moto's server on 127.0.0.1: every client of the backend uses ``endpoint_url``
and real HTTP, and nothing reaches AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import make_client
from sagemaker_testkit import BUCKET, SETTINGS, sagemaker_platform

from mintaka import Platform


@pytest.fixture
def platform(tmp_path: Path, moto_server: Any, inference_image: None) -> Iterator[Platform]:
    s3 = make_client("s3", endpoint_url=moto_server.endpoint_url)
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    settings = {**SETTINGS, "endpoint_url": moto_server.endpoint_url}
    with sagemaker_platform(tmp_path / "home", settings, seed=11) as plat:
        yield plat


def test_endpoint_lifecycle_over_http(platform: Platform, moto_server: Any, tmp_path: Path) -> None:
    for n in (1, 2):
        folder = tmp_path / f"v{n}"
        folder.mkdir()
        (folder / "model.bin").write_bytes(b"weights %d" % n)
        platform.register_model("server-model", folder)
    serving = platform.serving
    serving.create_endpoint("server-ep", "server-model:1", route="blue")
    serving.deploy("server-ep", "server-model:2", route="green")
    serving.set_traffic("server-ep", {"blue": 50, "green": 50})
    routes = [serving.invoke("server-ep", {"x": float(i)})["route"] for i in range(4)]
    assert sorted(routes) == ["blue", "blue", "green", "green"]
    assert serving.invoke("server-ep", [{"x": 1.0}, {"x": 2.0}], route="green")["route"] == "green"
    serving.set_traffic("server-ep", {"blue": 100, "green": 0}, shadow="green", shadow_percent=100)
    assert {serving.invoke("server-ep", {"x": 0.0})["route"] for _ in range(3)} == {"blue"}
    mirrored = moto_server.fake.invocations("server-ep", shadow=True)
    assert [i.variant for i in mirrored] == ["green"] * 3
    observed = platform.backend.observe_endpoint("server-ep")  # type: ignore[attr-defined]
    assert observed.traffic.shadow == "green"
    serving.delete_endpoint("server-ep")
    sm = make_client("sagemaker", endpoint_url=moto_server.endpoint_url)
    assert "server-ep" not in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
