"""The registration workflow end to end with its credentials in Vault.

The workflow's configuration holds *references*, never secrets: the PostgreSQL password is
``vault:secret/data/onex/db#password`` and the Consul ACL token
``vault:secret/data/onex/consul#token``. At start-up they are resolved through
:func:`~onex_adapters.secrets.resolve` against the Vault fake via
:class:`~onex_adapters.vault.VaultSecrets` (the real hvac client over HTTP), and the adapters are
built from the result: the PostgreSQL backends log in as a throwaway role whose password is the
one in Vault, on a server that checks passwords; the Consul adapter talks to the Consul fake,
which refuses every request without that token. The Vault token itself is the one bootstrap
credential given directly; its TTL runs on the fake's clock, which the test moves on past
several TTLs while :func:`~onex_adapters.secrets.keep_renewed` keeps it alive and re-resolves the
configuration after each renewal.

Along the way the run fails on purpose: the Consul agent answers 503 (echoing the token in its
body) to every attempt of one registration, which is dead-lettered; a poison message carrying
every secret is dead-lettered; Vault refuses one renewal. The canary check: none of the three
secrets — nor their base64 or URL-encoded forms — appears in any log record captured at DEBUG
(hvac, urllib3, requests, py-consul, psycopg and ONEX alike), in the text, ``repr`` or
traceback of any exception raised, in any record the workflow published (dead letters
included), or in the ``repr`` of the resolved configuration, the settings and the adapters.

The server: ``tests/adapters/postgres/_server.discover`` (without its throwaway cluster), used
only if it refuses a wrong password; otherwise a throwaway cluster whose TCP connections need a
password. Neither: the test skips with a one-line reason, or fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from psycopg import sql

from onex_adapters.clock import SystemClock
from onex_adapters.consul import ConsulServiceRegistry
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.postgres import PostgresSettings
from onex_adapters.registration import (
    Backends,
    InMemoryRegistrationTable,
    Registration,
    build_registration,
    open_backends,
)
from onex_adapters.runtime import RandomIds, RuntimeConfig
from onex_adapters.secrets import Secret, keep_renewed, resolve
from onex_adapters.vault import AccessDenied, VaultSecrets
from onex_core.intents import Intent
from onex_core.ports import EffectHandler, EffectResult, HandlerDescription, Record
from onex_core.registration.model import DLQ, INTROSPECTION
from tests.adapters.fakes.base import FakeClock, Fault
from tests.adapters.fakes.consul_fake import ConsulFake
from tests.adapters.fakes.vault_fake import VaultFake
from tests.adapters.postgres._server import Cluster, discover, find_bindir
from tests.registration.live import CONFIG, Nodes, eventually, fast_contracts, running

pytestmark = pytest.mark.postgres

CI = os.environ.get("CI", "").lower() == "true"
DB_PASSWORD = f"db-pw-{secrets.token_hex(12)}"
CONSUL_TOKEN = f"consul-acl-{secrets.token_hex(12)}"
VAULT_TOKEN = f"vault-app-{secrets.token_hex(12)}"
FORMS = {
    form
    for value in (DB_PASSWORD, CONSUL_TOKEN, VAULT_TOKEN)
    for form in (
        value,
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(value.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
    )
}
TTL = 60.0  # the Vault token's, in seconds on the Vault fake's clock
REGISTER = "/v1/agent/service/register"
RENEW = "/v1/auth/token/renew-self"
NODES = (("n1", "effect", 11), ("n2", "compute", 12), ("n3", "reducer", 13))
POISON = f'{{"node_id": "n9", "db": "{DB_PASSWORD}", "tokens": ["{CONSUL_TOKEN}", "{VAULT_TOKEN}"'
LOGGERS = ("hvac", "urllib3", "requests", "consul", "psycopg", "onex_adapters")


def hits(text: str) -> int:
    return sum(text.count(form) for form in FORMS)


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    """A PostgreSQL server that checks passwords on TCP, and superuser access to it."""

    settings: PostgresSettings  # TCP, as the superuser
    admin: str
    cluster: Cluster | None = None


def _refuses_a_wrong_password(admin: str, settings: PostgresSettings) -> bool:
    role = f"onex_probe_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        password = sql.Literal(secrets.token_hex(8))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), password)
        )
        try:
            with psycopg.connect(replace(settings, user=role, password="wrong").conninfo()):
                return False
        except psycopg.OperationalError:
            return True
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _server() -> Server | str:
    try:
        found = discover(allow_cluster=False)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    if not isinstance(found, str):
        if _refuses_a_wrong_password(found.admin_conninfo(), found.settings):
            return Server(found.settings, found.admin_conninfo())
        found = f"the server at {found.origin} accepts any password"
    bindir = find_bindir()
    if bindir is None:
        return f"{found}, and there is no initdb for a cluster that checks passwords"
    cluster = Cluster.create(bindir, password=secrets.token_hex(12))
    return Server(cluster.settings(), cluster.admin_conninfo(), cluster)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pytest.MonkeyPatch.context() as patch:  # libpq reads PG* and ~/.pgpass unasked
        for name in list(os.environ):
            if name.startswith("PG"):
                patch.delenv(name)
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        found = _server()
        if isinstance(found, str):
            if CI:
                pytest.fail(f"PostgreSQL tests cannot run under CI=true: {found}", pytrace=False)
            pytest.skip(found)
        yield found
        if found.cluster is not None:
            found.cluster.destroy()


@dataclass
class Database:
    """A throwaway role with the password that is in Vault, owning a throwaway schema."""

    server: Server
    role: str
    schema: str

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.server.admin, autocommit=True)


@pytest.fixture
def database(server: Server) -> Iterator[Database]:
    suffix = uuid.uuid4().hex[:12]
    found = Database(server, f"onex_app_{suffix}", f"onex_test_{suffix}")
    role, schema = sql.Identifier(found.role), sql.Identifier(found.schema)
    with found.admin() as conn:
        statement = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        conn.execute(statement.format(role, sql.Literal(DB_PASSWORD)))
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema, role))
    yield found
    with found.admin() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


# --------------------------------------------------------------------------- the world


class VaultTime:
    """The Vault fake's clock as the adapter's: the token's TTL is measured on both alike."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return self.clock.wall()

    def monotonic(self) -> float:
        return self.clock()


class Recording:
    """An effect handler that hands everything to ``inner`` and keeps what it raised."""

    def __init__(self, inner: EffectHandler, raised: list[BaseException]) -> None:
        self.inner = inner
        self.raised = raised
        self.handler_type = inner.handler_type

    async def initialize(self, config: Any) -> None:
        await self.inner.initialize(config)

    async def shutdown(self, timeout: float = 30.0) -> None:
        await self.inner.shutdown(timeout)

    def describe(self) -> HandlerDescription:
        return self.inner.describe()

    async def execute(self, intent: Intent) -> EffectResult:
        try:
            return await self.inner.execute(intent)
        except Exception as exc:
            self.raised.append(exc)
            raise


def configuration(database: Database, consul_url: str) -> dict[str, Any]:
    """What an operator writes: where things are, and references to the secrets."""
    settings = database.server.settings
    return {
        "postgres": {
            "host": settings.host,
            "port": settings.port,
            "dbname": settings.dbname,
            "user": database.role,
            "password": "vault:secret/data/onex/db#password",
            "schema": database.schema,
        },
        "consul": {
            "url": consul_url,
            "token": "vault:secret/data/onex/consul#token",
            "timeout": 1.0,
        },
    }


@dataclass
class World:
    vault: VaultSecrets
    config: dict[str, Any]
    resolved: dict[str, Any]
    backends: Backends
    broker: InMemoryBroker
    registration: Registration
    nodes: Nodes
    consul: ConsulFake
    raised: list[BaseException]
    renewals: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    texts: list[str] = field(default_factory=list)

    async def states(self, names: list[str], wanted: str) -> bool:
        for name in names:
            projection = await self.backends.projections.get(name, CONFIG.domain)
            if projection is None or projection.state != wanted:
                return False
        return True

    def dead_letters(self, failure_class: str) -> list[dict[str, Any]]:
        letters = [json.loads(r.value) for r in self.broker.records(DLQ)]
        return [letter for letter in letters if letter["failure_class"] == failure_class]

    def published(self) -> list[Record]:
        """Every record on the bus but the poison message the test sent."""
        records = [r for topic in self.broker.topics for r in self.broker.records(topic)]
        return [r for r in records if r.value != POISON.encode()]


def vault_for(fake: VaultFake) -> VaultSecrets:
    """The bootstrap credential is the one given directly; its lease runs on the fake's clock."""
    config = {"url": fake.url, "token": VAULT_TOKEN, "timeout": 1.0}
    return VaultSecrets(config, clock=VaultTime(fake.clock))


@asynccontextmanager
async def world(
    database: Database, vault_fake: VaultFake, consul_fake: ConsulFake, tmp_path: Path
) -> AsyncIterator[World]:
    """Start-up as a composition root does it: Vault, resolution, adapters, the workflow."""
    vault = vault_for(vault_fake)
    raised: list[BaseException] = []
    try:
        await vault.start()
        config = configuration(database, consul_fake.url)
        resolved = await resolve(config, vault)
        pg = resolved["postgres"]
        settings = PostgresSettings(
            **{**pg, "password": pg["password"].reveal()}, min_size=1, max_size=4
        )
        clock = SystemClock()
        backends = await open_backends({}, clock=clock, settings=settings, migrate=True)
        consul = ConsulServiceRegistry()
        await consul.initialize(resolved["consul"])
        broker = InMemoryBroker(partitions=4)
        storage = backends.storage
        assert not isinstance(storage, InMemoryRegistrationTable)
        registration = build_registration(
            InMemoryBus(broker, group="registration"),
            backends.projections,
            backends.idempotency,
            Recording(consul, raised),
            Recording(storage, raised),
            clock,
            RandomIds(),
            CONFIG,
            runtime=RuntimeConfig(name="registration", poll_timeout=0.05),
            contracts=fast_contracts(tmp_path),
        )
        w = World(
            vault,
            config,
            resolved,
            backends,
            broker,
            registration,
            Nodes(broker, clock),
            consul_fake,
            raised,
        )
        w.texts += [repr(resolved), str(resolved), repr(settings), repr(vault), repr(consul)]
        w.texts += [repr(vault.settings), repr(consul.describe()), backends.description]

        async def renewed() -> None:
            await w.renewals.put(await resolve(config, vault))

        keeper = asyncio.ensure_future(keep_renewed(vault, interval=0.05, on_renewed=renewed))
        try:
            async with running(registration):
                yield w
                await w.nodes.stop_heartbeats()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await consul.shutdown(1.0)
            await backends.close()
    finally:
        await vault.close(1.0)


def exception_texts(errors: list[BaseException]) -> Iterator[str]:
    for error in errors:
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            yield from (str(current), repr(current), repr(current.args))
            yield "".join(traceback.format_exception(current))
            current = current.__cause__ or current.__context__


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What the scenario left behind for the assertions."""

    resolved: dict[str, Any]
    fresh: list[dict[str, Any]]
    letters: list[dict[str, Any]]
    published: list[Record]
    errors: list[BaseException]
    texts: list[str]


async def _scenario(
    database: Database, vault_fake: VaultFake, consul_fake: ConsulFake, tmp_path: Path
) -> Run:
    # The agent fails every attempt of the first registration, echoing the token (4 = 1 + 3
    # retries), and Vault refuses the first renewal the same way.
    echo = f"No cluster leader; token {CONSUL_TOKEN}"
    consul_fake.faults.add(Fault(method="PUT", path=REGISTER, status=503, body=echo, times=4))
    vault_fake.faults.add(
        Fault(method="POST", path=RENEW, status=503, body={"errors": [f"token {VAULT_TOKEN}"]})
    )
    fresh: list[dict[str, Any]] = []
    async with world(database, vault_fake, consul_fake, tmp_path) as w:
        names = [name for name, _, _ in NODES]
        await w.nodes.introspect("n1", "effect", 11)
        await eventually(lambda: w.states(["n1"], "awaiting_ack"), "n1 accepted")

        async def consul_letter() -> bool:
            return len(w.dead_letters("effect_exhausted")) == 1

        await eventually(consul_letter, "the failed registration dead-lettered")
        for name, node_type, host in NODES[1:]:
            await w.nodes.introspect(name, node_type, host)
        await eventually(lambda: w.states(names, "awaiting_ack"), "all three accepted")

        # A poison message carrying every secret: dead-lettered, its value scrubbed.
        await w.nodes.out.publish(INTROSPECTION, POISON.encode(), key=b"n9")

        async def poison_letter() -> bool:
            return len(w.dead_letters("undecodable")) == 1

        await eventually(poison_letter, "the poison message dead-lettered")

        for name in names:
            await w.nodes.ack(name)
        await eventually(lambda: w.states(names, "active"), "all three active")
        for name in names:
            w.nodes.start_heartbeats(name)

        async def all_passing() -> bool:
            return all(
                consul_fake.check_status(f"service:onex-{t}-{n}") == "passing" for n, t, _ in NODES
            )

        await eventually(all_passing, "every check passing, n1's registered by its heartbeat")

        # Vault time passes: past two thirds of the TTL the token is renewed (after one
        # refusal, retried at the next check), and again; the configuration is re-resolved
        # after each renewal, past the first lease's end.
        for _ in range(2):
            vault_fake.clock.advance(TTL * 3 / 4)
            fresh.append(await asyncio.wait_for(w.renewals.get(), 5.0))
        assert vault_fake.clock() > TTL

    # Without renewal the token lapses: the same resolution is then refused for good.
    vault_fake.clock.advance(TTL * 2)
    lapsed = vault_for(vault_fake)
    try:
        with pytest.raises(AccessDenied) as refused:
            await resolve(w.config, lapsed)
    finally:
        await lapsed.close(1.0)
    return Run(
        w.resolved,
        fresh,
        [json.loads(r.value) for r in w.broker.records(DLQ)],
        w.published(),
        [*w.raised, refused.value],
        w.texts,
    )


def test_the_workflow_runs_on_credentials_resolved_from_vault_and_never_shows_them(
    server: Server, database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with VaultFake() as vault_fake, ConsulFake(tokens={CONSUL_TOKEN}) as consul_fake:
            vault_fake.add_token(VAULT_TOKEN, ttl=TTL)
            vault_fake.put("secret", "onex/db", {"password": DB_PASSWORD})
            vault_fake.put("secret", "onex/consul", {"token": CONSUL_TOKEN})
            done = asyncio.run(_scenario(database, vault_fake, consul_fake, tmp_path))
            vault_saw = [
                (r.method, r.path, r.headers.get("x-vault-token")) for r in vault_fake.requests
            ]
            consul_saw = {r.headers.get("x-consul-token") for r in consul_fake.requests}
            services = set(consul_fake.state.services)
    finally:
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)

    # The credentials came from Vault and were used: every Consul request carried the token
    # from Vault; the workflow's tables were created and written by the role whose password
    # is the one in Vault, on a server that refuses a wrong one.
    assert consul_saw == {CONSUL_TOKEN}
    assert services == {f"onex-{t}-{n}" for n, t, _ in NODES}
    wrong = replace(database.server.settings, user=database.role, password="not-it")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(wrong.conninfo()).close()
    with database.admin() as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s", [database.schema]
        ).fetchall()
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(database.schema)))
        rows = conn.execute(
            "SELECT entity_id, current_state FROM registration_projections ORDER BY 1"
        ).fetchall()
    assert owners == [(database.role,)]
    assert rows == [("n1", "active"), ("n2", "active"), ("n3", "active")]

    # The token was looked up once and renewed twice (after one refusal); the configuration
    # was resolved at start-up and after each renewal, each path in one read; the lapsed
    # token's read was refused, and so was its renewal.
    assert {token for _, _, token in vault_saw} == {VAULT_TOKEN}
    calls = [(method, path) for method, path, _ in vault_saw]
    assert calls.count(("GET", "/v1/auth/token/lookup-self")) == 1
    assert calls.count(("POST", RENEW)) == 1 + 2 + 1
    assert calls.count(("GET", "/v1/secret/data/onex/db")) == 1 + 2 + 1
    assert calls.count(("GET", "/v1/secret/data/onex/consul")) == 1 + 2
    assert done.fresh == [done.resolved, done.resolved]
    assert done.resolved["postgres"]["password"] == Secret(DB_PASSWORD)
    assert done.resolved["consul"]["token"] == Secret(CONSUL_TOKEN)

    # Every kind of artifact was produced, and the secrets are in none of them.
    exhausted, poison = sorted(done.letters, key=lambda letter: letter["failure_class"])
    assert (exhausted["failure_class"], poison["failure_class"]) == (
        "effect_exhausted",
        "undecodable",
    )
    assert exhausted["intent"]["intent_type"] == "consul.register"
    assert [a["error_type"] for a in exhausted["attempts"]] == ["EffectUnavailable"] * 4
    assert poison["original_message"]["value"].count("***") == 3  # scrubbed, not dropped
    assert sum(isinstance(e, AccessDenied) for e in done.errors) == 1
    assert len(done.errors) >= 5  # four refused registrations, the lapsed token
    assert any(r.name.startswith("hvac") or r.name.startswith("urllib3") for r in caplog.records)
    assert any(r.name.startswith("psycopg") for r in caplog.records)
    assert any("renewal failed; retrying" in r.getMessage() for r in caplog.records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    found = {
        "logs": sum(hits(formatter.format(record)) for record in caplog.records),
        "exceptions": sum(hits(text) for text in exception_texts(done.errors)),
        "records published": sum(
            hits(repr(record.value)) + hits(repr(record.headers)) + hits(repr(record.key))
            for record in done.published
        ),
        "dead letters": sum(hits(json.dumps(letter)) for letter in done.letters),
        "config, settings and adapters": sum(hits(text) for text in done.texts),
    }
    assert found == dict.fromkeys(found, 0)
