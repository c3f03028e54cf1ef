"""The registration workflow end to end on the embedded default, on virtual time.

Each of the seed's Error Scenarios rows, the ACK and liveness rows that need the runtime, and the
delivery faults the runtime must survive: a crash before commit, a poison message, duplicate
delivery, and nodes whose clocks are far off.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from onex_adapters.clock import run_virtual
from onex_adapters.memory_bus import ConsumerCrashed, Faults, InMemoryBroker
from onex_core.registration.model import (
    ACCEPTED,
    ACK_TIMED_OUT,
    ACKED,
    BECAME_ACTIVE,
    DEADLINE_CHECK,
    FAILED,
    INTROSPECTION,
    LIVENESS_EXPIRED,
    PASS_CHECK,
)
from onex_core.resilience import BreakerState
from tests.registration.kit import World, at, make_world

SERVICE = "onex-effect-n1"
NODES = [f"n{i}" for i in range(5)]

# --------------------------------------------------------------------------- error scenarios


def test_ok_ok_is_complete_and_asks_for_the_ack() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        assert w.state("n1") == "awaiting_ack"
        [accepted] = w.events(ACCEPTED, "n1")
        assert accepted["ack_deadline"] == at(30).isoformat()
        service = w.registry.services[SERVICE]
        assert (service.name, service.address, service.port) == ("onex-effect", "10.1.2.3", 8080)
        assert w.table.rows["n1"].state == "pending_registration"
        assert (w.registry.registrations, w.table.upserts) == (1, 1)
        assert w.dead_letters() == []

    run_virtual(scenario())


def test_fail_ok_is_partial_and_retries_only_the_service_registry() -> None:
    async def scenario() -> None:
        w = make_world()
        w.registry.faults.fail_next(4)  # every attempt of the first registration fails
        await w.introspect("n1")
        await w.settle()
        assert w.state("n1") == "awaiting_ack"
        assert w.registry.faults.calls == 5  # four failed attempts, then the retry
        assert (w.registry.registrations, w.table.faults.calls, w.table.upserts) == (1, 1, 1)
        [letter] = w.dead_letters()
        assert letter["intent"]["intent_type"] == "consul.register"
        assert letter["failure_class"] == "effect_exhausted"
        assert len(letter["attempts"]) == 4
        [accepted] = w.events(ACCEPTED, "n1")
        assert accepted["ack_deadline"] > at(30).isoformat()  # after the backoff

    run_virtual(scenario())


def test_ok_fail_is_partial_and_retries_only_the_registration_store() -> None:
    async def scenario() -> None:
        w = make_world()
        w.table.faults.fail_next(4)
        await w.introspect("n1")
        await w.settle()
        assert w.state("n1") == "awaiting_ack"
        assert w.table.faults.calls == 5
        assert (w.registry.faults.calls, w.registry.registrations, w.table.upserts) == (1, 1, 1)
        [letter] = w.dead_letters()
        assert letter["intent"]["intent_type"] == "postgres.upsert_registration"

    run_virtual(scenario())


def test_fail_fail_fails_dead_letters_both_and_retries_neither() -> None:
    async def scenario() -> None:
        w = make_world()
        w.registry.faults.fail_always()
        w.table.faults.fail_always()
        await w.introspect("n1")
        await w.settle()
        assert w.state("n1") == "failed"
        [failed] = w.events(FAILED, "n1")
        assert failed["reason"] == "both backends failed"
        assert (w.registry.faults.calls, w.table.faults.calls) == (4, 4)
        letters = w.dead_letters()
        assert sorted(d["intent"]["intent_type"] for d in letters) == [
            "consul.register",
            "postgres.upsert_registration",
        ]
        assert all(len(d["attempts"]) == 4 for d in letters)

    run_virtual(scenario())


def test_circuit_open_keeps_the_registration_pending_until_the_reset() -> None:
    async def scenario() -> None:
        w = make_world()
        w.registry.faults.fail_next(5)  # five failures in a row open each circuit
        w.table.faults.fail_next(5)
        for node in NODES:
            await w.introspect(node)
        task = w.host.start_background()
        await asyncio.sleep(30.0)
        for backend in ("service-registry", "registration-storage"):
            assert w.host.effects.breaker(backend).state is BreakerState.OPEN
        assert {n: w.state(n) for n in NODES} == dict.fromkeys(NODES, "pending_registration")
        assert (w.registry.faults.calls, w.table.faults.calls) == (5, 5)  # later tries skipped
        assert w.events(ACCEPTED) == []
        await asyncio.sleep(60.0)  # the reset timeout passed: one probe, then the rest
        assert {n: w.state(n) for n in NODES} == dict.fromkeys(NODES, "awaiting_ack")
        assert w.host.effects.breaker("service-registry").state is BreakerState.CLOSED
        assert (w.registry.registrations, w.table.upserts) == (len(NODES), len(NODES))
        assert w.dead_letters() == []
        await w.host.stop()
        assert task.done()

    run_virtual(scenario())


# --------------------------------------------------------------------------- ACK timeouts


def test_a_node_that_never_acks_is_asked_three_times_then_fails() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        await w.run_to(100)
        assert w.state("n1") == "failed"
        timed_out = w.events(ACK_TIMED_OUT, "n1")
        assert [e["deadline_at"] for e in timed_out] == [at(s).isoformat() for s in (30, 61, 92)]
        assert [e["ack_request"] for e in w.events(ACCEPTED, "n1")] == [1, 2, 3]
        [failed] = w.events(FAILED, "n1")
        assert failed["reason"] == "no ACK after 3 requests"
        checks = w.published(DEADLINE_CHECK)
        assert checks == 3  # one check per passed deadline, each acted on once
        await w.run_to(160)
        assert w.published(DEADLINE_CHECK) == checks  # no deadline left to find

    run_virtual(scenario())


def test_an_ack_after_a_timeout_still_activates_the_node() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        await w.run_to(40)
        assert len(w.events(ACK_TIMED_OUT, "n1")) == 1
        await w.ack("n1")
        await w.settle()
        assert w.state("n1") == "active"
        await w.run_to(65)  # the retried ACK deadline (61) passes unnoticed: it was cleared
        assert len(w.events(ACK_TIMED_OUT, "n1")) == 1

    run_virtual(scenario())


def test_a_failing_projection_query_is_retried_with_backoff() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        w.projections.faults.fail_next(2)
        await w.ack("n1")
        started = asyncio.get_running_loop().time()
        await w.settle()
        assert w.state("n1") == "active"
        assert asyncio.get_running_loop().time() - started > 0.2  # it backed off twice
        assert w.dead_letters() == []
        assert len(w.events(BECAME_ACTIVE, "n1")) == 1

    run_virtual(scenario())


# --------------------------------------------------------------------------- liveness


def test_liveness_on_ticks_strictly_after_the_deadline() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        await w.ack("n1")
        await w.settle()
        for second in (10, 20, 30, 40, 50, 60):
            await w.run_to(second)
            await w.heartbeat("n1")
            await w.settle()
            assert w.state("n1") == "active"
        await w.run_to(90)  # the deadline is 60 + 30: at 90 exactly the node is in time
        assert w.state("n1") == "active"
        await w.run_to(91)
        assert w.state("n1") == "liveness_expired"
        [expired] = w.events(LIVENESS_EXPIRED, "n1")
        assert (expired["deadline_at"], expired["last_heartbeat_at"]) == (
            at(90).isoformat(),
            at(60).isoformat(),
        )
        await w.ack("n1")  # too late
        await w.settle()
        assert w.state("n1") == "liveness_expired"

    run_virtual(scenario())


def test_an_expired_node_registers_again_as_a_new_attempt() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        await w.ack("n1")
        await w.settle()
        await w.run_to(35)
        assert w.state("n1") == "liveness_expired"
        assert w.table.rows["n1"].state == "liveness_expired"
        await w.introspect("n1")
        await w.settle()
        await w.ack("n1")
        await w.settle()
        assert w.state("n1") == "active"
        projection = w.projection("n1")
        assert projection is not None
        assert projection.data["attempt"] == 1
        assert (w.registry.registrations, w.table.upserts) == (2, 2)
        assert (w.table.rows["n1"].attempt, w.table.rows["n1"].state) == (2, "active")

    run_virtual(scenario())


def test_a_health_check_for_a_lost_service_registers_it_again() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.settle()
        await w.ack("n1")
        await w.settle()
        del w.registry.services[SERVICE]  # the registry restarted and forgot it
        await w.heartbeat("n1")
        await w.settle()
        assert w.registry.services[SERVICE].check_status == "passing"
        effect = w.host.effects.binding(PASS_CHECK).handler
        assert effect.reregistrations == 1
        assert w.dead_letters() == []

    run_virtual(scenario())


@pytest.mark.parametrize("skew", [timedelta(days=-1), timedelta(days=1)])
def test_a_skewed_node_can_neither_expire_early_nor_extend_its_deadline(skew: timedelta) -> None:
    async def scenario() -> None:
        w = make_world()
        for node in ("honest", "skewed"):
            await w.introspect(node)
        await w.settle()
        for node in ("honest", "skewed"):
            await w.ack(node)
        await w.settle()
        for second in (10, 20):
            await w.run_to(second)
            await w.heartbeat("honest")
            await w.heartbeat("skewed", timestamp=w.clock.now() + skew)
            await w.settle()
        deadlines = {n: w.projection(n).data["liveness_deadline"] for n in ("honest", "skewed")}  # type: ignore[union-attr]
        assert deadlines == {"honest": at(50), "skewed": at(50)}
        await w.run_to(50)
        assert (w.state("honest"), w.state("skewed")) == ("active", "active")
        await w.run_to(51)
        assert (w.state("honest"), w.state("skewed")) == ("liveness_expired", "liveness_expired")

    run_virtual(scenario())


# --------------------------------------------------------------------------- delivery faults


@pytest.mark.parametrize("crash_on_commit", [1, 2])
def test_a_crash_before_commit_redelivers_and_each_effect_applies_once(
    crash_on_commit: int,
) -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=4)
        w = make_world(broker=broker, faults=Faults(crash_on_commit=crash_on_commit))
        for node in NODES:
            await w.introspect(node)
        with pytest.raises(ConsumerCrashed):
            await w.settle()
        restarted = make_world(
            broker=broker,
            projections=w.projections,
            idempotency=w.idempotency,
            registry=w.registry,
            table=w.table,
            clock=w.clock,
            seed=4,
        )
        await restarted.settle()
        assert {n: restarted.state(n) for n in NODES} == dict.fromkeys(NODES, "awaiting_ack")
        assert (w.registry.registrations, w.table.upserts) == (len(NODES), len(NODES))
        assert Counter(p["node_id"] for p in restarted.events(ACCEPTED)) == Counter(NODES)
        assert restarted.published(ACCEPTED) > len(NODES) or crash_on_commit == 1
        for node in NODES:
            await restarted.ack(node)
        await restarted.settle()
        assert {n: restarted.state(n) for n in NODES} == dict.fromkeys(NODES, "active")
        assert broker.lag("registration", restarted.host.topics) == 0

    run_virtual(scenario())


def test_a_poison_message_is_dead_lettered_once_and_the_rest_flow() -> None:
    async def scenario() -> None:
        w = make_world()
        await w.introspect("n1")
        await w.producer.publish(INTROSPECTION, b"\x00{not json", key=b"n2")
        await w.send(ACKED, "n1", {"node_id": "n2"})  # names another node: a content error
        await w.introspect("n3")
        await w.settle()
        await w.ack("n1")
        await w.settle()
        letters = w.dead_letters()
        assert sorted(d["failure_class"] for d in letters) == ["handler_error", "undecodable"]
        assert (w.state("n1"), w.state("n3")) == ("active", "awaiting_ack")
        await w.run_to(5)
        assert len(w.dead_letters()) == 2
        assert w.broker.lag("registration", w.host.topics) == 0

    run_virtual(scenario())


async def _fleet(w: World) -> dict[str, Any]:
    """A short run: six nodes register; five ACK and heartbeat; one never ACKs."""
    for node in [*NODES, "silent"]:
        await w.introspect(node)
    await w.settle()
    for node in NODES:
        await w.ack(node)
    await w.settle()
    for second in (10, 20, 30):
        await w.run_to(second)
        for node in NODES:
            await w.heartbeat(node)
        await w.settle()
    await w.run_to(100)
    topics = [ACCEPTED, ACK_TIMED_OUT, BECAME_ACTIVE, FAILED, LIVENESS_EXPIRED]
    return {
        "states": {n: w.state(n) for n in [*NODES, "silent"]},
        "data": {n: w.projection(n).data for n in [*NODES, "silent"]},  # type: ignore[union-attr]
        "effects": (w.registry.registrations, w.table.upserts, w.table.updates),
        "events": {t: sorted(map(str, w.events(t))) for t in topics},
    }


def test_duplicate_delivery_changes_nothing() -> None:
    async def run(faults: Faults | None) -> tuple[dict[str, Any], int, int]:
        w = make_world(faults=faults)
        result = await _fleet(w)
        return result, w.host.stats.polled, w.host.stats.effects_skipped

    expected, clean_polled, clean_skipped = run_virtual(run(None))
    got, polled, skipped = run_virtual(run(Faults(seed=11, duplicate_rate=0.5)))
    assert got == expected
    assert expected["states"]["silent"] == "failed"
    assert expected["effects"] == (6, 6, 5 + 5 * 3 + 5 * 1)  # ack, heartbeats, expiry
    assert polled > clean_polled  # duplicates were delivered...
    assert skipped > clean_skipped == 0  # ...and the effects they asked for again were skipped
