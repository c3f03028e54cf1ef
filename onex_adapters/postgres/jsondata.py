"""JSON for JSONB columns: datetimes and UUIDs survive the round trip.

A projection's ``data`` is a JSON-like mapping, but the values runtimes care most about are
datetimes (deadlines, heartbeats) and UUIDs (event and correlation ids), which JSON has no type
for. Stored as bare ISO strings they would come back as strings, ``Projection.data`` would no
longer equal what was written, and a deadline could not be told apart from a name that happens
to look like a date. So this module marks them:

=========================  ====================================================
Python value               JSON stored
=========================  ====================================================
aware ``datetime``         ``{"$dt": "2026-11-21T05:00:00+00:00"}`` (ISO 8601, offset kept)
``UUID``                   ``{"$uuid": "8c0e…"}``
mapping key ``"$x"``       ``"$$x"`` — any key that starts with ``$`` gets one more
``tuple``                  an array (it comes back as a ``list``)
=========================  ====================================================

A marker is an object with exactly one key, ``$dt`` or ``$uuid``. Because every *user* key that
starts with ``$`` is written with an extra ``$``, a user mapping can never be mistaken for a
marker, whatever it contains, and decoding strips the extra ``$`` again. Decoding runs inside
``json.loads`` (an ``object_hook``), so it costs one pass.

Refused, with a :class:`~onex_core.errors.UsageError` naming the path (never the value): naive
datetimes (which instant would they be?), ``NaN`` and infinities (JSONB cannot hold them),
non-string keys, nesting deeper than :data:`MAX_DEPTH`, and any other type — convert dates,
decimals and bytes in the code that builds the projection.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from onex_core.errors import EffectRejected, UsageError

__all__ = ["MAX_DEPTH", "datetimes", "decode", "encode"]

MAX_DEPTH: Final = 64
_DT: Final = "$dt"
_UUID: Final = "$uuid"


def encode(data: Any, *, what: str = "data") -> str:
    """``data`` as compact JSON text with datetimes, UUIDs and ``$`` keys marked.

    Args:
        data: a JSON-like value (usually a mapping).
        what: how errors name the root (``data``, ``capabilities``).

    Returns:
        JSON text, ready for a ``jsonb`` parameter.

    Raises:
        UsageError: a value cannot be stored; the message names its path and type.
    """
    try:
        plain = _plain(data, 0)
    except _Refused as refused:
        path = what + "".join(reversed(refused.path))
        raise UsageError(f"{path}: {refused.reason}") from None
    return json.dumps(plain, separators=(",", ":"), allow_nan=False)


class _Refused(Exception):
    """A value cannot be stored. The path is collected on the way out, so the walk builds no
    path strings while it succeeds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _plain(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused("a non-finite float cannot be stored in JSONB")
        return value
    if isinstance(value, str | int):  # subclasses: StrEnum, IntEnum
        return value
    if depth >= MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _Refused(f"keys must be strings, not {type(key).__name__}")
            try:
                out["$" + key if key[:1] == "$" else key] = _plain(item, depth + 1)
            except _Refused as refused:
                refused.path.append(f".{key}")
                raise
        return out
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_plain(item, depth + 1))
            except _Refused as refused:
                refused.path.append(f"[{index}]")
                raise
        return items
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise _Refused("a naive datetime cannot be stored; give it a timezone")
        return {_DT: value.isoformat()}
    if isinstance(value, UUID):
        return {_UUID: str(value)}
    raise _Refused(f"a {type(value).__name__} cannot be stored in JSONB")


def decode(text: str | bytes) -> Any:
    """The value :func:`encode` wrote, with datetimes (timezone-aware) and UUIDs restored.

    Raises:
        EffectRejected: the stored text is not what :func:`encode` writes (a marker with a
            malformed value); the stored row was written by something else.
    """
    try:
        return json.loads(text, object_hook=_restore)
    except (ValueError, TypeError) as exc:
        raise EffectRejected(
            "stored JSONB is not in the ONEX encoding", backend="postgres"
        ) from exc


def _restore(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if key == _DT and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            if moment.utcoffset() is None:
                raise ValueError("a stored datetime has no offset")
            return moment
        if key == _UUID and isinstance(value, str):
            return UUID(value)
    if any(key.startswith("$") for key in obj):
        return {key[1:] if key.startswith("$") else key: value for key, value in obj.items()}
    return obj


def datetimes(data: Mapping[str, Any]) -> tuple[list[str], list[datetime]]:
    """The top-level fields of ``data`` whose values are aware datetimes, and those values —
    what the projection store indexes for :meth:`overdue` queries."""
    fields: list[str] = []
    values: list[datetime] = []
    for key, value in data.items():
        if isinstance(value, datetime) and value.utcoffset() is not None:
            fields.append(key)
            values.append(value)
    return fields, values
