"""Topic names and topic patterns.

An ONEX topic has exactly five dot-separated segments::

    onex.<kind>.<producer>.<event-name>.v<N>

- ``kind`` is one of ``evt``, ``cmd``, ``intent``, ``snapshot``, ``dlq``. It fixes the message
  category: events are facts, commands are requests that may be refused, intents are internal
  requests for side effects. Snapshots and dead letters have no category and are never routed.
- ``producer`` and ``event-name`` are lowercase kebab-case: a letter, then letters and digits,
  with single hyphens between runs (``node-introspection``, ``platform``).
- ``N`` is a positive integer without leading zeros.

Topics are realm-agnostic: there is no environment prefix. Names are never normalised — an
upper-case letter is an error, not something quietly lowered — so the string a contract declares
is the string on the wire. Every valid topic also satisfies Kafka's own rules (``[a-z0-9.-]``,
at most 249 characters).

Patterns select topics for routing. A pattern has the same dot-separated shape, where a segment
may be ``*`` (exactly one segment) or ``**`` (one or more segments)::

    onex.evt.platform.*.v1       every v1 event the platform produces
    onex.*.*.node-heartbeat.*    heartbeats of any kind, producer and version
    onex.**                      everything
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from onex_core.errors import TopicError

__all__ = [
    "MAX_TOPIC_LENGTH",
    "Category",
    "Kind",
    "Topic",
    "TopicPattern",
    "category_of",
    "dlq_topic_for",
    "format_topic",
    "is_valid_topic",
    "parse_pattern",
    "parse_topic",
]

MAX_TOPIC_LENGTH = 249
"""Kafka's own limit on a topic name."""

_KEBAB = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
_VERSION = re.compile(r"v[1-9][0-9]*\Z")
_LITERAL_SEGMENT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")


class Category(StrEnum):
    """What a routable message is."""

    EVENT = "event"
    COMMAND = "command"
    INTENT = "intent"


class Kind(StrEnum):
    """The second segment of a topic."""

    EVT = "evt"
    CMD = "cmd"
    INTENT = "intent"
    SNAPSHOT = "snapshot"
    DLQ = "dlq"

    @property
    def category(self) -> Category | None:
        """The message category of this kind, or ``None`` for kinds that are never routed."""
        return _CATEGORY_OF_KIND[self]


_CATEGORY_OF_KIND: dict[Kind, Category | None] = {
    Kind.EVT: Category.EVENT,
    Kind.CMD: Category.COMMAND,
    Kind.INTENT: Category.INTENT,
    Kind.SNAPSHOT: None,
    Kind.DLQ: None,
}
_KINDS = {k.value: k for k in Kind}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed, valid topic. ``str(topic)`` gives the wire name back exactly."""

    kind: Kind
    producer: str
    event_name: str
    version: int

    def __str__(self) -> str:
        return f"onex.{self.kind.value}.{self.producer}.{self.event_name}.v{self.version}"

    @property
    def category(self) -> Category | None:
        return self.kind.category

    @property
    def event_type(self) -> str:
        """The routing name of the messages on this topic: ``producer.event-name``."""
        return f"{self.producer}.{self.event_name}"


def format_topic(kind: Kind | str, producer: str, event_name: str, version: int = 1) -> str:
    """Build a topic name from its parts, validating each.

    Raises:
        TopicError: a part is not valid; the message names it.
    """
    text = f"onex.{kind}.{producer}.{event_name}.v{version}"
    parse_topic(text)
    return text


def parse_topic(text: str) -> Topic:
    """Parse and validate a topic name.

    Returns:
        The :class:`Topic`. ``str()`` of it equals ``text``.

    Raises:
        TopicError: naming the first thing wrong, for example
            ``topic 'onex.evt.Platform.x.v1': producer 'Platform' must be lowercase kebab-case``.
    """
    if not isinstance(text, str):
        raise TopicError(f"a topic must be a string, not {type(text).__name__}")
    return _parse_topic(text)


@lru_cache(maxsize=4096)
def _parse_topic(text: str) -> Topic:
    problem = _topic_problem(text)
    if problem is not None:
        raise TopicError(f"topic {_show(text)}: {problem}")
    _, kind, producer, event_name, version = text.split(".")
    return Topic(_KINDS[kind], producer, event_name, int(version[1:]))


def is_valid_topic(text: str) -> bool:
    """True when ``text`` is a valid topic name."""
    return isinstance(text, str) and _topic_problem(text) is None


def category_of(topic: str) -> Category | None:
    """The category of a topic name, or ``None`` when it has none or is not valid."""
    try:
        return parse_topic(topic).category
    except TopicError:
        return None


def dlq_topic_for(topic: str) -> str:
    """The default dead-letter topic for messages that arrived on ``topic``.

    ``onex.evt.platform.node-introspection.v1`` → ``onex.dlq.platform.events.v1``. A topic that
    does not parse, or whose kind has no category, dead-letters to ``onex.dlq.onex.unroutable.v1``.
    """
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return _UNROUTABLE_DLQ
    category = parsed.category
    if category is None:
        return _UNROUTABLE_DLQ
    return f"onex.dlq.{parsed.producer}.{category.value}s.v1"


_UNROUTABLE_DLQ = "onex.dlq.onex.unroutable.v1"


def _topic_problem(text: str) -> str | None:
    if not text:
        return "is empty"
    if len(text) > MAX_TOPIC_LENGTH:
        return f"is {len(text)} characters long (at most {MAX_TOPIC_LENGTH})"
    if not text.isascii() or not text.isprintable():
        return "contains non-ASCII or control characters"
    parts = text.split(".")
    if len(parts) != 5:
        return f"has {len(parts)} segments; expected 5: onex.<kind>.<producer>.<event-name>.v<N>"
    prefix, kind, producer, event_name, version = parts
    if prefix != "onex":
        return f"must start with 'onex', not {_show(prefix)}"
    if kind not in _KINDS:
        return f"kind {_show(kind)} is not one of {', '.join(_KINDS)}"
    if not _KEBAB.match(producer):
        return f"producer {_show(producer)} must be lowercase kebab-case (for example 'platform')"
    if not _KEBAB.match(event_name):
        return (
            f"event name {_show(event_name)} must be lowercase kebab-case "
            "(for example 'node-introspection')"
        )
    if not _VERSION.match(version):
        return f"version {_show(version)} must be 'v' and a positive integer without leading zeros"
    return None


def _show(text: str, limit: int = 60) -> str:
    """Quote user text for an error message: escaped, and cut if long."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


# --------------------------------------------------------------------------- patterns


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A compiled topic pattern. Build one with :func:`parse_pattern`."""

    text: str
    segments: tuple[str, ...]
    _regex: re.Pattern[str]

    def matches(self, topic: str) -> bool:
        """True when the whole of ``topic`` matches this pattern."""
        return self._regex.fullmatch(topic) is not None

    @property
    def is_exact(self) -> bool:
        """True when the pattern has no wildcards, so it matches one topic only."""
        return "*" not in self.segments and "**" not in self.segments

    @property
    def category(self) -> Category | None:
        """The category every matching topic has, when the pattern fixes the kind segment.

        ``None`` when the kind segment is a wildcard (or a ``**`` may cover it).
        """
        if len(self.segments) < 2 or self.segments[0] == "**" or self.segments[1] in ("*", "**"):
            return None
        kind = _KINDS.get(self.segments[1])
        return kind.category if kind is not None else None

    def __str__(self) -> str:
        return self.text


def parse_pattern(text: str) -> TopicPattern:
    """Parse a topic pattern: dot-separated segments, each a lowercase literal, ``*`` or ``**``.

    Raises:
        TopicError: naming the bad segment.
    """
    if not isinstance(text, str):
        raise TopicError(f"a topic pattern must be a string, not {type(text).__name__}")
    return _parse_pattern(text)


@lru_cache(maxsize=1024)
def _parse_pattern(text: str) -> TopicPattern:
    if not text:
        raise TopicError("topic pattern is empty")
    if len(text) > MAX_TOPIC_LENGTH:
        raise TopicError(f"topic pattern {_show(text)} is longer than {MAX_TOPIC_LENGTH}")
    segments = tuple(text.split("."))
    pieces: list[str] = []
    for index, segment in enumerate(segments, start=1):
        if segment == "*":
            pieces.append(r"[^.]+")
        elif segment == "**":
            pieces.append(r"[^.]+(?:\.[^.]+)*")
        elif _LITERAL_SEGMENT.match(segment):
            pieces.append(re.escape(segment))
        elif not segment:
            raise TopicError(f"topic pattern {_show(text)}: segment {index} is empty")
        else:
            raise TopicError(
                f"topic pattern {_show(text)}: segment {index} {_show(segment)} must be '*', '**' "
                "or lowercase letters, digits and single hyphens"
            )
    if segments[0] not in ("*", "**"):
        if segments[0] != "onex":
            raise TopicError(f"topic pattern {_show(text)}: must start with 'onex' or a wildcard")
        if len(segments) >= 2 and segments[1] not in ("*", "**") and segments[1] not in _KINDS:
            raise TopicError(
                f"topic pattern {_show(text)}: kind {_show(segments[1])} is not one of "
                f"{', '.join(_KINDS)}"
            )
    return TopicPattern(text, segments, re.compile(r"\.".join(pieces)))
