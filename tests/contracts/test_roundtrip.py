"""Round trips and properties: YAML → model → YAML, generated machines, random edits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_contracts import (
    REGISTRATION_CONTRACTS,
    ContractInvalid,
    ContractIssue,
    NodeContract,
    compile_machine,
    dump,
    load,
    parse,
)
from tests.contracts.samples import ALL

SHIPPED = sorted(REGISTRATION_CONTRACTS.rglob("*.yaml"))
TEXTS = [*ALL.values(), *(p.read_text() for p in SHIPPED)]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_contracts_round_trip(path: Path) -> None:
    contract = load(path)
    text = dump(contract)
    again = parse(text)
    assert again == contract
    assert dump(again) == text


@pytest.mark.parametrize("name", sorted(ALL))
def test_samples_round_trip(name: str) -> None:
    contract = parse(ALL[name])
    assert parse(dump(contract)) == contract


def test_dump_quotes_what_the_reader_would_misread() -> None:
    contract = parse(ALL["reducer"] + "metadata:\n  a: 'true'\n  b: '0777'\n  c: '1.10'\n  d: ''\n")
    text = dump(contract)
    for quoted in ['"true"', '"0777"', '"1.10"', 'd: ""']:
        assert quoted in text
    assert parse(text) == contract


# --------------------------------------------------------------------------- generated machines

GUARDS = [
    "node_id exists",
    "state.retries < 3",
    "kind in [a, b, 'c d']",
    "name matches ^n-[0-9]+$",
    "state.flag is_true",
    "payload.tags contains x",
]


@st.composite
def machines(draw: st.DrawFn) -> dict[str, Any]:
    """A valid state_machine section: every state reachable, no ambiguous transitions."""
    count = draw(st.integers(1, 7))
    names = [f"s{i}" for i in range(count)]
    terminal = [False] + [draw(st.booleans()) for _ in range(count - 1)]
    live = [n for n, t in zip(names, terminal, strict=True) if not t]
    transitions: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int]] = set()

    def add(source: str, target: str, trigger: str, priority: int, guards: list[str]) -> None:
        if (source, trigger, priority) in seen:
            return
        seen.add((source, trigger, priority))
        transition: dict[str, Any] = {
            "from_state": source,
            "to_state": target,
            "trigger": trigger,
            "priority": priority,
        }
        if guards:
            transition["conditions"] = [{"expression": g} for g in guards]
        transitions.append(transition)

    for i in range(1, count):
        sources = [names[j] for j in range(i) if not terminal[j]]
        add(draw(st.sampled_from(sources)), names[i], f"go_{i}", 0, [])
    for _ in range(draw(st.integers(0, 6))):
        add(
            draw(st.sampled_from([*live, "*"])),
            draw(st.sampled_from(names)),
            draw(st.sampled_from(["tick", "poke", "reset"])),
            draw(st.integers(0, 3)),
            draw(st.lists(st.sampled_from(GUARDS), max_size=2)),
        )
    return {
        "state_machine_name": "generated",
        "initial_state": "s0",
        "states": [
            {"state_name": n, "is_terminal": t} for n, t in zip(names, terminal, strict=True)
        ],
        "transitions": transitions,
        "terminal_states": [n for n, t in zip(names, terminal, strict=True) if t],
    }


def _reducer_yaml(section: dict[str, Any]) -> str:
    document = {
        "name": "generated_reducer",
        "node_type": "REDUCER_GENERIC",
        "contract_version": {"major": 1, "minor": 0, "patch": 0},
        "node_version": "1.0.0",
        "description": "generated",
        "state_machine": section,
    }
    return yaml.safe_dump(document, sort_keys=False)


@settings(max_examples=60, deadline=None)
@given(machines())
def test_generated_machines_load_compile_and_round_trip(section: dict[str, Any]) -> None:
    contract = parse(_reducer_yaml(section))
    assert isinstance(contract, NodeContract)
    machine = compile_machine(contract)
    assert machine.states == tuple(s["state_name"] for s in section["states"])
    assert len(machine.transitions) == len(section["transitions"])
    assert parse(dump(contract)) == contract


# --------------------------------------------------------------------------- random edits


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


@st.composite
def edited(draw: st.DrawFn) -> str:
    """A valid contract with one random edit that may or may not break it."""
    text = draw(st.sampled_from(TEXTS))
    lines = _lines(text)
    index = draw(st.integers(0, len(lines) - 1))
    line = lines[index]
    key, colon, rest = line.partition(":")
    kind = draw(
        st.sampled_from(["delete", "retype", "rename", "duplicate", "tag", "cut", "anchor"])
    )
    if kind == "delete":
        del lines[index]
    elif kind == "retype" and colon and rest.strip():
        value = draw(st.sampled_from(["123", "true", "[1, 2]", "{a: 1}", "'text'", "~", "1.5"]))
        lines[index] = f"{key}: {value}\n"
    elif kind == "rename" and colon:
        lines[index] = f"{key}x:{rest}"
    elif kind == "duplicate":
        lines.insert(index, line)
    elif kind == "tag" and colon and rest.strip():
        tag = draw(st.sampled_from(["!!python/name:os.system", "!include", "!!str", "!x"]))
        lines[index] = f"{key}: {tag} {rest.strip()}\n"
    elif kind == "anchor" and colon and rest.strip():
        lines[index] = f"{key}: &a {rest.strip()}\n"
    elif kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    return "".join(lines)


@settings(max_examples=250, deadline=None)
@given(edited())
def test_random_edits_give_a_contract_or_located_issues(text: str) -> None:
    issues: tuple[ContractIssue, ...] = ()
    try:
        parse(text, source="edited.yaml")
    except ContractInvalid as exc:
        issues = exc.errors
        assert issues
    for issue in issues:
        assert issue.source == "edited.yaml"
        assert issue.line >= 1
        assert issue.column >= 1
        assert issue.code
        assert "\n" not in str(issue)
