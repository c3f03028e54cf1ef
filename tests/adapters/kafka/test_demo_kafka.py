"""``ONEX_KAFKA_BOOTSTRAP=… make demo``: the registration demo on a real broker ends where the
embedded run ends (the timeline's instants carry the broker's latency; the outcomes do not)."""

from __future__ import annotations

import io

import pytest

from onex_adapters.registration import demo

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def final_table(report: str) -> dict[str, tuple[str, ...]]:
    """Node → (type, state, attempt, registry check, stored) from the printed final table;
    heartbeat counts are left out (they depend on where the run stops)."""
    rows = report.split("Final state", 1)[1].strip().splitlines()
    table: dict[str, tuple[str, ...]] = {}
    for line in rows[1:]:
        if not line.startswith("node-"):
            break
        node, node_type, state, attempt, _heartbeats, registry, stored = line.split()
        table[node] = (node_type, state, attempt, registry, stored)
    return table


def test_the_registration_demo_on_kafka_ends_as_the_embedded_run(kafka_bootstrap: str) -> None:
    embedded, on_kafka = io.StringIO(), io.StringIO()
    assert demo.main([], embedded, environ={}) == 0
    environ = {"ONEX_KAFKA_BOOTSTRAP": kafka_bootstrap, "ONEX_KAFKA_GROUP": "onex-test-demo"}
    assert demo.main([], on_kafka, environ=environ) == 0

    expected, got = final_table(embedded.getvalue()), final_table(on_kafka.getvalue())
    assert len(expected) == demo.SCENARIO.nodes
    assert got == expected
    text = on_kafka.getvalue()
    assert "1 dead letter(s)" in text
    timeline = text.split("Final state", 1)[0].splitlines()
    assert sum("ACK timed out" in line for line in timeline) == 3
    assert sum("liveness expired" in line for line in timeline) == 1
    assert any(" node-01 " in line and "partial:" in line for line in timeline)
