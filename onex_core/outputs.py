"""The node-kind output law, and projections.

ONEX has four kinds of node, and each may produce only certain things. The law is one table,
:data:`OUTPUT_LAW`, and it is enforced in one place: where an :class:`Output` is built. A handler
cannot hand the runtime an output its kind may not produce, because such an output cannot exist.

============  ======  =======  ===========  ========  ========  ============
kind          events  intents  projections  state     result    receives now
============  ======  =======  ===========  ========  ========  ============
orchestrator  may     may      never        never     never     yes
reducer       never   may      may          must      never     no
compute       never   never    never        never     must      no
effect        may     never    never        never     may       yes
============  ======  =======  ===========  ========  ========  ============

Orchestrators decide and effects touch the world, so both are given the current time (``now``).
Reducers and computes are pure functions of their input: given a ``now`` they could hide a clock
read inside a replay, so they are never given one (:func:`check_now`). A reducer's intents are
part of the real contract, ``reduce(state, event) -> (state, intents)``; the original
implementation forbade them in one place and required them in another.

*Absent is not None.* ``state`` and ``result`` default to :data:`ABSENT`, a sentinel that means
"this output does not carry the field". ``None`` is an ordinary value: a compute may legitimately
return ``None`` as its result, and a reducer's state may be ``None``. So ``Output.compute(None)``
is a valid output with result ``None``, while ``Output(NodeKind.COMPUTE)`` breaks the law (no
result). Test for the sentinel with ``output.result is ABSENT``.

*Sequences become tuples.* ``events``, ``intents`` and ``projections`` are stored as tuples, so
an output is immutable once built. Any other iterable (a list, typically, or a generator) is
copied into a tuple; a string, bytes or a mapping is refused, since iterating one is never what
was meant. Every element is type-checked.

A :class:`Projection` is the read model of one entity in one domain after an event was applied.
Events can arrive twice or out of order, so a store writes a projection only when it is not
stale (:func:`is_stale`): an older event never overwrites a newer one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final
from uuid import UUID

from onex_core.errors import OutputLawError, UsageError
from onex_core.intents import Intent
from onex_core.messages import Envelope

__all__ = [
    "ABSENT",
    "FIELDS",
    "OUTPUT_LAW",
    "Absent",
    "Law",
    "NodeKind",
    "Output",
    "Projection",
    "Rule",
    "check_now",
    "is_stale",
]


class NodeKind(StrEnum):
    """The four kinds of node. The value is the lowercase name used in contracts and logs."""

    ORCHESTRATOR = "orchestrator"
    REDUCER = "reducer"
    COMPUTE = "compute"
    EFFECT = "effect"


class Absent(Enum):
    """The type of :data:`ABSENT`. An enum so that the sentinel survives copying and pickling
    as the very same object, and so type checkers can narrow on ``is ABSENT``."""

    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent.ABSENT
"""The value of ``Output.state`` and ``Output.result`` when the output does not carry them."""


class Rule(StrEnum):
    """What the law says about one field of one kind's output."""

    FORBIDDEN = "forbidden"
    ALLOWED = "allowed"
    REQUIRED = "required"


FIELDS: Final = ("events", "intents", "projections", "state", "result")
"""The fields of an :class:`Output` that the law governs, in table order."""


@dataclass(frozen=True, slots=True)
class Law:
    """The law for one node kind: a :class:`Rule` per output field, and whether it gets ``now``.

    A field is *present* when it is a non-empty tuple (``events``, ``intents``,
    ``projections``) or not :data:`ABSENT` (``state``, ``result``).
    """

    events: Rule
    intents: Rule
    projections: Rule
    state: Rule
    result: Rule
    receives_now: bool

    def rule(self, field: str) -> Rule:
        """The rule for ``field``, one of :data:`FIELDS`.

        Raises:
            UsageError: ``field`` is not one of :data:`FIELDS`.
        """
        if field not in FIELDS:
            raise UsageError(f"{field!r} is not an output field; the fields are {FIELDS}")
        rule: Rule = getattr(self, field)
        return rule

    def describe(self) -> str:
        """The law in words, for error messages: ``"state required; intents, projections
        allowed; events, result forbidden; never given now"``."""
        parts = []
        for rule in (Rule.REQUIRED, Rule.ALLOWED, Rule.FORBIDDEN):
            names = [name for name in FIELDS if getattr(self, name) is rule]
            if names:
                parts.append(f"{', '.join(names)} {rule.value}")
        parts.append("given now" if self.receives_now else "never given now")
        return "; ".join(parts)


_F, _A, _R = Rule.FORBIDDEN, Rule.ALLOWED, Rule.REQUIRED

OUTPUT_LAW: Final[Mapping[NodeKind, Law]] = MappingProxyType(
    {
        NodeKind.ORCHESTRATOR: Law(
            events=_A, intents=_A, projections=_F, state=_F, result=_F, receives_now=True
        ),
        NodeKind.REDUCER: Law(
            events=_F, intents=_A, projections=_A, state=_R, result=_F, receives_now=False
        ),
        NodeKind.COMPUTE: Law(
            events=_F, intents=_F, projections=_F, state=_F, result=_R, receives_now=False
        ),
        NodeKind.EFFECT: Law(
            events=_A, intents=_F, projections=_F, state=_F, result=_A, receives_now=True
        ),
    }
)
"""The output law, read-only. See the module docstring for the table."""


def _kind(kind: object) -> NodeKind:
    if isinstance(kind, NodeKind):
        return kind
    if isinstance(kind, str):
        try:
            return NodeKind(kind)
        except ValueError:
            pass
    known = ", ".join(k.value for k in NodeKind)
    raise OutputLawError(f"unknown node kind {kind!r}; the kinds are {known}")


def check_now(kind: NodeKind | str, now: object) -> None:
    """Check that a node of ``kind`` is given ``now`` exactly when the law says so.

    Orchestrators and effects must be given a ``now`` (not ``None``); reducers and computes must
    be given ``None``.

    Raises:
        OutputLawError: the kind is unknown, or ``now`` is given (or missing) against the law.
    """
    kind = _kind(kind)
    if OUTPUT_LAW[kind].receives_now:
        if now is None:
            raise OutputLawError(f"a {kind.value} node must be given now, and was not")
    elif now is not None:
        raise OutputLawError(
            f"a {kind.value} node must never be given now (it is a pure function of its input)"
        )


# --------------------------------------------------------------------------- projections


@dataclass(frozen=True, slots=True)
class Projection:
    """The read model of one entity in one domain, as left by the event ``event_id``.

    ``state`` is the name of the entity's FSM state. ``sequence`` orders the entity's events;
    ``partition`` and ``offset`` say where the event was read, and break ties between events of
    equal sequence (see :func:`is_stale`). ``data`` is a JSON-like mapping; like an envelope's
    payload it is not copied, so treat it as read-only.

    Raises:
        UsageError: ``entity_id``, ``domain`` or ``state`` is empty, ``sequence`` or ``offset``
            is negative, or ``updated_at`` is naive.
    """

    entity_id: str
    domain: str
    state: str
    data: Mapping[str, Any]
    sequence: int
    event_id: UUID
    partition: str | None = None
    offset: int | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.entity_id or not self.domain or not self.state:
            raise UsageError("projection entity_id, domain and state must not be empty")
        if self.sequence < 0:
            raise UsageError(f"projection {self.entity_id!r}: sequence must not be negative")
        if self.offset is not None and self.offset < 0:
            raise UsageError(f"projection {self.entity_id!r}: offset must not be negative")
        if self.updated_at is not None and self.updated_at.utcoffset() is None:
            raise UsageError(f"projection {self.entity_id!r}: updated_at must be timezone-aware")


def is_stale(incoming: Projection, current: Projection | None) -> bool:
    """Whether ``incoming`` must not replace ``current``, the stored projection of its entity.

    ``incoming`` is stale when

    - its ``sequence`` is lower than ``current``'s; or
    - the sequences are equal, both come from the same partition, and ``incoming``'s offset is
      not strictly greater than ``current``'s — including an *exact replay* (same offset), and
      including the case where either offset is unknown, because then nothing shows that
      ``incoming`` is newer.

    At equal sequence from *different* partitions the offsets cannot be compared, and the
    incoming projection wins (as upstream does): this happens only when an entity's events
    moved partition, and the later arrival is the later fact.

    Stale-on-replay (``<=``, where upstream has ``<``) makes a store's write idempotent: a
    redelivered event is refused rather than rewritten, so ``put`` can report it as a duplicate.

    Returns:
        True if ``incoming`` is stale; False if it may be written (always False when there is
        no ``current``).

    Raises:
        UsageError: the two projections are of different entities or domains.
    """
    if current is None:
        return False
    if incoming.entity_id != current.entity_id or incoming.domain != current.domain:
        raise UsageError(
            f"cannot compare projections of {incoming.domain}/{incoming.entity_id!r} and "
            f"{current.domain}/{current.entity_id!r}"
        )
    if incoming.sequence != current.sequence:
        return incoming.sequence < current.sequence
    if incoming.partition != current.partition:
        return False
    if incoming.offset is None or current.offset is None:
        return True
    return incoming.offset <= current.offset


# --------------------------------------------------------------------------- outputs

_SEQUENCES: Final = (("events", Envelope), ("intents", Intent), ("projections", Projection))

# Per kind, the fields the law restricts: (position in FIELDS, name, is a sequence, forbidden —
# else required).
_CHECKS: Final[Mapping[NodeKind, tuple[tuple[int, str, bool, bool], ...]]] = MappingProxyType(
    {
        kind: tuple(
            (index, name, name in dict(_SEQUENCES), law.rule(name) is Rule.FORBIDDEN)
            for index, name in enumerate(FIELDS)
            if law.rule(name) is not Rule.ALLOWED
        )
        for kind, law in OUTPUT_LAW.items()
    }
)


@dataclass(frozen=True, slots=True, init=False)
class Output:
    """What one node produced for one input. Build it with the constructor for its kind.

    Args:
        kind: the node kind (a :class:`NodeKind`, or its string value).
        events: envelopes to publish.
        intents: effects to carry out.
        projections: read models to write, before any intent or event.
        state: a reducer's new state; :data:`ABSENT` when not carried. ``None`` is a value.
        result: a compute's (or an effect's) result; :data:`ABSENT` when not carried.

    Raises:
        OutputLawError: the kind is unknown; a field the kind may not carry is present; a field
            it must carry is absent; or a sequence field is not an iterable of the right element
            type. The message names the kind, the field, and what the law allows. Nothing is
            built.
    """

    kind: NodeKind
    events: tuple[Envelope, ...]
    intents: tuple[Intent, ...]
    projections: tuple[Projection, ...]
    state: object
    result: object

    def __init__(
        self,
        kind: NodeKind | str,
        events: Iterable[Envelope] = (),
        intents: Iterable[Intent] = (),
        projections: Iterable[Projection] = (),
        state: object = ABSENT,
        result: object = ABSENT,
    ) -> None:
        # Outputs are built once per handled message: the checks work on locals, an empty
        # tuple is taken as it is, and the slots are set through their descriptors (half the
        # cost of a generated frozen __init__); the instance is just as frozen afterwards.
        if type(kind) is not NodeKind:
            kind = _kind(kind)
        if type(events) is not tuple or events:
            events = _as_tuple(kind, "events", events, Envelope)
        if type(intents) is not tuple or intents:
            intents = _as_tuple(kind, "intents", intents, Intent)
        if type(projections) is not tuple or projections:
            projections = _as_tuple(kind, "projections", projections, Projection)
        values = (events, intents, projections, state, result)
        for index, name, is_sequence, forbidden in _CHECKS[kind]:
            value = values[index]
            present = bool(value) if is_sequence else value is not ABSENT
            if present is forbidden:
                law = OUTPUT_LAW[kind]
                verb = "may not" if forbidden else "must"
                raise OutputLawError(
                    f"{kind.value} output {verb} carry {name} "
                    f"(the law for {kind.value}: {law.describe()})"
                )
        _set_kind(self, kind)
        _set_events(self, events)
        _set_intents(self, intents)
        _set_projections(self, projections)
        _set_state(self, state)
        _set_result(self, result)

    @classmethod
    def orchestrator(
        cls, events: Iterable[Envelope] = (), intents: Iterable[Intent] = ()
    ) -> Output:
        """An orchestrator's output: events to publish and intents to carry out."""
        if cls is Output and _exact(events, Envelope) and _exact(intents, Intent):
            return _built(_ORCHESTRATOR, events, intents, (), ABSENT)  # type: ignore[arg-type]
        return cls(_ORCHESTRATOR, events, intents)

    @classmethod
    def reducer(
        cls,
        state: object,
        intents: Iterable[Intent] = (),
        projections: Iterable[Projection] = (),
    ) -> Output:
        """A reducer's output: the new state (required; ``None`` is a state), intents and
        projections."""
        if (
            cls is Output
            and state is not ABSENT
            and type(intents) is tuple
            and type(projections) is tuple
            and not projections
        ):
            for intent in intents:  # the usual reducer step: a few intents, no projections
                if type(intent) is not Intent:
                    break
            else:
                return _built(_REDUCER, (), intents, (), state)
        return cls(_REDUCER, (), intents, projections, state)

    @classmethod
    def compute(cls, result: object) -> Output:
        """A compute's output: its result (required; ``None`` is a result)."""
        return cls(_COMPUTE, result=result)

    @classmethod
    def effect(cls, events: Iterable[Envelope] = (), result: object = ABSENT) -> Output:
        """An effect's output: events to publish, and optionally a result."""
        return cls(_EFFECT, events, result=result)


(
    _set_kind,
    _set_events,
    _set_intents,
    _set_projections,
    _set_state,
    _set_result,
) = (getattr(Output, name).__set__ for name in Output.__slots__)
_ORCHESTRATOR, _REDUCER, _COMPUTE, _EFFECT = (
    NodeKind.ORCHESTRATOR,
    NodeKind.REDUCER,
    NodeKind.COMPUTE,
    NodeKind.EFFECT,
)


def _exact(value: object, element_type: type) -> bool:
    """Whether ``value`` is a tuple of exactly ``element_type`` instances (nothing to convert
    or check further)."""
    if type(value) is not tuple:
        return False
    for element in value:  # a loop: all() over a generator costs more for a tuple or two
        if type(element) is not element_type:
            break
    else:
        return True
    return False


_new = object.__new__


def _built(
    kind: NodeKind,
    events: tuple[Envelope, ...],
    intents: tuple[Intent, ...],
    projections: tuple[Projection, ...],
    state: object,
) -> Output:
    # The per-kind constructors' shortcut, for fields already known to obey the law: a third
    # of the constructor's cost, and the same value.
    output: Output = _new(Output)
    _set_kind(output, kind)
    _set_events(output, events)
    _set_intents(output, intents)
    _set_projections(output, projections)
    _set_state(output, state)
    _set_result(output, ABSENT)
    return output


def _as_tuple(kind: NodeKind, name: str, value: object, element_type: type) -> tuple[Any, ...]:
    if type(value) is not tuple:
        if value == ():
            return ()
        if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
            raise OutputLawError(
                f"{kind.value} output {name} must be a sequence of {element_type.__name__}, "
                f"not {type(value).__name__}"
            )
        value = tuple(value)
    for index, element in enumerate(value):
        if not isinstance(element, element_type):
            raise OutputLawError(
                f"{kind.value} output {name}[{index}] must be of type {element_type.__name__}, "
                f"not {type(element).__name__}"
            )
    return value
