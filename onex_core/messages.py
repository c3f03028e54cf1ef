"""Envelopes: the one message shape that travels between nodes.

An :class:`Envelope` is frozen. It carries its payload and everything needed to route, order
and trace it:

- ``envelope_id`` identifies this message. The core never makes random ids: a new root message
  gets its id from the shell (the runtime, a test), and every message derived from another gets a
  *deterministic* id, ``uuid5(parent id, "<Type>:<index>")``. A redelivered input therefore
  produces outputs with the very same ids, and downstream idempotency works.
- ``correlation_id`` is copied from parent to child unchanged, for the whole conversation.
- ``causation_id`` is the id of the message that caused this one (``None`` for a root).
- ``entity_id`` is the partition key: messages about one entity are processed in order.
- ``emitted_at`` must be timezone-aware.

The payload is a JSON-like mapping. Envelopes do not copy or freeze it (that would cost more
than the rest of the envelope); treat it as read-only.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from onex_core.errors import ContentError

__all__ = [
    "EMPTY_HEADERS",
    "EMPTY_MAPPING",
    "MAX_ENTITY_ID_LENGTH",
    "Envelope",
    "causation_chain",
    "causation_problems",
    "derive_id",
]

MAX_ENTITY_ID_LENGTH = 512


class _Empty(Mapping[str, Any]):
    """The one shared, immutable, empty mapping: hashable, and it pickles and copies as itself
    (a ``MappingProxyType`` does neither)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "EMPTY_MAPPING"


EMPTY_MAPPING: Mapping[str, Any] = _Empty()
"""The shared empty mapping, the default of every optional mapping field in the core."""
EMPTY_HEADERS: Mapping[str, str] = EMPTY_MAPPING


@dataclass(frozen=True, slots=True, init=False)
class Envelope:
    """A routed message. See the module docstring for what each field promises.

    Raises:
        ContentError: ``emitted_at`` is naive, ``entity_id`` is empty or too long, or
            ``event_type`` is empty.
    """

    envelope_id: UUID
    topic: str
    event_type: str
    payload: Mapping[str, Any]
    correlation_id: UUID
    entity_id: str
    emitted_at: datetime
    causation_id: UUID | None
    headers: Mapping[str, str]
    schema_version: int

    def __init__(
        self,
        envelope_id: UUID,
        topic: str,
        event_type: str,
        payload: Mapping[str, Any],
        correlation_id: UUID,
        entity_id: str,
        emitted_at: datetime,
        causation_id: UUID | None = None,
        headers: Mapping[str, str] = EMPTY_HEADERS,
        schema_version: int = 1,
    ) -> None:
        # Envelopes are built once per message on the hot path. Setting the slots through their
        # descriptors costs half of what a generated frozen __init__ does (object.__setattr__
        # per field); the instance is just as frozen afterwards.
        if emitted_at.utcoffset() is None:
            raise ContentError("envelope emitted_at must be timezone-aware")
        if not entity_id or len(entity_id) > MAX_ENTITY_ID_LENGTH:
            raise ContentError(
                f"envelope entity_id must be 1 to {MAX_ENTITY_ID_LENGTH} characters long"
            )
        if not event_type:
            raise ContentError("envelope event_type must not be empty")
        _set_envelope_id(self, envelope_id)
        _set_topic(self, topic)
        _set_event_type(self, event_type)
        _set_payload(self, payload)
        _set_correlation_id(self, correlation_id)
        _set_entity_id(self, entity_id)
        _set_emitted_at(self, emitted_at)
        _set_causation_id(self, causation_id)
        _set_headers(self, headers)
        _set_schema_version(self, schema_version)

    def child(
        self,
        *,
        topic: str,
        event_type: str,
        payload: Mapping[str, Any],
        index: int,
        emitted_at: datetime,
        entity_id: str | None = None,
        headers: Mapping[str, str] = EMPTY_HEADERS,
        schema_version: int = 1,
    ) -> Envelope:
        """Derive the ``index``-th message of type ``event_type`` caused by this one.

        The id is ``uuid5(self.envelope_id, f"{event_type}:{index}")``, the correlation id is
        copied, and the causation id is this envelope's id. ``entity_id`` defaults to this
        envelope's.
        """
        return Envelope(
            envelope_id=derive_id(self.envelope_id, f"{event_type}:{index}"),
            topic=topic,
            event_type=event_type,
            payload=payload,
            correlation_id=self.correlation_id,
            entity_id=self.entity_id if entity_id is None else entity_id,
            emitted_at=emitted_at,
            causation_id=self.envelope_id,
            headers=headers,
            schema_version=schema_version,
        )


(
    _set_envelope_id,
    _set_topic,
    _set_event_type,
    _set_payload,
    _set_correlation_id,
    _set_entity_id,
    _set_emitted_at,
    _set_causation_id,
    _set_headers,
    _set_schema_version,
) = (getattr(Envelope, name).__set__ for name in Envelope.__slots__ if name != "__weakref__")


# --------------------------------------------------------------------------- deterministic ids

_sha1 = hashlib.sha1
_from_bytes = int.from_bytes
_new = object.__new__


def _uuid_slot_setter(name: str) -> Any:
    # UUID.__setattr__ refuses, so store through the slot descriptor. On a Python whose UUID
    # has no such slot this is None, _uuid5_fast raises TypeError, and the probe falls back.
    return getattr(UUID.__dict__.get(name), "__set__", None)


_set_uuid_int = _uuid_slot_setter("int")
_set_uuid_is_safe = _uuid_slot_setter("is_safe")
_UNKNOWN = uuid.SafeUUID.unknown
_CLEAR_VERSION_AND_VARIANT = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5_RFC_4122 = (5 << 76) | (0x8000 << 48)


def _uuid5_fast(parent: UUID, name: str) -> UUID:
    # Exactly uuid.uuid5, without UUID.__init__'s argument juggling (a third of the cost).
    # The top 128 of SHA-1's 160 bits, as uuid5 takes them (a shift is cheaper than a slice).
    value = _from_bytes(_sha1(parent.int.to_bytes(16) + name.encode()).digest()) >> 32
    result: UUID = _new(UUID)
    _set_uuid_int(result, (value & _CLEAR_VERSION_AND_VARIANT) | _VERSION_5_RFC_4122)
    _set_uuid_is_safe(result, _UNKNOWN)
    return result


def _uuid5_plain(parent: UUID, name: str) -> UUID:
    return uuid.uuid5(parent, name)


def _choose_uuid5() -> Any:
    probe = UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    try:
        if _uuid5_fast(probe, "probe:0") == uuid.uuid5(probe, "probe:0"):
            return _uuid5_fast
    except (AttributeError, TypeError):  # a Python whose UUID is laid out differently
        pass
    return _uuid5_plain


_uuid5 = _choose_uuid5()


def derive_id(parent: UUID, name: str) -> UUID:
    """``uuid5(parent, name)``: the deterministic id of something derived from ``parent``.

    By convention ``name`` is ``"<Type>:<index>"``, for example ``"consul.register:0"``.
    """
    result: UUID = _uuid5(parent, name)
    return result


# --------------------------------------------------------------------------- causation


def causation_chain(envelope: Envelope, by_id: Mapping[UUID, Envelope]) -> tuple[Envelope, ...]:
    """The chain of envelopes that led to ``envelope``, root first, ending with ``envelope``.

    The walk stops at a root (``causation_id is None``) or at a parent missing from ``by_id``.

    Raises:
        ContentError: the causation links form a cycle.
    """
    chain = [envelope]
    seen = {envelope.envelope_id}
    current = envelope
    while current.causation_id is not None:
        parent = by_id.get(current.causation_id)
        if parent is None:
            break
        if parent.envelope_id in seen:
            raise ContentError(f"causation cycle through envelope {parent.envelope_id}")
        seen.add(parent.envelope_id)
        chain.append(parent)
        current = parent
    chain.reverse()
    return tuple(chain)


def causation_problems(envelopes: Iterable[Envelope]) -> tuple[str, ...]:
    """Check that ``envelopes`` form one well-formed conversation.

    Returns every problem found (an empty tuple when there is none): more than one correlation
    id, a causation id that names no envelope of the set, a duplicate envelope id, a cycle.
    """
    items = list(envelopes)
    problems: list[str] = []
    by_id: dict[UUID, Envelope] = {}
    for item in items:
        if item.envelope_id in by_id:
            problems.append(f"envelope id {item.envelope_id} appears more than once")
        by_id[item.envelope_id] = item
    correlations = {item.correlation_id for item in items}
    if len(correlations) > 1:
        problems.append(f"{len(correlations)} correlation ids in one conversation")
    for item in items:
        if item.causation_id is not None and item.causation_id not in by_id:
            problems.append(
                f"envelope {item.envelope_id} is caused by {item.causation_id}, which is not here"
            )
    for item in items:
        try:
            causation_chain(item, by_id)
        except ContentError as exc:
            problems.append(str(exc))
            break
    return tuple(problems)
