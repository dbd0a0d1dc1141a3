"""A store that cannot be opened or is held by another writer is a StoreError naming why, and a
reader never waits for a writer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from mintaka import Platform, StoreError
from mintaka.store import Store
from mintaka.store import engine as store_engine


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("garbage", "Could not parse"),
        ("foo://bar", "Can't load plugin"),
        ("postgresql+nosuchdriver://u@h/db", "Can't load plugin"),
        ("sqlite:///{tmp}", "unable to open database file"),  # a directory
        ("sqlite:///{tmp}/junk.db", "file is not a database"),
    ],
)
def test_a_store_that_cannot_open_is_a_store_error(tmp_path: Path, url: str, says: str) -> None:
    (tmp_path / "junk.db").write_bytes(b"junk" * 1024)
    with pytest.raises(StoreError, match=f"cannot open the store at .*{says}"):
        Store(url.format(tmp=tmp_path))
    assert (tmp_path / "junk.db").read_bytes() == b"junk" * 1024  # never written to


def test_a_missing_driver_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_driver(*args: object, **kwargs: object) -> object:
        raise ModuleNotFoundError("No module named 'psycopg'")

    monkeypatch.setattr(store_engine, "create_engine", no_driver)
    with pytest.raises(StoreError, match="driver is not installed"):
        Store("postgresql+psycopg://u:secret@h/db")


def test_the_password_of_a_store_url_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> object:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(store_engine, "create_engine", refused)
    with pytest.raises(StoreError) as caught:
        Store("postgresql+psycopg://u:secret@h/db")
    assert "secret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A home whose store another connection holds the write lock of."""
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 50)
    home = tmp_path / "h"
    with Platform(home, actor="dana") as plat:
        plat.create_model("credit", owner="dana")
    holder = sqlite3.connect(home / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield home
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_reader_does_not_wait_for_a_writer(held: Path) -> None:
    started = time.monotonic()
    with Platform(held, actor="dana") as plat:
        assert [m.name for m in plat.list_models()] == ["credit"]
        assert plat.verify_audit().ok
    assert time.monotonic() - started < 5


def test_a_writer_held_off_past_the_busy_timeout_is_a_store_error(held: Path) -> None:
    with Platform(held, actor="dana") as plat, pytest.raises(StoreError, match="the store is busy"):
        plat.create_model("other", owner="dana")
    with Platform(held, actor="dana") as plat:
        assert [m.name for m in plat.list_models()] == ["credit"]
