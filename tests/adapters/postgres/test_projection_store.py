"""PostgresProjectionStore keeps the port's promises, atomically, and its JSONB keeps types.

Also here: the JSONB encoding (pure, no server), and RegistrationStorage — the
``registration_projections`` table, its batched writes and its timeout scans.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from onex_adapters.memory import InMemoryProjectionStore
from onex_adapters.postgres import (
    PostgresProjectionStore,
    PostgresRejected,
    PostgresSettings,
    RegistrationRow,
    RegistrationStorage,
    RegistrationUpdate,
    open_pool,
    transaction,
)
from onex_adapters.postgres.jsondata import MAX_DEPTH, datetimes, decode, encode
from onex_adapters.postgres.registrations import COPY_THRESHOLD
from onex_core.errors import UsageError
from onex_core.outputs import Projection, is_stale
from tests.adapters.port_suites import T0, ProjectionStoreSuite, projection
from tests.adapters.postgres._server import pooled
from tests.adapters.postgres.fixtures import PoolsClosedPerTest

Admin = psycopg.Connection[tuple[Any, ...]]


# --------------------------------------------------------------------------- the port suite


class TestPostgresProjectionStore(PoolsClosedPerTest, ProjectionStoreSuite):
    async def make_store(self) -> PostgresProjectionStore:
        return PostgresProjectionStore(await self.open_pool())


# --------------------------------------------------------------------------- JSONB encoding

IST = timezone(timedelta(hours=5, minutes=30))

ROUND_TRIPS = [
    {"n": 1, "f": 1.5, "s": "x", "b": True, "none": None},
    {"at": T0, "ist": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=IST)},
    {"id": uuid.UUID(int=7), "ids": [uuid.UUID(int=1), uuid.UUID(int=2)]},
    {"$dt": "not a datetime", "$uuid": "nor a uuid"},
    {"$dt": T0.isoformat()},
    {"nested": {"$$x": {"$dt": {"$dt": "x"}}}},
    {"deep": [[[{"a": [T0]}]]]},
    {"unicode": "héllo ✓ \U0001f600", "empty": {}, "list": []},
]


@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_json_encoding_round_trips_datetimes_uuids_and_dollar_keys(data: dict[str, Any]) -> None:
    assert decode(encode(data)) == data


def test_datetimes_are_marked_and_come_back_timezone_aware() -> None:
    text = encode({"at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=IST)})
    assert json.loads(text) == {"at": {"$dt": "2026-01-02T03:04:05+05:30"}}
    restored = decode(text)["at"]
    assert restored.utcoffset() == timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"at": datetime(2026, 1, 1)}, "data.at"),
        ({"x": [1, float("nan")]}, "data.x[1]"),
        ({"x": {1: "a"}}, "data.x"),
        ({"x": {1, 2}}, "data.x"),
        ({"x": b"secret-bytes"}, "data.x"),
    ],
)
def test_values_jsonb_cannot_carry_are_refused_by_path_never_by_value(
    data: dict[str, Any], named: str
) -> None:
    with pytest.raises(UsageError) as caught:
        encode(data)
    assert named in str(caught.value)
    assert "secret-bytes" not in str(caught.value)


def test_nesting_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(UsageError, match="deeper"):
        encode({"x": deep})


def test_decoding_foreign_markers_is_refused() -> None:
    with pytest.raises(Exception, match="ONEX encoding"):
        decode('{"at": {"$dt": "yesterday"}}')


def test_only_top_level_aware_datetimes_are_indexed_as_deadlines() -> None:
    fields, values = datetimes({"a": T0, "b": "2026-01-01", "c": {"d": T0}, "e": T0})
    assert fields == ["a", "e"]
    assert values == [T0, T0]


moments = st.datetimes(min_value=datetime(1900, 1, 1), timezones=st.sampled_from([UTC, IST, UTC]))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | moments
    | st.uuids(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
        | st.dictionaries(st.sampled_from(["$dt", "$uuid", "$$dt", "$"]), children, max_size=2)
    ),
    max_leaves=20,
)


@hypothesis_settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_any_json_like_mapping_round_trips(data: dict[str, Any]) -> None:
    assert decode(encode(data)) == data


# --------------------------------------------------------------------------- the store


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_data_datetimes_round_trip_through_the_server_in_any_offset(
    settings: PostgresSettings,
) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresProjectionStore(pool)
            data = {
                "deadline": datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=IST),
                "nested": {"at": T0, "ids": [uuid.UUID(int=3)]},
                "$dt": "user data, not a marker",
            }
            written = projection("n", sequence=1, **data)
            assert await store.put(written)
            found = await store.get("n", "registration")
            assert found == written
            assert found is not None
            assert found.data["deadline"].utcoffset() == timedelta(hours=5, minutes=30)
            assert found.updated_at is not None
            assert found.updated_at.utcoffset() is not None

    run(scenario())


def test_twenty_concurrent_puts_for_one_entity_keep_the_newest(settings: PostgresSettings) -> None:
    sequences = list(range(1, 21))
    random.Random(20).shuffle(sequences)

    async def scenario() -> None:
        async with pooled(replace(settings, max_size=10)) as pool:
            store = PostgresProjectionStore(pool)
            candidates = [
                projection("contended", sequence=s, deadline=T0 + timedelta(seconds=s))
                for s in sequences
            ]
            results = await asyncio.gather(*(store.put(p) for p in candidates))
            newest = max(candidates, key=lambda p: p.sequence)
            assert results[candidates.index(newest)] is True
            assert await store.get("contended", "registration") == newest
            due = await store.overdue("registration", "deadline", T0 + timedelta(hours=1), 50)
            assert due == [newest]

    run(scenario())


def test_overdue_follows_the_newest_version_of_each_projection(settings: PostgresSettings) -> None:
    now = T0 + timedelta(minutes=1)

    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresProjectionStore(pool)
            await store.put(projection("moved", sequence=1, deadline=now - timedelta(seconds=9)))
            await store.put(projection("moved", sequence=2, deadline=now + timedelta(seconds=9)))
            await store.put(projection("dropped", sequence=1, deadline=now - timedelta(seconds=8)))
            await store.put(projection("dropped", sequence=2))
            await store.put(projection("text", sequence=1, deadline="2000-01-01T00:00:00+00:00"))
            await store.put(projection("stale", sequence=5, deadline=now - timedelta(seconds=7)))
            assert not await store.put(projection("stale", sequence=4, deadline=now))
            due = await store.overdue("registration", "deadline", now, 10)
            assert [p.entity_id for p in due] == ["stale"]
            assert await store.overdue("registration", "deadline", now, 0) == []
            with pytest.raises(UsageError):
                await store.overdue("registration", "deadline", datetime(2026, 1, 1), 1)
            with pytest.raises(UsageError):
                await store.overdue("registration", "deadline", now, -1)

    run(scenario())


def test_a_deadline_row_of_a_superseded_version_is_never_returned(
    settings: PostgresSettings, admin: Admin
) -> None:
    # What a concurrent writer can leave behind: its statement could not see a deadline row
    # that a newer version of the projection no longer has.
    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresProjectionStore(pool)
            await store.put(projection("n", sequence=1))
            await store.put(projection("n", sequence=2))
            admin.execute(
                "INSERT INTO onex_projection_deadlines VALUES ('n', 'registration', 'gone', %s, 1)",
                [T0],
            )
            assert await store.overdue("registration", "gone", T0 + timedelta(days=1), 10) == []
            await store.put(projection("n", sequence=3))
            left = admin.execute("SELECT count(*) FROM onex_projection_deadlines").fetchone()
            assert left == (0,)  # the next write of the entity removed it

    run(scenario())


def test_overdue_is_an_index_scan(settings: PostgresSettings, admin: Admin) -> None:
    from onex_adapters.postgres import projections

    admin.execute("SET enable_seqscan = off")
    plan = admin.execute(
        "EXPLAIN (FORMAT JSON) " + projections._OVERDUE,
        ["registration", "ack_deadline", T0, 10],
    ).fetchone()
    assert plan is not None
    assert "onex_projection_deadlines_due" in json.dumps(plan[0])


def test_a_value_jsonb_cannot_carry_writes_nothing(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresProjectionStore(pool)
            with pytest.raises(UsageError):
                await store.put(projection("n", when=datetime(2026, 1, 1)))
            assert await store.get("n", "registration") is None

    run(scenario())


def test_puts_inside_a_rolled_back_transaction_leave_nothing(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = PostgresProjectionStore(pool)

            async def failing_effect() -> None:
                async with transaction(pool) as conn:
                    assert await store.put(projection("n", sequence=1), conn=conn)
                    assert await store.get("n", "registration", conn=conn) is not None
                    raise RuntimeError("the effect failed")

            with pytest.raises(RuntimeError):
                await failing_effect()
            assert await store.get("n", "registration") is None

    run(scenario())


# Differential: the SQL staleness rule decides exactly as onex_core.outputs.is_stale does.
order_steps = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.integers(0, 3),
        st.sampled_from([None, "0", "1"]),
        st.one_of(st.none(), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=8,
)


def test_the_sql_staleness_rule_matches_is_stale(settings: PostgresSettings) -> None:
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(open_pool(settings))
    try:
        store = PostgresProjectionStore(pool)

        @hypothesis_settings(
            max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(order_steps)
        def check(steps: list[tuple[str, int, str | None, int | None]]) -> None:
            memory = InMemoryProjectionStore()
            prefix = uuid.uuid4().hex
            for n, (name, sequence, partition, offset) in enumerate(steps):
                p = Projection(
                    entity_id=f"{prefix}-{name}",
                    domain="registration",
                    state=f"s{n}",
                    data={"n": n},
                    sequence=sequence,
                    event_id=uuid.UUID(int=n),
                    partition=partition,
                    offset=offset,
                )
                expected = loop.run_until_complete(memory.put(p))
                assert loop.run_until_complete(store.put(p)) is expected
            for name in ("a", "b"):
                key = f"{prefix}-{name}"
                ours = loop.run_until_complete(store.get(key, "registration"))
                assert ours == loop.run_until_complete(memory.get(key, "registration"))

        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


# --------------------------------------------------------------------------- registrations


def reg(
    node: str = "node-1",
    sequence: int = 1,
    *,
    state: str = "active",
    partition: str | None = "0",
    offset: int | None = None,
    **fields: Any,
) -> RegistrationRow:
    return RegistrationRow(
        node_id=node,
        node_type=fields.pop("node_type", "effect"),
        state=state,
        sequence=sequence,
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{node}/{sequence}/{partition}/{offset}"),
        registered_at=fields.pop("registered_at", T0),
        updated_at=fields.pop("updated_at", None) or T0 + timedelta(seconds=sequence % 10**6),
        partition=partition,
        offset=offset,
        **fields,
    )


@pytest.fixture
def storage(settings: PostgresSettings) -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    """A RegistrationStorage on its own loop, and a function to run coroutines on it."""
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(open_pool(settings))
    try:
        yield loop, RegistrationStorage(pool)
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


def test_a_registration_row_round_trips_every_column(storage: Any) -> None:
    loop, store = storage
    row = reg(
        "node-7",
        3,
        state="awaiting_ack",
        offset=12,
        node_type="orchestrator",
        node_version="2.1.0",
        capabilities={"registration.storage": True, "limits": {"rps": 10}, "at": T0},
        endpoints={"health": "http://10.0.0.7:8080/health"},
        ack_deadline=T0 + timedelta(seconds=30),
        liveness_deadline=T0 + timedelta(seconds=60),
        last_heartbeat_at=T0,
        ack_timeout_emitted_at=T0 + timedelta(seconds=31),
        liveness_timeout_emitted_at=None,
        correlation_id=uuid.UUID(int=99),
    )
    assert loop.run_until_complete(store.upsert_registrations([row])) == (True,)
    assert loop.run_until_complete(store.get("node-7")) == row
    assert loop.run_until_complete(store.get("node-8")) is None


def sequentially(
    stored: dict[str, RegistrationRow], rows: list[RegistrationRow]
) -> tuple[dict[str, RegistrationRow], tuple[bool, ...]]:
    """The reference: apply rows one by one with is_stale."""
    result = dict(stored)
    written = []
    for row in rows:
        current = result.get(row.node_id)
        stale = current is not None and is_stale(_as_projection(row), _as_projection(current))
        written.append(not stale)
        if not stale:
            result[row.node_id] = row
    return result, tuple(written)


def _as_projection(row: RegistrationRow) -> Projection:
    return Projection(
        row.node_id,
        row.domain,
        row.state,
        {},
        row.sequence,
        row.event_id,
        row.partition,
        row.offset,
    )


def test_the_non_transitive_case_is_applied_in_batch_order(storage: Any) -> None:
    # Stored (s5, p0, o10). A (s5, p1, o1) wins by partition; then B (s5, p0, o9) wins against
    # A by partition, though it is older than the stored row. Keeping "the newest per entity"
    # would pick B and then refuse it; applying in order ends with B.
    loop, store = storage
    loop.run_until_complete(store.upsert_registrations([reg("n", 5, partition="0", offset=10)]))
    a = reg("n", 5, partition="1", offset=1, state="awaiting_ack")
    b = reg("n", 5, partition="0", offset=9, state="ack_received")
    assert loop.run_until_complete(store.upsert_registrations([a, b])) == (True, True)
    assert loop.run_until_complete(store.get("n")) == b


batch_rows = st.lists(
    st.tuples(
        st.sampled_from(["n1", "n2", "n3"]),
        st.integers(0, 3),
        st.sampled_from([None, "0", "1"]),
        st.one_of(st.none(), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.parametrize("padding", [0, COPY_THRESHOLD], ids=["pipelined", "copied"])
def test_a_batch_ends_as_if_applied_one_by_one(storage: Any, padding: int) -> None:
    loop, store = storage
    filler = [reg(f"filler-{i}", 1) for i in range(padding)]

    @hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch_rows, batch_rows)
    def check(first: list[Any], second: list[Any]) -> None:
        prefix = uuid.uuid4().hex[:8]
        states = sorted(
            {"pending_registration", "accepted", "awaiting_ack", "active", "ack_received"}
        )
        batches = [
            [
                reg(f"{prefix}-{node}", seq, partition=part, offset=off, state=states[i % 5])
                for i, (node, seq, part, off) in enumerate(rows)
            ]
            for rows in (first, second)
        ]
        model: dict[str, RegistrationRow] = {}
        for batch in batches:
            model, expected = sequentially(model, batch)
            fill = [reg(f"{prefix}-{f.node_id}", f.sequence) for f in filler]
            got = loop.run_until_complete(store.upsert_registrations(batch + fill))
            assert got[: len(batch)] == expected
        for node, row in model.items():
            assert loop.run_until_complete(store.get(node)) == row

    check()


def test_upserts_inside_a_caller_transaction_commit_with_it(
    settings: PostgresSettings,
) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            store = RegistrationStorage(pool)
            big = [reg(f"n{i}", 1) for i in range(COPY_THRESHOLD)]

            async def failing_effect() -> None:
                async with transaction(pool) as conn:
                    assert all(await store.upsert_registrations(big, conn=conn))
                    raise RuntimeError("roll back")

            with pytest.raises(RuntimeError):
                await failing_effect()
            assert await store.get("n0") is None
            async with transaction(pool) as conn:
                assert all(await store.upsert_registrations(big, conn=conn))
                newer = [reg(f"n{i}", 2) for i in range(COPY_THRESHOLD)]
                # The staging table was emptied after the first batch of this transaction.
                assert all(await store.upsert_registrations(newer, conn=conn))
            found = await store.get(f"n{COPY_THRESHOLD - 1}")
            assert found is not None
            assert found.sequence == 2

    run(scenario())


def test_updates_change_only_the_columns_given_and_respect_staleness(storage: Any) -> None:
    loop, store = storage
    row = reg("n", 2, offset=5, ack_deadline=T0, capabilities={"a": 1})
    loop.run_until_complete(store.upsert_registrations([row]))
    heartbeat = RegistrationUpdate(
        "n",
        3,
        uuid.UUID(int=3),
        T0 + timedelta(seconds=3),
        partition="0",
        offset=0,
        last_heartbeat_at=T0 + timedelta(seconds=3),
        liveness_deadline=T0 + timedelta(seconds=33),
        ack_deadline=None,
    )
    stale = RegistrationUpdate("n", 1, uuid.UUID(int=1), T0, state="rejected")
    unknown = RegistrationUpdate("nobody", 9, uuid.UUID(int=9), T0, state="active")
    got = loop.run_until_complete(store.update_registrations([heartbeat, stale, unknown]))
    assert got == (True, False, False)
    found = loop.run_until_complete(store.get("n"))
    assert found is not None
    assert (found.state, found.capabilities) == ("active", {"a": 1})
    assert found.ack_deadline is None
    assert found.last_heartbeat_at == T0 + timedelta(seconds=3)
    assert (found.sequence, found.offset, found.event_id) == (3, 0, uuid.UUID(int=3))
    assert found.registered_at == row.registered_at
    one = RegistrationUpdate("n", 4, uuid.UUID(int=4), T0, state="liveness_expired")
    assert loop.run_until_complete(store.update_registrations([one])) == (True,)


def test_updates_for_one_node_apply_in_batch_order(storage: Any) -> None:
    loop, store = storage
    loop.run_until_complete(store.upsert_registrations([reg("n", 1)]))
    updates = [
        RegistrationUpdate("n", 3, uuid.UUID(int=3), T0, partition="0", state="accepted"),
        RegistrationUpdate("n", 2, uuid.UUID(int=2), T0, partition="0", node_version="9"),
        RegistrationUpdate("n", 4, uuid.UUID(int=4), T0, partition="0", endpoints={"api": "x"}),
    ]
    assert loop.run_until_complete(store.update_registrations(updates)) == (True, False, True)
    found = loop.run_until_complete(store.get("n"))
    assert found is not None
    assert (found.state, found.node_version, found.endpoints) == ("accepted", "1.0.0", {"api": "x"})


def test_timeout_scans_pick_due_unmarked_rows_in_the_right_states(storage: Any) -> None:
    loop, store = storage
    now = T0 + timedelta(minutes=5)
    past, future = now - timedelta(seconds=1), now + timedelta(seconds=1)
    rows = [
        reg("ack-late", state="awaiting_ack", ack_deadline=past - timedelta(seconds=5)),
        reg("ack-later", state="accepted", ack_deadline=past),
        reg("ack-now", state="awaiting_ack", ack_deadline=now),
        reg("ack-future", state="awaiting_ack", ack_deadline=future),
        reg("ack-marked", state="awaiting_ack", ack_deadline=past, ack_timeout_emitted_at=past),
        reg("ack-active", state="active", ack_deadline=past),
        reg("live-late", state="active", liveness_deadline=past),
        reg("live-marked", liveness_deadline=past, liveness_timeout_emitted_at=past),
        reg("live-expired", state="liveness_expired", liveness_deadline=past),
        reg("live-future", liveness_deadline=future),
    ]
    loop.run_until_complete(store.upsert_registrations(rows))
    acks = loop.run_until_complete(store.overdue_acks(now, 10))
    assert [r.node_id for r in acks] == ["ack-late", "ack-later"]
    assert [r.node_id for r in loop.run_until_complete(store.overdue_acks(now, 1))] == ["ack-late"]
    live = loop.run_until_complete(store.overdue_liveness(now, 10))
    assert [r.node_id for r in live] == ["live-late"]
    with pytest.raises(UsageError):
        loop.run_until_complete(store.overdue_acks(datetime(2026, 1, 1), 1))


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("_ACKS_DUE", "registration_projections_ack_due"),
        ("_LIVENESS_DUE", "registration_projections_liveness_due"),
    ],
)
def test_timeout_scans_use_their_partial_indexes(
    settings: PostgresSettings, admin: Admin, query: str, index: str
) -> None:
    from onex_adapters.postgres import registrations

    admin.execute("SET enable_seqscan = off")
    plan = admin.execute(
        "EXPLAIN (FORMAT JSON) " + getattr(registrations, query), ["registration", T0, 10]
    ).fetchone()
    assert plan is not None
    assert index in json.dumps(plan[0])


def test_the_table_refuses_what_the_row_type_would(
    settings: PostgresSettings, admin: Admin
) -> None:
    with pytest.raises(UsageError):
        reg("n", state="sleeping")
    with pytest.raises(UsageError):
        reg("n", node_type="daemon")
    with pytest.raises(UsageError):
        reg("n", ack_deadline=datetime(2026, 1, 1))
    with pytest.raises(psycopg.errors.CheckViolation):
        admin.execute(
            "INSERT INTO registration_projections (entity_id, current_state, node_type, "
            "last_applied_event_id, last_applied_sequence, registered_at, updated_at) "
            "VALUES ('n', 'sleeping', 'effect', gen_random_uuid(), 0, now(), now())"
        )
    with pytest.raises(UsageError):
        reg("n", 2**63, updated_at=T0)


def test_a_number_out_of_range_is_rejected_by_the_server(settings: PostgresSettings) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            with pytest.raises(PostgresRejected) as caught:
                await PostgresProjectionStore(pool).put(projection("n", sequence=2**63))
            assert caught.value.sqlstate == "22003"
            assert str(2**63) not in str(caught.value)

    run(scenario())


@pytest.mark.parametrize("size", [2, COPY_THRESHOLD], ids=["pipelined", "copied"])
def test_a_refused_row_rolls_back_its_whole_batch(storage: Any, size: int) -> None:
    loop, store = storage
    batch = [reg(f"n{i}", 1) for i in range(size - 1)] + [reg("bad\x00id", 1)]
    with pytest.raises(PostgresRejected):
        loop.run_until_complete(store.upsert_registrations(batch))
    assert loop.run_until_complete(store.get("n0")) is None
    assert loop.run_until_complete(store.upsert_registrations(batch[:-1])) == (True,) * (size - 1)
