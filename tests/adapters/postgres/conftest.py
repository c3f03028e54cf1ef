"""The PostgreSQL tests run against a real server (see ``_server.discover``).

Every test that needs the server gets its own freshly created schema (``schema``), with the
migrations applied (``settings``) or not (``bare_settings``), and the schema is dropped after
the test: tests can run in parallel and leave nothing behind. Such tests are marked
``postgres`` automatically. Without a server they skip with a one-line reason — except under
``CI=true``, where a missing server fails the run instead.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from onex_adapters.postgres import PostgresSettings, migrate
from tests.adapters.postgres._server import Cluster, Found, find_bindir
from tests.adapters.postgres.fixtures import postgres_server, scrubbed_environment, unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()) or "pg_bindir" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="package")
def _clean_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """libpq reads PG* variables and ~/.pgpass unasked: scrub both for this package."""
    with scrubbed_environment(tmp_path_factory.mktemp("home")):
        yield


@pytest.fixture(scope="package")
def pg_server(_clean_environment: None) -> Iterator[Found]:
    with postgres_server() as found:
        yield found


@pytest.fixture(scope="package")
def pg_bindir(_clean_environment: None) -> Path:
    """initdb and pg_ctl, for tests that need a cluster of their own."""
    bindir = find_bindir()
    if bindir is None:
        unavailable("initdb/pg_ctl are not installed; cannot start a throwaway cluster")
        raise AssertionError("unreachable")
    return bindir


@pytest.fixture(scope="package")
def password_cluster(pg_bindir: Path) -> Iterator[Cluster]:
    """A throwaway cluster whose TCP connections need a password (scram-sha-256)."""
    cluster = Cluster.create(pg_bindir, password=f"pw-{secrets.token_hex(8)}")
    yield cluster
    cluster.destroy()


@pytest.fixture
def schema(pg_server: Found) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped after the test."""
    name = f"onex_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def bare_settings(pg_server: Found, schema: str) -> PostgresSettings:
    """Settings for the test's own schema, before any migration."""
    return pg_server.settings.with_schema(schema)


@pytest.fixture
def settings(bare_settings: PostgresSettings) -> PostgresSettings:
    """Settings for the test's own schema, migrated."""
    asyncio.run(migrate(bare_settings))
    return bare_settings


@pytest.fixture
def admin(pg_server: Found, schema: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A synchronous autocommit connection with the test's schema on its search_path, for
    arranging and inspecting state behind the adapters' backs."""
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield conn
