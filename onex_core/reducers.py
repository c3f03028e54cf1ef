"""Reducers: ``(state, event) -> Reduction(state, intents)``, and a separate :func:`fold`.

A reducer is any callable that takes the current state and one event and returns a
:class:`Reduction`: the next state, the intents (requests for effects, as data) that the step
produced, and, when nothing happened, why. Reducers are pure: no I/O, no clock, no random ids;
the same state and event always give an equal reduction. :func:`fold` applies a reducer to a
sequence of events and keeps every intent, in order.

:class:`FsmReducer` turns a compiled :class:`~onex_core.fsm.Machine` into a reducer over
:class:`FsmState`. One step:

1. with ``sequence_of``, an event whose sequence is not greater than ``state.sequence`` is a
   duplicate or arrived out of order: the *same state object* comes back, with no intents;
2. ``trigger_of(event)`` names the trigger; ``None`` means the event is not for this machine
   (same state, no intents);
3. in a terminal state, a trigger listed in ``restart_on`` restarts the machine: it fires from
   ``machine.initial`` with ``attempt + 1`` and empty data (a node that expired re-registers);
   the restarted state is what guards, ``update`` and builders see as "before";
4. the machine fires with the guard data: by default a read-only view whose top-level keys are
   the event payload's (an :class:`~onex_core.messages.Envelope`'s ``payload``, or the event
   itself if it is a mapping) and whose key ``state`` is ``state.data``, so guards can say
   ``node_id exists`` or ``state.ack_timeouts < 2`` (a payload key named ``state`` is hidden);
5. a rejection returns the state unchanged, no intents, and the :class:`~onex_core.fsm.Rejected`
   on :attr:`Reduction.rejected`; a transition returns the new state and the intents built by
   the action builders, one call per action of :attr:`~onex_core.fsm.Fired.actions`, in order.

An action builder that raises propagates its exception; since the step is pure, the caller still
holds the old state and nothing happened.

Speed. A step should cost little more than building what it returns, so:

- :class:`Reduction`, :class:`FsmState` and :class:`ActionContext` are named tuples (immutable,
  fields read at C speed, built in a third of the time of a frozen dataclass) with *strict*
  equality: they equal only an instance of the same class, never a plain tuple. Use
  ``_replace`` to derive a changed copy.
- :class:`FsmReducer` compiles its own table from the machine's: for each ``(state, trigger)``
  the same candidates :func:`~onex_core.fsm.fire` walks, each with its builders looked up
  once, and whether any guard reads ``state`` (when none does, the payload itself is the guard
  data and no view is built; when no guard exists, no guard data is built at all). The step
  resolves transitions exactly as :func:`~onex_core.fsm.fire` does and delegates every
  rejection to it, so rejections are :func:`~onex_core.fsm.fire`'s own; a test holds the two to
  the same answers. The step reads :class:`FsmState` fields by index (``state[1]`` is
  ``sequence``) and calls the builder of a one-action transition directly, without a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, NamedTuple, Protocol, TypeAlias, TypeVar

from onex_core.errors import ContractError, UsageError
from onex_core.fsm import EMPTY, Fired, Machine, Rejected, _advise, fire
from onex_core.intents import Intent
from onex_core.messages import Envelope

__all__ = [
    "ActionBuilder",
    "ActionContext",
    "FsmReducer",
    "FsmState",
    "Reducer",
    "Reduction",
    "fold",
]

S = TypeVar("S")
E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)

_tuple_new = tuple.__new__
_tuple_eq = tuple.__eq__


def _strict_eq(self: tuple[Any, ...], other: object) -> bool:
    return type(other) is type(self) and _tuple_eq(self, other)


def _strict_ne(self: tuple[Any, ...], other: object) -> bool:
    return not _strict_eq(self, other)


class _ReductionFields(NamedTuple, Generic[S]):
    state: S
    intents: tuple[Intent, ...] = ()
    rejected: Rejected | None = None


class Reduction(_ReductionFields[S]):
    """What one reducer step (or a :func:`fold`) produced.

    ``rejected`` says why nothing happened when the machine refused the trigger; it is ``None``
    when a transition fired and also when the event was skipped (a duplicate, out of order, or
    not for this machine).
    """

    __slots__ = ()
    __eq__ = _strict_eq
    __ne__ = _strict_ne
    __hash__ = tuple.__hash__


class Reducer(Protocol[S, E_contra]):
    """A pure step function: ``reducer(state, event) -> Reduction``."""

    def __call__(self, state: S, event: E_contra, /) -> Reduction[S]: ...


def fold(reducer: Reducer[S, E], state: S, events: Iterable[E]) -> Reduction[S]:
    """Apply ``reducer`` to each event in turn, starting from ``state``.

    Args:
        reducer: the step function.
        state: the state before the first event.
        events: the events, in order.

    Returns:
        The final state, every intent of every step in order (none is dropped), and the
        ``rejected`` of the *last* step (``None`` if it fired or was skipped, or if there were no
        events). Pure: equal inputs give equal outputs.

    Raises:
        Whatever the reducer raises; the caller's ``state`` is untouched, as always.
    """
    intents: list[Intent] = []
    rejected: Rejected | None = None
    for event in events:
        step = reducer(state, event)
        state = step.state
        intents.extend(step.intents)
        rejected = step.rejected
    return Reduction(state, tuple(intents), rejected)


class _FsmStateFields(NamedTuple):
    name: str
    sequence: int = -1
    attempt: int = 0
    data: Mapping[str, Any] = EMPTY


class FsmState(_FsmStateFields):
    """The state an :class:`FsmReducer` folds over.

    Args:
        name: the machine state.
        sequence: the sequence number of the last applied event; ``-1`` when none was (and
            unchanged by steps when the reducer has no ``sequence_of``).
        attempt: how many times the machine restarted from a terminal state.
        data: extended state (counters, flags), read by guards as ``state.<key>``; treat it as
            read-only.
    """

    __slots__ = ()
    __eq__ = _strict_eq
    __ne__ = _strict_ne
    __hash__ = tuple.__hash__


class _ActionContextFields(NamedTuple, Generic[E]):
    event: E
    before: FsmState
    after: FsmState
    fired: Fired
    action: str
    index: int  # type: ignore[assignment]  # shadows tuple.index: the field is what builders need


class ActionContext(_ActionContextFields[E]):
    """What an action builder sees: the event, the states before and after the step, the
    transition, the action's name, and ``index``, the number of intents already built in this
    step, so ``intent_id_for(event.envelope_id, intent_type, ctx.index)`` is unique per step."""

    __slots__ = ()
    __eq__ = _strict_eq
    __ne__ = _strict_ne
    __hash__ = tuple.__hash__


ActionBuilder: TypeAlias = Callable[[ActionContext[E]], Intent | Iterable[Intent] | None]
"""Builds the intents of one action: an :class:`Intent`, an iterable of them, or ``None``."""


class _GuardData(Mapping[str, Any]):
    """The default guard data: the payload's keys, plus ``state`` for the extended state."""

    __slots__ = ("_payload", "_state")

    def __init__(self, payload: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        self._payload = payload
        self._state = state

    def __getitem__(self, key: str) -> Any:
        if key == "state":
            return self._state
        return self._payload[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key == "state":
            return self._state
        return self._payload.get(key, default)

    def __iter__(self) -> Iterator[str]:
        yield "state"
        for key in self._payload:
            if key != "state":
                yield key

    def __len__(self) -> int:
        return len(self._payload) + (0 if "state" in self._payload else 1)


def _payload_of(event: object) -> Mapping[str, Any]:
    if isinstance(event, Envelope):
        return event.payload
    if isinstance(event, Mapping):
        return event
    payload = getattr(event, "payload", None)
    return payload if isinstance(payload, Mapping) else EMPTY


def _rejection(machine: Machine, state: str, trigger: str, data: Mapping[str, Any]) -> Rejected:
    result = fire(machine, state, trigger, data)
    assert not result.ok, "the reducer's table and fire() disagree"
    return result


# What the guard data must offer for one (state, trigger): nothing, the payload, or the view.
_NO_GUARDS, _PAYLOAD, _VIEW = 0, 1, 2

_Check = Callable[[Mapping[str, Any]], bool]
_Plan = tuple[tuple[str, Callable[[Any], Any]], ...]
# all required guards as one check or None, advisories, fired, its target, (action, builder)
# pairs, and the only builder when there is exactly one (the usual case: no loop, no index)
_Step = tuple[
    _Check | None, tuple[tuple[str, _Check], ...], Fired, str, _Plan, Callable[[Any], Any] | None
]


class FsmReducer(Generic[E]):
    """A :class:`~onex_core.fsm.Machine` as a reducer over :class:`FsmState`; see the module
    docstring for the five steps.

    Args:
        machine: the compiled machine.
        trigger_of: the trigger an event means, or ``None`` for events of no concern.
        actions: a builder for every action name the machine uses.
        sequence_of: the event's sequence number; enables duplicate and reorder detection.
        update: the new ``data`` after a transition, from the state before it, the event and
            the transition (default: keep ``data``).
        guard_data: what guards read (default: the payload view described above). It is only
            called when a candidate transition has guards.
        restart_on: triggers that restart the machine from a terminal state.
        ignore_actions: action names that build nothing.

    Raises:
        ContractError: the machine uses an action that has no builder and is not ignored, or
            ``restart_on`` names a trigger that cannot leave the initial state (so a restart
            could never happen). Every such name is listed.
    """

    __slots__ = (
        "_guard_data",
        "_initial",
        "_machine",
        "_restart_on",
        "_sequence_of",
        "_table",
        "_terminal",
        "_trigger_of",
        "_update",
    )

    def __init__(
        self,
        machine: Machine,
        *,
        trigger_of: Callable[[E], str | None],
        actions: Mapping[str, ActionBuilder[E]],
        sequence_of: Callable[[E], int] | None = None,
        update: Callable[[FsmState, E, Fired], Mapping[str, Any]] | None = None,
        guard_data: Callable[[FsmState, E], Mapping[str, Any]] | None = None,
        restart_on: frozenset[str] = frozenset(),
        ignore_actions: frozenset[str] = frozenset(),
    ) -> None:
        used: dict[str, None] = {}
        for spec in machine.state_specs:
            used.update(dict.fromkeys(spec.exit_actions))
            used.update(dict.fromkeys(spec.entry_actions))
        for transition in machine.transitions:
            used.update(dict.fromkeys(transition.actions))
        problems = []
        missing = [name for name in used if name not in actions and name not in ignore_actions]
        if missing:
            problems.append(
                "no builder for action(s) "
                + ", ".join(repr(name) for name in missing)
                + " (add a builder, or list the action in ignore_actions)"
            )
        stuck = sorted(t for t in restart_on if not machine.candidates(machine.initial, t))
        if stuck:
            problems.append(
                f"restart_on names trigger(s) that do not leave initial state "
                f"{machine.initial!r}: " + ", ".join(repr(trigger) for trigger in stuck)
            )
        if problems:
            raise ContractError(f"reducer for machine {machine.name!r}: " + "; ".join(problems))

        builders = {name: actions[name] for name in used if name not in ignore_actions}
        table: dict[str, dict[str, tuple[int, tuple[_Step, ...]]]] = {}
        # The machine's own table (same package): the candidates fire() walks, in its order.
        for state, row in machine._table.items():
            table[state] = {}
            for trigger, candidates in row.items():
                steps = []
                reads = _NO_GUARDS
                for check, advisories, fired, transition in candidates:
                    plan = tuple(
                        (action, builders[action]) for action in fired.actions if action in builders
                    )
                    only = plan[0][1] if len(plan) == 1 else None
                    steps.append((check, advisories, fired, fired.target, plan, only))
                    for guard in transition.guards:
                        reads = max(
                            reads, _VIEW if guard.condition.path[0] == "state" else _PAYLOAD
                        )
                table[state][trigger] = (reads, tuple(steps))

        self._machine = machine
        self._table = table
        self._initial = machine.initial
        self._terminal = machine.terminal_states
        self._trigger_of = trigger_of
        self._sequence_of = sequence_of
        self._update = update
        self._guard_data = guard_data
        self._restart_on = frozenset(restart_on)

    @property
    def machine(self) -> Machine:
        """The machine this reducer interprets."""
        return self._machine

    def __call__(self, state: FsmState, event: E) -> Reduction[FsmState]:
        """One step. Pure; returns ``state`` itself when nothing happens.

        Raises:
            UsageError: an action builder returned something that is not an :class:`Intent`,
                an iterable of them, or ``None``.
            Whatever an action builder, ``trigger_of``, ``sequence_of``, ``update`` or
            ``guard_data`` raises. The input state is untouched either way.
        """
        sequence_of = self._sequence_of
        if sequence_of is None:
            sequence = state[1]
        else:
            sequence = sequence_of(event)
            if sequence <= state[1]:
                return _tuple_new(Reduction, (state, (), None))
        trigger = self._trigger_of(event)
        if trigger is None:
            return _tuple_new(Reduction, (state, (), None))

        before = state
        restart_on = self._restart_on
        if restart_on and trigger in restart_on and state[0] in self._terminal:
            before = _tuple_new(FsmState, (self._initial, state[1], state[2] + 1, EMPTY))
        try:
            reads, steps = self._table[before[0]][trigger]
        except (KeyError, TypeError):  # unknown or terminal state, or no such transition
            return _tuple_new(
                Reduction, (state, (), _rejection(self._machine, before[0], trigger, EMPTY))
            )

        data: Mapping[str, Any] = EMPTY
        if reads:
            guard_data = self._guard_data
            if guard_data is not None:
                data = guard_data(before, event)
            else:
                payload = event.payload if isinstance(event, Envelope) else _payload_of(event)
                data = payload if reads == _PAYLOAD else _GuardData(payload, before[3])

        # Exactly fire()'s walk: the first candidate whose required guards all pass fires.
        for check, advisories, fired, target, plan, only in steps:
            if check is not None and not check(data):
                continue
            if advisories:
                fired = _advise(fired, advisories, data)
            update = self._update
            after = _tuple_new(
                FsmState,
                (
                    target,
                    sequence,
                    before[2],
                    before[3] if update is None else update(before, event, fired),
                ),
            )
            intents: tuple[Intent, ...]
            if only is not None:
                built = only(
                    _tuple_new(ActionContext, (event, before, after, fired, plan[0][0], 0))
                )
                if type(built) is Intent:
                    return _tuple_new(Reduction, (after, (built,), None))
                intents = () if built is None else _intents(built, plan[0][0], self._machine.name)
                return _tuple_new(Reduction, (after, intents, None))
            intents = ()
            for action, build in plan:  # a tuple grows cheaper than a list converts
                built = build(
                    _tuple_new(ActionContext, (event, before, after, fired, action, len(intents)))
                )
                if type(built) is Intent:
                    intents += (built,)
                elif built is not None:
                    intents += _intents(built, action, self._machine.name)
            return _tuple_new(Reduction, (after, intents, None))
        rejected = _rejection(self._machine, before[0], trigger, data)
        return _tuple_new(Reduction, (state, (), rejected))


def _intents(built: object, action: str, machine: str) -> tuple[Intent, ...]:
    """Check what a builder returned: an Intent (or subclass), or an iterable of them."""
    if isinstance(built, Intent):
        return (built,)
    what = f"action {action!r} of machine {machine!r} built"
    if not isinstance(built, Iterable) or isinstance(built, str | bytes):
        raise UsageError(
            f"{what} a {type(built).__name__}, not an Intent, an iterable of them or None"
        )
    items = tuple(built)
    for item in items:
        if not isinstance(item, Intent):
            raise UsageError(f"{what} a {type(item).__name__} inside an iterable, not an Intent")
    return items
