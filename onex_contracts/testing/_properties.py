"""One call for the standard reducer properties: :func:`reducer_properties`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onex_contracts.lint import LintReport, lint
from onex_contracts.testing._checks import (
    Make,
    check_deterministic,
    check_every_intent_has_an_effect,
    check_illegal_triggers_leave_state_untouched,
    check_terminal_states_are_final,
)
from onex_contracts.testing._walks import (
    Event,
    Payloads,
    any_triggers,
    event_sequences,
    invalid_sequences,
)
from onex_core.errors import UsageError
from onex_core.fsm import Machine
from onex_core.reducers import FsmState, Reduction

__all__ = ["reducer_properties"]


def reducer_properties(
    reducer: Callable[[Any, Any], Reduction[Any]],
    machine: Machine,
    *,
    make: Make | None = None,
    start: object = None,
    state_for: Callable[[str], Any] = FsmState,
    contracts: str | os.PathLike[str] | LintReport | None = None,
    restart_on: Iterable[str] = (),
    payloads: Payloads = None,
    max_size: int = 10,
    max_examples: int = 50,
    hypothesis_settings: settings | None = None,
) -> Callable[[], None]:
    """A Hypothesis test of every standard property of ``reducer``; assign it in a test module.

    ::

        test_order_reducer = reducer_properties(reducer, machine, make=to_envelope,
                                                contracts=CONTRACTS)

    Each example draws a walk of ``machine`` (valid, or with illegal events mixed in) and a
    sequence of any triggers, then runs :func:`check_deterministic` and
    :func:`check_illegal_triggers_leave_state_untouched` over the walk,
    :func:`check_every_intent_has_an_effect` over what the walk emitted (when ``contracts`` is
    given), and :func:`check_terminal_states_are_final` over the other sequence.

    Args:
        reducer: the reducer under test.
        machine: its compiled machine.
        make: turns a drawn :class:`Event` (and its index) into the reducer's event type;
            default: the events are given as they are.
        start: the reducer's state before a walk (default: ``state_for(machine.initial)``).
        state_for: the reducer's state for a state name (default: ``FsmState(name)``).
        contracts: the contract directory (or its lint report) whose effects must serve the
            emitted intents; linted once, here.
        restart_on: triggers that legitimately restart the machine from a terminal state (the
            reducer's ``restart_on``): exempt from the terminal and illegal-trigger checks.
        payloads: base payloads for the walks (see :func:`event_sequences`).
        max_size: the longest walk.
        max_examples: how many examples Hypothesis tries.
        hypothesis_settings: further Hypothesis settings (a profile, ``database=None`` …);
            ``max_examples`` and ``deadline=None`` are applied over them.

    Returns:
        A test function taking no arguments, named after the machine.

    Raises:
        UsageError: ``max_size`` or ``max_examples`` is below 1.
    """
    if max_size < 1 or max_examples < 1:
        raise UsageError("max_size and max_examples must be at least 1")
    report = None
    if contracts is not None:
        report = contracts if isinstance(contracts, LintReport) else lint(contracts)
    initial = state_for(machine.initial) if start is None else start
    restarts = tuple(restart_on)
    walks = st.one_of(
        event_sequences(machine, max_size=max_size, payloads=payloads),
        invalid_sequences(machine, max_size=max_size, payloads=payloads),
    )
    noise = any_triggers(machine, min_size=1, max_size=max_size, payloads=payloads)

    @settings(hypothesis_settings, max_examples=max_examples, deadline=None)
    @given(walk=walks, others=noise)
    def test_reducer_properties(walk: tuple[Event, ...], others: tuple[Event, ...]) -> None:
        check_deterministic(reducer, initial, walk, make=make)
        check_illegal_triggers_leave_state_untouched(
            reducer, initial, walk, make=make, restart_on=restarts
        )
        if report is not None:
            check_every_intent_has_an_effect(report, _steps(reducer, initial, walk, make))
        check_terminal_states_are_final(
            reducer, machine, others, make=make, state_for=state_for, restart_on=restarts
        )

    name = f"test_reducer_properties[{machine.name}]"
    test_reducer_properties.__name__ = name
    test_reducer_properties.__qualname__ = name
    return test_reducer_properties


def _steps(
    reducer: Callable[[Any, Any], Reduction[Any]],
    state: object,
    walk: tuple[Event, ...],
    make: Make | None,
) -> list[Reduction[Any]]:
    out = []
    for index, event in enumerate(walk):
        result = reducer(state, event if make is None else make(event, index))
        out.append(result)
        state = result.state
    return out
