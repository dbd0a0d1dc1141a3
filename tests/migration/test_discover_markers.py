"""What the local backend's discovery reports as made by Mintaka (``managed``)."""

from __future__ import annotations

from artifact_kit import MakeArtifact

from mintaka import Platform
from mintaka.artifacts import manifest_of
from mintaka.domain.registry import VersionRequest
from mintaka.local.registry_db import local_endpoints


def test_what_mintaka_made_in_the_local_backend_is_discovered_as_managed(
    platform: Platform, make_artifact: MakeArtifact, make_servable: MakeArtifact
) -> None:
    platform.register_model("churn", make_servable(b"v1"), flavor="pyfunc")
    platform.serving.create_endpoint("churn-api", "churn:1", route="blue")
    backend = platform.backend
    source = make_artifact(b"legacy")
    backend.ensure_model("legacy")  # type: ignore[attr-defined]
    backend.create_version(  # type: ignore[attr-defined]
        VersionRequest(
            name="legacy",
            artifact_path=str(source),
            artifact_digest=manifest_of(source).digest,
            mintaka_id="",
            idempotency_key="legacy-1",
        )
    )
    with backend.transactions.write() as conn:  # type: ignore[attr-defined]
        conn.execute(  # as another tool writes it: no marker
            local_endpoints.insert().values(
                name="legacy-api",
                routes=[{"name": "old", "model": "legacy", "version": 1}],
                traffic={"weights": {"old": 100}},
                status="in_service",
                killed=0,
                capture={},
                config_version=1,
                updated_at="2024-01-01T00:00:00+00:00",
            )
        )
    events = len(platform.audit.events())
    found = {(c.kind.value, c.name): c.managed for c in platform.migration.discover()}
    assert found == {
        ("model", "churn"): True,
        ("model_version", "churn:1"): True,
        ("endpoint", "churn-api"): True,
        ("model", "legacy"): False,
        ("model_version", "legacy:1"): False,
        ("endpoint", "legacy-api"): False,
    }
    assert len(platform.audit.events()) == events  # discovery changes and records nothing
