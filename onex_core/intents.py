"""Intents: requests for side effects, as data.

A reducer or an orchestrator never performs I/O. When it wants something done — register a
service, upsert a row — it returns an :class:`Intent`, and the runtime picks an effect handler by
the intent's ``intent_type`` and carries it out.

``intent_type`` is the one routing field: a lowercase dotted name such as ``consul.register`` or
``postgres.upsert_registration``. (The original implementation wrapped intents in an outer
``"extension"`` type and routed on a second, inner type; ONEX has one field.)

``target`` names what the effect acts on, as ``{protocol}://{resource}/{id}``, for example
``consul://service/onex-effect-42``.

``intent_id`` is deterministic, derived from the message that caused the intent
(:func:`intent_id_for`), so a redelivered message yields an intent with the same id and the
runtime's idempotency check by ``intent_id`` can skip work already done.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter as _itemgetter
from typing import Any
from uuid import UUID

from onex_core.errors import ContentError
from onex_core.messages import (
    _CLEAR_VERSION_AND_VARIANT,
    _UNKNOWN,
    _VERSION_5_RFC_4122,
    _from_bytes,
    _new,
    _set_uuid_int,
    _set_uuid_is_safe,
    _sha1,
    _uuid5,
    _uuid5_fast,
)

__all__ = [
    "Intent",
    "Target",
    "intent_id_for",
    "is_valid_intent_type",
    "make_target",
    "parse_target",
]

_tuple_new = tuple.__new__
_tuple_eq = tuple.__eq__
_tuple_hash = tuple.__hash__

_INTENT_TYPE = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)+\Z")
_PROTOCOL = re.compile(r"[a-z][a-z0-9+.-]*\Z")


class Intent(tuple[str, str, Mapping[str, Any], UUID, UUID]):
    """A request for an effect. See the module docstring.

    An immutable value with five fields — ``intent_type``, ``target``, ``payload``,
    ``intent_id``, ``correlation_id`` — built by keyword or position. Reducers build one per
    step, so it is a tuple underneath (built in a fraction of a frozen dataclass's time), but
    with *strict* equality: an intent equals only another intent with equal fields, never a
    plain tuple. Use :meth:`replace` for a changed copy.

    Raises:
        ContentError: ``intent_type`` has no dot, or ``target`` has no ``://``.
    """

    __slots__ = ()
    __match_args__ = ("intent_type", "target", "payload", "intent_id", "correlation_id")

    def __new__(
        cls,
        intent_type: str,
        target: str,
        payload: Mapping[str, Any],
        intent_id: UUID,
        correlation_id: UUID,
    ) -> Intent:
        # Cheap shape checks only; the full grammar is checked where intent types are declared
        # (contracts) with is_valid_intent_type.
        if "." not in intent_type:
            raise ContentError(
                f"intent_type {intent_type!r} must be a dotted name like 'consul.register'"
            )
        if "://" not in target:
            raise ContentError(f"intent target {target!r} must look like 'protocol://resource/id'")
        return _tuple_new(cls, (intent_type, target, payload, intent_id, correlation_id))

    intent_type: str = property(_itemgetter(0), doc="The routing key, e.g. ``consul.register``.")  # type: ignore[assignment]
    target: str = property(_itemgetter(1), doc="``{protocol}://{resource}/{id}``.")  # type: ignore[assignment]
    payload: Mapping[str, Any] = property(_itemgetter(2), doc="What the effect needs.")  # type: ignore[assignment]
    intent_id: UUID = property(_itemgetter(3), doc="Deterministic; the idempotency key.")  # type: ignore[assignment]
    correlation_id: UUID = property(_itemgetter(4), doc="The conversation's id.")  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and _tuple_eq(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return _tuple_hash(self)

    def __repr__(self) -> str:
        return (
            f"Intent(intent_type={self[0]!r}, target={self[1]!r}, payload={self[2]!r}, "
            f"intent_id={self[3]!r}, correlation_id={self[4]!r})"
        )

    def __getnewargs__(self) -> tuple[str, str, Mapping[str, Any], UUID, UUID]:
        return (self[0], self[1], self[2], self[3], self[4])

    def replace(self, **changes: Any) -> Intent:
        """A copy with some fields changed (validated like a new intent)."""
        fields: dict[str, Any] = dict(zip(self.__match_args__, self, strict=True))
        unknown = changes.keys() - fields.keys()
        if unknown:
            raise TypeError(f"Intent has no field(s) {', '.join(sorted(unknown))}")
        fields.update(changes)
        return Intent(**fields)


# The encoded names "<intent_type>:<index>" for small indices, per intent type: a step builds
# the same few names over and over, and encoding one costs a tenth of the whole derivation.
# Bounded (a contract declares a handful of intent types); past the bound names are built.
_NAMES: dict[str, tuple[bytes, ...]] = {}
_NAMES_MAX = 1024
_NAMED_INDICES = 4


def _encoded_name(intent_type: str, index: int) -> bytes:
    name = f"{intent_type}:{index}".encode()
    if type(intent_type) is str and len(_NAMES) < _NAMES_MAX:
        _NAMES[intent_type] = tuple(f"{intent_type}:{i}".encode() for i in range(_NAMED_INDICES))
    return name


def intent_id_for(cause: UUID, intent_type: str, index: int) -> UUID:
    """The id of the ``index``-th intent of ``intent_type`` caused by message ``cause``:
    ``uuid5(cause, f"{intent_type}:{index}")``."""
    names = _NAMES.get(intent_type) if type(intent_type) is str else None
    if names is not None and type(index) is int and 0 <= index < _NAMED_INDICES:
        name = names[index]
    else:
        name = _encoded_name(intent_type, index)
    if _fast:  # the same computation as _uuid5_fast, one call shallower (one per intent)
        value = _from_bytes(_sha1(cause.int.to_bytes(16) + name).digest()) >> 32
        result: UUID = _new(UUID)
        _set_uuid_int(result, (value & _CLEAR_VERSION_AND_VARIANT) | _VERSION_5_RFC_4122)
        _set_uuid_is_safe(result, _UNKNOWN)
        return result
    derived: UUID = _uuid5(cause, name.decode())
    return derived


_fast = _uuid5 is _uuid5_fast


def is_valid_intent_type(text: str) -> bool:
    """True for lowercase dotted names such as ``consul.register``."""
    return isinstance(text, str) and _INTENT_TYPE.match(text) is not None


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed intent target ``{protocol}://{resource}/{identifier}``."""

    protocol: str
    resource: str
    identifier: str

    def __str__(self) -> str:
        return f"{self.protocol}://{self.resource}/{self.identifier}"


def make_target(protocol: str, resource: str, identifier: str) -> str:
    """Build a target URI, validating its parts.

    Raises:
        ContentError: a part is empty, or the protocol or resource is malformed (a resource
            with a ``/`` would silently move part of it into the identifier).
    """
    if "/" in resource:
        raise ContentError(f"intent target resource {resource!r} must not contain '/'")
    return str(parse_target(f"{protocol}://{resource}/{identifier}"))


def parse_target(text: str) -> Target:
    """Split a target URI into protocol, resource and identifier.

    The identifier is everything after the first ``/`` that follows the resource, so it may
    itself contain slashes (``filesystem://state/runs/42.json``).

    Raises:
        ContentError: the text is not ``protocol://resource/identifier`` with non-empty parts.
    """
    protocol, sep, rest = text.partition("://")
    resource, slash, identifier = rest.partition("/")
    if not sep or not slash or not resource or not identifier:
        raise ContentError(f"intent target {text!r} must look like 'protocol://resource/id'")
    if not _PROTOCOL.match(protocol):
        raise ContentError(f"intent target {text!r}: protocol {protocol!r} is malformed")
    return Target(protocol, resource, identifier)
