"""Connections: settings that never leak the password, a pool that heals, transactions.

*Settings.* :class:`PostgresSettings` holds the connection parameters as parts. Built from parts
or parsed from a DSN (:meth:`PostgresSettings.from_dsn`), the password is registered with the
process-wide redactor at once, so no log line or error text can carry it afterwards; its
``repr`` omits it, :meth:`~PostgresSettings.describe` gives the loggable
``postgresql://user@host:port/dbname``, and only :meth:`~PostgresSettings.conninfo` — passed
straight to psycopg — contains it. Prefer ``passfile`` (mode 0600) to a password in the
environment. ``sslmode=disable`` (or ``allow``) is refused unless ``allow_insecure_tls`` says
so.

*The pool.* :func:`open_pool` builds a ``psycopg_pool.AsyncConnectionPool`` with
``check=AsyncConnectionPool.check_connection``: every connection is checked (one empty query)
as it is handed out, so after a server restart a dead connection is replaced instead of failing
the caller with ``AdminShutdown``; the check is what turns a restart into a retry instead of a
crash. Connections are in autocommit mode, so a single statement is one round trip, and
explicit transactions say ``BEGIN`` themselves (:func:`transaction`). Each new connection gets
``application_name``, the ``search_path`` (when a schema is configured; always quoted with
``psycopg.sql.Identifier``) and a ``statement_timeout``. Before the pool opens, one probe
connection is made, so a wrong password or a missing database is a permanent
``EffectRejected`` at start-up rather than a pool timeout half a minute later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeAlias

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from onex_adapters.postgres.errors import translating
from onex_adapters.redaction import REDACTOR
from onex_core.errors import UsageError

__all__ = [
    "Connection",
    "Pool",
    "PostgresSettings",
    "borrow",
    "connect",
    "open_pool",
    "transaction",
]

Connection: TypeAlias = AsyncConnection[TupleRow]
Pool: TypeAlias = AsyncConnectionPool[Connection]

_INSECURE_SSLMODES: Final = frozenset({"disable", "allow"})
_FIELDS: Final = frozenset(
    {
        "host",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "application_name",
        "connect_timeout",
    }
)


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """How to reach PostgreSQL, and how big the pool is.

    Args:
        host, port, dbname, user: where and who. ``host`` may be a socket directory.
        password: registered with the redactor on construction; never in ``repr``.
        passfile: a libpq password file, the better place for the password.
        sslmode, sslrootcert, sslcert, sslkey: TLS, passed through (``verify-full`` in
            production).
        schema: the schema the tables live in (the ``search_path``); None keeps the server's.
        application_name: how the connections show in ``pg_stat_activity``.
        connect_timeout: seconds libpq waits for a connection (at least 2).
        statement_timeout: seconds a statement may run; None for the server's setting.
        min_size, max_size: pool bounds.
        pool_timeout: seconds a caller waits for a pooled connection before
            ``EffectUnavailable``.
        allow_insecure_tls: permit ``sslmode`` ``disable`` or ``allow``.
        extra: any other libpq parameters, as pairs (``target_session_attrs``…).

    Raises:
        UsageError: a size or timeout is out of range, or TLS is disabled without
            ``allow_insecure_tls``.
    """

    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = "onex"
    user: str = "onex"
    password: str | None = field(default=None, repr=False)
    passfile: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    schema: str | None = None
    application_name: str = "onex"
    connect_timeout: int = 5
    statement_timeout: float | None = 30.0
    min_size: int = 1
    max_size: int = 10
    pool_timeout: float = 10.0
    allow_insecure_tls: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.password:
            REDACTOR.register(self.password)
        if not 1 <= self.min_size <= self.max_size:
            raise UsageError("postgres settings: need 1 <= min_size <= max_size")
        if self.connect_timeout < 2 or self.pool_timeout <= 0:
            raise UsageError("postgres settings: connect_timeout >= 2 s and pool_timeout > 0")
        if self.statement_timeout is not None and self.statement_timeout <= 0:
            raise UsageError("postgres settings: statement_timeout must be positive or None")
        if self.sslmode in _INSECURE_SSLMODES and not self.allow_insecure_tls:
            raise UsageError(
                f"postgres settings: sslmode={self.sslmode} turns TLS off; "
                "set allow_insecure_tls to permit it"
            )
        if self.schema is not None and not self.schema:
            raise UsageError("postgres settings: schema must not be empty")
        if any(key == "password" for key, _ in self.extra):
            raise UsageError("postgres settings: give the password as `password`, not in extra")

    @classmethod
    def from_dsn(cls, dsn: str, **overrides: Any) -> PostgresSettings:
        """Settings parsed from a libpq DSN (``postgresql://…`` or ``key=value …``).

        The password (if any) is registered with the redactor before anything else can fail.

        Args:
            dsn: the connection string.
            overrides: fields to set as well (``schema=``, ``max_size=``…).

        Raises:
            UsageError: the DSN does not parse (the message never contains it), or a value is
                out of range.
        """
        try:
            params: Mapping[str, Any] = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            exc.args = ("(scrubbed) unparseable connection string",)
            raise UsageError("postgres settings: the connection string does not parse") from None
        password = params.get("password")
        if isinstance(password, str) and password:
            REDACTOR.register(password)
        known: dict[str, Any] = {}
        extra: list[tuple[str, str]] = []
        for key, value in params.items():
            if key in _FIELDS:
                known[key] = value
            else:
                extra.append((key, str(value)))
        try:
            for key in ("port", "connect_timeout"):
                if key in known:
                    known[key] = int(known[key])
        except ValueError:
            raise UsageError(
                "postgres settings: port and connect_timeout must be integers"
            ) from None
        if extra:
            known["extra"] = tuple(extra)
        known.update(overrides)
        return cls(**known)

    def with_schema(self, schema: str | None) -> PostgresSettings:
        """The same settings for another schema."""
        return replace(self, schema=schema)

    def conninfo(self) -> str:
        """The libpq connection string. It contains the password: hand it to psycopg only."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "application_name": self.application_name,
            "connect_timeout": self.connect_timeout,
        }
        for key in ("password", "passfile", "sslmode", "sslrootcert", "sslcert", "sslkey"):
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        params.update(self.extra)
        return make_conninfo("", **params)

    def describe(self) -> str:
        """``postgresql://user@host:port/dbname`` — safe to log."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def _session_setup(settings: PostgresSettings) -> sql.Composed | None:
    parts: list[sql.Composable] = []
    if settings.schema is not None:
        parts.append(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.schema)))
    if settings.statement_timeout is not None:
        millis = max(1, round(settings.statement_timeout * 1000))
        parts.append(sql.SQL("SET statement_timeout TO {}").format(sql.Literal(millis)))
    return sql.Composed(parts).join("; ") if parts else None


async def _configure(conn: Connection, setup: sql.Composed | None) -> None:
    if setup is not None:
        await conn.execute(setup)


async def connect(settings: PostgresSettings, *, operation: str = "connect") -> Connection:
    """One autocommit connection, set up like the pool's. Close it when done.

    Raises:
        PostgresUnavailable: the server cannot be reached now.
        PostgresRejected: authentication failed, or the database does not exist.
    """
    setup = _session_setup(settings)
    with translating(operation):
        conn = await AsyncConnection.connect(settings.conninfo(), autocommit=True)
        try:
            await _configure(conn, setup)
        except BaseException:
            await conn.close()
            raise
    return conn


async def open_pool(settings: PostgresSettings) -> Pool:
    """An open pool, with ``min_size`` connections ready. Close it with ``await pool.close()``.

    Raises:
        PostgresUnavailable: the server cannot be reached, or the pool did not fill in
            ``pool_timeout`` seconds; nothing is left open.
        PostgresRejected: authentication failed, or the database does not exist.
    """
    probe = await connect(settings, operation="pool.open")
    await probe.close()
    setup = _session_setup(settings)

    async def configure(conn: Connection) -> None:
        await _configure(conn, setup)

    pool: Pool = AsyncConnectionPool(
        settings.conninfo(),
        min_size=settings.min_size,
        max_size=settings.max_size,
        timeout=settings.pool_timeout,
        kwargs={"autocommit": True},
        configure=configure,
        check=AsyncConnectionPool.check_connection,
        name="onex",
        open=False,
    )
    try:
        with translating("pool.open"):
            await pool.open(wait=True, timeout=settings.pool_timeout)
    except BaseException:
        await pool.close()
        raise
    return pool


@asynccontextmanager
async def borrow(pool: Pool, conn: Connection | None = None) -> AsyncIterator[Connection]:
    """``conn`` if given (the caller's, perhaps inside its transaction), else a pooled one
    for the duration of the block. Errors are not translated here: wrap in ``translating``."""
    if conn is not None:
        yield conn
        return
    async with pool.connection() as pooled:
        yield pooled


@asynccontextmanager
async def transaction(pool: Pool, operation: str = "transaction") -> AsyncIterator[Connection]:
    """A pooled connection inside a transaction: committed when the block ends normally,
    rolled back when it raises. Pass the connection as ``conn=`` to the stores so several
    writes — an effect and its idempotency record — commit together.

    Raises:
        PostgresUnavailable: the connection failed (also at ``COMMIT``: then the outcome is
            unknown, and a retry must find the idempotency record to avoid a second effect).
        PostgresRejected: a statement or the commit was refused; everything was rolled back.
    """
    with translating(operation):
        async with pool.connection() as conn, conn.transaction():
            yield conn
