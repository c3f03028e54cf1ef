"""Pieces the Kafka runtime tests share: host processes, waiting, the ground truth, the ledger.

- :class:`HostProcess` runs ``tests.adapters.kafka.ledger_host`` as a child process and reads
  its status file; it is killed by its own pid, never by name.
- :func:`wait_for` polls a condition until a deadline and fails naming what it waited for —
  with the processes' output, so a failure explains itself.
- :func:`read_log` is the ground truth: it reads a topic from the beginning with ``assign()``
  (no consumer group, nothing committed) until it has the number of records the producer had
  confirmed. The broker's high watermark is never consulted — on the test broker it is wrong.
- :class:`LedgerDb` is one test's PostgreSQL schema: the idempotency table (migrated) and the
  ledger tables of :mod:`tests.adapters.kafka.ledger_host`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from psycopg import sql

from onex_adapters.codec import encode_envelope
from onex_adapters.kafka import KafkaBus, KafkaSettings, Outgoing
from onex_core.messages import Envelope
from onex_core.ports import Record
from onex_core.topics import parse_topic
from tests.adapters.kafka.ledger_host import HostConfig
from tests.adapters.postgres._server import Found

__all__ = [
    "HostProcess",
    "LedgerDb",
    "LedgerRow",
    "entry",
    "publish",
    "read_log",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[3]
START = "2026-11-21T05:00:00+00:00"


def wait_for(
    condition: Callable[[], Any],
    what: str,
    *,
    timeout: float = 30.0,
    explain: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``condition`` every 20 ms until it returns something truthy; return that.

    Raises:
        AssertionError: ``timeout`` passed; the message names ``what`` and adds ``explain()``.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{explain()}")
        time.sleep(0.02)  # a polling interval, not a wait for something to happen


class HostProcess:
    """One ledger host process."""

    def __init__(self, config: HostConfig, workdir: Path) -> None:
        self.config = config
        self.log = workdir / f"{config.name}.log"
        self.status_path = Path(config.status)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> HostProcess:
        self.status_path.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.adapters.kafka.ledger_host"],
                cwd=REPO,
                env={**os.environ, **self.config.environment()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def status(self) -> dict[str, Any]:
        """The last status the process wrote (empty before the first)."""
        try:
            document: dict[str, Any] = json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return document

    def assignment(self) -> set[int]:
        return {partition for _, partition in self.status().get("assignment", [])}

    def kill(self) -> None:
        """SIGKILL, and reap."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (a graceful drain); returns the exit code."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        return self._process.wait(timeout)

    def reap(self) -> None:
        """Teardown: kill the process if it still runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def output(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return f"--- {self.config.name} (status {self.status()}):\n{text[-3000:]}"


def entry(topic: str, entity: str, n: int) -> Envelope:
    """The ``n``-th ledger command for ``entity``; its id is a function of both."""
    envelope_id = uuid.uuid5(uuid.NAMESPACE_URL, f"ledger/{topic}/{entity}/{n}")
    return Envelope(
        envelope_id=envelope_id,
        topic=topic,
        event_type=parse_topic(topic).event_type,
        payload={"n": n},
        correlation_id=envelope_id,
        entity_id=entity,
        emitted_at=datetime.fromisoformat(START),
    )


async def publish(
    settings: KafkaSettings, items: Iterable[Envelope | tuple[str, bytes, str]]
) -> int:
    """Publish envelopes (keyed by entity) and raw ``(topic, value, key)`` records, in order;
    returns how many the broker confirmed (all, or this raises)."""
    outgoing = [
        Outgoing(item.topic, encode_envelope(item), item.entity_id.encode())
        if isinstance(item, Envelope)
        else Outgoing(item[0], item[1], item[2].encode())
        for item in items
    ]
    bus = KafkaBus(settings)
    try:
        await bus.publish_many(outgoing)
    finally:
        await bus.close()
    return len(outgoing)


def read_log(
    bootstrap: str,
    topic: str,
    count: int | None = None,
    *,
    until_key: bytes | None = None,
    timeout: float = 20.0,
) -> list[Record]:
    """Read ``topic`` with ``assign()`` from the beginning of every partition, without a
    consumer group, until ``count`` records arrived — or, with ``until_key``, until a record
    with that key did (a sentinel published last); in (partition, offset) order.

    Raises:
        AssertionError: the records did not all arrive within ``timeout``.
    """

    def complete(records: list[Record]) -> bool:
        if until_key is not None:
            return any(r.key == until_key for r in records)
        return count is not None and len(records) >= count

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # librdkafka wants a group id even for assign(); this one never joins nor commits.
            "group.id": f"onex-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        assert partitions, f"{topic} has no partitions"
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while not complete(records):
            assert time.monotonic() < deadline, f"only {len(records)} records arrived from {topic}"
            for message in consumer.consume(500, 0.2):
                if message.error() is not None:
                    continue
                key = message.key()
                records.append(
                    Record(
                        topic,
                        message.partition() or 0,
                        message.offset() or 0,
                        key if isinstance(key, bytes) else None,
                        message.value() or b"",
                    )
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


@dataclass(frozen=True, slots=True)
class LedgerRow:
    intent_id: str
    entity: str
    n: int
    host: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class LedgerDb:
    """One test's schema: ``onex_idempotency`` plus the ledger tables."""

    server: Found
    schema: str

    @property
    def conninfo(self) -> str:
        return self.server.settings.conninfo()

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(self.server.admin_conninfo(), autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def rows(self) -> list[LedgerRow]:
        with self._connect() as conn:
            found = conn.execute(
                'SELECT intent_id, entity, n, host, partition, "offset" FROM ledger '
                "ORDER BY applied_at"
            ).fetchall()
        return [LedgerRow(*row) for row in found]

    def count(self) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT count(*) FROM ledger").fetchone()
        return int(row[0]) if row else 0

    def guard_hits(self) -> list[tuple[str, str]]:
        with self._connect() as conn:
            return [tuple(r) for r in conn.execute("SELECT intent_id, host FROM ledger_guard")]

    def done_keys(self) -> set[str]:
        with self._connect() as conn:
            return {r[0] for r in conn.execute("SELECT key FROM onex_idempotency")}
