"""The local server's request-body limit: 413 before the body is read in full, no model call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_kit import cli, init_home
from serving_kit import row
from sqlalchemy import func, select

from mintaka import Platform, ValidationError
from mintaka.local.server import DEFAULT_MAX_BODY_BYTES, InferenceServer
from mintaka.store.schema import predictions

Served = tuple[Platform, InferenceServer]
HTTP = httpx.Client(timeout=10)


def _url(server: InferenceServer) -> str:
    return f"{server.url}/endpoints/scoring/invocations"


def _logged(plat: Platform, server: InferenceServer) -> int:
    server.predlog.flush()
    with plat.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(predictions)).scalar_one())


def _metric(server: InferenceServer, name: str, **labels: str) -> float:
    return server.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def small(served: Served) -> Served:
    plat, server = served
    server.max_body_bytes = 1024
    return plat, server


def test_the_default_limit_is_16_mib(served: Served) -> None:
    assert served[1].max_body_bytes == DEFAULT_MAX_BODY_BYTES == 16 * 1024 * 1024


def test_a_body_under_the_limit_is_served(small: Served) -> None:
    _, server = small
    body = json.dumps({"inputs": row(0)}).encode()
    assert len(body) < 1024
    assert HTTP.post(_url(server), content=body).status_code == 200


def test_a_declared_length_over_the_limit_is_413_without_a_model_call(small: Served) -> None:
    plat, server = small
    body = json.dumps({"inputs": [row(i) for i in range(40)]}).encode()
    assert len(body) > 1024
    answer = HTTP.post(_url(server), content=body)
    assert answer.status_code == 413
    assert answer.json() == {"error": "request body over the limit of 1024 bytes"}
    assert _logged(plat, server) == 0
    labels = {"endpoint": "scoring", "route": "-", "status": "413"}
    assert _metric(server, "mintaka_requests_total", **labels) == 1
    assert _metric(server, "mintaka_errors_total", endpoint="scoring", route="blue") == 0


def test_a_chunked_body_over_the_limit_is_413(small: Served) -> None:
    plat, server = small

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 64 KiB in all, with no Content-Length
            yield b" " * 1024

    answer = HTTP.post(_url(server), content=chunks())
    assert answer.status_code == 413
    assert _logged(plat, server) == 0
    # The server still answers afterwards.
    assert HTTP.post(_url(server), json={"inputs": row(1)}).status_code == 200


def test_a_limit_below_one_byte_is_refused(served: Served) -> None:
    plat, _ = served
    with pytest.raises(ValidationError, match="max_body_bytes"):
        InferenceServer(plat, max_body_bytes=0)


def test_serve_refuses_a_nonsense_limit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(home), "serve", "--max-body-mib", "0")
    assert code == 2
    assert "--max-body-mib" in err


def test_serve_hands_its_stop_grace_to_the_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mintaka.local.server as server_module

    home = init_home(capsys, tmp_path / "h")
    started: list[InferenceServer] = []
    monkeypatch.setattr(server_module, "serve_forever", lambda server, *_: started.append(server))
    code, _, _ = cli(capsys, "--home", str(home), "serve", "--stop-grace", "0.5")
    assert code == 0
    assert [s.stop_grace for s in started] == [0.5]
    code, _, err = cli(capsys, "--home", str(home), "serve", "--stop-grace", "-1")
    assert code == 2
    assert "--stop-grace" in err


def test_invoke_sends_a_body_as_compact_utf8_json(small: Served) -> None:
    """Text outside ASCII is sent as UTF-8, not as escapes six bytes long each."""
    plat, _ = small
    payload = {**row(0), "note": "é" * 300}
    assert len(json.dumps({"inputs": payload}).encode()) > 1024
    answer = plat.serving.invoke("scoring", payload)
    assert len(answer["predictions"]) == 1


def test_invoke_sends_text_with_a_lone_surrogate_as_the_server_reads_it(served: Served) -> None:
    """Text read with ``surrogateescape`` (a byte that is not UTF-8) is sent as the server
    decodes it ("surrogatepass"), not refused before it is sent."""
    plat, _ = served
    answer = plat.serving.invoke("scoring", {**row(0), "note": "caf\udce9"})
    assert len(answer["predictions"]) == 1
