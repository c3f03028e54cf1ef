"""Dead-letter records: what a message that could not be handled leaves behind.

The record follows the upstream DLQ format (reference §6.3) so existing tooling can read it —
``original_topic``, ``original_message {key, value, offset, partition}``, ``failure_reason``,
``failure_timestamp``, ``correlation_id``, ``retry_count``, ``error_type``, ``failure_class`` —
with two additions: ``attempts``, the history of every try (when, what failed, why), and
``intent`` for an effect that failed (its id, type and target), so an operator can tell which
of a message's effects needs attention.

Three things are deliberately different from upstream:

- every text field, *and the original value*, passes through the redactor: secrets never reach
  a DLQ record (upstream copied the value verbatim);
- a record larger than ``max_value_bytes`` is not copied whole: the DLQ keeps its first bytes
  and a SHA-256 of the rest, so a 50 MiB poison message does not become a 50 MiB DLQ message;
- the DLQ record's own id is derived from where the failed message was (topic, partition,
  offset) and what failed, so dead-lettering the same message twice — after a crash between
  the DLQ write and the commit — yields the same id, and readers can deduplicate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onex_adapters.redaction import Redactor
from onex_core.intents import Intent
from onex_core.messages import derive_id
from onex_core.ports import Record

__all__ = ["Attempt", "DeadLetter", "dead_letter"]

_DLQ_NAMESPACE = uuid.UUID("5b0f3a52-0d3c-4c4e-9d0a-6f6e65780001")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at handling a message or running an effect, and how it ended."""

    number: int
    at: datetime
    error_type: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "at": self.at.isoformat(),
            "error_type": self.error_type,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A ready-to-publish DLQ record: topic, key, value bytes and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    message_id: uuid.UUID
    document: dict[str, Any]


def dead_letter(
    *,
    dlq_topic: str,
    record: Record,
    failure_class: str,
    error: BaseException | None,
    error_type: str | None = None,
    reason: str,
    now: datetime,
    redactor: Redactor,
    correlation_id: uuid.UUID | None = None,
    attempts: Sequence[Attempt] = (),
    max_retries: int = 0,
    intent: Intent | None = None,
    source: str = "onex",
    max_value_bytes: int = 64 * 1024,
) -> DeadLetter:
    """Build the DLQ record for ``record``.

    Args:
        failure_class: what kind of failure (``undecodable``, ``no_dispatcher``,
            ``publisher_malformed``, ``invalid_message``, ``handler_error``,
            ``effect_exhausted``, ``effect_rejected``, ``consumer_error``).
        error: the exception, when there is one; its type names ``error_type``.
        reason: a short human explanation; redacted here.
        correlation_id: the envelope's, when it could be decoded; otherwise one is derived
            from the record's position.
    """
    etype = error_type or (type(error).__name__ if error is not None else "Unroutable")
    failure_reason = redactor.redact(reason)
    if correlation_id is None:
        correlation_id = uuid.uuid5(
            _DLQ_NAMESPACE, f"{record.topic}/{record.partition}/{record.offset}"
        )
    what = failure_class if intent is None else f"{failure_class}/{intent.intent_id}"
    message_id = derive_id(
        uuid.uuid5(_DLQ_NAMESPACE, f"{record.topic}/{record.partition}/{record.offset}"), what
    )
    original: dict[str, Any] = {
        "key": _text(record.key, redactor, max_value_bytes)[0] if record.key is not None else None,
        "partition": record.partition,
        "offset": record.offset,
    }
    value, encoding, truncated = _text(record.value, redactor, max_value_bytes)
    original["value"] = value
    if encoding != "utf-8":
        original["value_encoding"] = encoding
    if truncated:
        original["value_truncated"] = True
        original["value_size"] = len(record.value)
        original["value_sha256"] = hashlib.sha256(record.value).hexdigest()
    document: dict[str, Any] = {
        "original_topic": record.topic,
        "original_message": original,
        "failure_reason": failure_reason,
        "failure_timestamp": now.isoformat(),
        "correlation_id": str(correlation_id),
        "retry_count": max(0, len(attempts) - 1),
        "error_type": etype,
        "failure_class": failure_class,
        "attempts": [a.as_json() for a in attempts],
    }
    if intent is not None:
        document["intent"] = {
            "intent_id": str(intent.intent_id),
            "intent_type": intent.intent_type,
            "target": redactor.redact(intent.target),
        }
    value_bytes = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    headers = (
        ("content_type", b"application/json"),
        ("correlation_id", str(correlation_id).encode()),
        ("message_id", str(message_id).encode()),
        ("timestamp", now.isoformat().encode()),
        ("source", source.encode()),
        ("event_type", b"dlq_message"),
        ("schema_version", b"1.0.0"),
        ("retry_count", str(document["retry_count"]).encode()),
        ("max_retries", str(max_retries).encode()),
        ("original_topic", record.topic.encode()),
        ("failure_reason", failure_reason.encode()),
        ("failure_timestamp", now.isoformat().encode()),
        ("failure_class", failure_class.encode()),
    )
    return DeadLetter(dlq_topic, record.key, value_bytes, headers, message_id, document)


def _text(data: bytes, redactor: Redactor, limit: int) -> tuple[str, str, bool]:
    """``data`` as redacted text, its encoding, and whether it was cut."""
    truncated = len(data) > limit
    if truncated:
        data = data[:limit]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64", truncated
    return redactor.scrub(text), "utf-8", truncated
