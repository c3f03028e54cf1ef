"""Ready checks for reducers: plain functions that raise ``AssertionError`` with a clear message.

Each check runs a reducer over events and asserts one property ONEX relies on:

- :func:`check_deterministic` — the same state and event always give an equal reduction: twice
  in a row, and again on deep copies of both (a reducer that reads a counter, a clock, a random
  source, or an object's identity fails); and the reducer does not change its inputs.
- :func:`check_illegal_triggers_leave_state_untouched` — an event the machine refuses changes
  nothing and asks for nothing.
- :func:`check_every_intent_has_an_effect` — every intent type the reducer actually emitted is
  executed by exactly one effect handler of a contract directory (lint checks the *declared*
  intents; this checks the emitted ones).
- :func:`check_terminal_states_are_final` — from a terminal state, no event leads anywhere.

Events are either your reducer's own (envelopes, steps…) or the :class:`~onex_contracts.testing.
Event`\\ s the strategies draw. With ``make``, each drawn event is turned into yours —
``make(event, index)``, ``index`` being its position, handy as a sequence number — and its
annotation (``after is None``: the machine refuses it) is used as the oracle for legality.

The checks need no Hypothesis and can run inside any test.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import reprlib
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, Final, TypeVar

from onex_contracts.lint import LintReport, lint
from onex_contracts.schema import NodeContract
from onex_contracts.schema_handler import HandlerContract
from onex_contracts.testing._walks import Event
from onex_core.fsm import Machine
from onex_core.intents import Intent
from onex_core.reducers import FsmState, Reduction

__all__ = [
    "Make",
    "check_deterministic",
    "check_every_intent_has_an_effect",
    "check_illegal_triggers_leave_state_untouched",
    "check_terminal_states_are_final",
    "clone",
    "executors",
]

S = TypeVar("S")

Make = Callable[[Event, int], Any]
"""Turns a drawn :class:`Event` (and its position) into the reducer's own event type."""

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 200
_repr.maxlevel = 4
_MAX_DEPTH: Final = 200


def _short(value: object) -> str:
    return _repr.repr(value)


def _input(item: object, index: int, make: Make | None) -> object:
    if make is not None and isinstance(item, Event):
        return make(item, index)
    return item


def _label(item: object, index: int) -> str:
    if isinstance(item, Event):
        return f"event {index} (trigger {item.trigger!r})"
    kind = getattr(item, "event_type", None) or getattr(item, "trigger", None)
    if isinstance(kind, str):
        return f"event {index} ({kind})"
    return f"event {index} ({type(item).__name__})"


def _name(state: object) -> str:
    name = getattr(state, "name", None)
    return repr(name) if isinstance(name, str) else _short(state)


def _reduction(result: object, index: int) -> Reduction[Any]:
    if not (hasattr(result, "state") and hasattr(result, "intents")):
        raise AssertionError(
            f"event {index}: the reducer returned a {type(result).__name__}, not a Reduction"
        )
    return result  # type: ignore[return-value]  # duck-typed: state and intents are what we read


# --------------------------------------------------------------------------- deep copies


def _proxies(
    value: object, seen: set[int], found: list[MappingProxyType[Any, Any]], depth: int
) -> None:
    """Every mapping proxy reachable from ``value`` (deepcopy cannot copy them)."""
    if depth > _MAX_DEPTH or id(value) in seen or isinstance(value, str | bytes | int | float):
        return
    seen.add(id(value))
    children: Iterable[object]
    if isinstance(value, MappingProxyType):
        found.append(value)
        children = value.values()
    elif isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, tuple | list | set | frozenset):
        children = value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [getattr(value, f.name, None) for f in dataclasses.fields(value)]
    elif hasattr(value, "__dict__"):
        children = list(vars(value).values())
    else:
        slots = [s for c in type(value).__mro__ for s in getattr(c, "__slots__", ())]
        children = [getattr(value, s, None) for s in slots if isinstance(s, str)]
    for child in children:
        _proxies(child, seen, found, depth + 1)


def clone(value: S) -> S:
    """A deep copy of ``value``, mapping proxies included (as new proxies of copied dicts).

    Raises:
        TypeError: ``value`` holds something that cannot be deep-copied (a lock, a generator).
    """
    found: list[MappingProxyType[Any, Any]] = []
    _proxies(value, set(), found, 0)
    memo: dict[int, Any] = {}
    try:
        for proxy in reversed(found):  # inner proxies first
            memo[id(proxy)] = MappingProxyType(copy.deepcopy(dict(proxy), memo))
        return copy.deepcopy(value, memo)
    except (TypeError, copy.Error) as exc:
        raise TypeError(
            f"cannot deep-copy a {type(value).__name__} for the copy check: {exc}; states and "
            "events must be plain data"
        ) from exc


def _has_equality(value: object) -> bool:
    return type(value).__eq__ is not object.__eq__


# --------------------------------------------------------------------------- the checks


def check_deterministic(
    reducer: Callable[[S, Any], Reduction[S]],
    state: S,
    events: Iterable[object],
    *,
    make: Make | None = None,
) -> None:
    """Assert that ``reducer`` is a pure function of its inputs, step by step.

    For each event, starting from ``state`` and following the reducer's own answers: two calls
    with the same state and event must give equal reductions, a third call on deep copies of
    both must too, and the state and event must be unchanged afterwards.

    Args:
        reducer: ``reducer(state, event) -> Reduction``.
        state: the state before the first event.
        events: the events, or drawn :class:`Event`\\ s with ``make``.
        make: turns a drawn :class:`Event` into the reducer's event type.

    Raises:
        AssertionError: naming the event, the state and the two different answers.
        TypeError: a state or event cannot be deep-copied.
    """
    for index, item in enumerate(events):
        event = _input(item, index, make)
        where = f"{_label(item, index)} in state {_name(state)}"
        kept_state, kept_event = clone(state), clone(event)
        first = _reduction(reducer(state, event), index)
        second = _reduction(reducer(state, event), index)
        if first != second:
            raise AssertionError(
                f"the reducer is not deterministic: {where} gave two different results for the "
                f"same input\n  first:  {_short(first)}\n  second: {_short(second)}"
            )
        third = _reduction(reducer(clone(state), clone(event)), index)
        if third != first:
            raise AssertionError(
                f"the reducer is not deterministic: {where} gave a different result for an equal "
                f"copy of the same input (does it depend on object identity?)\n"
                f"  original: {_short(first)}\n  copy:     {_short(third)}"
            )
        if state != kept_state:
            raise AssertionError(
                f"the reducer changed its input state on {where}: it was {_short(kept_state)}, "
                f"it is now {_short(state)}"
            )
        if _has_equality(event) and event != kept_event:
            raise AssertionError(f"the reducer changed its input event on {where}")
        state = first.state


def check_illegal_triggers_leave_state_untouched(
    reducer: Callable[[S, Any], Reduction[S]],
    state: S,
    events: Iterable[object],
    *,
    make: Make | None = None,
    restart_on: Iterable[str] = (),
) -> None:
    """Assert that every refused event leaves the state equal and emits no intent.

    An event is refused when the reducer says so (``Reduction.rejected`` is set) or, for a drawn
    :class:`Event`, when the machine refused it (``after is None``) in the state the reducer is
    in — so a reducer that quietly accepts an illegal trigger is caught too.

    Args:
        reducer, state, events, make: as for :func:`check_deterministic`.
        restart_on: triggers the reducer may take in a terminal state, where the machine
            refuses them (the ``restart_on`` of an :class:`~onex_core.reducers.FsmReducer`);
            for those only the reducer's own ``rejected`` counts.

    Raises:
        AssertionError: naming the event, the state before, and what changed.
    """
    restarts = frozenset(restart_on)
    for index, item in enumerate(events):
        event = _input(item, index, make)
        result = _reduction(reducer(state, event), index)
        refused = getattr(result, "rejected", None) is not None
        # The drawn annotation is an oracle only while the reducer is where the walk was.
        illegal = (
            isinstance(item, Event)
            and item.after is None
            and item.trigger not in restarts
            and getattr(state, "name", item.before) == item.before
        )
        if refused or illegal:
            why = "refused by the machine" if illegal else "rejected by the reducer"
            where = f"{_label(item, index)}, {why} in state {_name(state)}"
            if result.state != state:
                raise AssertionError(
                    f"an illegal trigger changed the state: {where}, moved it from "
                    f"{_short(state)} to {_short(result.state)}"
                )
            if result.intents:
                types = ", ".join(sorted({i.intent_type for i in result.intents}))
                raise AssertionError(
                    f"an illegal trigger asked for effects: {where}, emitted "
                    f"{len(result.intents)} intent(s) ({types})"
                )
        state = result.state


def check_terminal_states_are_final(
    reducer: Callable[[Any, Any], Reduction[Any]],
    machine: Machine,
    events: Iterable[object],
    *,
    make: Make | None = None,
    state_for: Callable[[str], Any] = FsmState,
    restart_on: Iterable[str] = (),
) -> None:
    """Assert that from each terminal state of ``machine`` no event moves the reducer anywhere.

    Args:
        reducer: the reducer under test.
        machine: its machine; every state in ``terminal_states`` is tried.
        events: events to try in each terminal state (each from a fresh terminal state).
        make: as for :func:`check_deterministic`.
        state_for: builds the reducer's state for a state name (default: ``FsmState(name)``);
            the reducer's state must have a ``name``.
        restart_on: triggers that legitimately restart the machine from a terminal state
            (the ``restart_on`` of an :class:`~onex_core.reducers.FsmReducer`); events whose
            ``trigger`` is one of them are skipped.

    Raises:
        AssertionError: naming the terminal state, the event and where it led.
    """
    restarts = frozenset(restart_on)
    items = list(events)
    for terminal in sorted(machine.terminal_states):
        for index, item in enumerate(items):
            if getattr(item, "trigger", None) in restarts:
                continue
            event = _input(item, index, make)
            state = state_for(terminal)
            result = _reduction(reducer(state, event), index)
            name = getattr(result.state, "name", None)
            if name != terminal:
                raise AssertionError(
                    f"terminal state {terminal!r} is not final: {_label(item, index)} moved the "
                    f"reducer to {name!r}"
                )
            if result.intents:
                types = ", ".join(sorted({i.intent_type for i in result.intents}))
                raise AssertionError(
                    f"terminal state {terminal!r} is not final: {_label(item, index)} asked for "
                    f"effects ({types})"
                )


def executors(report: LintReport) -> dict[str, tuple[str, ...]]:
    """``{intent type: ids of the effect handlers that execute it}`` for a linted directory.

    The same rules as :func:`onex_contracts.lint`: a handler contract of archetype ``effect``
    executes its ``intent_types``; an effect contract's ``operation_match`` entry executes its
    ``operation`` with handler ``handler_id`` (the same handler when the ids match).
    """
    found: dict[str, set[str]] = {}
    for item in report.contracts:
        contract = item.contract
        if isinstance(contract, HandlerContract):
            if contract.descriptor.node_archetype == "effect":
                for intent_type in contract.intent_types:
                    found.setdefault(intent_type, set()).add(contract.handler_id)
        elif isinstance(contract, NodeContract) and contract.node_type == "EFFECT_GENERIC":
            routing = contract.handler_routing
            for entry in routing.handlers if routing is not None else ():
                if entry.operation is not None:
                    found.setdefault(entry.operation, set()).add(entry.effective_id)
    return {intent_type: tuple(sorted(ids)) for intent_type, ids in found.items()}


def check_every_intent_has_an_effect(
    contracts: str | os.PathLike[str] | LintReport,
    reductions: Iterable[Reduction[Any] | Intent],
) -> None:
    """Assert that every intent type emitted is executed by exactly one effect handler.

    Args:
        contracts: a directory of contracts, or the :class:`~onex_contracts.LintReport` of one
            (lint it once and pass the report when checking many times).
        reductions: what the reducer returned (or the intents themselves).

    Raises:
        AssertionError: listing each emitted intent type with no handler or several.
    """
    report = contracts if isinstance(contracts, LintReport) else lint(contracts)
    where = "the linted directory" if isinstance(contracts, LintReport) else repr(str(contracts))
    emitted: dict[str, int] = {}
    for item in reductions:
        intents = (item,) if isinstance(item, Intent) else item.intents
        for intent in intents:
            emitted[intent.intent_type] = emitted.get(intent.intent_type, 0) + 1
    served = executors(report)
    problems = []
    for intent_type, count in sorted(emitted.items()):
        handlers = served.get(intent_type, ())
        if not handlers:
            problems.append(
                f"intent type {intent_type!r} (emitted {count} time(s)) is executed by no effect "
                f"handler in {where}: route it in an effect contract (operation_match) or list it "
                "in a handler contract's intent_types"
            )
        elif len(handlers) > 1:
            problems.append(
                f"intent type {intent_type!r} is executed by {len(handlers)} handlers in {where} "
                f"({', '.join(handlers)}); exactly one may execute it"
            )
    if problems:
        raise AssertionError("\n".join(problems))
