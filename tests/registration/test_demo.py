"""``onex demo registration``: the scripted fleet ends where the scenario says, every time."""

from __future__ import annotations

import io
import re

import pytest

from onex_adapters.cli import main as cli
from onex_adapters.registration.demo import SCENARIO, main


def _run() -> str:
    out = io.StringIO()
    assert main([], out) == 0
    return out.getvalue()


def test_the_demo_ends_with_the_expected_fleet_and_prints_the_same_every_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _run()
    table = text.split("Final state", 1)[1]
    rows = {
        match[0]: match[1:]
        for match in re.findall(
            r"^(node-\d\d)\s+(\w+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)$", table, re.M
        )
    }
    assert len(rows) == SCENARIO.nodes == 20
    _, state, attempt, heartbeats, check, _ = rows[SCENARIO.silent]
    assert (state, attempt, heartbeats, check) == ("failed", "1", "0", "critical")
    _, state, attempt, _, check, stored = rows[SCENARIO.quiet]
    assert (state, attempt, check, stored) == ("active", "2", "passing", "active")
    for node, (_, state, attempt, heartbeats, check, stored) in rows.items():
        if node in (SCENARIO.silent, SCENARIO.quiet):
            continue
        assert (state, attempt, check, stored) == ("active", "1", "passing", "active"), node
        assert int(heartbeats) >= 10, node

    timeline = text.split("Final state", 1)[0]
    early = [line for line in timeline.splitlines() if " node-01 " in line]
    assert any("failed after 4 attempts" in line for line in early)
    assert any(line.split(" ", 2)[2].strip().startswith("partial:") for line in early)
    assert any("accepted (ack by" in line for line in early)
    assert sum("ACK timed out" in line for line in timeline.splitlines()) == 3
    assert sum("liveness expired" in line for line in timeline.splitlines()) == 1
    assert re.search(
        r"^\d\d:\d\d:\d\d\.\d{3} node-07 +accepted \(ack by \d\d:\d\d:\d\d\)$", timeline, re.M
    )
    assert "1 dead letter(s)" in text

    assert cli(["demo", "registration"]) == 0  # `make demo` runs this
    assert capsys.readouterr().out == text  # seeded: every run prints the same
