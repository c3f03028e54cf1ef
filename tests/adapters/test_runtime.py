"""The runtime host on the embedded default, on virtual time: the delivery promises of DESIGN §3."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest

from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.memory_bus import ConsumerCrashed, Faults, InMemoryBroker, InMemoryBus
from onex_adapters.runtime import (
    EffectBinding,
    EffectExecutor,
    EffectReport,
    HandlerContext,
    Outcome,
    RuntimeConfig,
    RuntimeHost,
)
from onex_core.dispatch import Route, RouteTable
from onex_core.errors import EffectUnavailable, UsageError
from onex_core.intents import Intent, intent_id_for
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.ports import EffectResult, Record
from onex_core.resilience import BreakerPolicy, EffectPolicy, RetryPolicy
from tests.adapters.runtime_kit import (
    COMMAND,
    DLQ,
    DONE,
    OUTCOME,
    LedgerEffect,
    ThingHandler,
    World,
    command,
    make_world,
)


def test_a_command_is_handled_applied_published_and_committed() -> None:
    async def scenario() -> None:
        world = make_world()
        await world.send(command("a", 1), command("b", 1))
        assert await world.host.run_until_idle() == 2
        assert sorted(world.ledger.applied) == [("a", 1), ("b", 1)]
        done = [json.loads(r.value) for r in world.broker.records(DONE)]
        assert sorted(d["entity_id"] for d in done) == ["a", "b"]
        outcomes = [json.loads(r.value)["payload"] for r in world.broker.records(OUTCOME)]
        assert all(o["ok"] and o["status"] == "done" for o in outcomes)
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_same_entity_stays_in_order_while_entities_interleave() -> None:
    async def scenario() -> None:
        world = make_world(config=RuntimeConfig(name="things", concurrency=8))
        envelopes = [command(entity, n) for n in range(20) for entity in ("a", "b", "c", "d")]
        await world.send(*envelopes)
        await world.host.run_until_idle()
        for entity in "abcd":
            assert [n for e, n in world.ledger.applied if e == entity] == list(range(20))

    run_virtual(scenario())


def test_a_poison_message_goes_to_the_dlq_once_and_the_rest_flow() -> None:
    async def scenario() -> None:
        world = make_world()
        await world.send(command("a", 1))
        await world.host.bus.publish(COMMAND, b"{not json", key=b"a")
        await world.send(command("a", 2))
        await world.host.run_until_idle()
        assert world.ledger.applied == [("a", 1), ("a", 2)]
        letters = world.dead_letters()
        assert len(letters) == 1
        assert letters[0]["failure_class"] == "undecodable"
        assert letters[0]["original_message"]["value"] == "{not json"
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_unroutable_envelopes_are_dead_lettered_with_their_verdict() -> None:
    async def scenario() -> None:
        world = make_world()
        stray = command("a", 1)
        wrong_type = type(stray)(
            envelope_id=stray.envelope_id,
            topic=COMMAND,
            event_type="Not A Type",
            payload=stray.payload,
            correlation_id=stray.correlation_id,
            entity_id="a",
            emitted_at=stray.emitted_at,
        )
        await world.send(wrong_type)
        await world.host.run_until_idle()
        [letter] = world.dead_letters()
        assert letter["failure_class"] == "publisher_malformed"
        assert letter["correlation_id"] == str(stray.correlation_id)
        assert world.ledger.applied == []

    run_virtual(scenario())


def test_crash_before_commit_redelivers_and_each_effect_applies_once() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=4)
        ledger = LedgerEffect()
        world = make_world(broker=broker, ledger=ledger, faults=Faults(crash_on_commit=1))
        await world.send(*[command(e, n) for n in range(5) for e in ("a", "b", "c")])
        with pytest.raises(ConsumerCrashed):
            await world.host.run_until_idle()
        assert len(ledger.applied) == 15  # applied, but not committed
        restarted = make_world(broker=broker, ledger=ledger, idempotency=world.idempotency)
        await restarted.host.run_until_idle()
        assert Counter(ledger.applied) == Counter((e, n) for n in range(5) for e in "abc")
        assert restarted.host.stats.effects_skipped == 15
        assert broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_transient_failures_are_retried_with_backoff_on_virtual_time() -> None:
    async def scenario() -> None:
        world = make_world()
        world.ledger.faults.fail_next(2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await world.send(command("a", 1))
        await world.host.run_until_idle()
        assert world.ledger.applied == [("a", 1)]
        assert world.ledger.faults.calls == 3
        elapsed = loop.time() - started
        # Two waits: 1 s then 2 s, each ±25 %.
        assert 0.75 + 1.5 <= elapsed <= 1.25 + 2.5
        [outcome] = [json.loads(r.value)["payload"] for r in world.broker.records(OUTCOME)]
        assert outcome["attempts"] == 3
        assert world.dead_letters() == []

    run_virtual(scenario())


def test_exhausted_and_permanent_failures_are_dead_lettered_with_their_history() -> None:
    async def scenario() -> None:
        world = make_world()
        world.ledger.faults.fail_next(3)  # all three attempts fail
        await world.send(command("a", 1))
        await world.host.run_until_idle()
        world.ledger.faults.fail_next(1, permanent=True)
        await world.send(command("b", 1))
        await world.host.run_until_idle()
        letters = {d["intent"]["target"]: d for d in world.dead_letters()}
        exhausted = letters["ledger://things/a"]
        assert exhausted["failure_class"] == "effect_exhausted"
        assert [a["attempt"] for a in exhausted["attempts"]] == [1, 2, 3]
        assert exhausted["retry_count"] == 2
        rejected = letters["ledger://things/b"]
        assert rejected["failure_class"] == "effect_rejected"
        assert len(rejected["attempts"]) == 1
        outcomes = {
            json.loads(r.value)["entity_id"]: json.loads(r.value)["payload"]
            for r in world.broker.records(OUTCOME)
        }
        assert outcomes["a"]["ok"] is False
        assert outcomes["a"]["permanent"] is False
        assert outcomes["b"]["permanent"] is True
        assert world.ledger.applied == []
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_an_open_breaker_stops_calls_until_its_probe() -> None:
    async def scenario() -> None:
        policy = EffectPolicy(
            retry=RetryPolicy(max_attempts=1),
            breaker=BreakerPolicy(failure_threshold=2, reset_timeout=30.0),
            timeout=5.0,
        )
        world = make_world(policy=policy)
        world.ledger.faults.fail_always()
        await world.send(command("a", 1), command("a", 2), command("a", 3))
        await world.host.run_until_idle()
        assert world.ledger.faults.calls == 2  # the third was refused locally
        assert world.host.effects.breaker("ledger").state == "open"
        letters = world.dead_letters()
        assert [d["error_type"] for d in letters] == [
            "EffectUnavailable",
            "EffectUnavailable",
            "CircuitOpen",
        ]

    run_virtual(scenario())


def test_a_dlq_that_is_down_pauses_instead_of_losing_the_record() -> None:
    async def scenario() -> None:
        faults = Faults(failing_topics={DLQ: 5})
        world = make_world(faults=faults)
        await world.host.bus.publish(COMMAND, b"poison", key=b"a")
        await world.send(command("a", 1))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await world.host.run_until_idle()
        assert loop.time() > started  # it waited for the DLQ to come back
        assert len(world.dead_letters()) == 1
        assert world.ledger.applied == [("a", 1)]
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_stop_drains_the_batch_in_hand_and_commits_it() -> None:
    async def scenario() -> None:
        world = make_world()
        await world.send(*[command("a", n) for n in range(3)])
        task = world.host.start_background()
        await asyncio.sleep(0)
        await world.host.stop()
        assert task.done()
        assert world.host.is_draining
        assert len(world.ledger.applied) == 3
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


# --------------------------------------------------------------------------- workers


class SlowLedger(LedgerEffect):
    """A ledger whose every application waits ``delay`` seconds first."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.cancelled: list[tuple[str, int]] = []

    async def execute(self, intent: Intent) -> EffectResult:
        entry = (intent.payload["entity"], intent.payload["n"])
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(entry)
            raise
        return await super().execute(intent)


@pytest.mark.parametrize(("concurrency", "elapsed"), [(1, 8.0), (4, 2.0), (16, 2.0)])
def test_entities_wait_for_their_effects_concurrently_and_in_order(
    concurrency: int, elapsed: float
) -> None:
    async def scenario() -> None:
        ledger = SlowLedger(1.0)
        world = make_world(ledger=ledger, config=RuntimeConfig(concurrency=concurrency))
        await world.send(*[command(entity, n) for n in range(2) for entity in "abcd"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await world.host.run_until_idle() == 8
        assert loop.time() - started == pytest.approx(elapsed)
        for entity in "abcd":
            assert [n for e, n in ledger.applied if e == entity] == [0, 1]
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_after_a_worker_fails_no_record_is_started_and_the_batch_stays_uncommitted() -> None:
    async def scenario() -> None:
        ledger = SlowLedger(1.0)
        world = make_world(ledger=ledger, config=RuntimeConfig(concurrency=2))
        await world.send(*[command(entity, 1) for entity in "abcd"])
        world.host._process = crash_on(world, 2)  # type: ignore[method-assign]
        with pytest.raises(ConsumerCrashed):
            await world.host.run_until_idle()
        # The first worker finished the record in its hands; nobody started the other two.
        assert len(ledger.applied) == 1
        assert ledger.cancelled == []
        assert world.broker.lag("things", [COMMAND]) == 4

    run_virtual(scenario())


def test_cancelling_the_host_cancels_every_worker() -> None:
    async def scenario() -> None:
        ledger = SlowLedger(10.0)
        world = make_world(ledger=ledger, config=RuntimeConfig(concurrency=4))
        await world.send(*[command(entity, 1) for entity in "abcd"])
        task = asyncio.ensure_future(world.host.run_until_idle())
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(ledger.cancelled) == [(entity, 1) for entity in "abcd"]
        assert world.broker.lag("things", [COMMAND]) == 4

    run_virtual(scenario())


def crash_on(world: World, nth: int) -> Callable[[Record], Awaitable[None]]:
    """A _process that crashes the consumer, half a second in, on the ``nth`` record."""
    process = world.host._process
    seen = 0

    async def crashing(record: Record) -> None:
        nonlocal seen
        seen += 1
        if seen == nth:
            await asyncio.sleep(0.5)
            raise ConsumerCrashed("killed mid-batch")
        await process(record)

    return crashing


# --------------------------------------------------------------------------- the usual outcome


class ReducerLike:
    """One intent per command and nothing else: the outcome the host applies inline."""

    handler_id = "things"

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        item = Intent(
            intent_type="ledger.apply",
            target=f"ledger://things/{envelope.entity_id}",
            payload={"entity": envelope.entity_id, "n": envelope.payload["n"]},
            intent_id=intent_id_for(envelope.envelope_id, "ledger.apply", 0),
            correlation_id=envelope.correlation_id,
        )
        return Outcome.of(Output.reducer({"n": envelope.payload["n"]}, (item,)))


def test_a_lone_intent_is_counted_done_then_skipped_and_failures_still_dead_letter() -> None:
    async def scenario() -> None:
        world = make_world(outcome_topic=None)
        world.host.handlers["things"] = ReducerLike()
        await world.send(command("a", 1), command("a", 1), command("b", 1))
        await world.host.run_until_idle()
        stats = world.host.stats
        assert (stats.effects_done, stats.effects_skipped, stats.effects_failed) == (2, 1, 0)
        assert sorted(world.ledger.applied) == [("a", 1), ("b", 1)]
        world.ledger.faults.fail_next(1, permanent=True)
        await world.send(command("c", 1))
        await world.host.run_until_idle()
        assert stats.effects_failed == 1
        [letter] = world.dead_letters()
        assert letter["failure_class"] == "effect_rejected"
        assert world.broker.records(OUTCOME) == []
        assert world.broker.lag("things", [COMMAND]) == 0

    run_virtual(scenario())


def test_an_executor_that_overrides_run_is_called_through_run() -> None:
    calls: list[Intent] = []

    class Watched(EffectExecutor):
        async def run(self, intent: Intent) -> EffectReport:
            calls.append(intent)
            return await super().run(intent)

    async def scenario() -> None:
        ledger = LedgerEffect()
        world = make_world(ledger=ledger, outcome_topic=None)
        watched = Watched([EffectBinding("ledger.apply", ledger)], world.idempotency, LoopClock())
        host = RuntimeHost(
            bus=world.bus,
            routes=world.host.routes,
            handlers={"things": ReducerLike()},
            effects=watched,
            projections=world.projections,
            idempotency=world.idempotency,
            clock=LoopClock(),
        )
        await world.send(command("a", 1))
        await host.run_until_idle()
        assert [i.payload for i in calls] == [{"entity": "a", "n": 1}]
        assert host.stats.effects_done == 1

    run_virtual(scenario())


def test_an_intent_that_failed_then_succeeded_reports_two_distinct_outcomes() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=1)
        ledger = LedgerEffect()
        ledger.faults.fail_next(3)  # the first delivery exhausts its attempts
        world = make_world(broker=broker, ledger=ledger, faults=Faults(crash_on_commit=1))
        await world.send(command("a", 1))
        with pytest.raises(ConsumerCrashed):
            await world.host.run_until_idle()
        # Redelivered after the crash: the same intent now succeeds.
        restarted = make_world(broker=broker, ledger=ledger, idempotency=world.idempotency)
        await restarted.host.run_until_idle()
        outcomes = [json.loads(r.value) for r in broker.records(OUTCOME)]
        assert [o["payload"]["ok"] for o in outcomes] == [False, True]
        assert outcomes[0]["envelope_id"] != outcomes[1]["envelope_id"]
        assert ledger.applied == [("a", 1)]

    run_virtual(scenario())


def test_a_redelivered_outcome_keeps_its_id() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=1)
        ledger = LedgerEffect()
        world = make_world(broker=broker, ledger=ledger, faults=Faults(crash_on_commit=1))
        await world.send(command("a", 1))
        with pytest.raises(ConsumerCrashed):
            await world.host.run_until_idle()
        restarted = make_world(broker=broker, ledger=ledger, idempotency=world.idempotency)
        await restarted.host.run_until_idle()
        outcomes = [json.loads(r.value) for r in broker.records(OUTCOME)]
        assert [o["payload"]["status"] for o in outcomes] == ["done", "skipped"]
        assert outcomes[0]["envelope_id"] == outcomes[1]["envelope_id"]

    run_virtual(scenario())


# --------------------------------------------------------------------------- handler lifecycle


class Lifecycle(LedgerEffect):
    """A ledger that records its lifecycle calls in a shared log; ``refuse`` fails initialize."""

    def __init__(self, name: str, log: list[tuple[str, ...]], *, refuse: bool = False) -> None:
        super().__init__(handler_type=name)
        self.log = log
        self.refuse = refuse

    async def initialize(self, config: Mapping[str, Any]) -> None:
        self.log.append(("initialize", self.handler_type, json.dumps(dict(config))))
        if self.refuse:
            raise EffectUnavailable("backend unreachable", backend=self.handler_type)

    async def shutdown(self, timeout: float = 30.0) -> None:
        self.log.append(("shutdown", self.handler_type))


class LoggedBus(InMemoryBus):
    def __init__(self, broker: InMemoryBroker, log: list[tuple[str, ...]]) -> None:
        super().__init__(broker, group="things")
        self.log = log

    async def subscribe(self, topics: Sequence[str]) -> None:
        self.log.append(("subscribe",))
        await super().subscribe(topics)


def lifecycle_host(
    log: list[tuple[str, ...]],
    handlers: Sequence[Lifecycle],
    configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> RuntimeHost:
    # The first handler serves two intent types: it is still one handler to initialize.
    bindings = [
        EffectBinding("ledger.apply", handlers[0]),
        EffectBinding("ledger.undo", handlers[0]),
    ]
    bindings += [EffectBinding(f"{h.handler_type}.apply", h) for h in handlers[1:]]
    return RuntimeHost(
        bus=LoggedBus(InMemoryBroker(partitions=1), log),
        routes=RouteTable((Route.to("things", COMMAND),), dlq_topic=DLQ),
        handlers={"things": ThingHandler()},
        effects=bindings,
        projections=InMemoryProjectionStore(),
        idempotency=InMemoryIdempotencyStore(),
        clock=LoopClock(),
        config=RuntimeConfig(name="things"),
        handler_configs=configs,
    )


def test_start_initializes_each_handler_once_before_subscribing_and_stop_shuts_each_down() -> None:
    async def scenario() -> None:
        log: list[tuple[str, ...]] = []
        host = lifecycle_host(
            log, [Lifecycle("ledger", log), Lifecycle("mail", log)], {"mail": {"relay": "x"}}
        )
        await host.start()
        await host.start()  # a second start does nothing
        assert log == [
            ("initialize", "ledger", "{}"),
            ("initialize", "mail", '{"relay": "x"}'),
            ("subscribe",),
        ]
        log.clear()
        await host.stop()
        assert log == [("shutdown", "mail"), ("shutdown", "ledger")]

    run_virtual(scenario())


def test_a_failing_initialize_stops_the_start_and_shuts_down_those_already_initialized() -> None:
    async def scenario() -> None:
        log: list[tuple[str, ...]] = []
        handlers = [Lifecycle("ledger", log), Lifecycle("mail", log, refuse=True)]
        host = lifecycle_host(log, [*handlers, Lifecycle("sms", log)])
        with pytest.raises(EffectUnavailable) as caught:
            await host.start()
        assert any("'mail'" in note for note in caught.value.__notes__)
        assert log == [
            ("initialize", "ledger", "{}"),
            ("initialize", "mail", "{}"),
            ("shutdown", "ledger"),
        ]

    run_virtual(scenario())


def test_handler_configs_for_no_handler_is_a_usage_error() -> None:
    log: list[tuple[str, ...]] = []
    with pytest.raises(UsageError, match="'mial'"):
        lifecycle_host(log, [Lifecycle("ledger", log)], {"mial": {}})


def test_a_consul_handler_built_ready_survives_the_hosts_initialize() -> None:
    from onex_adapters.consul import ConsulServiceRegistry

    async def scenario() -> None:
        consul = ConsulServiceRegistry()
        await consul.initialize({"url": "http://127.0.0.1:8500"})  # the caller configured it
        log: list[tuple[str, ...]] = []
        host = lifecycle_host(log, [Lifecycle("ledger", log)])
        host = RuntimeHost(
            bus=host.bus,
            routes=host.routes,
            handlers=host.handlers,
            effects=[EffectBinding("consul.register", consul)],
            projections=host.projections,
            idempotency=InMemoryIdempotencyStore(),
            clock=LoopClock(),
        )
        await host.start()  # initialize({}) on a ready handler: a no-op, not an error
        with pytest.raises(UsageError, match="already initialized"):
            await consul.initialize({"url": "http://127.0.0.1:8501"})  # a new config still is
        await host.stop()
        with pytest.raises(UsageError, match="shut down"):
            await consul.deregister("a")

    run_virtual(scenario())


def test_an_unconfigured_consul_handler_stops_the_start_with_its_config_error() -> None:
    from onex_adapters.consul import ConsulServiceRegistry

    async def scenario() -> None:
        log: list[tuple[str, ...]] = []
        first = Lifecycle("ledger", log)
        host = lifecycle_host(log, [first])
        host = RuntimeHost(
            bus=host.bus,
            routes=host.routes,
            handlers=host.handlers,
            effects=[
                EffectBinding("ledger.apply", first),
                EffectBinding("consul.register", ConsulServiceRegistry()),
            ],
            projections=host.projections,
            idempotency=InMemoryIdempotencyStore(),
            clock=LoopClock(),
        )
        with pytest.raises(UsageError, match="url is required") as caught:
            await host.start()
        assert any("'consul'" in note for note in caught.value.__notes__)
        assert log == [("initialize", "ledger", "{}"), ("shutdown", "ledger")]

    run_virtual(scenario())
