"""Migrations apply once, in order, one migrator at a time, and refuse a history that does not
match the code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from onex_adapters.postgres import (
    Migration,
    MigrationConflict,
    PostgresRejected,
    PostgresSettings,
    migrate,
)
from onex_adapters.postgres.migrations import load_migrations
from onex_core.errors import UsageError
from tests.adapters.postgres._server import Found, pooled

Admin = psycopg.Connection[tuple[Any, ...]]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def tables(admin: Admin) -> set[str]:
    rows = admin.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    return {row[0] for row in rows}


M1 = Migration(1, "one", b"CREATE TABLE one (id int PRIMARY KEY);")
M2 = Migration(2, "two", b"CREATE TABLE two (id int); CREATE INDEX two_id ON two (id);")
M3 = Migration(3, "three", b"CREATE TABLE three (id int);")


def test_the_shipped_migrations_are_packaged_in_order() -> None:
    shipped = load_migrations()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert [m.name for m in shipped[:3]] == [
        "projections",
        "idempotency",
        "registration_projections",
    ]
    assert all(len(m.checksum) == 64 and m.sql.strip() for m in shipped)


def test_migrate_applies_everything_once(bare_settings: PostgresSettings, admin: Admin) -> None:
    shipped = load_migrations()
    assert run(migrate(bare_settings)) == [m.version for m in shipped]
    assert run(migrate(bare_settings)) == []
    assert {
        "onex_schema_migrations",
        "onex_projections",
        "onex_projection_deadlines",
        "onex_idempotency",
        "registration_projections",
    } <= tables(admin)
    history = admin.execute(
        "SELECT version, name, checksum FROM onex_schema_migrations ORDER BY version"
    ).fetchall()
    assert history == [(m.version, m.name, m.checksum) for m in shipped]


def test_migrate_takes_a_dsn_or_a_pool(pg_server: Found, bare_settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(bare_settings) as pool:
            assert await migrate(pool, migrations=[M1]) == [1]
        # A DSN lands in the server's default search_path: give it this test's schema.
        dsn = pg_server.settings.conninfo() + f" options='-csearch_path={bare_settings.schema}'"
        assert await migrate(dsn, migrations=[M1, M2]) == [2]

    run(scenario())


def test_a_missing_schema_is_created(pg_server: Found, admin: Admin) -> None:
    name = f"onex_test_new_{uuid.uuid4().hex[:8]}"
    try:
        assert run(migrate(pg_server.settings.with_schema(name), migrations=[M1])) == [1]
        found = admin.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s", [name])
        assert found.fetchone() == (1,)
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_a_changed_migration_is_refused_and_nothing_applied(
    bare_settings: PostgresSettings, admin: Admin
) -> None:
    run(migrate(bare_settings, migrations=[M1]))
    edited = Migration(1, "one", b"CREATE TABLE one (id bigint PRIMARY KEY);")
    with pytest.raises(MigrationConflict, match=r"migration 1 .* changed"):
        run(migrate(bare_settings, migrations=[edited, M2]))
    assert "two" not in tables(admin)


def test_a_database_ahead_of_the_code_is_refused(bare_settings: PostgresSettings) -> None:
    run(migrate(bare_settings, migrations=[M1, M2]))
    with pytest.raises(MigrationConflict, match="migration 2"):
        run(migrate(bare_settings, migrations=[M1]))


def test_a_failing_migration_rolls_back_alone(
    bare_settings: PostgresSettings, admin: Admin
) -> None:
    broken = Migration(2, "two", b"CREATE TABLE two (id int); CREATE TABLEX oops;")
    with pytest.raises(PostgresRejected) as caught:
        run(migrate(bare_settings, migrations=[M1, broken, M3]))
    assert caught.value.sqlstate == "42601"
    assert tables(admin) == {"onex_schema_migrations", "one"}
    assert admin.execute("SELECT version FROM onex_schema_migrations").fetchall() == [(1,)]
    assert run(migrate(bare_settings, migrations=[M1, M2, M3])) == [2, 3]


def test_concurrent_migrators_serialize(bare_settings: PostgresSettings, admin: Admin) -> None:
    async def scenario() -> list[list[int]]:
        return list(await asyncio.gather(*(migrate(bare_settings) for _ in range(5))))

    results = run(scenario())
    shipped = [m.version for m in load_migrations()]
    assert sorted(results, key=len) == [[], [], [], [], shipped]
    assert admin.execute("SELECT count(*) FROM onex_schema_migrations").fetchone() == (
        len(shipped),
    )


def test_duplicate_versions_are_a_packaging_bug(bare_settings: PostgresSettings) -> None:
    with pytest.raises(UsageError, match="share a version"):
        run(migrate(bare_settings, migrations=[M1, Migration(1, "again", b"SELECT 1;")]))
