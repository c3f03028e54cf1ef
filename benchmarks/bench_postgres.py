"""PostgreSQL: registration upserts per second in 500-row batches.

The subject is ``RegistrationStorage.upsert_registrations`` (binary COPY into a temporary table,
then one ``INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE <newer>``), through the async pool.
The floor is the obvious raw alternative: psycopg's ``executemany`` of a plain ``INSERT … ON
CONFLICT DO UPDATE`` with the same staleness ``WHERE`` (pipelined, one transaction per batch).
Both write the same rows to the same table; every call carries a higher sequence than the last,
so every row is really written (an update, after the first call). The server is found the way
the tests find it (``ONEX_TEST_POSTGRES_DSN``, 127.0.0.1:5432, or a throwaway cluster); with
none, the figure is skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from benchmarks._harness import Figure, compare
from onex_adapters.postgres import RegistrationRow, RegistrationStorage, migrate, open_pool

__all__ = ["run"]

BATCH = 500
ROWS = 5000
CALLS = 2 * (1 + 5)  # compare(): one warm-up call and five rounds, for each side
T0 = datetime(2026, 1, 1, tzinfo=UTC)

RAW = """
INSERT INTO registration_projections AS cur (
    entity_id, domain, current_state, node_type, node_version, capabilities, endpoints,
    ack_deadline, liveness_deadline, last_heartbeat_at, ack_timeout_emitted_at,
    liveness_timeout_emitted_at, last_applied_event_id, last_applied_offset,
    last_applied_sequence, last_applied_partition, registered_at, updated_at, correlation_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (entity_id, domain) DO UPDATE SET
    current_state = EXCLUDED.current_state, node_type = EXCLUDED.node_type,
    node_version = EXCLUDED.node_version, capabilities = EXCLUDED.capabilities,
    endpoints = EXCLUDED.endpoints, ack_deadline = EXCLUDED.ack_deadline,
    liveness_deadline = EXCLUDED.liveness_deadline,
    last_heartbeat_at = EXCLUDED.last_heartbeat_at,
    ack_timeout_emitted_at = EXCLUDED.ack_timeout_emitted_at,
    liveness_timeout_emitted_at = EXCLUDED.liveness_timeout_emitted_at,
    last_applied_event_id = EXCLUDED.last_applied_event_id,
    last_applied_offset = EXCLUDED.last_applied_offset,
    last_applied_sequence = EXCLUDED.last_applied_sequence,
    last_applied_partition = EXCLUDED.last_applied_partition,
    registered_at = EXCLUDED.registered_at, updated_at = EXCLUDED.updated_at,
    correlation_id = EXCLUDED.correlation_id
WHERE EXCLUDED.last_applied_sequence > cur.last_applied_sequence
   OR (EXCLUDED.last_applied_sequence = cur.last_applied_sequence
       AND (EXCLUDED.last_applied_partition IS DISTINCT FROM cur.last_applied_partition
            OR EXCLUDED.last_applied_offset > cur.last_applied_offset))
"""


def _row_sets() -> Iterator[list[RegistrationRow]]:
    capabilities = {"registration.storage": True, "protocols": ["http", "kafka"]}
    endpoints = {"health": "http://10.0.0.1:8080/health", "api": "http://10.0.0.1:8080"}
    for call in range(CALLS):
        sequence = call + 1
        yield [
            RegistrationRow(
                node_id=f"node-{i:05d}",
                node_type="effect",
                state="active",
                sequence=sequence,
                event_id=uuid.UUID(int=sequence * 1_000_000 + i),
                registered_at=T0,
                updated_at=T0 + timedelta(seconds=sequence),
                node_version="1.4.2",
                capabilities=capabilities,
                endpoints=endpoints,
                liveness_deadline=T0 + timedelta(seconds=30 + sequence),
                last_heartbeat_at=T0 + timedelta(seconds=sequence),
                partition="0",
                offset=sequence,
                correlation_id=uuid.UUID(int=i),
            )
            for i in range(ROWS)
        ]


def _raw_params(row: RegistrationRow) -> tuple[Any, ...]:
    return (
        row.node_id,
        row.domain,
        row.state,
        row.node_type,
        row.node_version,
        Jsonb(row.capabilities),
        Jsonb(row.endpoints),
        row.ack_deadline,
        row.liveness_deadline,
        row.last_heartbeat_at,
        row.ack_timeout_emitted_at,
        row.liveness_timeout_emitted_at,
        row.event_id,
        row.offset,
        row.sequence,
        row.partition,
        row.registered_at,
        row.updated_at,
        row.correlation_id,
    )


def run() -> list[Figure]:
    from tests.adapters.postgres._server import discover

    found = discover()
    if isinstance(found, str):
        print(f"  skipped: {found}")
        return []
    schema = f"onex_bench_{uuid.uuid4().hex[:8]}"
    settings = found.settings.with_schema(schema)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(migrate(settings))
        pool = loop.run_until_complete(open_pool(settings))
        storage = RegistrationStorage(pool)
        raw = psycopg.connect(settings.conninfo())
        raw.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        raw.commit()
        sets = _row_sets()

        async def upsert_all(rows: list[RegistrationRow]) -> None:
            for start in range(0, len(rows), BATCH):
                written = await storage.upsert_registrations(rows[start : start + BATCH])
                assert all(written)

        def subject(n: int) -> None:
            loop.run_until_complete(upsert_all(next(sets)[:n]))

        def floor(n: int) -> None:
            rows = next(sets)[:n]
            cursor = raw.cursor()
            for start in range(0, n, BATCH):
                with raw.transaction():
                    cursor.executemany(RAW, [_raw_params(r) for r in rows[start : start + BATCH]])

        rate, floor_rate = compare(subject, floor, ROWS)
        raw.close()
        loop.run_until_complete(pool.close())
        return [
            Figure(
                f"registration upserts, {BATCH}-row batches, staleness rule applied",
                rate,
                "raw psycopg executemany, same rows and WHERE",
                floor_rate,
                min_ratio=1.2,
            )
        ]
    finally:
        with psycopg.connect(found.admin_conninfo(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
        loop.close()
        if found.cluster is not None:
            found.cluster.destroy()
