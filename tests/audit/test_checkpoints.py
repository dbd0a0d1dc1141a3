from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_kit import cli
from sqlalchemy import text

from mintaka.audit import GENESIS, AuditLog, canonical_bytes, link_hash
from mintaka.audit import checkpoints as cp
from mintaka.errors import Conflict, IntegrityError, ValidationError
from mintaka.store import Store

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'home' / 'store.db'}")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return cp.generate_keypair(tmp_path / "keys")


# One event's actor edited in its canonical bytes (the column follows them), hashes untouched.
_MALLORY = text(
    "UPDATE audit_events SET canonical = replace(canonical, 'alice', 'mallory') WHERE seq = :s"
)


def _append(log: AuditLog, count: int, start: int = 1) -> None:
    for i in range(start, start + count):
        with log.store.write() as conn:
            log.append(
                conn,
                at=AT,
                actor="alice",
                action="model.register",
                subject=f"m:{i}",
                details={"i": i},
            )


def _checkpoint(log: AuditLog, private: Path, out: Path) -> cp.Checkpoint:
    return cp.checkpoint_into(out, log, cp.load_private_key(private), at=AT)


@pytest.fixture
def signed(store: Store, keys: tuple[Path, Path], tmp_path: Path) -> tuple[AuditLog, Path]:
    """Ten events with checkpoints at 4 and 8, then two more unsigned events."""
    log = AuditLog(store)
    out = tmp_path / "export" / cp.CHECKPOINTS_FILE
    _append(log, 4)
    _checkpoint(log, keys[0], out)
    _append(log, 4, start=5)
    _checkpoint(log, keys[0], out)
    _append(log, 2, start=9)
    return log, out


def _verify(log: AuditLog, public: Path, out: Path) -> cp.CheckpointReport:
    # Only the public key and the exported file: the private key plays no part.
    return cp.verify(log, cp.load_public_key(public), cp.read(out))


def _rewrite(store: Store, first: int, edit: bytes, replacement: bytes) -> None:
    """Rewrite the chain from ``first`` on, consistently, as someone with the store but no key."""
    with store.write() as conn:
        rows = conn.execute(
            text("SELECT seq, canonical FROM audit_events WHERE seq >= :s ORDER BY seq"),
            {"s": first},
        ).all()
        prev = (
            conn.execute(
                text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": first - 1}
            ).scalar()
            or GENESIS
        )
        for seq, blob in rows:
            body = json.loads(blob)
            body["prev_hash"] = prev
            raw = canonical_bytes(body)
            if seq == first:
                raw = raw.replace(edit, replacement)
                body = json.loads(raw)
            digest = link_hash(prev, raw)
            conn.execute(
                text(
                    "UPDATE audit_events SET canonical = :c, prev_hash = :p, hash = :h "
                    "WHERE seq = :s"
                ),
                {"c": raw, "p": prev, "h": digest, "s": seq},
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})


def test_keygen_writes_a_private_key_only_its_owner_can_read(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    assert b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(Conflict):
        cp.generate_keypair(private.parent)


def test_intact_chain_verifies_against_its_checkpoints(
    signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["seq"] == 4
    assert lines[0] == canonical_bytes(first)  # one canonical JSON object per line
    report = _verify(log, keys[1], out)
    assert report.ok, report
    assert (report.events, report.checkpoints) == (10, 2)


def test_consistent_rewrite_of_the_whole_chain_passes_links_but_fails_checkpoints(
    store: Store, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    _rewrite(store, 3, b'"subject":"m:3"', b'"subject":"m:X"')
    assert log.verify().ok  # every link is consistent: the chain alone cannot tell
    report = _verify(log, keys[1], out)
    assert not report.ok
    assert report.first_bad_seq == 4  # the first checkpoint the rewrite no longer reproduces
    assert "events 1..4 were rewritten" in (report.reason or "")


def test_rewrite_after_a_checkpoint_is_placed_after_it(
    store: Store, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    _rewrite(store, 6, b'"subject":"m:6"', b'"subject":"m:Y"')
    assert log.verify().ok
    report = _verify(log, keys[1], out)
    assert report.first_bad_seq == 8
    assert "events 5..8 were rewritten" in (report.reason or "")


def test_plain_edit_is_still_named_at_its_own_sequence(
    store: Store, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    with store.write() as conn:
        conn.execute(_MALLORY, {"s": 6})
    assert _verify(log, keys[1], out).first_bad_seq == 6


@pytest.mark.parametrize("below", [8, 3])
def test_truncation_below_a_checkpoint_is_caught(
    store: Store, signed: tuple[AuditLog, Path], keys: tuple[Path, Path], below: int
) -> None:
    log, out = signed
    with store.write() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= :s"), {"s": below})
        last = conn.execute(
            text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        ).one()
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"),
            {"s": last.seq, "h": last.hash},
        )
    assert log.verify().ok  # a consistent, shorter chain
    report = _verify(log, keys[1], out)
    assert not report.ok
    assert report.first_bad_seq == below


def test_truncated_and_regrown_chain_is_caught(
    store: Store, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    with store.write() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 7"))
        row = conn.execute(text("SELECT hash FROM audit_events WHERE seq = 6")).one()
        conn.execute(text("UPDATE audit_head SET seq = 6, hash = :h WHERE id = 1"), {"h": row.hash})
    with store.write() as conn:
        log.append(conn, at=AT, actor="mallory", action="model.register", subject="m:7")
        log.append(conn, at=AT, actor="mallory", action="model.register", subject="m:8")
    assert log.verify().ok
    assert _verify(log, keys[1], out).first_bad_seq == 8


def test_forged_checkpoint_signed_with_another_key_is_rejected(
    tmp_path: Path, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    other_private, _ = cp.generate_keypair(tmp_path / "other")
    # appended by hand: `checkpoint_into` refuses a file signed by another key
    cp.append(out, cp.checkpoint(log, cp.load_private_key(other_private), at=AT))
    report = _verify(log, keys[1], out)
    assert not report.ok
    assert "checkpoint 3" in (report.reason or "")
    assert "signed by key" in (report.reason or "")


def test_checkpoint_with_a_borrowed_key_id_is_rejected(
    tmp_path: Path, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    other = cp.load_private_key(cp.generate_keypair(tmp_path / "other")[0])
    forged = cp.sign(other, seq=4, head_hash="f" * 64, at=AT)
    forged = forged.model_copy(update={"key_id": cp.key_id(cp.load_public_key(keys[1]))})
    cp.append(out, forged)
    report = _verify(log, keys[1], out)
    assert not report.ok
    assert "signature does not verify" in (report.reason or "")


def test_edited_checkpoint_line_is_rejected(
    signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    lines = out.read_bytes().splitlines()
    entry = json.loads(lines[0])
    entry["seq"] = 3
    out.write_bytes(canonical_bytes(entry) + b"\n" + lines[1] + b"\n")
    assert "signature does not verify" in (_verify(log, keys[1], out).reason or "")
    out.write_bytes(b"not json\n")
    with pytest.raises(IntegrityError):
        cp.read(out)


def test_broken_chain_is_not_signed(store: Store, keys: tuple[Path, Path]) -> None:
    log = AuditLog(store)
    _append(log, 3)
    with store.write() as conn:
        conn.execute(_MALLORY, {"s": 2})
    with pytest.raises(IntegrityError, match="sequence 2"):
        cp.checkpoint(log, cp.load_private_key(keys[0]), at=AT)


def test_key_and_export_inside_the_store_directory_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(ValidationError, match="inside the store directory"):
        cp.ensure_outside(home / "keys" / "audit-signing.pem", [home], "signing key")
    cp.ensure_outside(tmp_path / "keys" / "audit-signing.pem", [home], "signing key")


def test_signing_key_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, keys: tuple[Path, Path]
) -> None:
    monkeypatch.setenv(cp.KEY_ENV, str(keys[0]))
    assert cp.private_key_path(None) == keys[0]
    monkeypatch.delenv(cp.KEY_ENV)
    with pytest.raises(ValidationError, match=cp.KEY_ENV):
        cp.private_key_path(None)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``mintaka ARGS``: the exit status and everything printed."""
    code, out, err = cli(capsys, *args)
    return code, out + err


def test_cli_keygen_checkpoint_and_verify_with_the_public_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    keys, export = tmp_path / "keys", tmp_path / "export"
    assert _cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(keys))[0] == 0
    log = AuditLog(Store(f"sqlite:///{home / 'store.db'}"))
    _append(log, 5)
    base = ["--home", str(home), "audit"]
    code, out = _cli(
        capsys, *base, "checkpoint", "--key", str(keys / cp.PRIVATE_KEY_FILE), "--out", str(export)
    )
    assert code == 0, out
    assert "sequence 5" in out
    check = [
        "--public-key",
        str(keys / cp.PUBLIC_KEY_FILE),
        "--checkpoints",
        str(export / cp.CHECKPOINTS_FILE),
    ]
    code, out = _cli(capsys, *base, "verify", *check)
    assert code == 0, out
    assert "5 events, 1 signed checkpoints" in out

    _rewrite(log.store, 2, b'"subject":"m:2"', b'"subject":"m:Z"')
    assert _cli(capsys, *base, "verify")[0] == 0
    code, out = _cli(capsys, *base, "verify", *check)
    assert code == 1
    assert "broken at sequence 5" in out


def test_cli_prints_key_and_checkpoint_paths_as_they_are_spelled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A directory named like console markup (``[bold]``) is printed as its name."""
    home = tmp_path / "home"
    keys, export = tmp_path / "keys[bold]", tmp_path / "export[red]"
    code, out = _cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(keys))
    assert code == 0, out
    assert str(keys / cp.PRIVATE_KEY_FILE) in out.replace("\n", "")
    assert str(keys / cp.PUBLIC_KEY_FILE) in out.replace("\n", "")
    _append(AuditLog(Store(f"sqlite:///{home / 'store.db'}")), 1)
    code, out = _cli(
        capsys,
        *["--home", str(home), "audit", "checkpoint"],
        *["--key", str(keys / cp.PRIVATE_KEY_FILE), "--out", str(export)],
    )
    assert code == 0, out
    assert str(export / cp.CHECKPOINTS_FILE) in out.replace("\n", "")


def test_cli_refuses_a_signing_key_inside_the_store_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert _cli(capsys, "--home", str(home), "init")[0] == 0
    cp.generate_keypair(home / "keys")
    monkeypatch.setenv(cp.KEY_ENV, str(home / "keys" / cp.PRIVATE_KEY_FILE))
    code, out = _cli(capsys, "--home", str(home), "audit", "checkpoint", "--out", str(tmp_path))
    assert code == 1
    assert "inside the store directory" in out


def test_cli_keygen_refuses_to_write_the_signing_key_inside_the_home(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    assert _cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(home / "keys"))[0] == 1
    assert not (home / "keys").exists()
    assert _cli(capsys, "--home", str(home), "init")[0] == 0
    code, out = _cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(home / "keys"))
    assert code == 1
    assert "inside the store directory" in out
    assert not (home / "keys" / cp.PRIVATE_KEY_FILE).exists()
    code, _ = _cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(tmp_path / "k"))
    assert code == 0


def test_an_emptied_checkpoint_file_vouches_for_nothing(
    signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    out.write_bytes(b"")
    report = _verify(log, keys[1], out)
    assert not report.ok
    assert report.checkpoints == 0
    assert "no signed checkpoint" in (report.reason or "")


def test_a_checkpoint_appended_after_a_torn_last_line_keeps_a_line_of_its_own(
    signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    whole = out.read_bytes()
    out.write_bytes(whole[:-20])  # the last checkpoint's write was cut short
    added = _checkpoint(log, keys[0], out)
    lines = out.read_bytes().splitlines()
    assert len(lines) == 3
    assert cp.Checkpoint.model_validate(json.loads(lines[-1])) == added
    with pytest.raises(IntegrityError, match="line 2 is not a checkpoint"):
        cp.read(out)  # the torn line is still reported, and only it


def test_a_checkpoint_is_refused_for_a_chain_its_checkpoint_file_contradicts(
    store: Store, signed: tuple[AuditLog, Path], keys: tuple[Path, Path]
) -> None:
    log, out = signed
    before = out.read_bytes()
    _rewrite(store, 3, b'"subject":"m:3"', b'"subject":"m:X"')
    with pytest.raises(IntegrityError, match=r"broken at sequence 4 .*refusing to sign its head"):
        _checkpoint(log, keys[0], out)
    assert out.read_bytes() == before  # nothing appended
    fresh = out.parent / "fresh" / cp.CHECKPOINTS_FILE
    assert _checkpoint(log, keys[0], fresh).seq == 10  # a new file has nothing to contradict

    other, _ = cp.generate_keypair(out.parent / "other")
    with pytest.raises(IntegrityError, match=r"checkpoint 1 .* rejected: signed by key"):
        _checkpoint(log, other, out)
    assert out.read_bytes() == before


def test_a_checkpoint_line_nested_too_deeply_to_read_is_not_a_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home, keys, export = tmp_path / "home", tmp_path / "keys", tmp_path / "export"
    assert _cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(keys))[0] == 0
    _append(AuditLog(Store(f"sqlite:///{home / 'store.db'}")), 2)
    export.mkdir()
    crafted = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    (export / cp.CHECKPOINTS_FILE).write_bytes(crafted)
    base = ["--home", str(home), "audit"]
    code, out = _cli(
        capsys,
        *base,
        "verify",
        "--public-key",
        str(keys / cp.PUBLIC_KEY_FILE),
        "--checkpoints",
        str(export / cp.CHECKPOINTS_FILE),
    )
    assert (code, "line 1 is not a checkpoint" in out, "Traceback" in out) == (1, True, False)
    code, out = _cli(
        capsys, *base, "checkpoint", "--key", str(keys / cp.PRIVATE_KEY_FILE), "--out", str(export)
    )
    assert (code, "line 1 is not a checkpoint" in out, "Traceback" in out) == (1, True, False)
    assert (export / cp.CHECKPOINTS_FILE).read_bytes() == crafted  # nothing appended
