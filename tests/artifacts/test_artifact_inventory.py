"""Checking the artifact store against the control-plane store's records, and sweeping it."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from sqlalchemy import func, select

from mintaka import Capability, ManualClock, NotFound, Platform, ValidationError
from mintaka.artifacts import inventory
from mintaka.artifacts.inventory import Problem
from mintaka.artifacts.store import CONTENT_DIR
from mintaka.errors import IntegrityError
from mintaka.interfaces import ModelRegistry
from mintaka.store.schema import audit_events, model_versions


def _age(platform: Platform, digest: str, seconds: float) -> None:
    """Make the stored object ``seconds`` old (no sleeping)."""
    path = platform.artifacts.get(digest).path
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _permissions_apply(tmp_path: Path) -> bool:
    """Whether file permissions stop this process (not so for root, which overrides them)."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    os.chmod(probe, 0)
    try:
        probe.read_bytes()
        return False
    except PermissionError:
        return True
    finally:
        os.chmod(probe, 0o644)


def _rows(platform: Platform) -> tuple[int, int]:
    with platform.store.read() as conn:
        versions = conn.execute(select(func.count()).select_from(model_versions)).scalar_one()
        events = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
    return versions, events


def test_a_clean_store_verifies_and_lists_what_uses_each_artifact(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    one = platform.register_model("credit", make_artifact(b"v1"))
    two = platform.register_model("credit", make_artifact(b"v2"))
    platform.register_model("churn", make_artifact(b"v1"))  # same bytes, another model

    listed = {a.digest: a for a in inventory.recorded(platform)}
    assert listed[one.artifact_digest].versions == ("churn:1", "credit:1")
    assert listed[two.artifact_digest].versions == ("credit:2",)
    assert listed[two.artifact_digest].size == 2
    assert listed[two.artifact_digest].files == 1

    seen: list[tuple[int, int]] = []
    report = inventory.verify(platform, progress=lambda done, total, _d: seen.append((done, total)))
    assert report.ok
    assert report.checked == 2
    assert report.orphans == ()
    assert seen == [(1, 2), (2, 2)]


def test_changed_and_missing_bytes_are_reported_with_the_versions_using_them(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    one = platform.register_model("credit", make_artifact(b"v1"))
    two = platform.register_model("credit", make_artifact(b"v2"))
    three = platform.register_model("credit", make_artifact(b"v3"))
    (platform.artifacts.get(one.artifact_digest).content / "model.bin").write_bytes(b"evil")
    shutil.rmtree(platform.artifacts.get(two.artifact_digest).path)

    report = inventory.verify(platform)
    assert not report.ok
    assert report.checked == 3
    found = {f.digest: f for f in report.findings}
    assert set(found) == {one.artifact_digest, two.artifact_digest}
    assert found[one.artifact_digest].problem is Problem.CORRUPT
    assert found[one.artifact_digest].versions == ("credit:1",)
    assert found[two.artifact_digest].problem is Problem.MISSING
    assert found[two.artifact_digest].versions == ("credit:2",)

    only = inventory.verify(platform, [three.artifact_digest])
    assert only.ok
    assert only.checked == 1
    assert only.orphans == ()  # orphans are looked for only when everything is checked


def test_every_damaged_object_is_a_finding_and_the_rest_are_still_checked(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    versions = [platform.register_model("credit", make_artifact(b"v%d" % i)) for i in range(6)]
    objects = [platform.artifacts._final(v.artifact_digest) for v in versions]
    shutil.rmtree(objects[0] / CONTENT_DIR)  # content gone
    (objects[1] / CONTENT_DIR / "model.bin").unlink()  # emptied
    (objects[2] / CONTENT_DIR / "extra").symlink_to("/etc/hostname")  # a link put in
    (objects[3] / "MANIFEST.json").write_text("[")  # manifest not JSON
    (objects[4] / "MANIFEST.json").write_text(json.dumps({"files": [{"path": "model.bin"}]}))

    report = inventory.verify(platform)
    assert report.checked == 6
    found = {f.digest: f.problem for f in report.findings}
    digests = [v.artifact_digest for v in versions]
    assert found == {
        digests[0]: Problem.MISSING,
        digests[1]: Problem.CORRUPT,
        digests[2]: Problem.CORRUPT,
        digests[3]: Problem.CORRUPT,
        digests[4]: Problem.CORRUPT,
    }


def test_ingesting_good_bytes_repairs_a_damaged_stored_copy(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    source = make_artifact(b"good")
    first = platform.register_model("credit", source)
    stored = platform.artifacts._final(first.artifact_digest)
    (stored / CONTENT_DIR / "model.bin").write_bytes(b"evil")
    second = platform.register_model("scoring", source)
    assert second.artifact_digest == first.artifact_digest
    assert inventory.verify(platform).ok  # both versions point at matching bytes again
    (stored / "MANIFEST.json").unlink()  # a copy that lost its manifest is stored again too
    assert platform.register_model("other", source).artifact_digest == first.artifact_digest
    assert inventory.verify(platform).ok


def test_a_digest_to_verify_is_whole_or_a_unique_prefix_of_a_recorded_one(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    version = platform.register_model("credit", make_artifact(b"v1"))
    digest = version.artifact_digest
    for given in (digest, digest[:19], digest.removeprefix("sha256:")[:20]):
        assert inventory.verify(platform, [given, digest]).checked == 1
    for bad in ("md5:abc", "sha256:" + "G" * 64, digest[:18], digest + "0"):
        with pytest.raises(ValidationError, match="not an artifact digest"):
            inventory.verify(platform, [bad])
    with pytest.raises(NotFound, match="no artifact recorded"):
        inventory.verify(platform, ["sha256:" + "0" * 64])


def test_a_prefix_naming_two_artifacts_is_refused(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.register_model("credit", make_artifact(b"v1"))
    platform.register_model("credit", make_artifact(b"v2"))
    twins = ["sha256:" + "ab" * 6 + "0" * 52, "sha256:" + "ab" * 6 + "1" * 52]
    monkeypatch.setattr(
        inventory,
        "_recorded",
        lambda conn: [inventory.RecordedArtifact(d, 1, 1, None, ()) for d in twins],
    )
    with pytest.raises(ValidationError, match="names 2 artifacts"):
        inventory.verify(platform, ["sha256:" + "ab" * 6])


def test_orphans_are_listed_and_only_old_ones_are_swept_with_an_audit_event(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    kept = platform.register_model("credit", make_artifact(b"v1"))
    old = platform.artifacts.ingest(make_artifact(b"never registered"))
    young = platform.artifacts.ingest(make_artifact(b"registration on its way"))
    _age(platform, old.digest, 7200)
    _age(platform, kept.artifact_digest, 7200)

    report = inventory.verify(platform)
    assert report.ok  # orphans are not a failure
    assert set(report.orphans) == {old.digest, young.digest}

    planned = inventory.sweep(platform, orphans=True, dry_run=True)
    assert planned.orphans_removed == (old.digest,)
    assert planned.orphans_kept == (young.digest,)
    assert platform.artifacts.exists(old.digest)  # a dry run removes nothing

    versions, events = _rows(platform)
    done = inventory.sweep(platform, orphans=True)
    assert done.orphans_removed == (old.digest,)
    assert done.orphans_kept == (young.digest,)
    assert not platform.artifacts.exists(old.digest)
    assert platform.artifacts.exists(young.digest)
    assert platform.artifacts.verify(kept.artifact_digest).digest == kept.artifact_digest
    assert _rows(platform) == (versions, events + 1)
    [event] = platform.audit.events(subject="artifacts")
    assert event.action == inventory.SWEEP_ACTION
    assert event.details["removed"] == [old.digest]
    assert platform.verify_audit().ok
    assert list((platform.artifacts.root / "tmp").iterdir()) == []

    again = inventory.sweep(platform, orphans=True)
    assert again.orphans_removed == ()
    assert _rows(platform) == (versions, events + 1)  # nothing removed, nothing audited


def test_a_sweep_that_fails_before_it_is_recorded_removes_nothing(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan = platform.artifacts.ingest(make_artifact(b"x"))
    _age(platform, orphan.digest, 7200)
    versions, events = _rows(platform)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(platform, "_audit", refuse)
    with pytest.raises(RuntimeError, match="unavailable"):
        inventory.sweep(platform, orphans=True)
    assert platform.artifacts.verify(orphan.digest).digest == orphan.digest
    assert _rows(platform) == (versions, events)
    assert list((platform.artifacts.root / "tmp").iterdir()) == []


def test_sweeping_without_orphans_leaves_stored_bytes_alone(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    orphan = platform.artifacts.ingest(make_artifact(b"x"))
    _age(platform, orphan.digest, 7200)
    stale = platform.artifacts.root / "tmp" / "ingest-interrupted"
    (stale / CONTENT_DIR).mkdir(parents=True)
    for changed in (stale / CONTENT_DIR, stale):
        os.utime(changed, (time.time() - 7200,) * 2)

    report = inventory.sweep(platform)
    assert report.staging_removed == 1
    assert not stale.exists()
    assert platform.artifacts.exists(orphan.digest)
    with pytest.raises(ValidationError, match="negative"):
        inventory.sweep(platform, min_age_seconds=-1)


def test_ingesting_an_old_orphan_again_makes_it_young(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    source = make_artifact(b"weights")
    orphan = platform.artifacts.ingest(source)
    _age(platform, orphan.digest, 7200)
    platform.artifacts.ingest(source)
    assert inventory.sweep(platform, orphans=True).orphans_kept == (orphan.digest,)


def test_a_registration_whose_bytes_were_swept_is_refused_and_records_nothing(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    ingested = platform.artifacts.ingest(make_artifact(b"weights"))
    before = _rows(platform)
    real_check = platform.artifacts.check

    def check_then_sweep(stored):  # type: ignore[no-untyped-def]
        # The bytes go between the registration's early check and its write transaction.
        checked = real_check(stored)
        inventory.sweep(platform, orphans=True, min_age_seconds=0)
        return checked

    platform.artifacts.check = check_then_sweep  # type: ignore[method-assign]
    with pytest.raises(NotFound, match="left the store"):
        platform.register_model("credit", ingested)
    versions, events = _rows(platform)
    assert (versions, events) == (before[0], before[1] + 1)  # only the sweep's own event
    registry = platform._area(Capability.REGISTRY, ModelRegistry)
    assert registry.list_versions("credit") == []  # rolled back with the store's transaction
    assert platform.verify_audit().ok


def test_cli_lists_verifies_and_sweeps(
    platform: Platform, make_artifact: MakeArtifact, capsys: pytest.CaptureFixture[str]
) -> None:
    version = platform.register_model("credit", make_artifact(b"v1"))
    orphan = platform.artifacts.ingest(make_artifact(b"orphan"))
    home = str(platform.home)

    code, out, _ = cli(capsys, "--home", home, "artifacts", "list", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert listed["digest"] == version.artifact_digest
    assert listed["versions"] == ["credit:1"]

    code, out, _ = cli(capsys, "--home", home, "artifacts", "verify")
    assert code == 0
    assert "1 checked, 0 problem(s)" in out
    assert "1 orphaned artifact(s)" in out

    (platform.artifacts.get(version.artifact_digest).content / "model.bin").write_bytes(b"x")
    code, out, _ = cli(capsys, "--home", home, "artifacts", "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["findings"][0]["problem"] == "corrupt"
    assert report["orphans"] == [orphan.digest]

    code, out, _ = cli(capsys, "--home", home, "artifacts", "sweep", "--orphans", "--dry-run")
    assert code == 0
    assert "kept 1 orphan(s)" in out
    code, out, _ = cli(
        capsys, "--home", home, "artifacts", "sweep", "--orphans", "--min-age", "0", "--json"
    )
    assert code == 0
    assert json.loads(out)["orphans_removed"] == [orphan.digest]
    assert not platform.artifacts.exists(orphan.digest)
    code, _, err = cli(capsys, "--home", home, "artifacts", "sweep", "--min-age", "-5")
    assert code == 2
    assert "--min-age" in err


def test_cli_refuses_a_minimum_age_that_is_not_a_number(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    live = platform.artifacts.root / "tmp" / "ingest-still-copying"
    live.mkdir(parents=True)
    home = str(platform.home)
    code, _, err = cli(capsys, "--home", home, "artifacts", "sweep", "--min-age", "nan")
    assert code == 2
    assert "--min-age" in err
    code, _, err = cli(capsys, "--home", home, "artifacts", "sweep", "--min-age", "inf")
    assert code == 1
    assert "finite, non-negative" in err
    assert live.exists()


def test_a_sweep_while_an_ingest_looks_at_its_stored_copy_keeps_it(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_artifact(b"weights")
    first = platform.artifacts.ingest(source)
    _age(platform, first.digest, 7200)
    real_utime = os.utime
    sweeps: list[inventory.SweepReport] = []

    def swept_first(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(os, "utime", real_utime)
        sweeps.append(inventory.sweep(platform, orphans=True))  # between its look and touch
        return real_utime(path, *args, **kwargs)

    monkeypatch.setattr(os, "utime", swept_first)
    again = platform.artifacts.ingest(source)
    assert [(s.orphans_removed, s.orphans_kept) for s in sweeps] == [((), (first.digest,))]
    assert again.digest == first.digest
    assert platform.artifacts.verify(again.digest).digest == first.digest
    assert platform.register_model("credit", again).artifact_digest == first.digest


def test_an_ingest_after_its_stored_copy_was_swept_stores_it_again(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    source = make_artifact(b"weights")
    first = platform.artifacts.ingest(source)
    _age(platform, first.digest, 7200)
    assert inventory.sweep(platform, orphans=True).orphans_removed == (first.digest,)
    again = platform.artifacts.ingest(source)
    assert platform.artifacts.verify(again.digest).digest == first.digest
    assert platform.register_model("credit", again).artifact_digest == first.digest


@pytest.mark.parametrize("age", [float("nan"), float("inf"), -float("inf")])
def test_a_minimum_age_that_is_not_a_finite_number_is_refused_and_sweeps_nothing(
    platform: Platform, make_artifact: MakeArtifact, age: float
) -> None:
    live = platform.artifacts.root / "tmp" / "ingest-still-copying"
    (live / CONTENT_DIR).mkdir(parents=True)
    orphan = platform.artifacts.ingest(make_artifact(b"orphan"))
    _age(platform, orphan.digest, 7200)
    with pytest.raises(ValidationError, match="finite, non-negative"):
        inventory.sweep(platform, min_age_seconds=age, orphans=True)
    assert live.exists()
    assert platform.artifacts.exists(orphan.digest)


def test_an_ingest_still_copying_is_never_swept(platform: Platform) -> None:
    copying = platform.artifacts.root / "tmp" / "ingest-in-progress"
    copying.mkdir(parents=True)
    assert inventory.sweep(platform, orphans=True, min_age_seconds=0).staging_removed == 0
    assert copying.exists()


def test_registrations_racing_a_sweep_never_record_bytes_it_took(
    home: Path, clock: ManualClock, make_artifact: MakeArtifact
) -> None:
    """Two platforms on one home: one ingests and registers, the other sweeps every orphan at
    once, again and again. A registration may be refused (its fresh bytes went first), but every
    version recorded has its bytes."""
    sources = [make_artifact(f"weights {i}".encode()) for i in range(20)]
    with Platform(home, clock=clock) as writer, Platform(home, clock=clock) as sweeper:
        stop = threading.Event()
        sweeps: list[int] = []

        def sweep_until_stopped() -> None:
            while not stop.wait(0.001):  # a breath between sweeps lets the writer take the lock
                report = inventory.sweep(sweeper, orphans=True, min_age_seconds=0)
                sweeps.append(len(report.orphans_removed))

        thread = threading.Thread(target=sweep_until_stopped)
        thread.start()
        recorded, refusals = 0, []
        try:
            for source in sources:
                try:
                    writer.register_model("credit", writer.artifacts.ingest(source))
                    recorded += 1
                except NotFound as exc:
                    refusals.append(str(exc))
        finally:
            stop.set()
            thread.join(timeout=30)
        assert recorded + len(refusals) == len(sources)
        assert all("left the store" in r or "is not in the store" in r for r in refusals)
        assert sweeps  # the sweeper ran
        report = inventory.verify(writer)
        assert report.ok, report.findings
        assert report.checked == recorded
        assert writer.verify_audit().ok


def test_one_unreadable_staging_entry_does_not_stop_the_sweep(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    if not _permissions_apply(tmp_path):
        pytest.skip("file permissions do not apply (root overrides them)")
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "c.json").write_text("{}")
    stored = platform.artifacts.ingest(source)
    os.chmod(stored.content / "sub", 0o644)  # damaged on disk: its files cannot be reached
    platform.artifacts.ingest(source)  # repairs it; the damaged copy is parked in staging
    orphan = platform.artifacts.ingest(make_artifact(b"never registered"))
    _age(platform, orphan.digest, 7200)
    try:
        report = inventory.sweep(platform, orphans=True, min_age_seconds=0)
        assert orphan.digest in report.orphans_removed
        assert report.staging_removed == 0
    finally:
        for parked in (platform.artifacts.root / "tmp").glob("damaged-*/content/sub"):
            os.chmod(parked, 0o755)


def test_an_object_directory_that_cannot_be_searched_is_corrupt_and_repaired(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    if not _permissions_apply(tmp_path):
        pytest.skip("file permissions do not apply (root overrides them)")
    source = make_artifact(b"v1")
    one = platform.register_model("credit", source)
    platform.register_model("credit", make_artifact(b"v2"))
    path = platform.artifacts._final(one.artifact_digest)
    os.chmod(path, 0o644)  # damaged: the object directory lost its search bit
    try:
        with pytest.raises(IntegrityError, match="cannot be read"):
            platform.artifacts.verify(one.artifact_digest)
        report = inventory.verify(platform)  # reported, and the other artifact still checked
        assert report.checked == 2
        assert [(f.digest, f.problem) for f in report.findings] == [
            (one.artifact_digest, Problem.CORRUPT)
        ]
        platform.artifacts.ingest(source)  # the right bytes repair it
        assert platform.artifacts.verify(one.artifact_digest).digest == one.artifact_digest
    finally:
        for parked in [path, *(platform.artifacts.root / "tmp").glob("damaged-*/")]:
            if parked.exists():
                os.chmod(parked, 0o755)


def test_a_dry_run_sweep_counts_the_staging_entries_that_would_go(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    staging = platform.artifacts.root / "tmp"
    (staging / "ingest-old").mkdir(parents=True)
    (staging / "ingest-copying").mkdir()
    os.utime(staging / "ingest-old", (0, 0))
    home = str(platform.home)
    code, out, _ = cli(capsys, "--home", home, "artifacts", "sweep", "--dry-run")
    assert code == 0
    assert "would remove 1 interrupted ingest(s)" in out
    code, out, _ = cli(capsys, "--home", home, "artifacts", "sweep", "--dry-run", "--json")
    assert json.loads(out)["staging_removed"] == 1
    assert sorted(p.name for p in staging.iterdir()) == ["ingest-copying", "ingest-old"]
    assert inventory.sweep(platform).staging_removed == 1
    assert [p.name for p in staging.iterdir()] == ["ingest-copying"]
