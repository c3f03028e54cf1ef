"""Finite state machines: compiled once from plain data, fired as a pure table lookup.

What lives here, and what must not:

- **Here:** the input specs (:class:`StateSpec`, :class:`TransitionSpec`, :class:`GuardSpec`), the
  structural checks that turn a bad machine into one :class:`~onex_core.errors.MachineError`
  listing every problem, the compiled :class:`Machine`, and :func:`fire`, which answers "in this
  state, on this trigger, with this data, what happens?" as a value, :class:`Fired` or
  :class:`Rejected`.
- **Not here:** YAML (``onex_contracts`` builds the specs), events, sequence numbers and intents
  (:mod:`onex_core.reducers` wraps a machine into a reducer), clocks, I/O, and any mutable
  "current state". A machine is a frozen table; the caller holds the state and passes it in.

How a trigger is resolved. :func:`build_machine` precomputes, for every non-terminal state and
every trigger that can leave it, one tuple of candidate transitions: the transitions declared
from exactly that state, highest priority first, followed by the wildcard transitions
(``from_state="*"``) for that trigger, highest priority first. There are no ties to break: two
transitions with the same ``(from_state, trigger, priority)`` make the machine ambiguous, which
:func:`build_machine` refuses. So exact transitions are always tried before wildcards,
whatever their priorities, and priority orders the guarded alternatives within each group.
:func:`fire` walks the candidates and takes the first whose *required* guards all pass. Guards with
``required=False`` are advisory: they are evaluated for the winning transition and the ones that
failed are reported on :attr:`Fired.failed_advisories`, but they never block. Terminal states are
final: nothing leaves them, not even a wildcard.

What :func:`fire` returns. :class:`Fired` names the transition and lists the actions to run, in
order: the exit actions of the source state, then the transition's own actions, then the entry
actions of the target state. A self-transition (source == target) leaves and re-enters its
state, so it runs the exit *and* entry actions too. :class:`Rejected` says why nothing happened
(:class:`RejectReason`) and, for a guard rejection, which guards failed. There is no "new state"
in a rejection, so a rejected trigger leaves the state untouched by construction. :func:`fire`
never raises, whatever state, trigger or data it is given.

Speed. Every :class:`Fired` a machine can return without advisory failures is built once, at
compile time; firing is one nested dictionary lookup, a call per required guard, and returning
a prebuilt value.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal

from onex_core.conditions import Condition, parse_condition
from onex_core.errors import GuardError, MachineError, Problem
from onex_core.messages import EMPTY_MAPPING

__all__ = [
    "EMPTY",
    "WILDCARD",
    "Fired",
    "Guard",
    "GuardSpec",
    "Machine",
    "RejectReason",
    "Rejected",
    "StateSpec",
    "Transition",
    "TransitionSpec",
    "build_machine",
    "fire",
]

WILDCARD: Final = "*"
"""The ``from_state`` of a transition that leaves every non-terminal state."""


EMPTY: Final[Mapping[str, Any]] = EMPTY_MAPPING
"""An empty, read-only mapping: the default guard data."""


# --------------------------------------------------------------------------- input specs


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One state as declared. ``timeout_ms`` and ``description`` are carried for the runtime and
    for diagrams; the interpreter itself does not read them."""

    name: str
    terminal: bool = False
    entry_actions: tuple[str, ...] = ()
    exit_actions: tuple[str, ...] = ()
    timeout_ms: int | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class GuardSpec:
    """One guard as declared: a condition expression (see :mod:`onex_core.conditions`).

    ``required=False`` makes it advisory: reported when it fails, never blocking. ``name``
    defaults to the expression. ``message``, when given, is the human sentence a refusal
    carries (see :attr:`Rejected.failed_messages`).
    """

    expression: str
    required: bool = True
    name: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """One transition as declared. ``from_state="*"`` leaves every non-terminal state.
    Higher ``priority`` is tried first."""

    from_state: str
    to_state: str
    trigger: str
    priority: int = 0
    conditions: tuple[GuardSpec, ...] = ()
    actions: tuple[str, ...] = ()
    name: str | None = None


# --------------------------------------------------------------------------- compiled machine


@dataclass(frozen=True, slots=True)
class Guard:
    """A compiled guard: its name (the expression unless named), condition, whether it
    blocks, and the human message a refusal carries (``None`` when none was declared)."""

    name: str
    condition: Condition
    required: bool = True
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A compiled transition. ``source`` is the declared ``from_state`` (``"*"`` for a
    wildcard); ``name`` is the declared name or ``"source--trigger-->target"``; ``index`` is its
    position in the declaration."""

    name: str
    source: str
    target: str
    trigger: str
    priority: int
    guards: tuple[Guard, ...]
    actions: tuple[str, ...]
    index: int


class RejectReason(StrEnum):
    """Why :func:`fire` did nothing."""

    UNKNOWN_STATE = "unknown_state"
    TERMINAL_STATE = "terminal_state"
    NO_TRANSITION = "no_transition"
    GUARD_FAILED = "guard_failed"


@dataclass(frozen=True, slots=True)
class Fired:
    """A transition fired: move from ``source`` to ``target`` and run ``actions`` in order.

    ``ok`` is ``True`` (and ``False`` on :class:`Rejected`), so ``if result.ok:`` tells the two
    apart and narrows the type. ``failed_advisories`` names the advisory guards of this
    transition that did not pass.
    """

    ok: ClassVar[Literal[True]] = True

    source: str
    target: str
    trigger: str
    transition: str
    actions: tuple[str, ...]
    failed_advisories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """Nothing fired; the state stays ``state``. ``failed_guards`` names, for a guard rejection,
    every required guard that failed across all candidate transitions, in candidate order;
    ``failed_messages`` holds the declared messages of those guards (only the guards that have
    one, without repeats, in the same order)."""

    ok: ClassVar[Literal[False]] = False

    state: str
    trigger: str
    reason: RejectReason
    failed_guards: tuple[str, ...] = ()
    failed_messages: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """Why nothing happened, in one line."""
        if self.reason is RejectReason.UNKNOWN_STATE:
            return f"unknown state {self.state!r}; trigger {self.trigger!r} ignored"
        if self.reason is RejectReason.TERMINAL_STATE:
            return f"state {self.state!r} is terminal; trigger {self.trigger!r} ignored"
        if self.reason is RejectReason.NO_TRANSITION:
            return f"no transition from state {self.state!r} on trigger {self.trigger!r}"
        blocked = f"trigger {self.trigger!r} in state {self.state!r} blocked"
        guards = ", ".join(self.failed_guards)
        if self.failed_messages:
            return f"{blocked}: {'; '.join(self.failed_messages)} (failed guards: {guards})"
        return f"{blocked} by failed guards: {guards}"


_Check = Callable[[Mapping[str, Any]], bool]
# (all required guards as one check or None, advisory (name, check) pairs, the prebuilt Fired,
# the transition)
_Candidate = tuple[_Check | None, tuple[tuple[str, _Check], ...], Fired, Transition]


@dataclass(frozen=True, slots=True)
class Machine:
    """A compiled, validated state machine. Build one with :func:`build_machine`.

    ``states`` and ``triggers`` keep declaration order (for diagrams and docs);
    ``terminal_states`` is a set. Equality compares the declaration, not the lookup tables
    derived from it.
    """

    name: str
    initial: str
    states: tuple[str, ...]
    terminal_states: frozenset[str]
    triggers: tuple[str, ...]
    transitions: tuple[Transition, ...]
    state_specs: tuple[StateSpec, ...]
    _table: Mapping[str, Mapping[str, tuple[_Candidate, ...]]] = dataclasses.field(
        repr=False, compare=False, hash=False
    )

    def candidates(self, state: str, trigger: str) -> tuple[Transition, ...]:
        """The transitions :func:`fire` tries for ``(state, trigger)``, in the order it tries
        them; empty for unknown, terminal or unmatched pairs."""
        row = self._table.get(state, EMPTY)
        return tuple(candidate[3] for candidate in row.get(trigger, ()))

    def spec(self, state: str) -> StateSpec:
        """The declaration of ``state``.

        Raises:
            KeyError: ``state`` is not a state of this machine.
        """
        for spec in self.state_specs:
            if spec.name == state:
                return spec
        raise KeyError(state)


def fire(
    machine: Machine, state: str, trigger: str, data: Mapping[str, Any] = EMPTY
) -> Fired | Rejected:
    """Resolve ``trigger`` in ``state``; pure, and never raises.

    Args:
        machine: a machine from :func:`build_machine`.
        state: the current state's name.
        trigger: what happened.
        data: what guards read (a mapping; see :mod:`onex_core.conditions`).

    Returns:
        :class:`Fired` for the first candidate whose required guards pass, otherwise
        :class:`Rejected` with the reason. Nothing is mutated either way.
    """
    try:
        candidates = machine._table[state][trigger]
    except (KeyError, TypeError):
        return _refuse(machine, state, trigger)
    for check, advisories, fired, _ in candidates:
        if check is None or check(data):
            if advisories:
                return _advise(fired, advisories, data)
            return fired
    return _guard_rejection(state, trigger, candidates, data)


def _refuse(machine: Machine, state: Any, trigger: Any) -> Rejected:
    # Cold path. Tuple membership compares with ==, so an unhashable state cannot raise here.
    if state not in machine.states:
        reason = RejectReason.UNKNOWN_STATE
    elif state in machine.terminal_states:
        reason = RejectReason.TERMINAL_STATE
    else:
        reason = RejectReason.NO_TRANSITION
    return Rejected(state, trigger, reason)


def _advise(
    fired: Fired, advisories: tuple[tuple[str, _Check], ...], data: Mapping[str, Any]
) -> Fired:
    failed = tuple(name for name, check in advisories if not check(data))
    if not failed:
        return fired
    return dataclasses.replace(fired, failed_advisories=failed)


def _guard_rejection(
    state: str, trigger: str, candidates: tuple[_Candidate, ...], data: Mapping[str, Any]
) -> Rejected:
    failed: dict[str, None] = {}
    messages: dict[str, None] = {}
    for _, _, _, transition in candidates:
        for guard in transition.guards:
            if guard.required and not guard.condition.evaluate(data):
                failed[guard.name] = None
                if guard.message is not None:
                    messages[guard.message] = None
    return Rejected(state, trigger, RejectReason.GUARD_FAILED, tuple(failed), tuple(messages))


# --------------------------------------------------------------------------- building


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def build_machine(
    name: str,
    initial: str,
    states: Sequence[StateSpec],
    transitions: Sequence[TransitionSpec],
) -> Machine:
    """Validate a machine's structure and compile it.

    Args:
        name: the machine's name, for messages.
        initial: the state a new instance starts in.
        states: every state, in declaration order.
        transitions: every transition, in declaration order.

    Returns:
        A frozen :class:`Machine`.

    Raises:
        MachineError: listing *every* problem found, each with the path of the offending
            element (``("transitions", 3, "to_state")``): empty or duplicate names, an unknown
            initial state, transitions from or to unknown states, transitions out of terminal
            states, ambiguous ``(from_state, trigger, priority)`` duplicates, guards that do not
            parse, empty action names and states unreachable from ``initial``.
    """
    problems: list[Problem] = []

    def problem(message: str, *path: str | int) -> None:
        problems.append(Problem(message, path))

    if not _is_name(name):
        problem("the machine name must be a non-empty string", "name")

    specs: dict[str, StateSpec] = {}
    position: dict[str, int] = {}
    if not states:
        problem("a machine needs at least one state", "states")
    for i, state in enumerate(states):
        _check_state(state, i, specs, position, problem)
    terminal = frozenset(n for n, spec in specs.items() if spec.terminal)

    initial_ok = _is_name(initial) and initial in specs
    if not initial_ok:
        problem(f"initial state {initial!r} is not a declared state", "initial")

    compiled: list[Transition] = []
    first_with_key: dict[tuple[str, str, int], int] = {}
    first_with_name: dict[str, int] = {}
    for j, spec in enumerate(transitions):
        transition = _compile_transition(spec, j, specs, terminal, problem)
        key = (spec.from_state, spec.trigger, spec.priority)
        try:
            earlier = first_with_key.setdefault(key, j)
        except TypeError:  # an unhashable field, already reported
            earlier = j
        if earlier != j:
            problem(
                f"same from_state {spec.from_state!r}, trigger {spec.trigger!r} and priority "
                f"{spec.priority} as transitions[{earlier}]: which one fires is ambiguous",
                "transitions",
                j,
            )
        if _is_name(spec.name):
            assert spec.name is not None
            earlier = first_with_name.setdefault(spec.name, j)
            if earlier != j:
                problem(
                    f"duplicate transition name {spec.name!r}; first used by "
                    f"transitions[{earlier}]",
                    "transitions",
                    j,
                    "name",
                )
        if transition is not None:
            compiled.append(transition)

    if initial_ok:
        reached = _reachable(initial, compiled, terminal)
        for i, state in enumerate(states):
            name_ok = isinstance(state.name, str)
            if name_ok and position.get(state.name) == i and state.name not in reached:
                problem(
                    f"state {state.name!r} is unreachable from initial state {initial!r}",
                    "states",
                    i,
                )

    if problems:
        raise MachineError(name if isinstance(name, str) else repr(name), problems)

    triggers = tuple(dict.fromkeys(t.trigger for t in compiled))
    return Machine(
        name=name,
        initial=initial,
        states=tuple(specs),
        terminal_states=terminal,
        triggers=triggers,
        transitions=tuple(compiled),
        state_specs=tuple(specs.values()),
        _table=_table(specs, compiled, triggers),
    )


def _check_state(
    state: StateSpec,
    i: int,
    specs: dict[str, StateSpec],
    position: dict[str, int],
    problem: Callable[..., None],
) -> None:
    if not _is_name(state.name):
        problem("a state name must be a non-empty string", "states", i, "name")
        return
    if state.name == WILDCARD:
        problem(
            "'*' is reserved for wildcard transitions and cannot name a state", "states", i, "name"
        )
        return
    if state.name in position:
        problem(
            f"duplicate state {state.name!r}; first declared as states[{position[state.name]}]",
            "states",
            i,
            "name",
        )
        return
    position[state.name] = i
    specs[state.name] = state
    for field_name in ("entry_actions", "exit_actions"):
        for k, action in enumerate(getattr(state, field_name)):
            if not _is_name(action):
                problem("an action name must be a non-empty string", "states", i, field_name, k)
    timeout = state.timeout_ms
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0
    ):
        problem("timeout_ms must be a positive integer", "states", i, "timeout_ms")


def _compile_transition(
    spec: TransitionSpec,
    j: int,
    specs: Mapping[str, StateSpec],
    terminal: frozenset[str],
    problem: Callable[..., None],
) -> Transition | None:
    ok = True
    if not _is_name(spec.trigger):
        problem("the trigger must be a non-empty string", "transitions", j, "trigger")
        ok = False
    source = spec.from_state
    if source != WILDCARD:
        if not _is_name(source) or source not in specs:
            problem(
                f"from_state {source!r} is not a declared state", "transitions", j, "from_state"
            )
            ok = False
        elif source in terminal:
            problem(
                f"transition out of terminal state {source!r}; terminal states are final",
                "transitions",
                j,
                "from_state",
            )
            ok = False
    if not _is_name(spec.to_state) or spec.to_state not in specs:
        problem(f"to_state {spec.to_state!r} is not a declared state", "transitions", j, "to_state")
        ok = False
    if spec.name is not None and not _is_name(spec.name):
        problem("a transition name must be a non-empty string when given", "transitions", j, "name")
        ok = False
    if not isinstance(spec.priority, int) or isinstance(spec.priority, bool):
        problem("priority must be an integer", "transitions", j, "priority")
        ok = False

    guards: list[Guard] = []
    for k, guard in enumerate(spec.conditions):
        if guard.name is not None and not _is_name(guard.name):
            problem(
                "a guard name must be a non-empty string when given",
                "transitions",
                j,
                "conditions",
                k,
                "name",
            )
            ok = False
        if guard.message is not None and not _is_name(guard.message):
            problem(
                "a guard message must be a non-empty string when given",
                "transitions",
                j,
                "conditions",
                k,
                "message",
            )
            ok = False
        try:
            condition = parse_condition(guard.expression)
        except GuardError as exc:
            problem(exc.message, "transitions", j, "conditions", k)
            ok = False
            continue
        guards.append(
            Guard(guard.name or guard.expression, condition, bool(guard.required), guard.message)
        )
    for k, action in enumerate(spec.actions):
        if not _is_name(action):
            problem("an action name must be a non-empty string", "transitions", j, "actions", k)
            ok = False

    if not ok:
        return None
    name = spec.name or f"{source}--{spec.trigger}-->{spec.to_state}"
    return Transition(
        name=name,
        source=source,
        target=spec.to_state,
        trigger=spec.trigger,
        priority=spec.priority,
        guards=tuple(guards),
        actions=tuple(spec.actions),
        index=j,
    )


def _reachable(
    initial: str, transitions: Sequence[Transition], terminal: frozenset[str]
) -> set[str]:
    """States reachable from ``initial``; a wildcard edge leaves every non-terminal state."""
    edges: dict[str, list[str]] = {}
    wildcard_targets: list[str] = []
    for transition in transitions:
        if transition.source == WILDCARD:
            wildcard_targets.append(transition.target)
        else:
            edges.setdefault(transition.source, []).append(transition.target)
    reached = {initial}
    queue = deque([initial])
    wildcards_followed = False
    while queue:
        state = queue.popleft()
        targets = edges.get(state, [])
        if not wildcards_followed and state not in terminal:
            targets = [*targets, *wildcard_targets]
            wildcards_followed = True
        for target in targets:
            if target not in reached:
                reached.add(target)
                queue.append(target)
    return reached


def _table(
    specs: Mapping[str, StateSpec], transitions: Sequence[Transition], triggers: tuple[str, ...]
) -> Mapping[str, Mapping[str, tuple[_Candidate, ...]]]:
    def by_priority(group: list[Transition]) -> list[Transition]:
        return sorted(group, key=lambda t: (-t.priority, t.index))

    exact: dict[tuple[str, str], list[Transition]] = {}
    wildcard: dict[str, list[Transition]] = {}
    for transition in transitions:
        if transition.source == WILDCARD:
            wildcard.setdefault(transition.trigger, []).append(transition)
        else:
            exact.setdefault((transition.source, transition.trigger), []).append(transition)

    table: dict[str, dict[str, tuple[_Candidate, ...]]] = {}
    for name, spec in specs.items():
        row: dict[str, tuple[_Candidate, ...]] = {}
        if not spec.terminal:
            for trigger in triggers:
                ordered = by_priority(exact.get((name, trigger), []))
                ordered += by_priority(wildcard.get(trigger, []))
                if ordered:
                    row[trigger] = tuple(_candidate(spec, t, specs) for t in ordered)
        table[name] = row
    return table


def _candidate(
    source: StateSpec, transition: Transition, specs: Mapping[str, StateSpec]
) -> _Candidate:
    target = specs[transition.target]
    fired = Fired(
        source=source.name,
        target=target.name,
        trigger=transition.trigger,
        transition=transition.name,
        actions=(*source.exit_actions, *transition.actions, *target.entry_actions),
    )
    checks = tuple(g.condition.evaluate for g in transition.guards if g.required)
    advisories = tuple((g.name, g.condition.evaluate) for g in transition.guards if not g.required)
    return (_all_of(checks), advisories, fired, transition)


def _all_of(checks: tuple[_Check, ...]) -> _Check | None:
    """One callable for a transition's required guards; ``None`` when there is none."""
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def all_pass(data: Mapping[str, Any]) -> bool:
        for check in checks:  # noqa: SIM110 - a generator in all() costs a frame per call
            if not check(data):
                return False
        return True

    return all_pass
