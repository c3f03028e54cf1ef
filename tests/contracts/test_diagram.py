"""Mermaid diagrams: state machines and contract directories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from onex_contracts import (
    REGISTRATION_CONTRACTS,
    ContractInvalid,
    compile_machine,
    directory_diagram,
    machine_diagram,
    parse,
    parse_node,
)
from onex_contracts.diagram import escape
from onex_core.errors import ContractError
from tests.contracts.samples import ORCHESTRATOR, REDUCER, edit


def test_a_machine_diagram() -> None:
    text = machine_diagram(parse(REDUCER))  # type: ignore[arg-type]
    assert text.splitlines() == [
        "stateDiagram-v2",
        "    [*] --> closed",
        "    closed --> open : push [state.jammed is_false] / announce_open",
        "    open --> closed : pull",
        "    closed --> locked : lock",
        "    locked --> [*]",
    ]


def test_the_diagram_is_the_same_from_a_contract_a_section_or_a_machine() -> None:
    contract = parse_node(REDUCER)
    machine = compile_machine(contract)
    assert contract.state_machine is not None
    assert machine_diagram(contract) == machine_diagram(machine)
    assert machine_diagram(contract.state_machine) == machine_diagram(machine)


def test_labels_are_escaped_and_names_are_shown() -> None:
    text = edit(
        REDUCER,
        "        - expression: state.jammed is_false\n",
        "        - expression: state.count < 3\n"
        '        - {expression: "state.note == \\"a;b\\"", required: false}\n'
        "        - {expression: state.x exists, condition_name: has_x}\n",
    )
    text = edit(
        text,
        "    - state_name: closed\n",
        "    - state_name: closed\n      description: 'Shut: <locked?> #1'\n",
    )
    diagram = machine_diagram(parse(text))  # type: ignore[arg-type]
    assert "    closed : Shut#58; #lt;locked?#gt; #35;1" in diagram
    assert (
        "closed --> open : push [state.count #lt; 3 && (state.note == #quot;a#59;b#quot;) && has_x]"
        " / announce_open" in diagram
    )


def test_wildcards_are_drawn_from_every_live_state_and_reserved_names_are_aliased() -> None:
    text = edit(
        REDUCER, "    - state_name: open\n", "    - state_name: open\n    - state_name: end\n"
    )
    text = edit(
        text,
        "  terminal_states:",
        "    - {from_state: '*', to_state: end, trigger: smash}\n  terminal_states:",
    )
    diagram = machine_diagram(parse(text))  # type: ignore[arg-type]
    assert '    state "end" as end_' in diagram
    for state in ("closed", "open", "end_"):
        assert f"    {state} --> end_ : smash" in diagram
    assert "locked --> end_" not in diagram


def test_a_contract_without_a_machine_has_no_state_diagram() -> None:
    with pytest.raises(ContractError):
        machine_diagram(parse(ORCHESTRATOR))  # type: ignore[arg-type]


def test_the_directory_diagram_of_the_shipped_family() -> None:
    text = directory_diagram(REGISTRATION_CONTRACTS)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert text == directory_diagram(REGISTRATION_CONTRACTS)  # deterministic
    shapes = [line for line in lines[1:] if "-->" not in line and "-.->" not in line]
    edges = [line for line in lines[1:] if line not in shapes]
    assert shapes == sorted(shapes)
    assert edges == sorted(edges)
    orchestrator = "n_node_5fregistration_5forchestrator"
    reducer = "n_node_5fregistration_5freducer"
    registry = "n_node_5fservice_5fregistry_5feffect"
    introspection = "t_onex_2eevt_2eplatform_2enode_2dintrospection_2ev1"
    register = "i_consul_2eregister"
    for edge in [
        f"    {introspection} --> {orchestrator}",
        f"    {orchestrator} -.-> {reducer}",
        f"    {reducer} --> {register}",
        f"    {register} --> {registry}",
        f"    {registry} -.-> h_effect_2eservice_5fregistry",
    ]:
        assert edge in edges
    assert f'    {introspection}(["onex.evt.platform.node-introspection.v1"])' in shapes
    assert f'    {register}{{{{"consul.register"}}}}' in shapes


def test_an_intent_executed_by_a_handler_contract_alone(tmp_path: Path) -> None:
    shutil.copytree(REGISTRATION_CONTRACTS, tmp_path / "r")
    shutil.rmtree(tmp_path / "r" / "node_service_registry_effect")
    text = directory_diagram(tmp_path / "r")
    assert "    i_consul_2eregister --> h_effect_2eservice_5fregistry" in text


def test_an_invalid_directory_has_no_diagram(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "contract.yaml").write_text("name: [\n")
    with pytest.raises(ContractInvalid):
        directory_diagram(tmp_path)
    with pytest.raises(ContractError, match="no contracts found"):
        directory_diagram(tmp_path / "a" / "nothing-here")


def test_escape() -> None:
    assert escape('a "b"\n <c>;') == "a #quot;b#quot; #lt;c#gt;#59;"
