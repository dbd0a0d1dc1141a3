"""``verify`` looks at a digest's entry under the digest's lock, shared: it waits for an ingest
storing or repairing those bytes, and never makes a lock file (a read-only store has none)."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact

import mintaka.artifacts.store as store_module
from mintaka import Platform
from mintaka.artifacts import inventory


def test_a_verify_during_a_repair_waits_for_it_and_finds_the_bytes_whole(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_artifact(b"weights")
    version = platform.register_model("credit", source)
    stored = platform.artifacts.get(version.artifact_digest)
    (stored.content / "model.bin").write_bytes(b"damaged")
    findings: list[object] = []
    waits_or_done = threading.Event()
    flock, real_place = fcntl.flock, store_module._place

    def check() -> None:
        try:
            findings.append(inventory.verify(platform).findings)
        finally:
            waits_or_done.set()

    checker = threading.Thread(target=check)

    def flock_announced(descriptor: int, operation: int) -> None:
        if threading.current_thread() is checker:
            waits_or_done.set()  # about to wait for the lock the repair holds
        flock(descriptor, operation)

    def place(tmp: Path, final: Path) -> None:  # the damaged copy is parked by now
        checker.start()
        assert waits_or_done.wait(timeout=5)
        real_place(tmp, final)

    monkeypatch.setattr(fcntl, "flock", flock_announced)
    monkeypatch.setattr(store_module, "_place", place)
    platform.artifacts.ingest(source)  # repairs it under the digest's lock
    checker.join(timeout=10)
    assert findings == [()]


def test_a_verify_makes_no_lock_file(platform: Platform, make_artifact: MakeArtifact) -> None:
    stored = platform.artifacts.ingest(make_artifact(b"weights"))
    locks = platform.artifacts.root / "locks"
    (locks / stored.digest.removeprefix("sha256:")).unlink()
    assert platform.artifacts.verify(stored.digest).digest == stored.digest
    assert list(locks.iterdir()) == []
