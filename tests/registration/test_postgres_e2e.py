"""The registration workflow with its state in PostgreSQL: the storage effect, the configured
composition, the demo, and ``onex db migrate``.

Tests marked ``postgres`` run against the server the PostgreSQL adapter tests use
(``tests/adapters/postgres/_server.discover``: ``ONEX_TEST_POSTGRES_DSN``, else 127.0.0.1:5432,
else a throwaway cluster), each in a fresh schema dropped afterwards. Without a server they
skip with a one-line reason — except under ``CI=true``, where they fail instead.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from onex_adapters.cli import main as cli
from onex_adapters.clock import SystemClock
from onex_adapters.memory import (
    InMemoryIdempotencyStore,
    InMemoryProjectionStore,
    InMemoryServiceRegistry,
)
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.postgres import (
    KEEP,
    Pool,
    PostgresIdempotencyStore,
    PostgresRejected,
    PostgresSettings,
    PostgresUnavailable,
    RegistrationStorage,
    migrate,
    open_pool,
)
from onex_adapters.postgres.effects import PostgresRegistrationStorageEffect, row_of, update_of
from onex_adapters.registration import (
    InMemoryRegistrationTable,
    build_registration,
    build_registration_from_env,
    demo,
    load_registration_contracts,
    open_backends,
)
from onex_adapters.registration.demo_loop import run_on_demo_loop
from onex_adapters.runtime import EffectBinding, EffectExecutor, RandomIds, RuntimeConfig
from onex_core.errors import ContractError, EffectRejected, UsageError
from onex_core.intents import Intent
from onex_core.ports import EffectHandler, port_problems
from onex_core.registration.model import DEADLINE_CHECK, STORE_REGISTRATION, UPDATE_REGISTRATION
from tests.adapters.postgres._server import Found, pooled
from tests.adapters.postgres.fixtures import postgres_server
from tests.registration.kit import at
from tests.registration.live import CONFIG, Nodes, eventually, fast_contracts, running
from tests.registration.pure import Node

Admin = psycopg.Connection[tuple[Any, ...]]


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Found]:
    with postgres_server(tmp_path_factory.mktemp("home")) as found:
        yield found


@pytest.fixture
def schema(pg_server: Found) -> Iterator[str]:
    name = f"onex_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def settings(pg_server: Found, schema: str) -> PostgresSettings:
    """The test's schema, not yet created: whoever needs it migrates it."""
    return pg_server.settings.with_schema(schema)


@pytest.fixture
def admin(pg_server: Found, settings: PostgresSettings) -> Iterator[Admin]:
    """The test's schema, migrated, and an autocommit connection looking at it."""
    asyncio.run(migrate(settings))
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        assert settings.schema is not None
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.schema)))
        yield conn


# --------------------------------------------------------------------------- intents


def lifecycle() -> list[Intent]:
    """The storage intents of one node's life, as the reducer asks for them: registered at
    0 s, ACKed at 1 s, a heartbeat at 5 s, expired at 40 s."""
    node = Node("node-7")
    node.register(0.0)
    node.ack(1.0)
    node.heartbeat(5.0)
    node.check("liveness", 40.0)
    storage = (STORE_REGISTRATION, UPDATE_REGISTRATION)
    return [i for i in node.intents if i.intent_type in storage]


def test_the_effect_implements_the_port() -> None:
    assert port_problems(PostgresRegistrationStorageEffect, EffectHandler) == ()


def test_the_reducers_payloads_map_onto_the_registration_table() -> None:
    store, ack, heartbeat, expiry = lifecycle()
    now = at(99.0)
    row = row_of(store, now)
    assert (row.node_id, row.node_type, row.state, row.node_version) == (
        "node-7",
        "effect",
        "pending_registration",
        "1.0.0",
    )
    assert (row.registered_at, row.updated_at, row.event_id) == (at(0.0), now, store.intent_id)
    assert dict(row.capabilities) == {"demo": True}
    assert dict(row.endpoints) == {"api": "http://10.1.2.3:8080"}
    assert row.correlation_id == store.correlation_id
    updates = [update_of(i, now) for i in (ack, heartbeat, expiry)]
    assert [u.state for u in updates] == ["active", "active", "liveness_expired"]
    ack_update, beat, expired = updates
    assert row.sequence < ack_update.sequence < beat.sequence < expired.sequence
    assert ack_update.liveness_deadline == at(31.0)
    assert ack_update.last_heartbeat_at is KEEP  # what a payload does not carry is kept
    assert beat.liveness_timeout_emitted_at is KEEP
    assert (beat.last_heartbeat_at, beat.liveness_deadline) == (at(5.0), at(35.0))
    assert expired.liveness_timeout_emitted_at == at(40.0)
    assert expired.last_heartbeat_at == at(5.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"revision": None}, "revision"),
        ({"node_id": 7}, "node_id"),
        ({"registered_at": "yesterday"}, "registered_at"),
        ({"registered_at": "2026-01-01T00:00:00"}, "registered_at"),  # no offset
        ({"capabilities": "demo"}, "capabilities"),
        ({"endpoints": {"api": 8080}}, "endpoints"),
    ],
)
def test_a_malformed_payload_is_rejected_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    store = lifecycle()[0]
    bad = Intent(
        store.intent_type,
        store.target,
        {**store.payload, **change},
        store.intent_id,
        store.correlation_id,
    )
    with pytest.raises(EffectRejected, match=field) as caught:
        row_of(bad, at(1.0))
    assert caught.value.backend == "postgres"


def test_a_value_the_table_refuses_is_rejected_before_anything_is_sent() -> None:
    store = lifecycle()[0]
    bad = Intent(
        store.intent_type,
        store.target,
        {**store.payload, "state": "dancing"},
        store.intent_id,
        store.correlation_id,
    )
    with pytest.raises(EffectRejected, match="refuses"):
        row_of(bad, at(1.0))


# --------------------------------------------------------------------------- the effect


async def _effect(
    settings: PostgresSettings, **pool: Any
) -> tuple[Pool, PostgresRegistrationStorageEffect]:
    """An open pool and the effect on it (close the pool after)."""
    opened = await open_pool(replace(settings, **pool))
    idempotency = PostgresIdempotencyStore(opened)
    effect = PostgresRegistrationStorageEffect(
        RegistrationStorage(opened), idempotency, SystemClock()
    )
    return opened, effect


@pytest.mark.postgres
def test_the_effect_writes_what_the_reducer_asks_for_with_its_done_marks(
    settings: PostgresSettings, admin: Admin
) -> None:
    intents = lifecycle()

    async def scenario() -> list[str]:
        async with pooled(settings) as pool:
            idempotency = PostgresIdempotencyStore(pool)
            storage = RegistrationStorage(pool)
            effect = PostgresRegistrationStorageEffect(storage, idempotency, SystemClock())
            states = []
            for intent in intents:
                result = await effect.execute(intent)
                assert result.detail == {"node_id": "node-7", "written": True, "repeated": False}
                assert await idempotency.seen(intent.intent_type, str(intent.intent_id))
                stored = await storage.get("node-7")
                assert stored is not None
                states.append(stored.state)
            assert (effect.upserts, effect.updates, effect.stale) == (1, 3, 0)
            row = await storage.get("node-7")
            assert row is not None
            assert (row.last_heartbeat_at, row.liveness_deadline) == (at(5.0), at(35.0))
            assert row.liveness_timeout_emitted_at == at(40.0)
            assert (row.sequence, row.event_id) == (
                intents[-1].payload["revision"],
                intents[-1].intent_id,
            )
            assert dict(row.capabilities) == {"demo": True}
            return states

    assert asyncio.run(scenario()) == [
        "pending_registration",
        "active",
        "active",
        "liveness_expired",
    ]
    found = admin.execute(
        "SELECT count(*) FROM registration_projections WHERE capabilities ? 'demo'"
    )
    assert found.fetchone() == (1,)


@pytest.mark.postgres
def test_an_intent_is_written_once_however_often_and_concurrently_it_runs(
    settings: PostgresSettings, admin: Admin
) -> None:
    store, ack, *_ = lifecycle()

    async def scenario() -> None:
        pool, effect = await _effect(settings, max_size=6)
        try:
            first = await effect.execute(store)
            again = await effect.execute(store)
            assert (first.detail["repeated"], again.detail["repeated"]) == (False, True)
            results = await asyncio.gather(*(effect.execute(ack) for _ in range(6)))
            assert sorted(r.detail["repeated"] for r in results) == [False] + [True] * 5
            assert (effect.upserts, effect.updates, effect.repeated) == (1, 1, 6)
            # The runtime's executor checks the same mark first: a done intent is skipped.
            executor = EffectExecutor(
                [EffectBinding(ack.intent_type, effect)], effect.idempotency, SystemClock()
            )
            report = await executor.run(ack)
            assert report.status == "skipped"
        finally:
            await pool.close()

    asyncio.run(scenario())
    marks = admin.execute("SELECT domain, count(*) FROM onex_idempotency GROUP BY 1 ORDER BY 1")
    assert marks.fetchall() == sorted([(STORE_REGISTRATION, 1), (UPDATE_REGISTRATION, 1)])


@pytest.mark.postgres
def test_an_older_write_never_moves_the_row_backwards(
    settings: PostgresSettings, admin: Admin
) -> None:
    store, ack, heartbeat, _ = lifecycle()

    async def scenario() -> None:
        pool, effect = await _effect(settings)
        try:
            await effect.execute(store)
            await effect.execute(heartbeat)
            late = await effect.execute(ack)  # reordered: older than the heartbeat
            assert late.detail["written"] is False
            assert effect.stale == 1
            row = await effect.storage.get("node-7")
            assert (row.last_heartbeat_at, row.event_id) == (at(5.0), heartbeat.intent_id)
        finally:
            await pool.close()

    asyncio.run(scenario())


@pytest.mark.postgres
def test_failures_are_translated_and_roll_the_done_mark_back(
    pg_server: Found, settings: PostgresSettings, admin: Admin
) -> None:
    store = lifecycle()[0]
    key = (store.intent_type, str(store.intent_id))

    async def attempt(**pool: Any) -> tuple[BaseException | None, bool]:
        opened, effect = await _effect(settings, **pool)
        try:
            try:
                await effect.execute(store)
            except Exception as exc:
                return exc, await effect.idempotency.seen(*key)
            return None, await effect.idempotency.seen(*key)
        finally:
            await opened.close()

    # Transient: the table is locked past the statement timeout.
    with psycopg.connect(pg_server.admin_conninfo()) as locker:
        locker.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.schema)))
        locker.execute("LOCK TABLE registration_projections IN ACCESS EXCLUSIVE MODE")
        error, marked = asyncio.run(attempt(statement_timeout=0.3))
        locker.rollback()
    assert isinstance(error, PostgresUnavailable)
    assert error.sqlstate == "57014"
    assert not marked

    # Permanent: the table is gone.
    admin.execute("ALTER TABLE registration_projections RENAME TO elsewhere")
    error, marked = asyncio.run(attempt())
    assert isinstance(error, PostgresRejected)
    assert error.sqlstate == "42P01"
    assert not marked

    admin.execute("ALTER TABLE elsewhere RENAME TO registration_projections")
    error, marked = asyncio.run(attempt())
    assert error is None
    assert marked


# --------------------------------------------------------------------------- composition


def test_without_a_dsn_the_backends_are_embedded() -> None:
    async def scenario() -> None:
        backends = await open_backends({}, clock=SystemClock())
        assert backends.description == "embedded"
        assert backends.pool is None
        assert isinstance(backends.storage, InMemoryRegistrationTable)
        await backends.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ONEX_POSTGRES_DSN": "=secret-canary"}, "does not parse"),
        ({"ONEX_POSTGRES_DSN": "host=h", "ONEX_POSTGRES_MIGRATE": "perhaps"}, "true or false"),
    ],
)
def test_bad_configuration_is_a_usage_error_that_echoes_nothing(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        asyncio.run(open_backends(environ, clock=SystemClock()))
    assert "canary" not in str(caught.value)


def test_contracts_that_do_not_route_the_deadline_checks_are_refused(tmp_path: Path) -> None:
    family = fast_contracts(tmp_path)
    orchestrator = family / "node_registration_orchestrator" / "contract.yaml"
    text = orchestrator.read_text()
    entry = text[text.index("    - handler: {name: HandlerNodeDeadlineCheck}") :]
    entry = entry[: entry.index("    - handler:", 10)]
    orchestrator.write_text(text.replace(entry, ""))
    with pytest.raises(ContractError) as refused:
        load_registration_contracts(family)
    assert str(refused.value).endswith(f"no handler routes {DEADLINE_CHECK}")


def test_a_registry_that_is_not_an_effect_handler_is_refused() -> None:
    with pytest.raises(UsageError, match="registration registry: object is neither"):
        build_registration(
            InMemoryBus(InMemoryBroker()),
            InMemoryProjectionStore(),
            InMemoryIdempotencyStore(),
            object(),  # type: ignore[arg-type]
            InMemoryRegistrationTable(),
            SystemClock(),
            RandomIds(),
        )


@pytest.mark.postgres
def test_the_workflow_keeps_its_state_in_postgresql(
    pg_server: Found, settings: PostgresSettings, tmp_path: Path
) -> None:
    assert settings.schema is not None
    environ = {
        "ONEX_POSTGRES_DSN": settings.conninfo(),
        "ONEX_POSTGRES_SCHEMA": settings.schema,
        "ONEX_POSTGRES_MIGRATE": "true",  # the schema does not exist yet
    }

    async def scenario() -> None:
        broker = InMemoryBroker(partitions=4)
        clock = SystemClock()
        registration, backends = await build_registration_from_env(
            InMemoryBus(broker, group="registration"),
            InMemoryServiceRegistry(),
            clock,
            RandomIds(),
            CONFIG,
            environ=environ,
            runtime=RuntimeConfig(name="registration", poll_timeout=0.05),
            contracts=fast_contracts(tmp_path),
        )
        effect = backends.storage
        assert isinstance(effect, PostgresRegistrationStorageEffect)
        nodes = Nodes(broker, clock)
        names = ["n1", "n2", "n3"]

        async def states(wanted: dict[str, str]) -> bool:
            for name, state in wanted.items():
                projection = await backends.projections.get(name, CONFIG.domain)
                if projection is None or projection.state != state:
                    return False
            return True

        try:
            async with running(registration):
                for index, name in enumerate(names):
                    await nodes.introspect(name, "compute", 20 + index)
                await eventually(lambda: states(dict.fromkeys(names, "awaiting_ack")), "accepted")
                acks = [await nodes.ack(name) for name in names]
                await eventually(lambda: states(dict.fromkeys(names, "active")), "active")
                for name in names:
                    nodes.start_heartbeats(name)
                await nodes.resend(acks[1])  # a redelivered ACK: a duplicate, nothing happens
                await nodes.stop_heartbeats("n3")
                await eventually(
                    lambda: states({"n1": "active", "n2": "active", "n3": "liveness_expired"}),
                    "n3 expired, the others live",
                )
                await nodes.stop_heartbeats()
            assert (effect.upserts, effect.stale, effect.repeated) == (3, 0, 0)
            assert effect.updates >= 3 + 2 + 1  # ACKs, at least one heartbeat each, n3's expiry
            rows = {name: await effect.storage.get(name) for name in names}
            assert {name: row.state for name, row in rows.items() if row} == {
                "n1": "active",
                "n2": "active",
                "n3": "liveness_expired",
            }
            for name in ("n1", "n2"):
                row = rows[name]
                assert row is not None
                assert row.last_heartbeat_at is not None
                assert row.liveness_deadline == row.last_heartbeat_at + timedelta(seconds=2)
            expired = rows["n3"]
            assert expired is not None
            assert expired.liveness_timeout_emitted_at is not None
            assert expired.liveness_timeout_emitted_at > expired.liveness_deadline  # strictly
        finally:
            await backends.close()

    asyncio.run(scenario())
    with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.schema)))
        marks = conn.execute(
            "SELECT count(*) FROM onex_idempotency WHERE domain = %s", [STORE_REGISTRATION]
        )
        assert marks.fetchone() == (3,)


# --------------------------------------------------------------------------- the demo


@pytest.mark.postgres
def test_the_demo_on_postgresql_prints_the_same_report_every_run(
    settings: PostgresSettings, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.schema is not None
    embedded = io.StringIO()
    assert demo.main([], embedded, environ={}) == 0
    monkeypatch.setattr(demo, "DEMO_SCHEMA", settings.schema)
    password = f"pw-canary-{uuid.uuid4().hex[:8]}"  # the server trusts: it is never asked for
    environ = {"ONEX_POSTGRES_DSN": make_conninfo(settings.conninfo(), password=password)}
    runs = []
    for _ in range(2):  # the demo empties its schema first: the second run is the same
        out = io.StringIO()
        started = time.monotonic()
        assert demo.main([], out, environ=environ) == 0
        assert time.monotonic() - started < 30
        runs.append(out.getvalue())
    assert runs[0] == runs[1]
    *report, where = runs[0].rstrip("\n").split("\n")
    assert report == embedded.getvalue().rstrip("\n").split("\n")[:-1]
    assert where.startswith("projections, idempotency marks and registrations in PostgreSQL")
    assert password not in runs[0]
    states = admin.execute(
        "SELECT current_state, count(*) FROM registration_projections GROUP BY 1 ORDER BY 1"
    )
    assert states.fetchall() == [("active", 19), ("pending_registration", 1)]
    projections = admin.execute(
        "SELECT state, count(*) FROM onex_projections WHERE domain = 'registration' "
        "GROUP BY 1 ORDER BY 1"
    )
    assert projections.fetchall() == [("active", 19), ("failed", 1)]


def test_the_demo_against_an_unreachable_server_fails_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    password = f"pw-canary-{uuid.uuid4().hex[:8]}"
    dsn = f"host=127.0.0.1 port=1 user=onex dbname=onex password={password} connect_timeout=2"
    monkeypatch.setenv("ONEX_POSTGRES_DSN", dsn)
    assert cli(["demo", "registration"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "onex demo: postgres migrate failed: connection refused"
    assert password not in captured.out + captured.err


def test_the_demo_loop_never_runs_ahead_of_real_work() -> None:
    """While a thread-pool job is out, virtual time moves no faster than the wall clock; when
    nothing real is pending, it jumps."""
    release = threading.Event()

    async def scenario() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, release.set)  # the job waits for this virtual-time timer
        started = time.monotonic()
        await loop.run_in_executor(None, release.wait, 5.0)
        waited = time.monotonic() - started
        at_release = loop.time()
        await asyncio.sleep(3600)  # nothing real pending: no wall-clock wait
        return waited, at_release, loop.time()

    waited, at_release, end = run_on_demo_loop(scenario())
    assert waited >= 0.15  # the loop waited for the job in real time…
    assert at_release == pytest.approx(0.2, abs=0.01)  # …and only then let the timer fire
    assert end == pytest.approx(3600.2, abs=0.01)


# --------------------------------------------------------------------------- onex db migrate


@pytest.mark.postgres
def test_db_migrate_applies_what_is_missing_and_never_prints_the_password(
    settings: PostgresSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.schema is not None
    password = f"pw-canary-{uuid.uuid4().hex[:8]}"
    dsn = make_conninfo(settings.conninfo(), password=password)
    assert cli(["db", "migrate", "--dsn", dsn, "--schema", settings.schema]) == 0
    first = capsys.readouterr()
    assert first.out.strip() == (
        f"{settings.describe()} (schema {settings.schema}): applied migrations 1, 2, 3"
    )
    monkeypatch.setenv("ONEX_POSTGRES_DSN", dsn)  # the default DSN
    monkeypatch.setenv("ONEX_POSTGRES_SCHEMA", settings.schema)
    assert cli(["db", "migrate"]) == 0
    second = capsys.readouterr()
    assert second.out.strip().endswith(": already current")
    assert password not in first.out + first.err + second.out + second.err


def test_db_migrate_without_a_database_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONEX_POSTGRES_DSN", raising=False)
    assert cli(["db", "migrate"]) == 2
    assert "pass --dsn or set ONEX_POSTGRES_DSN" in capsys.readouterr().err


def test_db_migrate_against_an_unreachable_server_fails_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = f"pw-canary-{uuid.uuid4().hex[:8]}"
    dsn = f"host=127.0.0.1 port=1 user=onex dbname=onex password={password} connect_timeout=2"
    assert cli(["db", "migrate", "--dsn", dsn]) == 1
    captured = capsys.readouterr()
    assert "postgresql://onex@127.0.0.1:1/onex" in captured.err
    assert "connection refused" in captured.err
    assert password not in captured.out + captured.err
