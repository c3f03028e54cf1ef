"""Walks of a state machine: sequences of triggers with payloads, valid or not.

Every strategy here draws a tuple of :class:`Event`\\ s by walking a compiled
:class:`~onex_core.fsm.Machine` from a start state (its initial state by default). At each step
it picks what to try, builds a payload for it, and asks :func:`~onex_core.fsm.fire` what the
machine does with it; the answer is recorded on the event (``before`` and ``after``, ``None``
when the machine refuses), and the walk goes on from ``after``. So the annotations are never a
guess: they are what the machine said.

- :func:`event_sequences` tries only transitions that can fire: it picks an outgoing transition
  and builds a payload that satisfies its required guards (and, where it can, breaks one
  required guard of every candidate tried before it, so low-priority alternatives are reached
  too). Every event is accepted. A walk stops early at a terminal state.
- :func:`invalid_sequences` mixes in illegal events — an unknown trigger, a known trigger with no
  transition from the current state, or a guarded trigger whose payload breaks a guard of every
  candidate — at least one per sequence.
- :func:`any_triggers` tries anything: legal moves, known triggers with random payloads, unknown
  triggers.

Payloads are plain JSON-like ``dict``\\ s. Pass ``payloads`` to give every event (or every event of
one trigger) a base payload — an order id, a currency — on which the guards' fields are written.
Random payloads (of illegal events, and in :func:`any_triggers`) mix the fields the machine's
guards read with others.

Guards on ``state.*`` read the reducer's extended state. The walk writes them into the payload
under ``state``, which is what :func:`~onex_core.fsm.fire` reads; an
:class:`~onex_core.reducers.FsmReducer` reads its own ``FsmState.data`` instead, so for such
guards a reducer may refuse an event the walk marked as accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from onex_contracts.testing._guards import (
    Constraint,
    apply,
    assignments,
    json_values,
    scalars,
)
from onex_core.errors import UsageError
from onex_core.fsm import Machine, Transition, fire

__all__ = ["Event", "Payloads", "any_triggers", "event_sequences", "invalid_sequences"]

Payloads: TypeAlias = (
    SearchStrategy[Mapping[str, Any]] | Mapping[str, SearchStrategy[Mapping[str, Any]]] | None
)
"""Base payloads: one strategy for every event, one per trigger, or none (empty)."""

_Pairs = SearchStrategy[list[tuple[tuple[str, ...], Any]]]
_NOTHING: Final[_Pairs] = st.just([])
_TRIES: Final = 3
# Strategies are built once: building one inside a draw costs more than drawing from it.
_NAMES: Final = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
_RANDOM_KEYS: Final = st.text(min_size=1, max_size=8)
_RANDOM_VALUES: Final = st.one_of(scalars(), scalars(), json_values())
_ONE_IN_THREE: Final = st.integers(0, 2).map(lambda n: n == 0)
_ANY_KIND: Final = st.sampled_from(["legal", "legal", "known", "unknown"])


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a walk: ``trigger`` with ``payload``, tried in state ``before``.

    ``after`` is the state :func:`~onex_core.fsm.fire` moved to, or ``None`` when the machine
    refused the event (an illegal trigger, or failed guards). ``payload`` is what guards read,
    so an :class:`~onex_core.reducers.FsmReducer` with ``trigger_of=lambda e: e.trigger``
    folds events directly; otherwise turn each into your own event type (see the ``make``
    argument of the checks).
    """

    trigger: str
    payload: Mapping[str, Any]
    before: str
    after: str | None

    @property
    def accepted(self) -> bool:
        """Whether the machine took the event."""
        return self.after is not None


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class _Move:
    trigger: str
    aimed: _Pairs  # satisfies the transition, breaks the candidates tried before it
    plain: _Pairs  # satisfies the transition only


@dataclass(frozen=True, slots=True)
class _Choices:
    """What can be tried in one state, each as a strategy that picks one."""

    moves: SearchStrategy[_Move] | None  # moves that fire
    blocked: SearchStrategy[_Move] | None  # guarded triggers every candidate can refuse
    unmatched: SearchStrategy[str] | None  # known triggers with no transition from here
    illegal: SearchStrategy[str]  # the kinds of illegal event available here


@dataclass(frozen=True, slots=True)
class _Plan:
    machine: Machine
    choices: Mapping[str, _Choices]
    triggers: SearchStrategy[str] | None
    random_payloads: SearchStrategy[dict[str, Any]]  # keys the guards read, and others


def _pick(options: tuple[Any, ...]) -> SearchStrategy[Any] | None:
    return st.sampled_from(options) if options else None


def _required(transition: Transition) -> list[Constraint]:
    return [(g.condition, True) for g in transition.guards if g.required]


def _breaker(transition: Transition, avoid: set[tuple[str, ...]]) -> Constraint | None:
    """A required guard of ``transition`` to break, preferring one on a path not in ``avoid``."""
    guards = [g.condition for g in transition.guards if g.required]
    if not guards:
        return None
    for condition in guards:
        if condition.path not in avoid:
            return (condition, False)
    return (guards[0], False)


def _plan(machine: Machine) -> _Plan:
    choices: dict[str, _Choices] = {}
    for state in machine.states:
        found: list[_Move] = []
        refusable: list[_Move] = []
        missing: list[str] = []
        for trigger in machine.triggers:
            candidates = machine.candidates(state, trigger)
            if not candidates:
                missing.append(trigger)
                continue
            for position, transition in enumerate(candidates):
                wanted = _required(transition)
                avoid = {c.path for c, _ in wanted}
                breaks = [_breaker(c, avoid) for c in candidates[:position]]
                aimed = wanted + [b for b in breaks if b is not None]
                found.append(_Move(trigger, assignments(aimed), assignments(wanted)))
            breaks = [_breaker(c, set()) for c in candidates]
            if all(b is not None for b in breaks):
                pairs = assignments([b for b in breaks if b is not None])
                refusable.append(_Move(trigger, pairs, _NOTHING))
        kinds = (
            "unknown",
            *(["unmatched"] if missing else []),
            *(["guarded"] if refusable else []),
        )
        choices[state] = _Choices(
            _pick(tuple(found)),
            _pick(tuple(refusable)),
            _pick(tuple(missing)),
            st.sampled_from(kinds),
        )
    fields = sorted({g.condition.path[0] for t in machine.transitions for g in t.guards})
    keys = st.one_of(st.sampled_from(fields), _RANDOM_KEYS) if fields else _RANDOM_KEYS
    payloads = st.dictionaries(keys, _RANDOM_VALUES, max_size=3)
    return _Plan(machine, choices, _pick(machine.triggers), payloads)


# --------------------------------------------------------------------------- drawing


def _bases(payloads: Payloads) -> Mapping[str, SearchStrategy[Mapping[str, Any]]] | None:
    if payloads is None or isinstance(payloads, SearchStrategy):
        return None
    for trigger, strategy in payloads.items():
        if not isinstance(strategy, SearchStrategy):
            raise UsageError(f"payloads[{trigger!r}] is not a Hypothesis strategy")
    return payloads


class _Walker:
    """Draws one walk, step by step (see the module docstring)."""

    def __init__(self, draw: DrawFn, plan: _Plan, state: str, payloads: Payloads) -> None:
        self.draw = draw
        self.plan = plan
        self.machine = plan.machine
        self.state = state
        self.events: list[Event] = []
        self.refused = False
        self._common = payloads if isinstance(payloads, SearchStrategy) else None
        self._per_trigger = _bases(payloads)

    def base(self, trigger: str) -> Mapping[str, Any]:
        strategy = self._common
        if self._per_trigger is not None:
            strategy = self._per_trigger.get(trigger, strategy)
        return {} if strategy is None else self.draw(strategy)

    def record(self, trigger: str, payload: Mapping[str, Any]) -> Event:
        result = fire(self.machine, self.state, trigger, payload)
        event = Event(trigger, payload, self.state, result.target if result.ok else None)
        self.events.append(event)
        if result.ok:
            self.state = result.target
        else:
            self.refused = True
        return event

    def legal(self) -> bool:
        """One accepted event, if any move from here can be made to fire."""
        moves = self.plan.choices[self.state].moves
        for _ in range(_TRIES if moves is not None else 0):
            assert moves is not None
            move = self.draw(moves)
            base = self.base(move.trigger)
            for pairs in (move.aimed, move.plain):
                payload = apply(base, self.draw(pairs))
                if fire(self.machine, self.state, move.trigger, payload).ok:
                    self.record(move.trigger, payload)
                    return True
        return False

    def illegal(self) -> None:
        """One refused event: a refusable guarded trigger, a trigger with no transition from
        here, or an unknown trigger, whichever the draw picks among those available."""
        choices = self.plan.choices[self.state]
        kind = self.draw(choices.illegal)
        if kind == "guarded" and choices.blocked is not None:
            move = self.draw(choices.blocked)
            base = self.base(move.trigger)
            for payload in (apply(base, self.draw(move.aimed)), apply(base, [])):
                if not fire(self.machine, self.state, move.trigger, payload).ok:
                    self.record(move.trigger, payload)
                    return
            kind = "unknown"  # the base payload satisfies every candidate: refuse otherwise
        if kind == "unmatched" and choices.unmatched is not None:
            trigger = self.draw(choices.unmatched)
        else:
            trigger = self.unknown()
        self.record(trigger, self.random_payload(trigger))

    def unknown(self) -> str:
        name: str = self.draw(_NAMES)
        while name in self.machine.triggers:
            name += "_x"
        return name

    def random_payload(self, trigger: str) -> dict[str, Any]:
        extra = self.draw(self.plan.random_payloads)
        return {**self.base(trigger), **extra}

    def anything(self) -> None:
        """One event of any kind; the machine decides whether it is accepted."""
        kind = self.draw(_ANY_KIND)
        if kind == "legal" and self.legal():
            return
        triggers = self.plan.triggers
        trigger = self.unknown() if kind == "unknown" or triggers is None else self.draw(triggers)
        self.record(trigger, self.random_payload(trigger))


def _check(machine: Machine, start: str | None, min_size: int, max_size: int) -> str:
    if not isinstance(machine, Machine):
        raise UsageError(f"expected a compiled Machine, not {type(machine).__name__}")
    if min_size < 0 or max_size < min_size:
        raise UsageError(f"need 0 <= min_size <= max_size, not {min_size} and {max_size}")
    state = machine.initial if start is None else start
    if state not in machine.states:
        raise UsageError(f"start state {state!r} is not a state of machine {machine.name!r}")
    return state


def event_sequences(
    machine: Machine,
    *,
    start: str | None = None,
    min_size: int = 0,
    max_size: int = 10,
    payloads: Payloads = None,
) -> SearchStrategy[tuple[Event, ...]]:
    """Walks of ``machine`` made only of events it accepts.

    Args:
        machine: the compiled machine.
        start: the state to start from (default: the initial state).
        min_size, max_size: the length of a walk. A walk is shorter than ``min_size`` when it
            reaches a terminal state (or a state no move can leave) first.
        payloads: base payloads (see the module docstring).

    Returns:
        A strategy of tuples of :class:`Event`, each with ``accepted`` true, each starting in
        the state the one before it ended in.

    Raises:
        UsageError: an argument is out of range, or ``start`` is not a state of ``machine``.
    """
    state = _check(machine, start, min_size, max_size)
    plan = _plan(machine)
    _bases(payloads)

    @st.composite
    def walks(draw: DrawFn) -> tuple[Event, ...]:
        walker = _Walker(draw, plan, state, payloads)
        size = draw(st.integers(min_size, max_size))
        while len(walker.events) < size and walker.legal():
            pass
        return tuple(walker.events)

    return walks()


def invalid_sequences(
    machine: Machine,
    *,
    start: str | None = None,
    min_size: int = 1,
    max_size: int = 10,
    payloads: Payloads = None,
) -> SearchStrategy[tuple[Event, ...]]:
    """Walks of ``machine`` with illegal events mixed in: at least one event is refused.

    Each step is, by the draw, a legal move or an illegal event (see the module docstring);
    after a refused event the walk goes on from the same state, as a reducer's would.

    Args:
        As :func:`event_sequences`; ``min_size`` is at least 1.

    Returns:
        A strategy of tuples of :class:`Event`, at least one with ``accepted`` false.

    Raises:
        UsageError: as :func:`event_sequences`.
    """
    state = _check(machine, start, max(min_size, 1), max(max_size, 1))
    plan = _plan(machine)
    _bases(payloads)
    low, high = max(min_size, 1), max(max_size, 1)

    @st.composite
    def walks(draw: DrawFn) -> tuple[Event, ...]:
        walker = _Walker(draw, plan, state, payloads)
        size = draw(st.integers(low, high))
        while len(walker.events) < size:
            must = len(walker.events) == size - 1 and not walker.refused
            if must or draw(_ONE_IN_THREE) or not walker.legal():
                walker.illegal()
        return tuple(walker.events)

    return walks()


def any_triggers(
    machine: Machine,
    *,
    start: str | None = None,
    min_size: int = 0,
    max_size: int = 10,
    payloads: Payloads = None,
) -> SearchStrategy[tuple[Event, ...]]:
    """Sequences of any triggers — the machine's, with aimed or random payloads, and unknown
    ones — each annotated with what the machine did with it.

    Args:
        As :func:`event_sequences`.

    Raises:
        UsageError: as :func:`event_sequences`.
    """
    state = _check(machine, start, min_size, max_size)
    plan = _plan(machine)
    _bases(payloads)

    @st.composite
    def walks(draw: DrawFn) -> tuple[Event, ...]:
        walker = _Walker(draw, plan, state, payloads)
        size = draw(st.integers(min_size, max_size))
        while len(walker.events) < size:
            walker.anything()
        return tuple(walker.events)

    return walks()
