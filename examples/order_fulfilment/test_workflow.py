"""The order workflow end to end, and the pure decisions around its reducer."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from examples.order_fulfilment.app import CONTRACTS
from examples.order_fulfilment.domain import (
    CAPTURE,
    CAPTURE_OUTCOME,
    DLQ,
    PAY_ORDER,
    PLACE_ORDER,
    REFUSED,
    handle,
    order_reducer,
)
from examples.order_fulfilment.gateway import InMemoryPaymentGateway
from examples.order_fulfilment.run import ORDERS, main, render, run_shop
from onex_adapters.cli import main as onex
from onex_adapters.clock import run_virtual
from onex_contracts import HandlerContract, compile_effect_policy, compile_machine, load
from onex_contracts.plugins import PluginLoader
from onex_contracts.schema import NodeContract
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.ports import EffectHandler
from onex_core.topics import parse_topic

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "command", [["validate", str(CONTRACTS)], ["lint", "--strict", str(CONTRACTS)]]
)
def test_the_contracts_pass_validate_and_strict_lint(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert onex(command) == 0, capsys.readouterr().err


def test_the_handler_contract_names_a_class_that_satisfies_the_effect_port() -> None:
    handler = load(CONTRACTS / "handlers" / "payment_gateway" / "handler_contract.yaml")
    assert isinstance(handler, HandlerContract)
    plugin = PluginLoader(["examples.order_fulfilment"]).load(
        handler.handler_class, port=EffectHandler
    )
    assert plugin.cls is InMemoryPaymentGateway


def test_the_example_runs_end_to_end() -> None:
    report = run_virtual(run_shop())
    assert report.states == {
        "order-1001": "shipped",
        "order-1002": "shipped",
        "order-1003": "payment_failed",
        "order-1005": "cancelled",
        "order-1006": "payment_failed",
    }
    # Money is taken exactly once for every paid order, never for the others: retries after a
    # lost answer were recognised by their idempotency key.
    assert report.charged == {
        order: 1 if report.states.get(order) == "shipped" else 0 for order in ORDERS
    }
    handler = load(CONTRACTS / "handlers" / "payment_gateway" / "handler_contract.yaml")
    assert isinstance(handler, HandlerContract)
    policy = compile_effect_policy(handler)
    assert policy.retry is not None
    letters = {letter["original_message"]["key"]: letter for letter in report.dead_letters}
    assert sorted(letters) == ["order-1003", "order-1006"]
    exhausted, declined = letters["order-1003"], letters["order-1006"]
    assert exhausted["failure_class"] == "effect_exhausted"
    assert len(exhausted["attempts"]) == policy.retry.max_attempts
    assert declined["failure_class"] == "effect_rejected"
    assert len(declined["attempts"]) == 1
    assert {letter["intent"]["intent_type"] for letter in letters.values()} == {CAPTURE}
    texts = [line.text for line in report.timeline if line.order == "order-1004"]
    assert texts[0] == "shop.place-order refused in state new: has_items, positive_total"


def test_the_readme_code_runs() -> None:
    readme = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
    assert blocks
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


def test_a_run_is_reproducible_and_prints_its_report() -> None:
    first, second = run_virtual(run_shop()), run_virtual(run_shop())
    assert first == second
    out = io.StringIO()
    assert main([], out) == 0
    assert out.getvalue() == render(first)
    assert f"2 dead letter(s) on {DLQ}" in out.getvalue()


# --------------------------------------------------------------------------- pure decisions

CONTRACT = load(CONTRACTS / "order_reducer" / "contract.yaml")
assert isinstance(CONTRACT, NodeContract)
REDUCER = order_reducer(compile_machine(CONTRACT))


def message(topic: str, n: int, **payload: object) -> Envelope:
    envelope_id = uuid.uuid5(uuid.NAMESPACE_URL, f"order-7/{n}")
    event_type = parse_topic(topic).event_type
    return Envelope(envelope_id, topic, event_type, payload, envelope_id, "order-7", AT)


PLACE = message(
    PLACE_ORDER, 1, customer_id="cust-0007", items=[{"sku": "x"}], total=5, currency="EUR"
)
PAY = message(PAY_ORDER, 2, method="card", instrument="ins_visa_4242")


def applied(*envelopes: Envelope) -> Projection | None:
    projection = None
    for envelope in envelopes:
        handled = handle(projection, envelope, AT, REDUCER)
        assert handled.kind == "applied"
        projection = handled.projection
    return projection


def test_the_last_message_again_is_replayed_with_the_same_ids_and_nothing_written() -> None:
    placed = applied(PLACE)
    first = handle(placed, PAY, AT, REDUCER)
    assert first.kind == "applied"
    again = handle(first.projection, PAY, AT + timedelta(minutes=5), REDUCER)
    assert again.kind == "replayed"
    assert again.projection is None
    assert again.decision.intents == first.decision.intents
    assert again.decision.events == first.decision.events


def test_an_earlier_message_again_is_a_duplicate() -> None:
    paid = applied(PLACE, PAY)
    handled = handle(paid, PLACE, AT, REDUCER)
    assert handled.kind == "duplicate"
    assert handled.decision.intents == handled.decision.events == ()


def test_only_the_outcome_of_the_pending_capture_counts() -> None:
    paid = applied(PLACE, PAY)
    assert paid is not None
    pending = paid.data["order"]["capture_intent"]
    stale = message(CAPTURE_OUTCOME, 3, intent_id=str(uuid.uuid4()), ok=True)
    assert handle(paid, stale, AT, REDUCER).kind == "unchanged"
    fresh = message(CAPTURE_OUTCOME, 4, intent_id=pending, ok=True, detail={"capture_id": "c1"})
    handled = handle(paid, fresh, AT, REDUCER)
    assert handled.projection is not None
    assert handled.projection.state == "paid"
    assert handled.projection.data["order"]["capture_id"] == "c1"


def test_a_refused_command_is_answered_with_the_failed_guards() -> None:
    placed = applied(PLACE)
    bad = message(PAY_ORDER, 5, method="cash", instrument="ins_visa_4242")
    handled = handle(placed, bad, AT, REDUCER)
    assert handled.kind == "unchanged"
    (event,) = handled.decision.events
    assert event.topic == REFUSED
    assert event.payload["failed_guards"] == ["supported_method"]
    assert event.causation_id == bad.envelope_id
