"""Dispatch: an immutable route table and a pure ``route()``.

*Routing* answers one question for each incoming envelope: which handlers must see it? The
answer depends on three things only — the envelope's topic, its ``event_type`` and the table of
routes — and it is one of two values:

- a :class:`Plan`: the ids of every handler whose route matches, in route order, each once;
- an :class:`Unroutable` verdict: why nothing can take the message (``invalid_message``,
  ``publisher_malformed``, ``no_dispatcher``) and the dead-letter topic it belongs on.

Routing never calls a handler; the runtime carries the plan out, the way it carries out intents.

**Tables are values.** A :class:`RouteTable` is frozen and compares by its routes and its DLQ
topic. Tables are built from contracts and combined with :func:`merge`, which is associative,
has :data:`EMPTY` as identity on both sides, and raises :class:`~onex_core.errors.RouteConflict`
when two tables claim the same route id for different definitions — instead of upstream's
mutable engine with ``register_*`` calls, a one-way ``freeze()`` and runtime errors for calling
things in the wrong order. Because a table is data, docs and linters can render and check it.

A :class:`Route` is matched on three axes, all of which must agree:

1. its topic pattern (``*`` one segment, ``**`` one or more; see :mod:`onex_core.topics`);
2. its category — given explicitly, or fixed by the pattern's kind segment
   (``onex.evt.…`` means events); when neither fixes it the route takes every routable
   category;
3. its ``message_types`` — the ``event_type`` values it accepts; empty means any.

A message whose topic and category some route matches, but whose type every such route
rejects, is ``publisher_malformed``: the publisher sent a type nobody on that topic accepts.
That is upstream's "a typed candidate rejected the payload", made a verdict of its own rather
than a sub-flavour of ``no_dispatcher``.

**The memo.** Routing is a pure function of ``(table, topic, event_type)``, and a table never
changes, so its answer for a given topic and type can never change either. Each table therefore
keeps a private dict from ``(topic, event_type)`` to the verdict it already computed, and a hit
costs one dict lookup. The memo is not part of the table's value (it is excluded from equality,
hashing and ``repr``), and a call with or without it returns an equal verdict — the cache is
invisible except in speed and :attr:`RouteTable.memo_size`. It is bounded: when it holds
:data:`MEMO_LIMIT` entries it is cleared and refilled, which keeps it simple and keeps a stream of
distinct (or hostile) topics from growing memory. Keys longer than a valid topic could be are
never memoised. Concurrent callers are safe: a race can only compute a verdict twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from onex_core.errors import ContractError, RouteConflict, TopicError
from onex_core.messages import Envelope
from onex_core.topics import (
    MAX_TOPIC_LENGTH,
    Category,
    Kind,
    TopicPattern,
    dlq_topic_for,
    parse_pattern,
    parse_topic,
)

__all__ = [
    "EMPTY",
    "MEMO_LIMIT",
    "Plan",
    "Route",
    "RouteTable",
    "Unroutable",
    "UnroutableReason",
    "is_valid_event_type",
    "merge",
    "route",
    "route_topic",
]

MEMO_LIMIT = 4096
"""How many ``(topic, event_type)`` verdicts one table remembers before it starts over."""

_MAX_MEMO_EVENT_TYPE = 2 * MAX_TOPIC_LENGTH
_KEBAB = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
_EVENT_TYPE = re.compile(rf"{_KEBAB}\.{_KEBAB}\Z")


def is_valid_event_type(text: str) -> bool:
    """True for ``<producer>.<event-name>`` in lowercase kebab-case: ``platform.node-heartbeat``."""
    return isinstance(text, str) and _EVENT_TYPE.match(text) is not None


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class Route:
    """One route: topics matching ``pattern``, of ``category``, with an accepted type → a handler.

    ``category`` is normalised when the route is built: ``None`` becomes the category the
    pattern's kind segment fixes (``onex.cmd.**`` → commands), so two routes that behave the same
    compare equal. It stays ``None`` only when the pattern leaves the kind open; such a route
    takes topics of every routable category. ``message_types`` empty means any ``event_type``.

    Raises:
        ContractError: an id is empty or not a string; a message type is not
            ``<producer>.<event-name>``; ``category`` contradicts the pattern's kind.
        TopicError: ``pattern`` is not a valid topic pattern.
    """

    route_id: str
    pattern: str
    handler_id: str
    category: Category | None = None
    message_types: frozenset[str] = frozenset()
    topic_pattern: TopicPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_id("route_id", self.route_id)
        _check_id("handler_id", self.handler_id)
        compiled = parse_pattern(self.pattern)
        object.__setattr__(self, "topic_pattern", compiled)
        category = self.category
        if category is not None and not isinstance(category, Category):
            raise ContractError(
                f"route {self.route_id!r}: category {category!r} is not one of "
                f"{', '.join(c.value for c in Category)}"
            )
        fixed = compiled.category
        if category is None:
            object.__setattr__(self, "category", fixed)
        elif fixed is not None and fixed is not category:
            raise ContractError(
                f"route {self.route_id!r}: category {category.value!r} contradicts pattern "
                f"{self.pattern!r}, whose kind fixes {fixed.value!r}"
            )
        types: object = self.message_types  # checked: callers outside mypy pass anything
        if isinstance(types, str) or not isinstance(types, Iterable):
            raise ContractError(
                f"route {self.route_id!r}: message_types must be a set of event types, "
                f"not {type(types).__name__}"
            )
        if not isinstance(types, frozenset):
            types = frozenset(types)
            object.__setattr__(self, "message_types", types)
        for name in sorted(types, key=repr):
            if not is_valid_event_type(name):
                raise ContractError(
                    f"route {self.route_id!r}: message type {_quote(name)} is not "
                    "'<producer>.<event-name>' in lowercase kebab-case"
                )

    @classmethod
    def to(
        cls,
        handler_id: str,
        pattern: str,
        *,
        message_types: Iterable[str] = (),
        category: Category | None = None,
        route_id: str | None = None,
    ) -> Route:
        """A route to ``handler_id``, with a deterministic id when none is given.

        The default id is ``"{handler_id}@{pattern}"``, then ``"/{category}"`` when a category is
        given that the pattern does not fix, then ``"[{types}]"`` (sorted, comma-separated) when
        message types are given — so two different default-id routes never share an id::

            Route.to("orchestrator", "onex.evt.platform.*.v1",
                     message_types={"platform.node-heartbeat"}).route_id
            == "orchestrator@onex.evt.platform.*.v1[platform.node-heartbeat]"

        Raises:
            ContractError, TopicError: as for :class:`Route`.
        """
        if isinstance(message_types, str):
            raise ContractError(
                f"route to {handler_id!r}: message_types must be a collection, not one string"
            )
        types = frozenset(message_types)
        if route_id is None:
            route_id = f"{handler_id}@{pattern}"
            if category is not None and parse_pattern(pattern).category is None:
                route_id += f"/{category}"
            if types:
                route_id += f"[{','.join(sorted(types))}]"
        return cls(route_id, pattern, handler_id, category, types)

    def __str__(self) -> str:
        text = f"{self.route_id}: {self.pattern} -> {self.handler_id}"
        text += f" ({self.category.value}s)" if self.category is not None else " (any category)"
        if self.message_types:
            text += f" accepting {', '.join(sorted(self.message_types))}"
        return text


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"route {name} must be a non-empty string, not {_quote(value)}")


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True, slots=True)
class Plan:
    """The handlers an envelope goes to: every matching route's handler, in route order, once."""

    handler_ids: tuple[str, ...]


class UnroutableReason(StrEnum):
    """Why no handler can take a message. Each is permanent: the message is dead-lettered."""

    NO_DISPATCHER = "no_dispatcher"
    """The message is well-formed, but no route matches its topic and category."""
    PUBLISHER_MALFORMED = "publisher_malformed"
    """The ``event_type`` is malformed, or no route on the topic accepts it."""
    INVALID_MESSAGE = "invalid_message"
    """The topic is not a valid ONEX topic, or its kind (snapshot, dlq) is never routed."""


@dataclass(frozen=True, slots=True)
class Unroutable:
    """Nothing can take the message: why, where to dead-letter it, and a one-line detail.

    ``detail`` quotes (escaped, and cut if long) the topic and event type it is about.
    """

    reason: UnroutableReason
    dlq_topic: str
    detail: str


# --------------------------------------------------------------------------- tables


_Candidate = tuple[Callable[[str], bool], frozenset[str], str]
"""A route as the miss path reads it: its pattern's ``matches``, its message types, its handler."""


@dataclass(frozen=True, slots=True)
class RouteTable:
    """An immutable, ordered set of routes plus an optional dead-letter topic.

    Equality and hashing use ``routes`` and ``dlq_topic`` only; the routing memo (see the module
    docstring) is not part of the value. A route id that appears twice with the same definition
    is kept once, at its first position.

    Args:
        routes: the routes, in the order plans list their handlers (any iterable of routes).
        dlq_topic: where unroutable messages go, overriding :func:`~onex_core.topics.dlq_topic_for`.

    Raises:
        RouteConflict: two routes share an id but differ; the message names the id and both.
        TopicError: ``dlq_topic`` is not a valid topic of kind ``dlq``.
        ContractError: an element of ``routes`` is not a :class:`Route`.
    """

    routes: tuple[Route, ...] = ()
    dlq_topic: str | None = None
    _memo: dict[tuple[str, str], Plan | Unroutable] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _by_category: dict[Category, tuple[_Candidate, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        routes = self.routes
        for item in routes:
            if not isinstance(item, Route):
                raise ContractError(f"a route table holds routes, not {type(item).__name__}")
        kept: dict[str, Route] = {}
        for item in routes:
            _add(kept, item)
        if not isinstance(routes, tuple) or len(kept) != len(routes):
            object.__setattr__(self, "routes", tuple(kept.values()))
        object.__setattr__(
            self,
            "_by_category",
            {
                category: tuple(
                    (r.topic_pattern.matches, r.message_types, r.handler_id)
                    for r in self.routes
                    if r.category is None or r.category is category
                )
                for category in Category
            },
        )
        if self.dlq_topic is not None:
            parsed = parse_topic(self.dlq_topic)
            if parsed.kind is not Kind.DLQ:
                raise TopicError(
                    f"dead-letter topic {self.dlq_topic!r} must have kind 'dlq', "
                    f"not {parsed.kind.value!r}"
                )

    @property
    def handler_ids(self) -> tuple[str, ...]:
        """Every handler id the table can route to, in route order, each once."""
        return tuple(dict.fromkeys(r.handler_id for r in self.routes))

    @property
    def memo_size(self) -> int:
        """How many verdicts the memo holds now (at most :data:`MEMO_LIMIT`). For tests and
        metrics; it never affects what :func:`route` returns."""
        return len(self._memo)


def _add(kept: dict[str, Route], item: Route) -> None:
    existing = kept.get(item.route_id)
    if existing is None:
        kept[item.route_id] = item
    elif existing != item:
        raise RouteConflict(
            f"route id {item.route_id!r} has two definitions: [{existing}] and [{item}]"
        )


EMPTY = RouteTable()
"""The table with no routes: the identity of :func:`merge`. Everything sent to it is
``no_dispatcher`` (or worse)."""


def merge(*tables: RouteTable) -> RouteTable:
    """Combine route tables, left to right.

    The result holds the routes of the first table, then each later table's routes whose ids it
    has not seen yet. A route id seen again with an equal definition is the same route and is
    kept once. ``merge`` is associative and :data:`EMPTY` is its identity on both sides;
    ``merge()`` is :data:`EMPTY`.

    Returns:
        The merged table (one of the inputs itself, when the others add nothing).

    Raises:
        RouteConflict: a route id is defined differently in two tables (the message names the
            id and both definitions), or two tables name different dead-letter topics. The
            inputs are unchanged.
    """
    if not tables:
        return EMPTY
    result = tables[0]
    for table in tables[1:]:
        result = _merge_two(result, table)
    return result


def _merge_two(left: RouteTable, right: RouteTable) -> RouteTable:
    if left.dlq_topic is not None and right.dlq_topic not in (None, left.dlq_topic):
        raise RouteConflict(f"two dead-letter topics: {left.dlq_topic!r} and {right.dlq_topic!r}")
    dlq_topic = left.dlq_topic if left.dlq_topic is not None else right.dlq_topic
    kept = {r.route_id: r for r in left.routes}
    for item in right.routes:
        _add(kept, item)
    if len(kept) == len(left.routes) and dlq_topic == left.dlq_topic:
        return left
    if len(kept) == len(right.routes) and dlq_topic == right.dlq_topic and not left.routes:
        return right
    return RouteTable(tuple(kept.values()), dlq_topic)


# --------------------------------------------------------------------------- routing


def route(table: RouteTable, envelope: Envelope) -> Plan | Unroutable:
    """Route ``envelope`` through ``table``: see :func:`route_topic`.

    Only ``envelope.topic`` and ``envelope.event_type`` are read.
    """
    verdict = table._memo.get((envelope.topic, envelope.event_type))
    if verdict is None:
        verdict = _route_miss(table, envelope.topic, envelope.event_type)
    return verdict


def route_topic(table: RouteTable, topic: str, event_type: str) -> Plan | Unroutable:
    """The handlers a message of ``event_type`` on ``topic`` goes to, or why it cannot go.

    Checks, in order:

    1. ``topic`` is a valid ONEX topic whose kind has a category (not snapshot or dlq) —
       otherwise ``invalid_message``;
    2. ``event_type`` is ``<producer>.<event-name>`` in lowercase kebab-case — otherwise
       ``publisher_malformed``;
    3. the routes whose pattern and category match the topic — none: ``no_dispatcher``; some,
       but every one's ``message_types`` rejects ``event_type``: ``publisher_malformed``;
       otherwise a :class:`Plan` of the accepting routes' handlers.

    An :class:`Unroutable`'s ``dlq_topic`` is ``table.dlq_topic`` if set, else
    ``dlq_topic_for(topic)``. The result depends only on the arguments; it never raises for
    any string input, and the table is not changed (apart from its invisible memo).
    """
    verdict = table._memo.get((topic, event_type))
    if verdict is None:
        verdict = _route_miss(table, topic, event_type)
    return verdict


def _route_miss(table: RouteTable, topic: str, event_type: str) -> Plan | Unroutable:
    verdict = _decide(table, topic, event_type)
    if (
        isinstance(topic, str)
        and isinstance(event_type, str)
        and len(topic) <= MAX_TOPIC_LENGTH
        and len(event_type) <= _MAX_MEMO_EVENT_TYPE
    ):
        memo = table._memo
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[(topic, event_type)] = verdict
    return verdict


def _decide(table: RouteTable, topic: str, event_type: str) -> Plan | Unroutable:
    try:
        parsed = parse_topic(topic)
    except TopicError as exc:
        return _unroutable(table, topic, UnroutableReason.INVALID_MESSAGE, str(exc))
    category = parsed.category
    if category is None:
        return _unroutable(
            table,
            topic,
            UnroutableReason.INVALID_MESSAGE,
            f"topic {_quote(topic)} has kind {parsed.kind.value!r}, which is never routed",
        )
    if not is_valid_event_type(event_type):
        return _unroutable(
            table,
            topic,
            UnroutableReason.PUBLISHER_MALFORMED,
            f"event type {_quote(event_type)} on topic {_quote(topic)} is not "
            "'<producer>.<event-name>' in lowercase kebab-case",
        )
    handler_ids: dict[str, None] = {}
    rejected_by: list[frozenset[str]] = []
    for matches, message_types, handler_id in table._by_category[category]:
        if matches(topic):
            if not message_types or event_type in message_types:
                handler_ids[handler_id] = None
            else:
                rejected_by.append(message_types)
    if handler_ids:
        return Plan(tuple(handler_ids))
    if rejected_by:
        accepted = sorted(frozenset().union(*rejected_by))
        return _unroutable(
            table,
            topic,
            UnroutableReason.PUBLISHER_MALFORMED,
            f"no route on topic {_quote(topic)} accepts event type {_quote(event_type)} "
            f"(accepted: {_quote(', '.join(accepted), 120)})",
        )
    return _unroutable(
        table,
        topic,
        UnroutableReason.NO_DISPATCHER,
        f"no route matches topic {_quote(topic)} ({category.value}, "
        f"event type {_quote(event_type)})",
    )


def _unroutable(table: RouteTable, topic: str, reason: UnroutableReason, detail: str) -> Unroutable:
    dlq_topic = table.dlq_topic
    if dlq_topic is None:
        dlq_topic = dlq_topic_for(topic) if isinstance(topic, str) else dlq_topic_for("")
    return Unroutable(reason, dlq_topic, detail)


def _quote(text: object, limit: int = 80) -> str:
    """Quote outside text for a one-line detail: escaped by ``repr`` and cut if long."""
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    if len(text) > limit:
        return repr(text[:limit]) + "…"
    return repr(text)
