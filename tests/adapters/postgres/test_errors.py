"""Driver errors are translated at the edge: the right verdict, and never a value or a secret.

The first half classifies exceptions built by hand (every SQLSTATE class in the table); the
second triggers real errors on a real server and checks what a log or a DLQ record would see:
``str``, ``repr`` and the whole formatted traceback, chained cause included.
"""

from __future__ import annotations

import asyncio
import secrets
import traceback
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql

from onex_adapters.postgres import (
    PostgresIdempotencyStore,
    PostgresProjectionStore,
    PostgresRejected,
    PostgresSettings,
    PostgresUnavailable,
    connect,
    open_pool,
    translate,
    translating,
)
from onex_adapters.postgres.errors import is_transient
from onex_adapters.redaction import REDACTOR, Redactor
from onex_core.errors import EffectRejected, EffectUnavailable, UsageError
from tests.adapters.port_suites import projection
from tests.adapters.postgres._server import Cluster, _free_port, pooled

Admin = psycopg.Connection[tuple[Any, ...]]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def everything_a_log_could_show(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


# --------------------------------------------------------------------------- by hand

SQLSTATES = [
    ("08006", True),
    ("08001", True),
    ("40001", True),
    ("40P01", True),
    ("53300", True),
    ("53100", True),
    ("57P01", True),
    ("57P03", True),
    ("57014", True),
    ("55P03", True),
    ("25006", True),
    ("58030", True),
    ("57P04", False),
    ("40002", False),
    ("22P02", False),
    ("22003", False),
    ("23505", False),
    ("23514", False),
    ("28P01", False),
    ("28000", False),
    ("42P01", False),
    ("42601", False),
    ("42501", False),
    ("0A000", False),
    ("XX000", False),
    ("P0001", False),
]


@pytest.mark.parametrize(("sqlstate", "transient"), SQLSTATES)
def test_each_sqlstate_class_gets_its_verdict(sqlstate: str, transient: bool) -> None:
    exc = psycopg.errors.lookup(sqlstate)("secret-value-in-server-text")
    error = translate(exc, "test.op")
    assert isinstance(error, EffectUnavailable if transient else EffectRejected)
    assert isinstance(error, PostgresUnavailable if transient else PostgresRejected)
    assert error.sqlstate == sqlstate  # type: ignore[union-attr]
    assert error.backend == "postgres"
    assert is_transient(exc) is transient
    assert f"SQLSTATE {sqlstate}" in str(error)
    assert "postgres test.op failed" in str(error)
    assert "secret-value" not in everything_a_log_could_show(error)
    assert "secret-value" not in str(exc)  # the chained cause was scrubbed too


CONNECTION_TEXTS = [
    ('FATAL:  password authentication failed for user "onex"', False, "authentication failed"),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.1"', False, "pg_hba.conf"),
    ('FATAL:  role "x" does not exist', False, "role does not exist"),
    ('FATAL:  database "x" does not exist', False, "database does not exist"),
    ("FATAL:  sorry, too many clients already", True, "too many connections"),
    ('FATAL:  too many connections for role "x"', True, "too many connections"),
    ("FATAL:  the database system is starting up", True, "starting up"),
    ("connection refused\n\tIs the server running", True, "connection refused"),
    ("timeout expired", True, "timed out"),
    ("server closed the connection unexpectedly", True, "closed the connection"),
    ("FATAL:  le système de bases de données se lance", True, "connection failed or lost"),
]


@pytest.mark.parametrize(("text", "transient", "described"), CONNECTION_TEXTS)
def test_connection_failures_are_classified_by_phrase_and_the_text_dropped(
    text: str, transient: bool, described: str
) -> None:
    error = translate(psycopg.OperationalError(f"connection failed: {text}"), "connect")
    assert isinstance(error, EffectUnavailable) is transient
    assert described in str(error)
    assert '"x"' not in str(error)
    assert "10.0.0.1" not in str(error)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"), True),
        (psycopg_pool.PoolClosed("the pool 'onex' is already closed"), True),
        (psycopg_pool.TooManyRequests("too many"), True),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), False),
        (psycopg.ProgrammingError("the query has 2 placeholders but 1 parameters"), False),
        (psycopg.InterfaceError("not a connection"), False),
        (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), False),
        (OverflowError("int too big to convert"), False),
    ],
)
def test_pool_driver_and_encoding_errors_get_a_verdict(exc: Exception, transient: bool) -> None:
    assert isinstance(translate(exc, "op"), EffectUnavailable) is transient


def test_the_message_passes_through_the_redactor() -> None:
    redactor = Redactor()
    redactor.register("hunter2-operation")
    error = translate(psycopg.errors.lookup("22P02")("x"), "hunter2-operation", redactor=redactor)
    assert "hunter2" not in str(error)


def test_translating_leaves_onex_and_unrelated_errors_alone() -> None:
    with pytest.raises(UsageError), translating("op"):
        raise UsageError("a bug")
    original = PostgresRejected("already translated")
    with pytest.raises(PostgresRejected) as caught, translating("op"):
        raise original
    assert caught.value is original
    with pytest.raises(KeyError), translating("op"):
        raise KeyError("not a driver error")


def test_settings_never_show_the_password() -> None:
    canary = f"pw-{secrets.token_hex(6)}"
    settings = PostgresSettings.from_dsn(f"postgresql://onex:{canary}@db.internal:6432/app")
    assert (settings.host, settings.port, settings.dbname) == ("db.internal", 6432, "app")
    assert canary not in repr(settings)
    assert canary not in settings.describe()
    assert canary in settings.conninfo()  # only what goes to psycopg
    assert REDACTOR.redact(f"oops {canary}") == "oops ***"


def test_an_unparseable_dsn_is_refused_without_echoing_it() -> None:
    canary = f"pw-{secrets.token_hex(6)}"
    with pytest.raises(UsageError) as caught:
        PostgresSettings.from_dsn(f"host=x password={canary} broken")
    assert canary not in everything_a_log_could_show(caught.value)


@pytest.mark.parametrize("sslmode", ["disable", "allow"])
def test_turning_tls_off_needs_an_explicit_flag(sslmode: str) -> None:
    with pytest.raises(UsageError, match="allow_insecure_tls"):
        PostgresSettings(sslmode=sslmode)
    assert PostgresSettings(sslmode=sslmode, allow_insecure_tls=True).sslmode == sslmode


# --------------------------------------------------------------------------- real errors


def test_22p02_never_shows_the_bad_value(settings: PostgresSettings) -> None:
    canary = f"canary-{secrets.token_hex(6)}"

    async def scenario() -> None:
        async with pooled(settings) as pool, pool.connection() as conn:
            with pytest.raises(PostgresRejected) as caught, translating("probe"):
                await conn.execute("SELECT %s::int", [canary])
            assert caught.value.sqlstate == "22P02"
            assert "invalid input value" in str(caught.value)
            assert canary not in everything_a_log_could_show(caught.value)

    run(scenario())


def test_23505_names_the_constraint_not_the_key(settings: PostgresSettings) -> None:
    canary = f"canary-{secrets.token_hex(6)}"

    async def scenario() -> None:
        async with pooled(settings) as pool:
            await PostgresIdempotencyStore(pool).record("effects", canary)
            async with pool.connection() as conn:
                with pytest.raises(PostgresRejected) as caught, translating("insert"):
                    await conn.execute(
                        "INSERT INTO onex_idempotency (domain, key) VALUES (%s, %s)",
                        ["effects", canary],
                    )
            assert caught.value.sqlstate == "23505"
            assert "unique violation on onex_idempotency_pkey" in str(caught.value)
            assert canary not in everything_a_log_could_show(caught.value)

    run(scenario())


def test_42p01_when_the_schema_was_never_migrated(bare_settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(bare_settings) as pool:
            with pytest.raises(PostgresRejected) as caught:
                await PostgresProjectionStore(pool).get("n", "registration")
            assert caught.value.sqlstate == "42P01"
            assert "postgres projections.get failed: undefined table" in str(caught.value)

    run(scenario())


def test_text_postgres_cannot_hold_is_rejected(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresProjectionStore(pool)
            for entity in ("nul\x00inside", "lone\udcffsurrogate"):
                with pytest.raises(PostgresRejected):
                    await store.put(replace(projection(), entity_id=entity))
            assert await store.get("fine", "registration") is None  # the pool still works

    run(scenario())


def test_a_statement_timeout_is_transient(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(replace(settings, statement_timeout=0.05)) as pool:
            async with pool.connection() as conn:
                with pytest.raises(PostgresUnavailable) as caught, translating("slow"):
                    await conn.execute("SELECT pg_sleep(5)")
            assert caught.value.sqlstate == "57014"

    run(scenario())


def test_a_terminated_backend_is_transient_and_the_pool_heals(
    settings: PostgresSettings, admin: Admin
) -> None:
    async def scenario() -> None:
        lone = await connect(settings)
        try:
            admin.execute("SELECT pg_terminate_backend(%s)", [lone.info.backend_pid])
            with pytest.raises(PostgresUnavailable) as caught, translating("after terminate"):
                await lone.execute("SELECT 1")
            assert caught.value.sqlstate in ("57P01", None)
        finally:
            await lone.close()
        async with pooled(replace(settings, min_size=2, max_size=2)) as pool:
            store = PostgresIdempotencyStore(pool)
            pids = []
            async with pool.connection() as a, pool.connection() as b:
                pids = [a.info.backend_pid, b.info.backend_pid]
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            # Both pooled connections are dead; the check replaces them, nobody sees an error.
            await store.record("effects", "after")
            assert await store.seen("effects", "after") is True

    run(scenario())


def test_a_closed_port_is_transient() -> None:
    settings = PostgresSettings(port=_free_port(), user="postgres", dbname="test")

    async def scenario() -> None:
        with pytest.raises(PostgresUnavailable, match="connection refused"):
            await open_pool(settings)

    run(scenario())


def test_a_wrong_password_is_rejected_without_echoing_either_password(
    password_cluster: Cluster,
) -> None:
    right = f"right-{secrets.token_hex(6)}"
    wrong = f"wrong-{secrets.token_hex(6)}"
    with psycopg.connect(password_cluster.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE onex_probe LOGIN PASSWORD {}").format(sql.Literal(right)))
    good = password_cluster.settings(user="onex_probe", password=right)
    bad = password_cluster.settings(user="onex_probe", password=wrong)

    async def scenario() -> None:
        async with pooled(good) as pool, pool.connection() as conn:
            assert await (await conn.execute("SELECT current_user")).fetchone() == ("onex_probe",)
        with pytest.raises(PostgresRejected) as caught:
            await open_pool(bad)  # fails fast on the probe, not after pool_timeout
        assert "authentication failed" in str(caught.value)
        shown = everything_a_log_could_show(caught.value)
        assert wrong not in shown
        assert right not in shown

    run(scenario())


def test_too_many_connections_is_transient(password_cluster: Cluster) -> None:
    with psycopg.connect(password_cluster.admin_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE ROLE onex_limited LOGIN CONNECTION LIMIT 1")
    settings = PostgresSettings(
        host=str(password_cluster.root),
        port=password_cluster.port,
        user="onex_limited",
        dbname="postgres",
    )

    async def scenario() -> None:
        first = await connect(settings)
        try:
            with pytest.raises(PostgresUnavailable, match="too many connections"):
                await connect(settings)
        finally:
            await first.close()

    run(scenario())
