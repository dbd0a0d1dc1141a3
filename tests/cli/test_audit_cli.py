"""``mintaka audit ...`` on stores whose rows, head or files were edited behind Mintaka's back."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_kit import cli, init_home

from mintaka.audit import AuditLog
from mintaka.store import Store

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _home_with_events(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    """A home whose store holds three audit events."""
    home = init_home(capsys, tmp_path / "home")
    store = Store(f"sqlite:///{home / 'store.db'}")
    log = AuditLog(store)
    for i in range(3):
        with store.write() as conn:
            log.append(conn, at=AT, actor="u", action="x.y", subject=f"s{i}", details={"i": i})
    store.dispose()
    return home


def _tamper(home: Path, sql: str, *params: object) -> None:
    """Run ``sql`` on the home's store straight through the driver, as an intruder would."""
    db = sqlite3.connect(home / "store.db")
    db.execute(sql, params)
    db.commit()
    db.close()


def test_a_relative_uri_filename_store_url_names_a_file_in_the_home(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'backend = "local"\nstore_url = "sqlite:///file:data/mystore.db?uri=true"\n'
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 0, err
    assert (home / "data" / "mystore.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_a_signing_key_beside_a_uri_filename_store_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    (home / "config.toml").write_text(
        f'backend = "local"\nstore_url = "sqlite:///file:{data / "s.db"}?uri=true"\n'
    )
    code, _, err = cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(data / "k"))
    assert code == 1
    assert "inside the store directory" in err
    assert not (data / "k").exists()
    assert (data / "s.db").is_file()


def test_verify_reports_a_deeply_nested_event_as_a_break(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = _home_with_events(capsys, tmp_path)
    # Deep enough for Python's JSON reader to give up, not for SQLite's JSON functions.
    nested = b'{"action":"model.approve","details":' + b"[" * 990 + b"]" * 990 + b"}"
    _tamper(home, "UPDATE audit_events SET canonical = ? WHERE seq = 2", nested)
    code, out, err = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 1
    assert "broken at sequence 2" in out
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("column", "value"),
    [("seq", "abc"), ("seq", 2.5), ("hash", "not a hash"), ("hash", 7)],
)
def test_verify_reports_an_edited_head_row_as_a_break(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, column: str, value: object
) -> None:
    home = _home_with_events(capsys, tmp_path)
    _tamper(home, f"UPDATE audit_head SET {column} = ?", value)
    code, out, err = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 1, err
    assert "audit chain broken at sequence" in out
    assert "chain head" in out
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    "canonical",
    [
        b"\x00\xff",
        b"not json",
        b'{"seq":2}',
        b"[1]",
        b'{"at":"yesterday","details":{}}',
        b'{"at":"2026-01-01T00:00:00","details":{}}',
        b'{"at":"2026-01-01T00:00:00+00:00","actor":7,"details":[]}',
        b'{"details":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_audit_log_names_an_event_whose_bytes_were_edited(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, canonical: bytes
) -> None:
    home = _home_with_events(capsys, tmp_path)
    _tamper(home, "UPDATE audit_events SET canonical = ? WHERE seq = 2", canonical)
    code, out, err = cli(capsys, "--home", str(home), "audit", "log")
    assert code == 1
    assert "audit event 2 cannot be read" in err
    assert "mintaka audit verify" in err
    assert "Traceback" not in out + err
    code, out, _ = cli(capsys, "--home", str(home), "audit", "log", "--subject", "s2")
    assert (code, out.count("x.y")) == (0, 1)  # the other events still list


@pytest.mark.parametrize("value", ["inf", "nan", "1e20", "-1", "3153600001"])
def test_a_clock_tolerance_beyond_a_hundred_years_or_not_finite_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str
) -> None:
    home = _home_with_events(capsys, tmp_path)
    code, _, err = cli(capsys, "--home", str(home), "audit", "verify", "--clock-tolerance", value)
    assert code == 2
    assert "--clock-tolerance" in err
    assert "3153600000" in err


def test_a_clock_tolerance_of_a_hundred_years_is_taken(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = _home_with_events(capsys, tmp_path)
    code, out, _ = cli(
        capsys, "--home", str(home), "audit", "verify", "--json", "--clock-tolerance", "3153600000"
    )
    assert code == 0
    assert json.loads(out)["clock_tolerance_seconds"] == 3153600000
