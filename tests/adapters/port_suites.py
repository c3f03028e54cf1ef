"""One behavioural suite per port. Every adapter's test module subclasses these.

A subclass provides the adapter through an async factory (``make_store``) and inherits every
test; the in-memory and PostgreSQL adapters run the very same assertions. A port promise that
is not tested here is not a promise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from onex_core.outputs import Projection
from onex_core.ports import IdempotencyStore, ProjectionStore, port_problems

T0 = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)


def projection(
    entity: str = "node-1",
    *,
    sequence: int = 1,
    state: str = "active",
    offset: int | None = None,
    partition: str | None = None,
    domain: str = "registration",
    **data: Any,
) -> Projection:
    return Projection(
        entity_id=entity,
        domain=domain,
        state=state,
        data=data,
        sequence=sequence,
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{entity}/{sequence}/{offset}"),
        partition=partition,
        offset=offset,
        updated_at=T0,
    )


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


class ProjectionStoreSuite:
    """The ProjectionStore promises. Subclasses define ``make_store``."""

    make_store: Callable[[], Awaitable[ProjectionStore]]

    def run(self, scenario: Awaitable[Any]) -> Any:
        """Run one scenario in a fresh event loop. Adapters that hold connections override
        this to close them inside the same loop."""
        return run(scenario)

    def test_conforms_to_the_port(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            assert port_problems(store, ProjectionStore) == ()

        self.run(scenario())

    def test_get_of_an_unknown_entity_is_none(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            assert await store.get("nobody", "registration") is None

        self.run(scenario())

    def test_put_then_get_round_trips(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            written = projection(sequence=3, offset=7, partition="2", node_type="effect", n=4)
            assert await store.put(written) is True
            assert await store.get("node-1", "registration") == written

        self.run(scenario())

    def test_an_older_event_never_overwrites_a_newer_one(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            newer = projection(sequence=5, state="active")
            assert await store.put(newer)
            assert await store.put(projection(sequence=4, state="accepted")) is False
            assert await store.get("node-1", "registration") == newer

        self.run(scenario())

    def test_an_exact_replay_is_refused_as_stale(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            first = projection(sequence=2, offset=10, partition="0")
            assert await store.put(first)
            assert await store.put(first) is False

        self.run(scenario())

    def test_same_sequence_same_partition_higher_offset_wins(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            assert await store.put(projection(sequence=2, offset=10, partition="0"))
            later = projection(sequence=2, offset=11, partition="0", state="awaiting_ack")
            assert await store.put(later)
            assert await store.get("node-1", "registration") == later

        self.run(scenario())

    def test_domains_and_entities_are_separate(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            a = projection("node-a", domain="registration")
            b = projection("node-a", domain="billing")
            assert await store.put(a)
            assert await store.put(b)
            assert await store.get("node-a", "registration") == a
            assert await store.get("node-a", "billing") == b

        self.run(scenario())

    def test_overdue_finds_past_deadlines_earliest_first(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            now = T0 + timedelta(minutes=10)
            await store.put(projection("late", ack_deadline=now - timedelta(seconds=5)))
            await store.put(projection("later", ack_deadline=now - timedelta(seconds=50)))
            await store.put(projection("exactly-now", ack_deadline=now))
            await store.put(projection("future", ack_deadline=now + timedelta(seconds=1)))
            await store.put(projection("no-deadline"))
            due = await store.overdue("registration", "ack_deadline", now, 10)
            assert [p.entity_id for p in due] == ["later", "late"]
            first = await store.overdue("registration", "ack_deadline", now, 1)
            assert [p.entity_id for p in first] == ["later"]

        self.run(scenario())


class IdempotencyStoreSuite:
    """The IdempotencyStore promises. Subclasses define ``make_store``."""

    make_store: Callable[[], Awaitable[IdempotencyStore]]

    def run(self, scenario: Awaitable[Any]) -> Any:
        """Run one scenario in a fresh event loop. Adapters that hold connections override
        this to close them inside the same loop."""
        return run(scenario)

    def test_conforms_to_the_port(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            assert port_problems(store, IdempotencyStore) == ()

        self.run(scenario())

    def test_unknown_keys_are_not_seen(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            assert await store.seen("effects", str(uuid.uuid4())) is False

        self.run(scenario())

    def test_recorded_keys_are_seen_and_recording_twice_is_harmless(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            key = str(uuid.uuid4())
            await store.record("effects", key)
            await store.record("effects", key)
            assert await store.seen("effects", key) is True

        self.run(scenario())

    def test_domains_are_separate(self) -> None:
        async def scenario() -> None:
            store = await self.make_store()
            key = str(uuid.uuid4())
            await store.record("consul", key)
            assert await store.seen("postgres", key) is False

        self.run(scenario())
