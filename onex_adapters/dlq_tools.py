"""Dead-letter tools: read what the runtime host dead-lettered, summarise it, replay it.

A dead-letter record (:mod:`onex_adapters.runtime.dlq`) is a JSON document in the upstream DLQ
format plus ONEX's additions. :func:`parse_dead_letter` (:mod:`onex_adapters.dlq_view`, and
re-exported here) turns one back into a :class:`DeadLetterView` — every field typed, the
original value decoded back to bytes — or says plainly, field by field, why the record is not
one. :func:`summarise` counts a set of them;
:func:`plan_replay` decides what can go back to its original topic; :func:`replay` sends it
through any :class:`~onex_core.ports.EventBus`, so the same code replays on the in-memory bus
in tests and on Kafka in production (``onex dlq replay``).

**What a replay sends.** The original value and key, to the original topic — the very bytes
the host failed on, so it decodes to the same envelope with the same ``envelope_id``. That is
what makes replay safe: intent ids are derived from the envelope id, so effects that already
succeeded are skipped by the idempotency store and only the ones that failed run again, and a
handler that recognises the envelope as already applied does nothing. It also means replay is
not a way to *change* a message: whether the failed part runs again is the handler's decision,
as for any redelivery.

**What a replay refuses**, each with its reason (:class:`Refusal`):

- a value that was truncated — the record kept only its first bytes and a SHA-256 of the
  whole, so the original cannot be rebuilt;
- an original topic that is a dead-letter (or snapshot) topic, or not an ONEX topic — a replay
  must never feed a DLQ into itself;
- a value that was not UTF-8 (kept as base64): it could not be decoded the first time and will
  not be now — unless ``allow_base64``;
- a value or key that contains ``***``: the DLQ writer replaces every registered secret by
  ``***``, so such a value may not be the original — unless ``allow_redacted``.

One message can leave several records (two of its effects failed; the DLQ write was repeated
after a crash): a plan sends each original message — topic, partition, offset — once.

Replay does not remove anything from the dead-letter topic (Kafka cannot); a second replay of
the same records sends them again, which the idempotency above makes harmless, but narrow it
with a filter (``since``) all the same.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from onex_adapters.dlq_view import (
    REDACTED,
    DeadLetterView,
    IntentRef,
    NotADeadLetter,
    parse_dead_letter,
)
from onex_core.errors import EffectError, TopicError, UsageError
from onex_core.ports import EventBus
from onex_core.topics import Kind, TopicPattern, parse_pattern, parse_topic

__all__ = [
    "AlertLevel",
    "DeadLetterView",
    "IntentRef",
    "NotADeadLetter",
    "Refusal",
    "Replay",
    "ReplayFilter",
    "ReplayPlan",
    "ReplayReport",
    "Summary",
    "alert_level",
    "parse_dead_letter",
    "parse_time",
    "plan_replay",
    "replay",
    "summarise",
]


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over a set of dead-letter records. Each ``by_*`` is ``(name, count)`` pairs,
    most frequent first, ties by name; records without a ``failure_class`` (upstream ones)
    count as ``unclassified``."""

    records: int
    messages: int
    by_failure_class: tuple[tuple[str, int], ...]
    by_error_type: tuple[tuple[str, int], ...]
    by_original_topic: tuple[tuple[str, int], ...]
    oldest: datetime | None
    newest: datetime | None
    truncated: int

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "messages": self.messages,
            "by_failure_class": dict(self.by_failure_class),
            "by_error_type": dict(self.by_error_type),
            "by_original_topic": dict(self.by_original_topic),
            "oldest": None if self.oldest is None else self.oldest.isoformat(),
            "newest": None if self.newest is None else self.newest.isoformat(),
            "truncated": self.truncated,
        }


def summarise(views: Iterable[DeadLetterView]) -> Summary:
    """Count ``views`` by failure class, error type and original topic; ``messages`` counts
    distinct original messages (several records may name one); oldest and newest are
    ``failure_timestamp``s."""
    items = list(views)
    times = [v.failure_timestamp for v in items]
    return Summary(
        records=len(items),
        messages=len({v.origin for v in items}),
        by_failure_class=_ranked(v.failure_class or "unclassified" for v in items),
        by_error_type=_ranked(v.error_type for v in items),
        by_original_topic=_ranked(v.original_topic for v in items),
        oldest=min(times, default=None),
        newest=max(times, default=None),
        truncated=sum(1 for v in items if v.truncated),
    )


def _ranked(names: Iterable[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(names).items(), key=lambda item: (-item[1], item[0])))


AlertLevel = Literal["ok", "warn", "critical"]
"""What :func:`alert_level` says about a dead-letter rate."""


def alert_level(
    dead_lettered: int, polled: int, *, warn: float = 0.01, critical: float = 0.05
) -> AlertLevel:
    """How alarming a dead-letter rate is: above ``warn`` (1 %) of the records polled is
    ``warn``, above ``critical`` (5 %) is ``critical`` (the upstream guidance). Feed it
    :class:`~onex_adapters.runtime.RuntimeStats` ``dead_lettered`` and ``polled`` over a
    window; no records polled is ``ok``.

    Raises:
        UsageError: a count is negative, or the thresholds are not ``0 <= warn <= critical``.
    """
    if dead_lettered < 0 or polled < 0:
        raise UsageError("alert_level needs counts >= 0")
    if not 0.0 <= warn <= critical:
        raise UsageError("alert_level needs 0 <= warn <= critical")
    if polled == 0:
        return "ok"
    rate = dead_lettered / polled
    if rate > critical:
        return "critical"
    if rate > warn:
        return "warn"
    return "ok"


# --------------------------------------------------------------------------- filters and plans

_DURATION = re.compile(r"(\d+)([smhd])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, *, now: datetime) -> datetime:
    """A point in time: ISO-8601 with a time zone (``2026-11-21T05:00:00Z``), or a duration
    before ``now`` (``90m``, ``2h``, ``7d``; units ``s m h d``).

    Raises:
        UsageError: neither form, or an ISO-8601 time without a time zone.
    """
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (ISO-8601 with a zone, e.g. 2026-11-21T05:00:00Z, "
            "or a duration before now, e.g. 2h)"
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(f"{text!r} has no time zone: add one, e.g. Z or +01:00")
    return parsed


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which records a plan considers. Every criterion given must hold; an empty set (or
    None) does not restrict.

    Args:
        failure_classes: e.g. ``{"effect_exhausted"}``.
        original_topics: topic names or patterns (``onex.cmd.platform.*.v1``, ``onex.**``).
        correlation_ids: the conversations to replay.
        since: failure time at or after this (aware datetime).
        until: failure time before this (aware datetime).

    Raises:
        TopicError: a topic pattern is malformed.
        UsageError: ``since`` or ``until`` has no time zone, or ``since`` is not before
            ``until``.
    """

    failure_classes: frozenset[str] = frozenset()
    original_topics: tuple[str, ...] = ()
    correlation_ids: frozenset[uuid.UUID] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    _patterns: tuple[TopicPattern, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise UsageError(f"ReplayFilter.{name} needs a time zone")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise UsageError("ReplayFilter: since must be before until")
        object.__setattr__(self, "_patterns", tuple(parse_pattern(p) for p in self.original_topics))

    def matches(self, view: DeadLetterView) -> bool:
        """Whether ``view`` passes every criterion."""
        if self.failure_classes and view.failure_class not in self.failure_classes:
            return False
        if self._patterns and not any(p.matches(view.original_topic) for p in self._patterns):
            return False
        if self.correlation_ids and view.correlation_id not in self.correlation_ids:
            return False
        if self.since is not None and view.failure_timestamp < self.since:
            return False
        return self.until is None or view.failure_timestamp < self.until


@dataclass(frozen=True, slots=True)
class Replay:
    """One record to send back: the original bytes to the original topic, and the view of the
    (first) dead-letter record that asked for it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    view: DeadLetterView


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record a plan will not replay, and why (one sentence)."""

    view: DeadLetterView
    reason: str


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What :func:`replay` would send, in order; what was refused; and how many records the
    filter left out (``filtered``) or named a message already planned (``duplicates``)."""

    replays: tuple[Replay, ...]
    refused: tuple[Refusal, ...]
    filtered: int
    duplicates: int


def plan_replay(
    views: Iterable[DeadLetterView],
    where: ReplayFilter | None = None,
    *,
    allow_base64: bool = False,
    allow_redacted: bool = False,
) -> ReplayPlan:
    """Decide what to send back, without sending anything (this is the dry run).

    Records are taken in the order given; those ``where`` rejects are counted as filtered;
    of several records naming one original message, the first decides and the others are
    counted as duplicates. Each remaining record becomes a :class:`Replay` of the original key
    and value to the original topic — with headers ``replay_of`` (the dead-letter record's
    ``message_id``, when known), ``replayed_from`` (where it is) and ``correlation_id`` — or a
    :class:`Refusal` (see the module docstring for the reasons).
    """
    where = where or ReplayFilter()
    replays: list[Replay] = []
    refused: list[Refusal] = []
    seen: set[tuple[str, int, int]] = set()
    filtered = duplicates = 0
    for view in views:
        if not where.matches(view):
            filtered += 1
            continue
        if view.origin in seen:
            duplicates += 1
            continue
        seen.add(view.origin)
        reason = _refusal(view, allow_base64=allow_base64, allow_redacted=allow_redacted)
        if reason is not None:
            refused.append(Refusal(view, reason))
            continue
        headers = [("replayed_from", view.where.encode())]
        if view.message_id is not None:
            headers.insert(0, ("replay_of", str(view.message_id).encode()))
        headers.append(("correlation_id", str(view.correlation_id).encode()))
        replays.append(Replay(view.original_topic, view.key, view.value, tuple(headers), view))
    return ReplayPlan(tuple(replays), tuple(refused), filtered, duplicates)


def _refusal(view: DeadLetterView, *, allow_base64: bool, allow_redacted: bool) -> str | None:
    if view.truncated:
        return (
            f"the value was truncated: only its first {len(view.value)} of {view.value_size} "
            "bytes and a SHA-256 of the whole were kept, so it cannot be rebuilt"
        )
    try:
        kind = parse_topic(view.original_topic).kind
    except TopicError:
        return "the original topic is not an ONEX topic"
    if kind is Kind.DLQ or view.original_topic == view.dlq_topic:
        return f"the original topic {view.original_topic} is a dead-letter topic"
    if kind is Kind.SNAPSHOT:
        return f"the original topic {view.original_topic} is a snapshot topic (never routed)"
    if view.value_encoding == "base64" and not allow_base64:
        return (
            "the value is not UTF-8 (kept as base64): it could not be decoded before and "
            "will not be now; replay it anyway with --allow-base64"
        )
    if view.maybe_redacted and not allow_redacted:
        return (
            f"the value or key contains {REDACTED!r}, where a secret may have been redacted, "
            "so it may not be the original; replay it anyway with --allow-redacted"
        )
    return None


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What :func:`replay` sent (confirmed by the bus), and the one that failed, if any."""

    sent: tuple[Replay, ...]
    failed: Replay | None = None
    error: EffectError | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


async def replay(plan: ReplayPlan | Iterable[Replay], bus: EventBus) -> ReplayReport:
    """Publish each replay of ``plan`` through ``bus``, in order, one at a time, each awaited
    until the bus confirmed it.

    Stops at the first publish that fails (the bus is down, or refuses): the report says what
    was sent before it. Sending a plan again is safe — see the module docstring — so the usual
    remedy is to fix the cause and run the replay once more.

    Returns:
        A :class:`ReplayReport`; nothing is raised for a failed publish.
    """
    items = plan.replays if isinstance(plan, ReplayPlan) else tuple(plan)
    sent: list[Replay] = []
    for item in items:
        try:
            await bus.publish(item.topic, item.value, key=item.key, headers=item.headers)
        except EffectError as exc:
            return ReplayReport(tuple(sent), item, exc)
        sent.append(item)
    return ReplayReport(tuple(sent))
