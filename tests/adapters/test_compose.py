"""From a contract directory to a running host: build_host, and what it refuses."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from onex_adapters.app import Contracts, build_host, load_contracts
from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.codec import encode_envelope
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.runtime import EntityOrchestrator, HandlerContext, Outcome
from onex_contracts import ContractInvalid
from onex_core.entities import Decide, EntityDecision
from onex_core.errors import ContractError, UsageError
from onex_core.intents import Intent, intent_id_for, make_target
from onex_core.messages import Envelope
from onex_core.ports import EffectResult, HandlerDescription
from onex_core.reducers import ActionContext, FsmReducer, FsmState
from onex_core.topics import parse_topic

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
NS = uuid.UUID("c0ffee00-1d2e-4f00-8a00-636f6d706f73")
ADD = "onex.cmd.test.add.v1"
PING = "onex.cmd.test.ping.v1"
ADDED = "onex.evt.test.added.v1"
OUTCOME = "onex.evt.test.ledger-outcome.v1"
DLQ = "onex.dlq.test.counts.v1"

ORCHESTRATOR = f"""\
name: counter_orchestrator
node_type: ORCHESTRATOR_GENERIC
contract_version: {{major: 1, minor: 0, patch: 0}}
node_version: "1.0.0"
description: Counts what it is told to add, and answers pings with another handler.
handler_routing:
  routing_strategy: payload_type_match
  handlers:
    - handler: {{name: Counter}}
      event_type: test.add
      message_category: command
      output_events: [{ADDED}]
    - handler: {{name: Counter}}
      event_type: test.ledger-outcome
      message_category: event
    - handler: {{name: Pinger}}
      event_type: test.ping
      message_category: command
event_bus:
  subscribe_topics: [{ADD}, {PING}, {OUTCOME}]
  publish_topics: [{ADDED}]
  dlq_topics: [{DLQ}]
"""

REDUCER = """\
name: counter_reducer
node_type: REDUCER_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: A counter that records every addition in a ledger.
state_machine:
  state_machine_name: counter_fsm
  initial_state: idle
  states:
    - state_name: idle
    - state_name: counting
  transitions:
    - transition_name: add
      from_state: "*"
      to_state: counting
      trigger: add
      conditions:
        - expression: n > 0
      actions:
        - {action_name: record, action_type: intent_emission}
intent_emission:
  enabled: true
  intents:
    - intent_type: ledger.add
      target_pattern: "ledger://counts/{counter_id}"
      action: record
"""

EFFECT = f"""\
name: ledger_effect
node_type: EFFECT_GENERIC
contract_version: {{major: 1, minor: 0, patch: 0}}
node_version: "1.0.0"
description: Writes additions to the ledger.
handler_routing:
  routing_strategy: operation_match
  handlers:
    - operation: ledger.add
      handler: {{name: Ledger}}
      handler_id: effect.ledger
      output_events: [{OUTCOME}]
event_bus:
  publish_topics: [{OUTCOME}]
"""

HANDLER = """\
handler_id: effect.ledger
name: ledger
contract_version: {major: 1, minor: 0, patch: 0}
description: The ledger; an addition is keyed by its intent id, so it is idempotent.
descriptor:
  node_archetype: effect
  purity: side_effecting
  idempotent: true
  timeout_ms: 1500
  retry_policy:
    enabled: true
    max_retries: 2
    backoff_strategy: fixed
    base_delay_ms: 100
    max_delay_ms: 100
    jitter_factor: 0.0
  circuit_breaker:
    enabled: false
intent_types: [ledger.add]
"""

FAMILY = {
    "counter_orchestrator/contract.yaml": ORCHESTRATOR,
    "counter_reducer/contract.yaml": REDUCER,
    "ledger_effect/contract.yaml": EFFECT,
    "handlers/ledger/handler_contract.yaml": HANDLER,
}


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def family(tmp_path: Path) -> Path:
    return write(tmp_path / "contracts", FAMILY)


# --------------------------------------------------------------------------- the workflow


def counter_decide(machine_of: Contracts) -> Decide:
    """The counter's decision over the reducer contract's machine, as a newcomer writes it."""

    def record(ctx: ActionContext[Envelope]) -> Intent:
        envelope = ctx.event
        return Intent(
            intent_type="ledger.add",
            target=make_target("ledger", "counts", envelope.entity_id),
            payload={"n": envelope.payload["n"]},
            intent_id=intent_id_for(envelope.envelope_id, "ledger.add", ctx.index),
            correlation_id=envelope.correlation_id,
        )

    reducer = FsmReducer(
        machine_of.machine,
        trigger_of=lambda e: "add" if e.event_type == "test.add" else None,
        actions={"record": record},
        update=lambda before, e, fired: {"count": before.data.get("count", 0) + e.payload["n"]},
    )

    def decide(state: FsmState | None, envelope: Envelope, now: datetime) -> EntityDecision:
        before = state or FsmState(reducer.machine.initial)
        step = reducer(before, envelope)
        if step.state is before:
            return EntityDecision(before, note="nothing to count")
        added = envelope.child(
            topic=ADDED,
            event_type="test.added",
            payload={"count": step.state.data["count"]},
            index=0,
            emitted_at=now,
        )
        return EntityDecision(step.state, step.intents, (added,), changed=True)

    return decide


class Ledger:
    """The effect: one line per intent id, however often it is asked."""

    handler_type = "ledger"

    def __init__(self) -> None:
        self.lines: dict[uuid.UUID, int] = {}
        self.calls = 0

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    def describe(self) -> HandlerDescription:
        return HandlerDescription("ledger", ("ledger.add",), ())

    async def execute(self, intent: Intent) -> EffectResult:
        self.calls += 1
        self.lines.setdefault(intent.intent_id, intent.payload["n"])
        return EffectResult(intent.intent_id, {"lines": len(self.lines)})


class Pinger:
    handler_id = "pinger"

    def __init__(self) -> None:
        self.pinged: list[str] = []

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        self.pinged.append(envelope.entity_id)
        return Outcome.nothing("pong")


def message(topic: str, entity: str, n: int, **payload: Any) -> Envelope:
    envelope_id = uuid.uuid5(NS, f"{entity}/{topic}/{n}")
    event_type = parse_topic(topic).event_type
    return Envelope(envelope_id, topic, event_type, {"n": n, **payload}, envelope_id, entity, T0)


def test_a_contract_directory_runs_on_the_in_memory_bus_in_virtual_time(family: Path) -> None:
    broker = InMemoryBroker(partitions=2)
    projections = InMemoryProjectionStore()
    ledger, pinger = Ledger(), Pinger()
    contracts = load_contracts(family)
    sent = [
        message(ADD, "c-1", 2),
        message(ADD, "c-2", 5),
        message(ADD, "c-1", 3),
        message(ADD, "c-1", 0),  # refused by the guard: nothing happens
        message(PING, "c-9", 1),
    ]
    sent.append(sent[0])  # a duplicate delivery

    async def run() -> None:
        host = build_host(
            contracts,
            orchestrator=counter_decide(contracts),
            domain="counts",
            effects={"ledger.add": ledger},
            handlers={"pinger": pinger},
            bus=InMemoryBus(broker, group="counts"),
            projections=projections,
            idempotency=InMemoryIdempotencyStore(),
            clock=LoopClock(T0),
        )
        front = InMemoryBus(broker, group="front")
        await host.start()
        for envelope in sent:
            key = envelope.entity_id.encode()
            await front.publish(envelope.topic, encode_envelope(envelope), key=key)
        await host.run_until_idle()
        await host.stop()
        assert host.config.name == "counter_orchestrator"
        assert host.routes.dlq_topic == DLQ

    run_virtual(run())

    counts = {p.entity_id: (p.state, p.data["count"]) for p in projections.all("counts")}
    assert counts == {"c-1": ("counting", 5), "c-2": ("counting", 5)}
    assert sorted(ledger.lines.values()) == [2, 3, 5]
    assert ledger.calls == 3  # the duplicate asked for nothing
    assert sorted(json.loads(r.value)["payload"]["count"] for r in broker.records(ADDED)) == [
        2,
        5,
        5,
    ]
    outcomes = [json.loads(r.value)["payload"] for r in broker.records(OUTCOME)]
    assert len(outcomes) == 3
    assert all(o["ok"] is True for o in outcomes)
    assert pinger.pinged == ["c-9"]
    assert broker.records(DLQ) == []


def test_the_effect_policy_comes_from_the_handler_contract(family: Path) -> None:
    host = build_host(
        family,
        orchestrator=EntityOrchestrator(
            "counter", "counts", counter_decide(load_contracts(family))
        ),
        effects={"ledger.add": Ledger()},
        handlers={"pinger": Pinger()},
        bus=InMemoryBus(InMemoryBroker()),
        projections=InMemoryProjectionStore(),
        idempotency=InMemoryIdempotencyStore(),
        clock=LoopClock(T0),
    )
    binding = host.effects.bindings["ledger.add"]
    policy = binding.policy
    assert (policy.retry.max_attempts, policy.retry.initial_delay, policy.timeout) == (3, 0.1, 1.5)
    assert policy.breaker.failure_threshold == 2**31 - 1  # disabled: it never opens
    assert binding.outcome_topic == OUTCOME
    assert host.handlers["pinger"] is not host.handlers["counter"]


# --------------------------------------------------------------------------- refusals


def build(contracts: Path | Contracts, **changes: Any) -> None:
    options: dict[str, Any] = {
        "orchestrator": lambda state, envelope, now: EntityDecision(FsmState("idle")),
        "domain": "counts",
        "effects": {"ledger.add": Ledger()},
        "bus": InMemoryBus(InMemoryBroker()),
        "projections": InMemoryProjectionStore(),
        "idempotency": InMemoryIdempotencyStore(),
        "clock": LoopClock(T0),
        **changes,
    }
    build_host(contracts, **options)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"effects": {}}, ContractError, r"no effect handler .* 'ledger\.add' \(routed to effect"),
        (
            {"effects": {"ledger.add": Ledger(), "mail.send": Ledger()}},
            ContractError,
            r"no effect contract routes: 'mail\.send'",
        ),
        (
            {"handlers": {"nobody": Pinger()}},
            ContractError,
            "no route names the handler id.*nobody",
        ),
        ({"effects": {"ledger.add": object()}}, UsageError, "'ledger.add', object, is not an"),
        ({"domain": None}, UsageError, "needs domain="),
        ({"orchestrator": Pinger()}, UsageError, "domain goes with a decision function"),
    ],
    ids=[
        "missing effect",
        "unrouted effect",
        "unknown handler",
        "not a handler",
        "no domain",
        "domain",
    ],
)
def test_what_does_not_match_the_contracts_is_refused(
    family: Path, changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build(family, **changes)


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        ({"handlers/ledger/handler_contract.yaml": None}, ContractError, "'effect.ledger' of"),
        ({"counter_orchestrator/contract.yaml": None}, ContractError, "no orchestrator contract"),
        (
            {"other_effect/contract.yaml": EFFECT.replace("ledger_effect", "other_effect")},
            ContractError,
            r"'ledger\.add' is also routed by ledger_effect",
        ),
        ({"counter_reducer/contract.yaml": "name: [\n"}, ContractInvalid, "counter_reducer"),
    ],
    ids=["no handler contract", "no orchestrator", "routed twice", "invalid file"],
)
def test_a_directory_that_does_not_hold_together_is_refused(
    tmp_path: Path, files: dict[str, str | None], error: type[Exception], message: str
) -> None:
    root = write(tmp_path / "contracts", {k: v for k, v in FAMILY.items() if k not in files})
    write(root, {k: v for k, v in files.items() if v is not None})
    with pytest.raises(error, match=message):
        build(root)


def test_not_a_directory_and_not_one_reducer_are_refused(family: Path, tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="not a directory of contracts"):
        load_contracts(tmp_path / "missing")
    (family / "counter_reducer" / "contract.yaml").unlink()
    with pytest.raises(ContractError, match="expected one reducer contract, found none"):
        _ = load_contracts(family).machine
