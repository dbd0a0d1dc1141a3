"""Adopting models and endpoints that a legacy tool created in the local backend's registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_kit import cli

from mintaka import Capability, IdFactory, ManualClock, Platform
from mintaka.artifacts import inventory, manifest_of
from mintaka.domain.lineage import NodeKind
from mintaka.domain.registry import BackendVersion
from mintaka.domain.serving import Route, TrafficMap
from mintaka.errors import Conflict, NotFound, UnsupportedCapability, ValidationError
from mintaka.interfaces.registry import ServedRegistration


@dataclass
class Legacy:
    """What a tool other than Mintaka left in the backend: model ``churn`` with two versions."""

    sources: dict[int, Path]
    digests: dict[int, str]


def write_legacy(platform: Platform, tmp_path: Path, *, wrong_digest: bool = False) -> Legacy:
    """Rows as another tool writes them into the local registry: no Mintaka id, tags, a stage and
    an alias; version 1's bytes are one file, version 2's a directory."""
    one = tmp_path / "legacy" / "v1" / "model.pkl"
    one.parent.mkdir(parents=True)
    one.write_bytes(b"legacy-weights-1")
    two = tmp_path / "legacy" / "v2"
    (two / "sub").mkdir(parents=True)
    (two / "model.pkl").write_bytes(b"legacy-weights-2")
    (two / "sub" / "config.json").write_text('{"depth": 3}')
    sources = {1: one, 2: two}
    digests = {n: manifest_of(p).digest for n, p in sources.items()}
    backend = platform.backend
    with backend.transactions.write() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "INSERT INTO local_models (name, description, created_at) "
            "VALUES ('churn', 'legacy', '2024-01-01T00:00:00+00:00')"
        )
        for number, path in sources.items():
            digest = "sha256:" + "0" * 64 if wrong_digest and number == 2 else digests[number]
            conn.exec_driver_sql(
                "INSERT INTO local_versions (name, version, artifact_uri, artifact_digest, "
                "flavor, metrics, description, stage, approval, mintaka_id, idempotency_key, "
                "created_at) VALUES ('churn', ?, ?, ?, 'opaque', '{}', '', ?, NULL, NULL, NULL, "
                "'2024-01-01T00:00:00+00:00')",
                (number, path.as_uri(), digest, "production" if number == 2 else None),
            )
        conn.exec_driver_sql(
            "INSERT INTO local_tags (name, version, key, value) VALUES ('churn', 2, 'team', 'crm')"
        )
        conn.exec_driver_sql(
            "INSERT INTO local_aliases (name, alias, version) VALUES ('churn', 'champion', 2)"
        )
    return Legacy(sources, digests)


@pytest.fixture
def legacy(platform: Platform, tmp_path: Path) -> Legacy:
    return write_legacy(platform, tmp_path)


def legacy_endpoint(platform: Platform, name: str = "churn-api") -> None:
    """A live endpoint another tool made (without Mintaka's marker): 80/20 over churn versions 1
    and 2."""
    platform.backend.create_endpoint(  # type: ignore[attr-defined]
        name,
        [Route(name="old", model="churn", version=1), Route(name="new", model="churn", version=2)],
        TrafficMap(weights={"old": 80, "new": 20}),
    )
    with platform.backend.transactions.write() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("UPDATE local_endpoints SET managed = 0 WHERE name = ?", (name,))


def made_by_another_tool(platform: Platform, source: Path) -> None:
    """A version of ``churn`` made through the backend's own API, Mintaka recording nothing."""
    from mintaka.domain.registry import VersionRequest

    platform.backend.create_version(  # type: ignore[attr-defined]
        VersionRequest(
            name="churn",
            artifact_path=str(source),
            artifact_digest=manifest_of(source).digest,
            mintaka_id="",
            idempotency_key=f"legacy-{source.name}",
        )
    )


def audited(platform: Platform, action: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.subject, e.details) for e in platform.audit.events() if e.action == action]


def test_discover_shows_what_the_store_does_not_record(platform: Platform, legacy: Legacy) -> None:
    legacy_endpoint(platform)
    found = {(c.kind.value, c.name): c for c in platform.migration.discover()}
    assert set(found) == {
        ("model", "churn"),
        ("model_version", "churn:1"),
        ("model_version", "churn:2"),
        ("endpoint", "churn-api"),
    }
    assert not any(c.recorded or c.managed for c in found.values())
    platform.migration.adopt_model("churn", reason="inherited")
    after = {(c.kind.value, c.name): c.recorded for c in platform.migration.discover()}
    assert after == {
        ("model", "churn"): True,
        ("model_version", "churn:1"): True,
        ("model_version", "churn:2"): True,
        ("endpoint", "churn-api"): False,
    }


def test_adopted_versions_are_recorded_as_the_cloud_has_them(
    platform: Platform, legacy: Legacy, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    dataset = platform.register_dataset("churn-train", data)
    adoption = platform.migration.adopt_model(
        "churn",
        reason="served by the batch scorer since 2024",
        owner="crm-team",
        tier="high",
        dataset_ids=[dataset.id],
        code_commit="a" * 40,
    )
    assert [v.version for v in adoption.adopted] == [1, 2]
    one, two = adoption.adopted
    assert (one.artifact_digest, two.artifact_digest) == (legacy.digests[1], legacy.digests[2])
    assert (two.tags, two.aliases, two.stage.value) == (
        {"team": "crm"},
        ("champion",),
        "production",
    )
    assert {v.owner for v in adoption.adopted} == {"crm-team"}
    assert {v.risk_tier.value for v in adoption.adopted} == {"high"}
    assert two.code_commit == "a" * 40
    assert platform.get_model_version("churn", alias="champion").version == 2
    assert platform.sync() == []
    # The bytes are Mintaka's now, and verify.
    assert inventory.verify(platform).ok
    # Lineage retrofitted from what the adopter attested, marked as adopted.
    graph = platform.lineage_upstream("churn:2")
    assert dataset.id in {n.key for n in graph.nodes if n.kind is NodeKind.DATASET}
    [node] = [n for n in graph.nodes if n.kind is NodeKind.MODEL_VERSION]
    assert node.attrs["adopted_by"] == "alice"
    events = audited(platform, "model.adopt")
    assert [s for s, _ in events] == ["churn:1", "churn:2"]
    assert {d["reason"] for _, d in events} == {"served by the batch scorer since 2024"}
    assert {d["bytes_from"] for _, d in events} == {"cloud"}
    assert events[0][1]["source"] == legacy.sources[1].as_uri()
    assert platform.verify_audit().ok


def test_adopting_again_writes_nothing(platform: Platform, legacy: Legacy) -> None:
    platform.migration.adopt_model("churn", reason="inherited")
    before = len(platform.audit.events())
    again = platform.migration.adopt_model("churn", reason="inherited")
    assert (again.adopted, again.already_recorded) == ((), (1, 2))
    assert len(platform.audit.events()) == before


def test_only_the_versions_asked_for(platform: Platform, legacy: Legacy) -> None:
    adoption = platform.migration.adopt_model("churn", reason="only the live one", versions=[2])
    assert [v.version for v in adoption.adopted] == [2]
    assert [(d.kind, d.subject) for d in platform.sync()] == [("version.unrecorded", "churn:1")]
    rest = platform.migration.adopt_model("churn", reason="and the old one")
    assert ([v.version for v in rest.adopted], rest.already_recorded) == ([1], (2,))


def nothing_recorded(platform: Platform) -> bool:
    with platform.store.read() as conn:
        versions = conn.exec_driver_sql("SELECT count(*) FROM model_versions").scalar()
        models = conn.exec_driver_sql("SELECT count(*) FROM models").scalar()
    return versions == 0 and models == 0 and not audited(platform, "model.adopt")


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda p: p.migration.adopt_model("churn", reason="  "), ValidationError, "reason"),
        (lambda p: p.migration.adopt_model("churn_2!", reason="r"), ValidationError, "churn_2!"),
        (lambda p: p.migration.adopt_model("absent", reason="r"), NotFound, "absent"),
        (
            lambda p: p.migration.adopt_model("churn", reason="r", versions=[7]),
            NotFound,
            "[7]",
        ),
        (
            lambda p: p.migration.adopt_model(
                "churn", reason="r", versions=[2], artifacts={1: "anything"}
            ),
            ValidationError,
            "versions [1]",
        ),
        (lambda p: p.migration.adopt_model("churn", reason="r", tier="huge"), ValidationError, ""),
        (
            lambda p: p.migration.adopt_model("churn", reason="r", flavor="onnx"),
            ValidationError,
            "onnx",
        ),
        (
            lambda p: p.migration.adopt_model("churn", reason="r", run_id="run-nope"),
            NotFound,
            "run-nope",
        ),
        (
            lambda p: p.migration.adopt_model("churn", reason="r", run_id=" "),
            ValidationError,
            "run id is blank",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    platform: Platform,
    legacy: Legacy,
    call: Callable[[Platform], object],
    error: type[Exception],
    says: str,
) -> None:
    with pytest.raises(error, match=None) as raised:
        call(platform)
    assert says in str(raised.value)
    assert nothing_recorded(platform)


def test_artifacts_for_versions_not_asked_for_are_refused_before_the_cloud_is_read(
    platform: Platform, legacy: Legacy, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    backend = type(platform.backend)
    real = backend.observe_model

    def observe(self: object, name: str) -> object:
        read.append(name)
        return real(self, name)  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "observe_model", observe)
    with pytest.raises(ValidationError, match=r"churn versions \[1\], which are not being adopted"):
        platform.migration.adopt_model(
            "churn", reason="r", versions=[2], artifacts={1: legacy.sources[1]}
        )
    assert read == []
    assert nothing_recorded(platform)
    # Bytes given for a version the store already records are not used either.
    platform.migration.adopt_model("churn", reason="r", versions=[1])
    read.clear()
    with pytest.raises(ValidationError, match=r"churn versions \[1\], which are not being adopted"):
        platform.migration.adopt_model("churn", reason="r", artifacts={1: legacy.sources[1]})
    assert read == []
    assert [v.version for v in platform.list_versions("churn")] == [1]


def test_bytes_that_do_not_match_the_clouds_digest_are_refused(
    platform: Platform, tmp_path: Path
) -> None:
    write_legacy(platform, tmp_path, wrong_digest=True)
    with pytest.raises(Conflict, match="churn:2"):
        platform.migration.adopt_model("churn", reason="inherited")
    assert nothing_recorded(platform)  # version 1 is not recorded without version 2 either


def test_bytes_gone_from_the_cloud_refuse_the_whole_adoption(
    platform: Platform, legacy: Legacy
) -> None:
    legacy.sources[1].unlink()
    with pytest.raises(NotFound, match="churn:1"):
        platform.migration.adopt_model("churn", reason="inherited")
    assert nothing_recorded(platform)


def test_a_backend_that_cannot_read_bytes_back_takes_them_from_the_adopter(
    platform: Platform, legacy: Legacy, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = type(platform.backend)
    monkeypatch.setattr(backend, "capabilities", backend.capabilities - {Capability.REGISTRY_FETCH})
    with pytest.raises(UnsupportedCapability, match=r"registry\.fetch.*versions \[1\]"):
        platform.migration.adopt_model("churn", reason="r", artifacts={2: legacy.sources[2]})
    assert nothing_recorded(platform)
    adoption = platform.migration.adopt_model("churn", reason="r", artifacts=legacy.sources)
    assert [v.artifact_digest for v in adoption.adopted] == [legacy.digests[1], legacy.digests[2]]
    assert {d["bytes_from"] for _, d in audited(platform, "model.adopt")} == {"adopter"}


def test_an_endpoint_is_adopted_once_its_versions_are(platform: Platform, legacy: Legacy) -> None:
    legacy_endpoint(platform)
    with pytest.raises(ValidationError, match="mintaka adopt model churn"):
        platform.migration.adopt_endpoint("churn-api", reason="inherited")
    assert platform.serving.list_endpoints() == []
    platform.migration.adopt_model("churn", reason="inherited")
    adoption = platform.migration.adopt_endpoint("churn-api", reason="inherited")
    assert (adoption.adopted, adoption.known_good, adoption.findings) == (True, True, ())
    assert adoption.endpoint.traffic.weights == {"old": 80, "new": 20}
    [deployment] = platform.serving.deployment_history("churn-api")
    assert deployment.known_good
    assert deployment.reason == "inherited"
    assert platform.sync() == []
    # Now it is Mintaka's: traffic changes pass the gate, rollback has a known-good target.
    platform.serving.set_traffic("churn-api", {"old": 50, "new": 50})
    assert platform.serving.rollback("churn-api").traffic.weights == {"old": 80, "new": 20}
    assert platform.serving.kill("churn-api").status.value == "killed"
    downstream = platform.lineage_downstream("churn:2")
    assert any(n.kind is NodeKind.DEPLOYMENT for n in downstream.nodes)


def test_an_endpoint_failing_the_gate_is_adopted_with_findings(
    governed_home: Callable[[str], Path], clock: ManualClock, tmp_path: Path
) -> None:
    home = governed_home('[roles]\nalice = ["ml-engineer"]\n')
    with Platform(home, clock=clock, ids=IdFactory(seed=7), actor="alice") as platform:
        write_legacy(platform, tmp_path)
        legacy_endpoint(platform)
        adoption = platform.migration.adopt_model("churn", reason="inherited", tier="high")
        assert any("champion" in f for f in adoption.findings)  # a production alias, unapproved
        endpoint = platform.migration.adopt_endpoint("churn-api", reason="inherited")
        assert endpoint.adopted
        assert not endpoint.known_good
        assert endpoint.findings
        [deployment] = platform.serving.deployment_history("churn-api")
        assert not deployment.known_good
        [decision] = [d for d in platform.governance.decisions("churn-api")]
        assert decision.action == "endpoint.adopt"
        assert not decision.allowed


def test_cli_discovers_and_adopts(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path, clock: ManualClock
) -> None:
    with Platform(home, clock=clock, actor="alice") as platform:
        legacy = write_legacy(platform, tmp_path)
        legacy_endpoint(platform)
    base = ["--home", str(home), "--as", "alice"]
    code, out, _ = cli(capsys, *base, "discover", "--unrecorded", "--json")
    assert code == 0
    assert {r["name"] for r in json.loads(out)} == {"churn", "churn:1", "churn:2", "churn-api"}
    code, _, err = cli(capsys, *base, "adopt", "model", "churn", "--reason", "r", "--artifact", "x")
    assert code != 0
    assert "VERSION=PATH" in err
    code, out, _ = cli(capsys, *base, "adopt", "model", "churn", "--reason", "r", "-v", "2")
    assert code == 0
    assert "adopted 1 version(s) of churn" in out
    code, out, _ = cli(capsys, *base, "sync")
    assert code == 1
    assert "1 difference(s)" in out
    assert "  mintaka adopt model churn --reason TEXT\n" in out
    code, out, _ = cli(capsys, *base, "sync", "--json")
    assert code == 1
    assert [(d["kind"], d["subject"]) for d in json.loads(out)] == [
        ("version.unrecorded", "churn:1")
    ]
    code, out, _ = cli(capsys, *base, "adopt", "model", "churn", "--reason", "inherited", "--json")
    assert code == 0
    adopted = json.loads(out)
    assert [v["artifact_digest"] for v in adopted["adopted"]] == [legacy.digests[1]]
    assert adopted["already_recorded"] == [2]
    code, out, _ = cli(capsys, *base, "sync", "--json")
    assert (code, json.loads(out)) == (0, [])
    spec = tmp_path / "monitor.toml"
    spec.write_text(
        'endpoint = "other-api"\nmodel = "churn"\n\n[[signals]]\nname = "errors"\n'
        'kind = "telemetry"\nmetric = "error_rate"\nthreshold = 0.05\nwindow = "15m"\n'
        'owner = "oncall"\n'
    )
    code, _, err = cli(
        capsys, *base, "adopt", "endpoint", "churn-api", "--reason", "r", "--monitor", str(spec)
    )
    assert code == 1
    assert "watches 'other-api'" in err  # refused before anything is adopted
    spec.write_text(spec.read_text().replace("other-api", "churn-api"))
    code, out, _ = cli(
        capsys,
        *base,
        *("adopt", "endpoint", "churn-api", "--reason", "inherited"),
        *("--monitor", str(spec), "--capture", "--capture-sample", "25"),
    )
    assert code == 0
    assert "adopted endpoint" in out
    assert "known-good" in out
    assert "request capture is on for churn-api (25% of requests)" in out
    with Platform(home, clock=clock, actor="alice") as platform:
        [monitor] = platform.monitoring.monitors()
        assert monitor.endpoint == "churn-api"
        capture = platform.backend.transactions.read  # type: ignore[attr-defined]
        with capture() as conn:
            stored = conn.exec_driver_sql(
                "SELECT capture FROM local_endpoints WHERE name = 'churn-api'"
            ).scalar()
        assert json.loads(stored)["sample_percent"] == 25
        assert [s for s, _ in audited(platform, "endpoint.capture")] == ["churn-api"]
    for sample in ("25", "50"):  # each capture sent is audited, the same one again as such
        code, out, _ = cli(
            capsys,
            *base,
            *("adopt", "endpoint", "churn-api", "--reason", "inherited"),
            *("--capture", "--capture-sample", sample),
        )
        assert code == 0
    with Platform(home, clock=clock, actor="alice") as platform:
        captures = [
            (d["capture"]["sample_percent"], d.get("again", False))
            for _, d in audited(platform, "endpoint.capture")
        ]
        assert captures == [(25, False), (25, True), (50, False)]
    code, out, _ = cli(capsys, *base, "discover", "--unrecorded", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_cli_says_a_version_asked_for_is_recorded_already_not_that_none_is_left(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path, clock: ManualClock
) -> None:
    with Platform(home, clock=clock, actor="alice") as platform:
        write_legacy(platform, tmp_path)
    adopt = ["--home", str(home), "--as", "alice", "adopt", "model", "churn", "--reason", "r"]
    assert cli(capsys, *adopt, "-v", "2")[0] == 0
    code, out, _ = cli(capsys, *adopt, "-v", "2")  # churn:1 is in the cloud, unrecorded
    assert code == 0
    assert " ".join(out.split()) == "nothing to adopt: Mintaka records churn:2 already"
    assert cli(capsys, *adopt)[0] == 0
    code, out, _ = cli(capsys, *adopt)
    assert code == 0
    assert " ".join(out.split()) == (
        "nothing to adopt: churn has no version that Mintaka does not record"
    )


def test_an_adopted_versions_evidence_pack_shows_the_adoption_and_its_gaps(
    platform: Platform, legacy: Legacy
) -> None:
    from mintaka.governance.evidence import build_pack

    platform.migration.adopt_model("churn", reason="inherited from the CRM team")
    pack = build_pack(platform, "churn:2")
    [adopted] = [e for e in pack["audit"]["events"] if e["action"] == "model.adopt"]
    assert adopted["details"]["reason"] == "inherited from the CRM team"
    # No run or data was attested: the pack says so instead of inventing lineage.
    gaps = {r["control"] for r in pack["controls"]["results"] if r["status"] == "gap"}
    lineage_controls = {
        r["control"]
        for r in pack["controls"]["results"]
        if "training-data-lineage" in r["evidence_kinds"]
    }
    assert lineage_controls
    assert lineage_controls <= gaps


@pytest.mark.parametrize(
    ("kind", "subject", "recorded", "step"),
    [
        ("version.unrecorded", "churn:3", None, "mintaka adopt model churn"),
        ("alias", "churn@champion", 2, "mintaka models alias churn:2 champion"),
        ("alias", "churn@shadow", None, None),  # only in the cloud: nothing to put back
        ("version.tags", "churn:1", {}, None),
    ],
)
def test_sync_names_the_command_that_settles_a_difference(
    kind: str, subject: str, recorded: object, step: str | None
) -> None:
    from datetime import UTC, datetime

    from mintaka.cli.migration import _next_step
    from mintaka.domain.discovery import Difference

    found = _next_step(
        Difference(
            kind=kind,
            subject=subject,
            recorded=recorded,  # type: ignore[arg-type]
            observed=None,
            detected_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert (found or "").startswith(step or "")
    assert (found is None) == (step is None)


def test_capture_is_turned_on_only_when_asked_and_also_for_an_adopted_endpoint(
    platform: Platform, legacy: Legacy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.domain.monitoring import CaptureConfig

    calls: list[tuple[str, int]] = []
    backend = type(platform.backend)
    monkeypatch.setattr(
        backend,
        "configure_capture",
        lambda _self, endpoint, config: calls.append((endpoint, config.sample_percent)),
    )
    legacy_endpoint(platform)
    platform.migration.adopt_model("churn", reason="inherited")
    platform.migration.adopt_endpoint("churn-api", reason="inherited")
    assert calls == []  # adoption alone changes nothing in the cloud
    again = platform.migration.adopt_endpoint(
        "churn-api", reason="watch it", capture=CaptureConfig(sample_percent=10)
    )
    assert not again.adopted
    assert calls == [("churn-api", 10)]
    monkeypatch.setattr(
        backend, "capabilities", backend.capabilities - {Capability.MONITORING_CAPTURE}
    )
    with pytest.raises(UnsupportedCapability, match=r"monitoring\.capture"):
        platform.migration.adopt_endpoint("churn-api", reason="r", capture=CaptureConfig())


def _capture_in_cloud(platform: Platform) -> object:
    return platform.backend.get_endpoint("churn-api").extra["capture"]  # type: ignore[attr-defined]


def _adopted_capturing(platform: Platform) -> None:
    """``churn-api`` adopted with the default capture."""
    from mintaka.domain.monitoring import CaptureConfig

    platform.migration.adopt_model("churn", reason="inherited")
    legacy_endpoint(platform)
    platform.migration.adopt_endpoint("churn-api", reason="inherited", capture=CaptureConfig())


def _capture_switched_off_outside_mintaka(platform: Platform) -> None:
    from mintaka.domain.monitoring import CaptureConfig

    platform.backend.configure_capture(  # type: ignore[attr-defined]
        "churn-api", CaptureConfig(enabled=False)
    )
    assert _capture_in_cloud(platform) != CaptureConfig().model_dump(mode="json")


def test_capture_turned_on_for_a_re_created_endpoint_is_audited(
    platform: Platform, legacy: Legacy
) -> None:
    from mintaka.domain.monitoring import CaptureConfig

    _adopted_capturing(platform)
    platform.serving.delete_endpoint("churn-api", reason="retired")
    legacy_endpoint(platform)  # made again by another tool
    _capture_switched_off_outside_mintaka(platform)
    platform.migration.adopt_endpoint("churn-api", reason="again", capture=CaptureConfig())
    assert _capture_in_cloud(platform) == CaptureConfig().model_dump(mode="json")
    events = [e for e in platform.audit.events() if e.subject == "churn-api"]
    assert [e.action for e in events][-2:] == ["endpoint.adopt", "endpoint.capture"]
    assert "again" not in events[-1].details  # this endpoint's first capture


def test_a_capture_sent_again_is_audited_as_it_may_restore_one_changed_outside_mintaka(
    platform: Platform, legacy: Legacy
) -> None:
    from mintaka.domain.monitoring import CaptureConfig

    _adopted_capturing(platform)
    _capture_switched_off_outside_mintaka(platform)
    again = platform.migration.adopt_endpoint("churn-api", reason="r", capture=CaptureConfig())
    assert not again.adopted
    assert _capture_in_cloud(platform) == CaptureConfig().model_dump(mode="json")
    captures = audited(platform, "endpoint.capture")
    assert [d.get("again") for _, d in captures] == [None, True]


def test_the_flavor_is_read_from_the_bytes_unless_given(
    platform: Platform, legacy: Legacy, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    from mintaka.domain.registry import Flavor
    from mintaka.flavors import sklearn as sklearn_flavor
    from mintaka.flavors.loader import PYFUNC_FILE, detect_flavor

    skops = sklearn_flavor.save(
        LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "skops"
    )
    pyfunc = tmp_path / "pyfunc"
    pyfunc.mkdir()
    (pyfunc / PYFUNC_FILE).write_text('{"function": "m:f"}')
    assert [detect_flavor(p) for p in (skops, pyfunc, legacy.sources[2])] == [
        Flavor.SKLEARN,
        Flavor.PYFUNC,
        Flavor.OPAQUE,
    ]
    for source in (skops, pyfunc):  # versions 3 and 4
        made_by_another_tool(platform, source)
    unmanaged = {c.name: c.managed for c in platform.migration.discover()}
    assert (unmanaged["churn:3"], unmanaged["churn:4"]) == (False, False)
    adoption = platform.migration.adopt_model("churn", reason="inherited", versions=[1, 3, 4])
    assert [v.flavor for v in adoption.adopted] == [Flavor.OPAQUE, Flavor.SKLEARN, Flavor.PYFUNC]
    assert audited(platform, "model.adopt")[1][1]["flavor"] == "sklearn"
    forced = platform.migration.adopt_model("churn", reason="inherited", flavor="opaque")
    assert [(v.version, v.flavor) for v in forced.adopted] == [(2, Flavor.OPAQUE)]


@pytest.mark.parametrize(
    ("flavor", "files", "says"),
    [
        ("sklearn", {"weights.bin": b"legacy-weights"}, r"needs model\.skops"),
        ("pyfunc", {"weights.bin": b"legacy-weights"}, r"needs pyfunc\.json"),
        ("sklearn", {"model.skops": b"not a zip"}, r"model\.skops is not a skops archive"),
    ],
)
def test_a_declared_flavor_the_bytes_cannot_load_as_is_refused(
    platform: Platform, tmp_path: Path, flavor: str, files: dict[str, bytes], says: str
) -> None:
    from mintaka.domain.registry import Flavor

    source = tmp_path / "legacy" / "v1"
    source.mkdir(parents=True)
    for name, content in files.items():
        (source / name).write_bytes(content)
    platform.backend.ensure_model("churn")  # type: ignore[attr-defined]
    made_by_another_tool(platform, source)
    with pytest.raises(ValidationError, match=rf"cannot adopt churn:1: .*{says}"):
        platform.migration.adopt_model("churn", reason="inherited", flavor=flavor)
    assert nothing_recorded(platform)
    stored = platform.migration.adopt_model("churn", reason="inherited", flavor="opaque")
    assert [v.flavor for v in stored.adopted] == [Flavor.OPAQUE]


def test_a_model_skops_that_is_no_skops_archive_is_refused_when_no_flavor_is_declared(
    platform: Platform, tmp_path: Path
) -> None:
    """Files that read as sklearn (a ``model.skops``) whose model file is not a skops archive
    are refused as a declared sklearn flavor is, before anything is recorded: adopted, the
    version would fail on every load."""
    from mintaka.domain.registry import Flavor

    source = tmp_path / "legacy" / "v1"
    source.mkdir(parents=True)
    (source / "model.skops").write_bytes(b"not a zip")
    platform.backend.ensure_model("churn")  # type: ignore[attr-defined]
    made_by_another_tool(platform, source)
    with pytest.raises(
        ValidationError,
        match=r"cannot adopt churn:1: its files read as flavor 'sklearn', but .*model\.skops is "
        r"not a skops archive.*flavor 'opaque'",
    ):
        platform.migration.adopt_model("churn", reason="inherited")
    assert nothing_recorded(platform)
    stored = platform.migration.adopt_model("churn", reason="inherited", flavor="opaque")
    assert [v.flavor for v in stored.adopted] == [Flavor.OPAQUE]


def test_discover_says_which_names_mintaka_cannot_use(
    capsys: pytest.CaptureFixture[str], home: Path, clock: ManualClock
) -> None:
    with Platform(home, clock=clock, actor="alice") as platform:
        with platform.backend.transactions.write() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql(
                "INSERT INTO local_models (name, description, created_at) "
                "VALUES ('Churn_Legacy', '', '2024-01-01T00:00:00+00:00')"
            )
        found = {c.name: c.usable_name for c in platform.migration.discover()}
        assert found == {"Churn_Legacy": False}
    base = ["--home", str(home), "--as", "alice"]
    code, out, _ = cli(capsys, *base, "discover", "--json")
    assert (code, [r["usable_name"] for r in json.loads(out)]) == (0, [False])
    code, out, _ = cli(capsys, *base, "discover")
    assert "names Mintaka cannot use" in out
    assert "Churn_Legacy" in out


def test_registering_what_an_endpoint_serves_is_refused_where_the_backend_cannot(
    platform: Platform, legacy: Legacy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every local endpoint serves registered versions: the local backend declares no
    ``registry.from_serving``, so core refuses, naming both, and records nothing."""
    legacy_endpoint(platform)
    with pytest.raises(
        UnsupportedCapability, match=r"local.*registry\.from_serving.*mintaka adopt model"
    ):
        platform.migration.adopt_served("churn-api", "old", "churn", reason="inherited")
    with pytest.raises(ValidationError, match="needs a reason"):
        platform.migration.adopt_served("churn-api", "old", "churn", reason="")
    assert nothing_recorded(platform)


def test_a_served_registration_that_cannot_read_the_bytes_first_says_so(tmp_path: Path) -> None:
    """A backend written before ``fetch_served`` existed still instantiates; the default tells
    core the bytes cannot be read before registering, so it reads them back after."""

    class RegistersOnly(ServedRegistration):
        def register_served(
            self, endpoint: str, route: str, model: str, served: str | None = None
        ) -> BackendVersion:
            raise AssertionError("not called")

    assert RegistersOnly().fetch_served("churn-api", "blue", tmp_path) is None
    assert list(tmp_path.iterdir()) == []
