"""The composition root's helpers: what a host subscribes to, and messages into a workflow
(``message`` builds one, ``send`` publishes it as the host would)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onex_adapters.app import build_host, load_contracts, message, send
from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.memory_bus import Faults, InMemoryBroker, InMemoryBus
from onex_adapters.runtime import envelope_headers
from onex_core.entities import EntityDecision
from onex_core.errors import ContentError, EffectUnavailable, TopicError, UsageError
from onex_core.messages import Envelope
from onex_core.reducers import FsmState

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SUBMIT = "onex.cmd.docs.submit-document.v1"
ID = uuid.UUID("00000000-0000-4000-8000-00000000000a")


def test_a_message_reads_its_event_type_from_its_topic_and_starts_a_conversation() -> None:
    envelope = message(SUBMIT, {"title": "Notes"}, entity_id="doc-1", at=T0, message_id=ID)
    assert envelope.event_type == "docs.submit-document"
    assert (envelope.envelope_id, envelope.correlation_id, envelope.causation_id) == (ID, ID, None)
    assert (envelope.entity_id, envelope.emitted_at, dict(envelope.payload)) == (
        "doc-1",
        T0,
        {"title": "Notes"},
    )


def test_without_an_id_each_message_gets_its_own() -> None:
    first = message(SUBMIT, {}, entity_id="doc-1", at=T0)
    second = message(SUBMIT, {}, entity_id="doc-1", at=T0)
    assert first.envelope_id != second.envelope_id
    assert first.correlation_id == first.envelope_id


@pytest.mark.parametrize(
    ("topic", "entity_id", "at", "error"),
    [
        ("onex.cmd.Docs.submit.v1", "doc-1", T0, TopicError),
        ("docs.submit", "doc-1", T0, TopicError),
        (SUBMIT, "", T0, ContentError),
        (SUBMIT, "doc-1", datetime(2026, 6, 1, 8, 0), ContentError),
    ],
)
def test_a_malformed_message_is_refused(
    topic: str, entity_id: str, at: datetime, error: type[Exception]
) -> None:
    with pytest.raises(error):
        message(topic, {}, entity_id=entity_id, at=at)


def test_send_publishes_on_the_topic_keyed_by_entity_with_the_hosts_headers() -> None:
    broker = InMemoryBroker(partitions=4)
    first = message(SUBMIT, {"n": 1}, entity_id="doc-1", at=T0, message_id=ID)
    second = message(SUBMIT, {"n": 2}, entity_id="doc-1", at=T0)

    async def main() -> None:
        await send(InMemoryBus(broker, group="sender"), first, second)

    run_virtual(main())
    records = broker.records(SUBMIT)
    assert [EnvelopeCodec().decode(r.value) for r in records] == [first, second]
    assert {r.key for r in records} == {b"doc-1"}
    assert len({r.partition for r in records}) == 1  # one entity, one partition: in order
    assert tuple(records[0].headers) == envelope_headers(first)


def test_send_encodes_everything_before_it_publishes_anything() -> None:
    broker = InMemoryBroker()
    good = message(SUBMIT, {"n": 1}, entity_id="doc-1", at=T0)
    bad = message(SUBMIT, {"n": float("nan")}, entity_id="doc-1", at=T0)

    async def main() -> None:
        await send(InMemoryBus(broker, group="sender"), good, bad)

    with pytest.raises(UsageError):
        run_virtual(main())
    assert broker.records(SUBMIT) == []


def test_a_bus_that_cannot_take_a_message_says_so() -> None:
    broker = InMemoryBroker()
    faults = Faults(failing_topics={SUBMIT: -1})
    envelope = message(SUBMIT, {}, entity_id="doc-1", at=T0)

    async def main() -> None:
        await send(InMemoryBus(broker, group="sender", faults=faults), envelope)

    with pytest.raises(EffectUnavailable):
        run_virtual(main())
    assert broker.records(SUBMIT) == []


# --------------------------------------------------------------------------- subscriptions

ORCHESTRATOR = """\
name: docs_orchestrator
node_type: ORCHESTRATOR_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: Counts every docs command, whichever it is.
handler_routing:
  routing_strategy: topic_match
  handlers:
    - handler: {name: Counter}
      topic: "onex.cmd.docs.*.v1"
event_bus:
  subscribe_topics: [onex.cmd.docs.submit-document.v1, onex.cmd.docs.approve-document.v1]
  dlq_topics: [onex.dlq.docs.counter.v1]
  external_topics: [onex.cmd.docs.submit-document.v1, onex.cmd.docs.approve-document.v1]
"""


def count(state: FsmState | None, envelope: Envelope, now: datetime) -> EntityDecision:
    before = state or FsmState("counting")
    seen = int(before.data.get("seen", 0)) + 1
    return EntityDecision(FsmState("counting", data={"seen": seen}), changed=True)


def test_a_pattern_route_is_served_by_the_topics_the_contract_subscribes_to(
    tmp_path: Path,
) -> None:
    (tmp_path / "docs_orchestrator").mkdir()
    (tmp_path / "docs_orchestrator" / "contract.yaml").write_text(ORCHESTRATOR)
    compiled = load_contracts(tmp_path)
    assert compiled.topics == ("onex.cmd.docs.approve-document.v1", SUBMIT)
    broker = InMemoryBroker()
    projections = InMemoryProjectionStore()

    async def main() -> None:
        clock = LoopClock(T0)
        host = build_host(
            compiled,
            orchestrator=count,
            domain="docs",
            effects={},
            bus=InMemoryBus(broker, group="docs"),
            projections=projections,
            idempotency=InMemoryIdempotencyStore(),
            clock=clock,
        )
        assert host.topics == compiled.topics
        await send(
            InMemoryBus(broker, group="people"),
            message(SUBMIT, {}, entity_id="doc-1", at=clock.now()),
            message("onex.cmd.docs.approve-document.v1", {}, entity_id="doc-1", at=clock.now()),
        )
        await host.run_until_idle()
        await host.stop()

    run_virtual(main())
    (projection,) = projections.all("docs")
    assert projection.data["seen"] == 2
