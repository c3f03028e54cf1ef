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
from typing import Any
from uuid import UUID

from onex_core.errors import ContentError
from onex_core.messages import derive_id

__all__ = [
    "Intent",
    "Target",
    "intent_id_for",
    "is_valid_intent_type",
    "make_target",
    "parse_target",
]

_INTENT_TYPE = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)+\Z")
_PROTOCOL = re.compile(r"[a-z][a-z0-9+.-]*\Z")


@dataclass(frozen=True, slots=True, init=False)
class Intent:
    """A request for an effect. See the module docstring.

    Raises:
        ContentError: ``intent_type`` has no dot, or ``target`` has no ``://``.
    """

    intent_type: str
    target: str
    payload: Mapping[str, Any]
    intent_id: UUID
    correlation_id: UUID

    def __init__(
        self,
        intent_type: str,
        target: str,
        payload: Mapping[str, Any],
        intent_id: UUID,
        correlation_id: UUID,
    ) -> None:
        # Cheap shape checks only; the full grammar is checked where intent types are declared
        # (contracts) with is_valid_intent_type. Fields are stored through the slot descriptors,
        # which costs half of the generated frozen __init__ (reducers build one intent per step).
        if "." not in intent_type:
            raise ContentError(
                f"intent_type {intent_type!r} must be a dotted name like 'consul.register'"
            )
        if "://" not in target:
            raise ContentError(f"intent target {target!r} must look like 'protocol://resource/id'")
        _set_intent_type(self, intent_type)
        _set_target(self, target)
        _set_payload(self, payload)
        _set_intent_id(self, intent_id)
        _set_correlation_id(self, correlation_id)


(
    _set_intent_type,
    _set_target,
    _set_payload,
    _set_intent_id,
    _set_correlation_id,
) = (getattr(Intent, name).__set__ for name in Intent.__slots__ if name != "__weakref__")


def intent_id_for(cause: UUID, intent_type: str, index: int) -> UUID:
    """The id of the ``index``-th intent of ``intent_type`` caused by message ``cause``."""
    return derive_id(cause, f"{intent_type}:{index}")


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
