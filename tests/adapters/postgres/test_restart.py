"""A PostgreSQL restart costs retries, never a crash, a lost write or a double effect.

These tests restart a server, so they use a throwaway cluster of their own (never the shared
server). The loop retries transient errors the way the runtime does — a failed step is simply
done again — and the checks at the end compare what was acknowledged with what is stored.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from onex_adapters.postgres import (
    Pool,
    PostgresIdempotencyStore,
    PostgresProjectionStore,
    PostgresSettings,
    PostgresUnavailable,
    migrate,
    transaction,
)
from onex_core.errors import EffectUnavailable
from tests.adapters.port_suites import projection
from tests.adapters.postgres._server import Cluster, pooled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(pg_bindir: Path) -> Iterator[Cluster]:
    own = Cluster.create(pg_bindir, password=f"pw-{secrets.token_hex(8)}")
    yield own
    own.destroy()


@pytest.fixture
def restart_settings(cluster: Cluster) -> PostgresSettings:
    settings = cluster.settings(
        schema=f"onex_restart_{secrets.token_hex(4)}", max_size=2, pool_timeout=10.0
    )
    asyncio.run(migrate(settings))
    return settings


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def until_done(step: Callable[[], Awaitable[Any]], deadline: float = 30.0) -> int:
    """Run ``step`` until it succeeds, retrying transient errors; returns how many failed."""
    failures = 0
    give_up = time.monotonic() + deadline
    while True:
        try:
            await step()
            return failures
        except EffectUnavailable:
            failures += 1
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0)  # a retry needs no delay here: the pool waits for the server


async def scalar(pool: Pool, query: str) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(query)).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return row[0]


def test_a_restart_mid_run_loses_nothing_and_applies_nothing_twice(
    cluster: Cluster, restart_settings: PostgresSettings
) -> None:
    async def scenario() -> None:
        async with pooled(restart_settings) as pool:
            async with pool.connection() as conn:
                await conn.execute("CREATE TABLE effects (key text NOT NULL)")
            projections = PostgresProjectionStore(pool)
            idempotency = PostgresIdempotencyStore(pool)

            async def effect(key: str) -> None:
                async with idempotency.transaction() as conn:
                    if await idempotency.claim("effects", key, conn=conn):
                        await conn.execute("INSERT INTO effects (key) VALUES (%s)", [key])

            started = await scalar(pool, "SELECT pg_postmaster_start_time()")
            acknowledged: dict[str, int] = {}
            failures = 0
            restart: asyncio.Task[None] | None = None
            ready_at: list[float] = []
            recovered_at: float | None = None
            step = steps_after_restart = 0
            while steps_after_restart < 40:
                if step == 60:
                    restart = asyncio.create_task(asyncio.to_thread(cluster.restart))
                    restart.add_done_callback(lambda _: ready_at.append(time.monotonic()))
                entity = f"entity-{step % 7}"
                written = projection(entity, sequence=step, offset=0, partition="0", step=step)
                failures += await until_done(lambda p=written: projections.put(p))
                acknowledged[entity] = step
                failures += await until_done(lambda k=f"intent-{step}": effect(k))
                if ready_at:
                    recovered_at = recovered_at or time.monotonic()
                    steps_after_restart += 1
                step += 1
            assert restart is not None
            await restart

            assert await scalar(pool, "SELECT pg_postmaster_start_time()") > started
            assert recovered_at is not None
            assert recovered_at - ready_at[0] < 5.0
            for entity, sequence in acknowledged.items():
                found = await projections.get(entity, "registration")
                assert found is not None, entity
                assert found.sequence == sequence, entity
            assert await scalar(pool, "SELECT count(*) FROM effects") == step
            assert await scalar(pool, "SELECT count(DISTINCT key) FROM effects") == step
            assert await scalar(pool, "SELECT count(*) FROM onex_idempotency") == step

    run(scenario())


def test_a_transaction_cut_by_a_restart_rolls_back_and_the_pool_heals(
    cluster: Cluster, restart_settings: PostgresSettings
) -> None:
    async def scenario() -> None:
        async with pooled(restart_settings) as pool:
            idempotency = PostgresIdempotencyStore(pool)

            async def cut_by_a_restart() -> None:
                async with transaction(pool) as conn:
                    await idempotency.record("effects", "cut", conn=conn)
                    await asyncio.to_thread(cluster.restart)
                    await idempotency.record("effects", "cut-too", conn=conn)

            with pytest.raises(PostgresUnavailable):
                await cut_by_a_restart()
            assert await until_done(lambda: idempotency.seen("effects", "cut")) == 0
            assert await idempotency.seen("effects", "cut") is False
            assert await idempotency.seen("effects", "cut-too") is False

    run(scenario())
