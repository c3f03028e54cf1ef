"""Mermaid diagrams of contracts: a reducer's state machine, and a directory's message flow.

Both outputs are deterministic — the same contracts always give the same text, byte for byte —
so a rendered diagram can be checked in and compared in review.

:func:`machine_diagram` draws a ``stateDiagram-v2``: ``[*]`` into the initial state, terminal
states into ``[*]``, and one edge per transition labelled ``trigger [guards] / actions``, in
declaration order. A wildcard transition (``from_state: "*"``) is drawn from every non-terminal
state, which is what it means.

:func:`directory_diagram` draws a ``flowchart LR`` of a contract directory: topics feed the nodes
that subscribe to them, nodes feed the topics they publish, reducers and orchestrators feed the
intent types they may emit, and each intent type feeds the effect (node or handler) that executes
it. An orchestrator that lists another node among its ``dependencies`` gets a dotted edge to it.

Text from contracts is escaped with Mermaid's entity codes (``#lt;``, ``#quot;`` …), so a guard
such as ``state.retries < 3`` or a description with quotes cannot break the diagram.
"""

from __future__ import annotations

import os
import re
from typing import Final

from onex_contracts.compile import compile_machine
from onex_contracts.issues import ContractInvalid
from onex_contracts.lint import load_directory
from onex_contracts.schema import NodeContract, StateMachine
from onex_contracts.schema_handler import HandlerContract
from onex_core.errors import ContractError
from onex_core.fsm import WILDCARD, Machine

__all__ = ["directory_diagram", "escape", "machine_diagram"]

_ENTITIES: Final = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    ";": "#59;",
    ":": "#58;",
    "{": "#123;",
    "}": "#125;",
    "|": "#124;",
    "[": "#91;",
    "]": "#93;",
    "`": "#96;",
}
_ESCAPE: Final = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")
_RESERVED: Final = frozenset(
    {"end", "state", "note", "direction", "class", "classdef", "style", "click", "as", "graph"}
)


def escape(text: str) -> str:
    """Text for a Mermaid label: one line, with its special characters as entity codes."""
    flat = " ".join(text.split())
    return _ESCAPE.sub(lambda m: _ENTITIES[m.group()], flat)


def _state_id(name: str) -> str:
    return f"{name}_" if name.lower() in _RESERVED else name


# --------------------------------------------------------------------------- state machine


def machine_diagram(source: NodeContract | StateMachine | Machine) -> str:
    """A Mermaid ``stateDiagram-v2`` of a state machine.

    Args:
        source: a reducer contract, its ``state_machine`` section, or a compiled machine.

    Returns:
        The diagram text, ending with a newline.

    Raises:
        ContractError: a contract without a state machine.
        MachineError: the machine does not build (see :func:`compile_machine`).
    """
    machine = source if isinstance(source, Machine) else compile_machine(source)
    lines = ["stateDiagram-v2"]
    for spec in machine.state_specs:
        ident = _state_id(spec.name)
        if ident != spec.name:
            lines.append(f'    state "{escape(spec.name)}" as {ident}')
        if spec.description:
            lines.append(f"    {ident} : {escape(spec.description)}")
    lines.append(f"    [*] --> {_state_id(machine.initial)}")
    non_terminal = [s for s in machine.states if s not in machine.terminal_states]
    for transition in machine.transitions:
        label = escape(transition.trigger)
        if transition.guards:
            guards = " && ".join(g.name if g.required else f"({g.name})" for g in transition.guards)
            label += f" [{escape(guards)}]"
        if transition.actions:
            label += " / " + escape(", ".join(transition.actions))
        sources = non_terminal if transition.source == WILDCARD else [transition.source]
        for state in sources:
            lines.append(f"    {_state_id(state)} --> {_state_id(transition.target)} : {label}")
    for state in machine.states:
        if state in machine.terminal_states:
            lines.append(f"    {_state_id(state)} --> [*]")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- directory


def _node_id(prefix: str, text: str) -> str:
    """A Mermaid id for ``text``: letters and digits kept, anything else as ``_xx`` (its hex
    code), so different texts never share an id."""
    return prefix + re.sub(r"[^A-Za-z0-9]", lambda m: f"_{ord(m.group()):x}", text)


def directory_diagram(directory: str | os.PathLike[str]) -> str:
    """A Mermaid ``flowchart LR`` of a contract directory: topics → nodes → intents → effects.

    Returns:
        The diagram text, ending with a newline; sorted, so it is stable.

    Raises:
        ContractInvalid: some contract in the directory is invalid (every problem found).
        ContractError: the directory holds no contracts.
    """
    loaded, issues = load_directory(directory)
    if issues:
        raise ContractInvalid(issues)
    if not loaded:
        raise ContractError(f"{os.fspath(directory)}: no contracts found")
    shapes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    names = {item.contract.name for item in loaded if isinstance(item.contract, NodeContract)}
    effect_of: dict[str, str] = {}  # intent type → the diagram id of the node or handler

    for item in loaded:
        contract = item.contract
        if isinstance(contract, HandlerContract):
            ident = _node_id("h_", contract.handler_id)
            shapes[ident] = f'{ident}[/"{escape(contract.handler_id)}<br/>handler"/]'
            for intent_type in contract.intent_types:
                effect_of.setdefault(intent_type, ident)
    for item in loaded:
        contract = item.contract
        if not isinstance(contract, NodeContract):
            continue
        ident = _node_id("n_", contract.name)
        shapes[ident] = f'{ident}["{escape(contract.name)}<br/>{contract.kind}"]'
        bus = contract.event_bus
        if bus is not None:
            for topic in bus.subscribe_topics:
                edges.add((_topic(shapes, topic), "-->", ident))
            for topic in bus.publish_topics:
                edges.add((ident, "-->", _topic(shapes, topic)))
        if contract.intent_emission is not None:
            for intent in contract.intent_emission.intents:
                edges.add((ident, "-->", _intent(shapes, intent.intent_type)))
        routing = contract.handler_routing
        if routing is not None and contract.node_type == "EFFECT_GENERIC":
            for entry in routing.handlers:
                if entry.operation is not None:
                    edges.add((_intent(shapes, entry.operation), "-->", ident))
                    handler = _node_id("h_", entry.effective_id)
                    effect_of.pop(entry.operation, None)
                    if handler in shapes:
                        edges.add((ident, "-.->", handler))
        for dependency in contract.dependencies:
            if dependency.name in names and dependency.name != contract.name:
                edges.add((ident, "-.->", _node_id("n_", dependency.name)))
    for intent_type, handler in effect_of.items():
        edges.add((_intent(shapes, intent_type), "-->", handler))

    lines = ["flowchart LR"]
    lines.extend(f"    {shapes[key]}" for key in sorted(shapes))
    lines.extend(f"    {a} {arrow} {b}" for a, arrow, b in sorted(edges))
    return "\n".join(lines) + "\n"


def _topic(shapes: dict[str, str], topic: str) -> str:
    ident = _node_id("t_", topic)
    shapes[ident] = f'{ident}(["{escape(topic)}"])'
    return ident


def _intent(shapes: dict[str, str], intent_type: str) -> str:
    ident = _node_id("i_", intent_type)
    shapes[ident] = f'{ident}{{{{"{escape(intent_type)}"}}}}'
    return ident
