"""Fixtures of the opt-in PostgreSQL tests: a fresh schema of the server's database a test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from mintaka import IdFactory, ManualClock, Platform


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema of the server's database."""
    server = os.environ["MINTAKA_TEST_POSTGRES_URL"]
    schema = f"mintaka_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_platform(pg_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Platform]:
    home = tmp_path / ".mintaka"
    with Platform(
        home, store_url=pg_url, clock=clock, ids=IdFactory(seed=7), actor="alice"
    ) as plat:
        yield plat
