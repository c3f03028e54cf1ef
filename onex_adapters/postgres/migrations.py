"""Versioned schema migrations, applied once, in order, by one migrator at a time.

The migrations are the ``migrations/NNNN_name.sql`` files shipped in this package. Version
``NNNN`` orders them; each is applied in its own transaction together with its row in
``onex_schema_migrations(version, name, checksum, applied_at)`` — PostgreSQL's DDL is
transactional, so a migration is either wholly there or not at all. (The table is not called
``schema_migrations``, which other tools already use with other columns.)

:func:`migrate` is idempotent: it applies only what is missing and returns those versions
(``[]`` when the schema is current). It refuses to run, and changes nothing, when an applied
migration's checksum differs from the shipped file — someone edited a migration after it ran,
and the database no longer matches the code — or when the database has a version this code
does not know (it was migrated by a newer release). Concurrent migrators of one schema
serialize on a PostgreSQL advisory lock keyed by the schema name: the first applies, the others
wait, then find nothing to do. Migrations are written with unqualified names and land in the
first schema of the ``search_path`` (``PostgresSettings.schema``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

from psycopg import sql

from onex_adapters.postgres.errors import PostgresRejected, translating
from onex_adapters.postgres.pool import Connection, Pool, PostgresSettings, connect
from onex_core.errors import UsageError

__all__ = ["Migration", "MigrationConflict", "load_migrations", "migrate"]

_FILE_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK: Final = "SELECT pg_advisory_lock(hashtext('onex.migrations'), hashtext(%s))"
_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtext('onex.migrations'), hashtext(%s))"
_SCHEMA_EXISTS: Final = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS onex_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED: Final = "SELECT version, checksum FROM onex_schema_migrations ORDER BY version"
_RECORD: Final = "INSERT INTO onex_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"


class MigrationConflict(PostgresRejected):
    """The database's migration history does not match this code's migrations."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: its version, name and SQL text (several statements are fine)."""

    version: int
    name: str
    sql: bytes

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, hex."""
        return hashlib.sha256(self.sql).hexdigest()


def load_migrations() -> tuple[Migration, ...]:
    """The migrations shipped with this package, in version order.

    Raises:
        UsageError: a file is misnamed or two files share a version (a packaging bug).
    """
    found: list[Migration] = []
    for entry in resources.files("onex_adapters.postgres").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise UsageError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_bytes()))
    return _ordered(found)


def _ordered(migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    ordered = tuple(sorted(migrations, key=lambda m: m.version))
    versions = [m.version for m in ordered]
    if len(set(versions)) != len(versions):
        raise UsageError(f"two migrations share a version: {versions}")
    return ordered


async def migrate(
    target: str | PostgresSettings | Pool, *, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Apply the migrations the database lacks.

    Args:
        target: a DSN, settings (their ``schema`` is created if missing), or an open pool.
        migrations: what to apply; the shipped migrations by default.

    Returns:
        The versions applied now, in order; empty when the schema was already current.

    Raises:
        MigrationConflict: an applied migration's checksum changed, or the database has a
            version unknown here; nothing was applied.
        PostgresRejected: a migration failed; it was rolled back, earlier ones stay applied.
        PostgresUnavailable: the server could not be reached or the connection was lost; what
            was applied before stays applied, and running ``migrate`` again continues.
    """
    wanted = _ordered(load_migrations() if migrations is None else migrations)
    if isinstance(target, str):
        target = PostgresSettings.from_dsn(target, min_size=1, max_size=1)
    if isinstance(target, PostgresSettings):
        conn = await connect(target, operation="migrate")
        try:
            return await _migrate(conn, target.schema, wanted)
        finally:
            await conn.close()
    with translating("migrate"):
        async with target.connection() as pooled:
            return await _migrate(pooled, None, wanted)


async def _migrate(
    conn: Connection, schema: str | None, wanted: tuple[Migration, ...]
) -> list[int]:
    with translating("migrate"):
        if schema is None:
            row = await (await conn.execute("SELECT current_schema()")).fetchone()
            schema = row[0] if row else None
            if schema is None:
                raise PostgresRejected(
                    "postgres migrate failed: no schema of the search_path exists"
                )
        await conn.execute(_LOCK, [schema])
        try:
            exists = await conn.execute(_SCHEMA_EXISTS, [schema])
            if await exists.fetchone() is None:  # CREATE needs a privilege; ask only if missing
                await conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
            await conn.execute(_CREATE_TABLE)
            cursor = await conn.execute(_APPLIED)
            applied: dict[int, str] = dict(await cursor.fetchall())
            _check_history(applied, wanted)
            done: list[int] = []
            for migration in wanted:
                if migration.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        _RECORD, [migration.version, migration.name, migration.checksum]
                    )
                done.append(migration.version)
            return done
        finally:
            if not conn.broken:
                await conn.execute(_UNLOCK, [schema])


def _check_history(applied: dict[int, str], wanted: tuple[Migration, ...]) -> None:
    known = {m.version: m for m in wanted}
    for version, checksum in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationConflict(
                f"postgres migrate refused: the database has migration {version}, which this "
                "release does not know (it was migrated by a newer release)"
            )
        if migration.checksum != checksum:
            raise MigrationConflict(
                f"postgres migrate refused: migration {version} ({migration.name}) was changed "
                "after it was applied (checksum mismatch)"
            )
