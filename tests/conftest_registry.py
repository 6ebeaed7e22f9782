"""Fixtures for the registry tests: storage on SQLite and on a real PostgreSQL (imported by
tests/test_registry*.py; kept out of conftest.py so other tests do not start PostgreSQL)."""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

from tests.registry_support import LocalPostgres, pg_bin_dir


@pytest.fixture(name="pg_server", scope="session")
def pg_server_fixture():
    """A PostgreSQL server URL: the test command's (FAKESTUDIO_TEST_PG), else one started here."""
    url = os.environ.get("FAKESTUDIO_TEST_PG")
    if url:
        yield url
        return
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    pg = LocalPostgres(tempfile.mkdtemp(prefix="fakestudio-pg-"))
    try:
        url = pg.start()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"could not start PostgreSQL: {e}")
    yield url
    pg.stop()
    import shutil

    shutil.rmtree(pg.folder, ignore_errors=True)


def fresh_pg_database(server_url: str) -> str:
    import psycopg

    name = "fs_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(name="storage", params=["sqlite", "postgresql"])
def storage_fixture(request, tmp_path):
    """A fresh, migrated registry storage on each backend."""
    from fakestudio.registry.storage import open_storage

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_server"))
    st = open_storage(url)
    yield st
    st.close()
