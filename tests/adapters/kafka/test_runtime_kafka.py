"""The runtime host on a real broker: commit-after-apply through a SIGKILL, two hosts in one
group, and a poison record (DESIGN §3; reliability bar §2.1, §2.6, §2.9, §2.13).

The crash and rebalance tests run real host *processes* (:mod:`.ledger_host`) whose one effect
writes a ledger row and claims the intent id in PostgreSQL in one transaction; the processes
share that idempotency table. The ledger has no unique constraint, so "every intent exactly
once in the ledger" is the effective exactly-once check, and it is made against the input
topic read end to end without a group (:func:`.harness.read_log`), never against the broker's
high watermark. A row in ``ledger_guard`` would mean the runtime ran an effect it had already
recorded as done.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from onex_adapters.clock import SystemClock
from onex_adapters.codec import decode_envelope
from onex_adapters.kafka import KafkaBus, KafkaSettings, TopicSpec, create_topics
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.postgres import migrate
from onex_adapters.runtime import EffectBinding, RuntimeConfig, RuntimeHost
from onex_core.dispatch import Route, RouteTable
from onex_core.intents import Intent, intent_id_for
from onex_core.ports import EffectResult, HandlerDescription, Record
from tests.adapters.kafka.harness import (
    HostProcess,
    LedgerDb,
    LedgerRow,
    entry,
    publish,
    read_log,
    wait_for,
)
from tests.adapters.kafka.ledger_host import (
    INTENT_TYPE,
    LEDGER_SCHEMA,
    POLICY,
    HostConfig,
    LedgerHandler,
)
from tests.adapters.postgres._server import Found, discover

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

Settings = Callable[..., KafkaSettings]
Topic = Callable[..., str]
PARTITIONS = 4


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg_found(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Found]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PG"):
                patch.delenv(name)
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        try:
            found = discover()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        if isinstance(found, str):
            if os.environ.get("CI") == "true":
                pytest.fail(f"the Kafka runtime tests need PostgreSQL under CI=true: {found}")
            pytest.skip(found)
        yield found
        if found.cluster is not None:
            found.cluster.destroy()


@pytest.fixture
def ledger_db(pg_found: Found, unique: str) -> Iterator[LedgerDb]:
    schema = f"onex_kafka_{unique}"
    with psycopg.connect(pg_found.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    asyncio.run(migrate(pg_found.settings.with_schema(schema)))
    with psycopg.connect(pg_found.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(LEDGER_SCHEMA)
    yield LedgerDb(pg_found, schema)
    with psycopg.connect(pg_found.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


class Hosts:
    """Makes ledger host processes for one test and reaps them afterwards."""

    def __init__(self, base: dict[str, Any], workdir: Path) -> None:
        self.base = base
        self.workdir = workdir
        self.made: list[HostProcess] = []

    def make(self, name: str, **overrides: Any) -> HostProcess:
        config = HostConfig(
            **{**self.base, "name": name, "status": str(self.workdir / f"{name}.json")},
            **overrides,
        )
        process = HostProcess(config, self.workdir)
        self.made.append(process)
        return process

    def explain(self) -> str:
        return "\n".join(process.output() for process in self.made)


@pytest.fixture
def hosts(
    kafka_bootstrap: str,
    settings: Settings,
    topic: Topic,
    ledger_db: LedgerDb,
    tmp_path: Path,
) -> Iterator[Hosts]:
    base = {
        "bootstrap": kafka_bootstrap,
        "group": settings().group_id,
        "topic": topic("ledger", "cmd"),
        "dlq": topic("ledger", "dlq"),
        "conninfo": ledger_db.conninfo,
        "schema": ledger_db.schema,
    }
    made = Hosts(base, tmp_path)
    yield made
    for process in made.made:
        process.reap()


def provision_and_publish(settings: KafkaSettings, topic: str, count: int, entities: int) -> None:
    async def go() -> None:
        await create_topics(settings, [TopicSpec(topic, partitions=PARTITIONS)])
        await publish(settings, (entry(topic, f"e{i % entities:02d}", i) for i in range(count)))

    asyncio.run(go())


def expected_intents(bootstrap: str, topic: str, count: int) -> set[str]:
    """The intent of every command the input topic holds (the ground truth)."""
    return {
        str(intent_id_for(decode_envelope(r.value).envelope_id, INTENT_TYPE, 0))
        for r in read_log(bootstrap, topic, count)
    }


def assert_exactly_once(rows: list[LedgerRow], expected: set[str], db: LedgerDb) -> None:
    applied = Counter(row.intent_id for row in rows)
    assert not expected - set(applied), f"lost: {len(expected - set(applied))}"
    assert not set(applied) - expected, "applied intents that are not in the log"
    assert {k: c for k, c in applied.items() if c > 1} == {}, "applied twice"
    assert db.guard_hits() == [], "an effect ran for an intent already recorded as done"
    # One entity's commands are applied in the order they were sent, across hosts too.
    by_entity: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_entity[row.entity].append(row.n)
    for entity, numbers in by_entity.items():
        assert numbers == sorted(numbers), f"{entity} applied out of order"


# --------------------------------------------------------------------------- SIGKILL mid-batch


def test_a_host_killed_mid_batch_and_restarted_applies_every_effect_exactly_once(
    hosts: Hosts, ledger_db: LedgerDb, settings: Settings, kafka_bootstrap: str
) -> None:
    total, batch, hang_after = 240, 40, 70
    topic = hosts.base["topic"]
    provision_and_publish(settings(), topic, total, entities=16)

    first = hosts.make("first", batch=batch, hang_after=hang_after).start()
    # The crash point: part of a batch applied (and uncommitted), one effect written but not
    # committed in PostgreSQL.
    wait_for(
        lambda: first.status().get("hanging"), "the first host's crash point", explain=hosts.explain
    )
    assert ledger_db.count() >= hang_after
    first.kill()
    applied_by_first = ledger_db.count()

    second = hosts.make("second", batch=batch).start()
    wait_for(
        lambda: ledger_db.count() >= total,
        f"{total} ledger rows",
        timeout=45,
        explain=hosts.explain,
    )
    assert second.stop() == 0
    stats = second.status()["stats"]

    rows = ledger_db.rows()
    assert_exactly_once(rows, expected_intents(kafka_bootstrap, topic, total), ledger_db)
    assert Counter(row.host for row in rows) == {
        "first": applied_by_first,
        "second": total - applied_by_first,
    }
    # The applied-but-uncommitted part of the killed batch came back and was skipped — no more
    # than one batch: the first host had committed everything before it.
    assert 2 <= stats["effects_skipped"] <= batch
    assert stats["effects_done"] == total - applied_by_first
    assert stats["dead_lettered"] == 0


# --------------------------------------------------------------------------- two hosts, one group


@pytest.mark.parametrize("how", ["close", "kill"])
def test_two_hosts_split_the_partitions_and_one_takes_over_when_the_other_goes(
    how: str, hosts: Hosts, ledger_db: LedgerDb, settings: Settings, kafka_bootstrap: str
) -> None:
    total, batch = 400, 20
    topic = hosts.base["topic"]
    asyncio.run(create_topics(settings(), [TopicSpec(topic, partitions=PARTITIONS)]))
    slow = {"batch": batch, "concurrency": 2, "effect_delay": 0.01}
    a = hosts.make("a", **slow).start()
    b = hosts.make("b", **slow).start()

    def split() -> bool:
        mine, theirs = a.assignment(), b.assignment()
        return bool(mine and theirs) and not mine & theirs and len(mine | theirs) == PARTITIONS

    wait_for(split, "the two hosts to split the partitions", explain=hosts.explain)
    parts_a, parts_b = a.assignment(), b.assignment()
    commands = [entry(topic, f"e{i % 32:02d}", i) for i in range(total)]
    asyncio.run(publish(settings(), commands[: total // 2]))

    def applied_by(host: str, rows: list[LedgerRow]) -> list[LedgerRow]:
        return [row for row in rows if row.host == host]

    wait_for(
        lambda: len(applied_by("a", ledger_db.rows())) >= 40 and applied_by("b", ledger_db.rows()),
        "both hosts to apply effects",
        explain=hosts.explain,
    )
    before = ledger_db.rows()
    if how == "close":
        assert a.stop() == 0  # drains its batch, commits, leaves the group
    else:
        a.kill()
    wait_for(
        lambda: b.assignment() == set(range(PARTITIONS)),
        "b to take over every partition",
        explain=hosts.explain,
    )
    # The second half arrives after a is gone: on a's partitions, only b can apply it.
    asyncio.run(publish(settings(), commands[total // 2 :]))
    wait_for(lambda: ledger_db.count() >= total, f"{total} ledger rows", explain=hosts.explain)
    assert b.stop() == 0
    stats = b.status()["stats"]

    rows = ledger_db.rows()
    assert_exactly_once(rows, expected_intents(kafka_bootstrap, topic, total), ledger_db)
    assert {row.partition for row in applied_by("a", rows)} <= parts_a
    assert {row.partition for row in applied_by("b", before)} <= parts_b
    # b took over a's partitions and applied what arrived on them after a had gone.
    assert {row.partition for row in applied_by("b", rows)} >= parts_a
    if how == "close":
        # a committed everything it applied before leaving: b redid nothing.
        assert stats["effects_skipped"] == 0
    else:
        # a's batch in hand was applied in part, uncommitted: at most one batch came back.
        assert stats["effects_skipped"] <= batch


# --------------------------------------------------------------------------- poison


class MemoryLedger:
    handler_type = "ledger"

    def __init__(self) -> None:
        self.applied: list[tuple[str, int]] = []

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    def describe(self) -> HandlerDescription:
        return HandlerDescription("ledger", (INTENT_TYPE,), ("ledger.storage",))

    async def execute(self, intent: Intent) -> EffectResult:
        self.applied.append((intent.payload["entity"], intent.payload["n"]))
        return EffectResult(intent.intent_id, {"rows": 1})


def test_a_poison_record_is_dead_lettered_once_and_its_partition_flows_on(
    settings: Settings, topic: Topic, kafka_bootstrap: str
) -> None:
    commands, dlq = topic("poison", "cmd"), topic("poison", "dlq")
    group_settings = settings(consumer_extra={"fetch.queue.backoff.ms": 10})
    poison = b'{"envelope_id": not json'
    sent: list[Any] = [
        entry(commands, "a", 1),
        entry(commands, "b", 1),
        entry(commands, "a", 2),
        (commands, poison, "a"),
        entry(commands, "a", 3),
        entry(commands, "b", 2),
        entry(commands, "a", 4),
    ]
    ledger = MemoryLedger()

    async def scenario() -> RuntimeHost:
        await create_topics(
            group_settings, [TopicSpec(commands, partitions=2), TopicSpec(dlq, partitions=1)]
        )
        await publish(group_settings, sent)
        host = RuntimeHost(
            bus=KafkaBus(group_settings),
            routes=RouteTable((Route.to("ledger", commands),), dlq_topic=dlq),
            handlers={"ledger": LedgerHandler()},
            effects=[EffectBinding(INTENT_TYPE, ledger, POLICY)],
            projections=InMemoryProjectionStore(),
            idempotency=InMemoryIdempotencyStore(),
            clock=SystemClock(),
            config=RuntimeConfig(name="poison-test", poll_timeout=0.2),
        )
        host.start_background()
        deadline = asyncio.get_running_loop().time() + 30
        while len(ledger.applied) < 6:
            assert asyncio.get_running_loop().time() < deadline, f"applied only {ledger.applied}"
            await asyncio.sleep(0.02)
        await host.stop()
        # A sentinel after everything the host wrote: the DLQ's content is what comes before.
        await publish(group_settings, [(dlq, b"{}", "sentinel")])
        return host

    host = asyncio.run(scenario())

    assert [n for entity, n in ledger.applied if entity == "a"] == [1, 2, 3, 4]
    assert [n for entity, n in ledger.applied if entity == "b"] == [1, 2]
    log = read_log(kafka_bootstrap, commands, len(sent))
    (bad,) = [r for r in log if r.value == poison]
    letters = [
        r for r in read_log(kafka_bootstrap, dlq, until_key=b"sentinel") if r.key != b"sentinel"
    ]
    assert len(letters) == 1
    assert host.stats.dead_lettered == 1
    letter = json.loads(letters[0].value)
    assert letter["failure_class"] == "undecodable"
    assert letter["original_topic"] == commands
    assert letter["original_message"] == {
        "key": "a",
        "partition": bad.partition,
        "offset": bad.offset,
        "value": poison.decode(),
    }
    # Everything was committed, the poison record included: it is never delivered again.
    assert committed(kafka_bootstrap, group_settings.group_id, log) == {
        partition: max(r.offset for r in log if r.partition == partition) + 1
        for partition in {r.partition for r in log}
    }


def committed(bootstrap: str, group: str, log: list[Record]) -> dict[int, int]:
    """The group's committed offsets for the partitions ``log`` touches (no group join)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = sorted({(r.topic, r.partition) for r in log})
        answer = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in answer}
    finally:
        consumer.close()
