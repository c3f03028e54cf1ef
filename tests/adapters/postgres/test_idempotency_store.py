"""PostgresIdempotencyStore keeps the port's promises, and records inside an effect's
transaction so the effect and its done-mark commit (or vanish) together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from onex_adapters.postgres import (
    PostgresIdempotencyStore,
    PostgresSettings,
)
from onex_core.errors import UsageError
from tests.adapters.port_suites import IdempotencyStoreSuite
from tests.adapters.postgres._server import pooled
from tests.adapters.postgres.fixtures import PoolsClosedPerTest

Admin = psycopg.Connection[tuple[Any, ...]]


class TestPostgresIdempotencyStore(PoolsClosedPerTest, IdempotencyStoreSuite):
    async def make_store(self) -> PostgresIdempotencyStore:
        return PostgresIdempotencyStore(await self.open_pool())


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_exactly_one_of_many_concurrent_claims_wins(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(replace(settings, max_size=8)) as pool:
            store = PostgresIdempotencyStore(pool)
            results = await asyncio.gather(*(store.claim("effects", "k") for _ in range(12)))
            assert sorted(results) == [False] * 11 + [True]

    run(scenario())


def test_an_effect_and_its_record_commit_together(settings: PostgresSettings, admin: Admin) -> None:
    admin.execute("CREATE TABLE effects (key text NOT NULL)")

    async def effect(store: PostgresIdempotencyStore, key: str, *, fail: bool) -> bool:
        async with store.transaction() as conn:
            if not await store.claim("effects", key, conn=conn):
                return False
            await conn.execute("INSERT INTO effects (key) VALUES (%s)", [key])
            if fail:
                raise RuntimeError("the effect failed after writing")
        return True

    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresIdempotencyStore(pool)
            with pytest.raises(RuntimeError):
                await effect(store, "i-1", fail=True)
            assert await store.seen("effects", "i-1") is False
            assert await effect(store, "i-1", fail=False) is True
            assert await effect(store, "i-1", fail=False) is False  # a redelivery
            assert await store.seen("effects", "i-1") is True

    run(scenario())
    assert admin.execute("SELECT count(*) FROM effects").fetchone() == (1,)


def test_a_second_claimer_waits_for_the_first_transaction(
    settings: PostgresSettings, admin: Admin
) -> None:
    async def scenario() -> None:
        async with pooled(replace(settings, max_size=4)) as pool:
            store = PostgresIdempotencyStore(pool)
            first_claimed = asyncio.Event()
            release = asyncio.Event()

            async def first() -> bool:
                async with store.transaction() as conn:
                    won = await store.claim("effects", "k", conn=conn)
                    first_claimed.set()
                    await release.wait()
                return won

            second_pid: list[int] = []

            async def second() -> bool:
                await first_claimed.wait()
                async with store.transaction() as conn:
                    second_pid.append(conn.info.backend_pid)
                    return await store.claim("effects", "k", conn=conn)

            tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
            await _until_waiting_on_a_lock(admin, second_pid)
            assert not tasks[1].done()
            release.set()
            assert await asyncio.gather(*tasks) == [True, False]

    run(scenario())


async def _until_waiting_on_a_lock(admin: Admin, pid: list[int], timeout: float = 10.0) -> None:
    """Poll (bounded by a deadline) until the backend whose pid lands in ``pid`` waits on a
    lock; ``sleep(0)`` only lets the claiming task run between polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid:
            row = admin.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", pid
            ).fetchone()
            if row and row[0] == "Lock":
                return
        await asyncio.sleep(0)
    raise AssertionError("the second claim never waited on the first one's row lock")


def test_a_transaction_sees_its_own_record_and_others_do_not(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(replace(settings, max_size=2)) as pool:
            store = PostgresIdempotencyStore(pool)
            async with store.transaction() as conn:
                await store.record("effects", "k", conn=conn)
                assert await store.seen("effects", "k", conn=conn) is True
                assert await store.seen("effects", "k") is False
            assert await store.seen("effects", "k") is True

    run(scenario())


def test_forget_before_trims_old_records_in_bounded_steps(
    settings: PostgresSettings, admin: Admin
) -> None:
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresIdempotencyStore(pool)
            for i in range(5):
                await store.record("effects", f"old-{i}")
            await store.record("effects", "new")
            admin.execute(
                "UPDATE onex_idempotency SET recorded_at = %s WHERE key LIKE 'old-%%'",
                [cutoff - timedelta(days=8)],
            )
            assert await store.forget_before(cutoff, limit=3) == 3
            assert await store.forget_before(cutoff, limit=3) == 2
            assert await store.forget_before(cutoff, limit=3) == 0
            assert await store.seen("effects", "new") is True
            with pytest.raises(UsageError):
                await store.forget_before(datetime(2026, 1, 1), limit=1)

    run(scenario())
