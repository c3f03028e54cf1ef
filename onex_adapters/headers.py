"""Envelope metadata as record headers, and the partition key — for every bus.

The envelope's JSON body carries everything; the headers repeat what a tool must see without
decoding the body — a broker UI, a dead-letter replay script, a consumer that filters by type
before it pays for JSON. The names follow the original implementation's standard event headers
(``content_type``, ``correlation_id``, ``message_id``, ``event_type``, ``schema_version``), plus
``causation_id``; the envelope's own ``headers`` mapping follows them.

Header values are UTF-8 bytes. A value or name with a carriage return, a line feed or a NUL is
refused: headers end up in logs and HTTP bridges, where such a character forges a line.

The partition key is the envelope's ``entity_id`` (:func:`partition_key`), so every message
about one entity lands on one partition and is consumed in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from onex_core.errors import UsageError
from onex_core.messages import Envelope

__all__ = [
    "CAUSATION_ID",
    "CONTENT_TYPE",
    "CORRELATION_ID",
    "EVENT_TYPE",
    "JSON",
    "MESSAGE_ID",
    "SCHEMA_VERSION",
    "STANDARD_HEADERS",
    "envelope_headers",
    "header",
    "header_map",
    "partition_key",
]

CONTENT_TYPE = "content_type"
EVENT_TYPE = "event_type"
CORRELATION_ID = "correlation_id"
CAUSATION_ID = "causation_id"
MESSAGE_ID = "message_id"
SCHEMA_VERSION = "schema_version"
STANDARD_HEADERS = frozenset(
    {CONTENT_TYPE, EVENT_TYPE, CORRELATION_ID, CAUSATION_ID, MESSAGE_ID, SCHEMA_VERSION}
)

JSON = "application/json"
"""The content type of the JSON envelope codec."""

_FORBIDDEN = ("\r", "\n", "\x00")


def header(name: str, value: str) -> tuple[str, bytes]:
    """One header: ``(name, value encoded as UTF-8)``.

    Raises:
        UsageError: the name is empty, or the name or value is not a string, contains a
            carriage return, line feed or NUL, or is not encodable as UTF-8. The message names
            the header, not the value.
    """
    if not isinstance(name, str) or not name:
        raise UsageError("a header name must be a non-empty string")
    if any(c in name for c in _FORBIDDEN):
        raise UsageError(f"header name {name!r} contains CR, LF or NUL")
    if not isinstance(value, str):
        raise UsageError(f"header {name!r}: the value must be a string")
    if any(c in value for c in _FORBIDDEN):
        raise UsageError(f"header {name!r}: the value contains CR, LF or NUL")
    try:
        name.encode()
        return name, value.encode()
    except UnicodeEncodeError:
        raise UsageError(f"header {name!r}: not encodable as UTF-8 (a lone surrogate)") from None


def envelope_headers(
    envelope: Envelope, *, content_type: str = JSON
) -> tuple[tuple[str, bytes], ...]:
    """The record headers for ``envelope``: the standard ones, then the envelope's own.

    Returns:
        ``content_type``, ``event_type``, ``correlation_id``, ``causation_id`` (only when the
        envelope has one), ``message_id`` (the envelope id) and ``schema_version``, followed
        by ``envelope.headers`` in their order.

    Raises:
        UsageError: an envelope header uses a standard name, or a name or value contains CR,
            LF or NUL.
    """
    out = [
        header(CONTENT_TYPE, content_type),
        header(EVENT_TYPE, envelope.event_type),
        header(CORRELATION_ID, str(envelope.correlation_id)),
    ]
    if envelope.causation_id is not None:
        out.append(header(CAUSATION_ID, str(envelope.causation_id)))
    out.append(header(MESSAGE_ID, str(envelope.envelope_id)))
    out.append(header(SCHEMA_VERSION, str(envelope.schema_version)))
    for name, value in envelope.headers.items():
        if name in STANDARD_HEADERS:
            raise UsageError(
                f"envelope header {name!r} would shadow the standard header of that name"
            )
        out.append(header(name, value))
    return tuple(out)


def header_map(headers: Iterable[tuple[str, bytes]]) -> Mapping[str, str]:
    """Headers as text, for logs and filters: the last value of a name wins; bytes that are not
    UTF-8 are replaced (headers are informational — the envelope body is authoritative)."""
    return {name: value.decode("utf-8", "replace") for name, value in headers}


def partition_key(envelope: Envelope) -> bytes:
    """The record key for ``envelope``: its ``entity_id`` as UTF-8.

    Pass it as ``key=`` when publishing, so one entity's messages share a partition.
    """
    return envelope.entity_id.encode()
