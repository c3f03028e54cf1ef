"""Dead-letter records, read back: :func:`parse_dead_letter` and :class:`DeadLetterView`.

The writer (:func:`onex_adapters.runtime.dlq.dead_letter`) stores the failed message inside a
JSON document — the upstream DLQ fields plus ``attempts`` and ``intent`` — with its value as
UTF-8 text, or as base64 when it was not UTF-8, and cut to a limit with a SHA-256 of the
whole when it was longer. Reading it back is the reverse, and strict: a record that is not a
dead-letter record is refused with every missing or malformed field named (never a value, which
may be anything), so an operator's tool never acts on a guess.

Two details of the format decide how the original bytes come back:

- the document's ``original_message.key`` is text — base64 when the key was not UTF-8, without
  saying so — while the dead-letter record itself is keyed by the original key, unchanged. The
  record's key is used when the document's text spells it (or, for a key that was cut, its
  start); otherwise the text's UTF-8 bytes;
- every registered secret in the value was replaced by ``***`` when it was written, so a value
  that contains ``***`` may differ from the original (:attr:`DeadLetterView.maybe_redacted`).

Records written by the original implementation (no ``failure_class``, ``attempts`` or
``intent``; a time without a zone, taken as UTC) are read too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from onex_adapters.runtime.dlq import Attempt, DeadLetter
from onex_core.errors import ContentError
from onex_core.ports import Record

__all__ = [
    "REDACTED",
    "DeadLetterView",
    "IntentRef",
    "NotADeadLetter",
    "parse_dead_letter",
]

REDACTED = "***"
"""What the DLQ writer puts where a registered secret was."""


class NotADeadLetter(ContentError):
    """A record that is not an ONEX dead-letter record; the message names where it is and every
    field that is missing or malformed (never a value)."""


@dataclass(frozen=True, slots=True)
class IntentRef:
    """The failed intent a dead-letter record names (effect failures only)."""

    intent_id: uuid.UUID
    intent_type: str
    target: str


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One dead-letter record, read back.

    ``key`` and ``value`` are the original message's bytes as a replay would send them
    (``value`` is only the first bytes when ``truncated``). ``dlq_partition`` and
    ``dlq_offset`` say where the record itself is, when it was read from a bus.
    """

    dlq_topic: str
    dlq_partition: int | None
    dlq_offset: int | None
    message_id: uuid.UUID | None
    original_topic: str
    original_partition: int
    original_offset: int
    key: bytes | None
    value: bytes
    value_encoding: Literal["utf-8", "base64"]
    truncated: bool
    value_size: int
    value_sha256: str | None
    failure_class: str | None
    failure_reason: str
    failure_timestamp: datetime
    correlation_id: uuid.UUID
    retry_count: int
    max_retries: int | None
    error_type: str
    attempts: tuple[Attempt, ...] = ()
    intent: IntentRef | None = None
    source: str | None = None

    @property
    def where(self) -> str:
        """Where the record is: ``topic[partition]@offset`` (or just the topic)."""
        if self.dlq_partition is None or self.dlq_offset is None:
            return self.dlq_topic
        return f"{self.dlq_topic}[{self.dlq_partition}]@{self.dlq_offset}"

    @property
    def origin(self) -> tuple[str, int, int]:
        """Where the failed message was: ``(topic, partition, offset)``."""
        return (self.original_topic, self.original_partition, self.original_offset)

    @property
    def maybe_redacted(self) -> bool:
        """The value or key contains ``***``: a secret may have been replaced in it."""
        marker = REDACTED.encode()
        return (self.value_encoding == "utf-8" and marker in self.value) or (
            self.key is not None and marker in self.key
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready description (the value as the record kept it: text or base64)."""
        return {
            "dlq_topic": self.dlq_topic,
            "dlq_partition": self.dlq_partition,
            "dlq_offset": self.dlq_offset,
            "message_id": _str_or_none(self.message_id),
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "key": _show_bytes(self.key),
            "value": _show_bytes(self.value)
            if self.value_encoding == "utf-8"
            else base64.b64encode(self.value).decode(),
            "value_encoding": self.value_encoding,
            "value_truncated": self.truncated,
            "value_size": self.value_size,
            "value_sha256": self.value_sha256,
            "failure_class": self.failure_class,
            "failure_reason": self.failure_reason,
            "failure_timestamp": self.failure_timestamp.isoformat(),
            "correlation_id": str(self.correlation_id),
            "retry_count": self.retry_count,
            "max_retries": self.max_retries,
            "error_type": self.error_type,
            "attempts": [a.as_json() for a in self.attempts],
            "intent": None
            if self.intent is None
            else {
                "intent_id": str(self.intent.intent_id),
                "intent_type": self.intent.intent_type,
                "target": self.intent.target,
            },
            "source": self.source,
        }


# --------------------------------------------------------------------------- parsing


def parse_dead_letter(record: Record | DeadLetter) -> DeadLetterView:
    """Read one dead-letter record: from a bus (:class:`Record`) or as built by
    :func:`~onex_adapters.runtime.dlq.dead_letter` (:class:`DeadLetter`).

    Upstream records (without ``failure_class``, ``attempts``, ``intent``) are read too.
    A naive ``failure_timestamp`` is taken as UTC.

    Raises:
        NotADeadLetter: the value is not a JSON object, or a required field is missing or
            malformed; the message lists every such field and where the record is.
    """
    if isinstance(record, DeadLetter):
        partition: int | None = None
        offset: int | None = None
        where = record.topic
    else:
        partition, offset = record.partition, record.offset
        where = f"{record.topic}[{record.partition}]@{record.offset}"
    try:
        document = json.loads(record.value)
    except (UnicodeDecodeError, ValueError):
        raise NotADeadLetter(
            f"{where}: not an ONEX dead-letter record: the value is not JSON"
        ) from None
    if not isinstance(document, dict):
        raise NotADeadLetter(
            f"{where}: not an ONEX dead-letter record: the value is not a JSON object"
        )
    fields = _Fields(document)
    original_topic = fields.text("original_topic")
    message = fields.mapping("original_message")
    inner = _Fields(message, "original_message.", fields.problems)
    original_partition = inner.integer("partition")
    original_offset = inner.integer("offset")
    text_value = inner.text("value", allow_empty=True)
    text_key = inner.optional_text("key")
    encoding = inner.optional_text("value_encoding") or "utf-8"
    truncated = inner.optional_flag("value_truncated")
    size = inner.optional_integer("value_size")
    sha256 = inner.optional_text("value_sha256")
    failure_reason = fields.text("failure_reason", allow_empty=True)
    failure_timestamp = fields.time("failure_timestamp")
    correlation_id = fields.uuid("correlation_id")
    retry_count = fields.integer("retry_count")
    error_type = fields.text("error_type")
    failure_class = fields.optional_text("failure_class")
    attempts = fields.attempts("attempts")
    intent = fields.intent("intent")

    value = b""
    if encoding == "utf-8":
        value = text_value.encode()
    elif encoding == "base64":
        try:
            value = base64.b64decode(text_value, validate=True)
        except (binascii.Error, ValueError):
            fields.problems.append("original_message.value is not valid base64")
    else:
        fields.problems.append("original_message.value_encoding is neither utf-8 nor base64")
    if truncated and (size is None or sha256 is None):
        fields.problems.append("a truncated value needs value_size and value_sha256")
    headers = _headers(record.headers, fields.problems)
    if fields.problems:
        raise NotADeadLetter(
            f"{where}: not an ONEX dead-letter record: {'; '.join(fields.problems)}"
        )
    return DeadLetterView(
        dlq_topic=record.topic,
        dlq_partition=partition,
        dlq_offset=offset,
        message_id=headers.message_id,
        original_topic=original_topic,
        original_partition=original_partition,
        original_offset=original_offset,
        key=_original_key(text_key, record.key),
        value=value,
        value_encoding="base64" if encoding == "base64" else "utf-8",
        truncated=truncated,
        value_size=size if truncated and size is not None else len(value),
        value_sha256=sha256,
        failure_class=failure_class,
        failure_reason=failure_reason,
        failure_timestamp=failure_timestamp,
        correlation_id=correlation_id,
        retry_count=retry_count,
        max_retries=headers.max_retries,
        error_type=error_type,
        attempts=attempts,
        intent=intent,
        source=headers.source,
    )


class _Fields:
    """Typed reads of a JSON object's fields; each problem is noted, never raised at once."""

    def __init__(
        self, document: Mapping[str, Any], prefix: str = "", problems: list[str] | None = None
    ) -> None:
        self.document = document
        self.prefix = prefix
        self.problems: list[str] = [] if problems is None else problems

    def _bad(self, name: str, what: str) -> None:
        self.problems.append(f"{self.prefix}{name} {what}")

    def _get(self, name: str) -> Any:
        if name not in self.document:
            self._bad(name, "is missing")
            return None
        return self.document[name]

    def text(self, name: str, *, allow_empty: bool = False) -> str:
        value = self._get(name)
        if name in self.document and (
            not isinstance(value, str) or (not value and not allow_empty)
        ):
            self._bad(name, "is not a non-empty string" if not allow_empty else "is not a string")
        return value if isinstance(value, str) else ""

    def optional_text(self, name: str) -> str | None:
        value = self.document.get(name)
        if value is not None and not isinstance(value, str):
            self._bad(name, "is not a string")
            return None
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if name in self.document and not _is_count(value):
            self._bad(name, "is not an integer >= 0")
        return value if _is_count(value) else 0

    def optional_integer(self, name: str) -> int | None:
        value = self.document.get(name)
        if value is not None and not _is_count(value):
            self._bad(name, "is not an integer >= 0")
            return None
        return value

    def optional_flag(self, name: str) -> bool:
        value = self.document.get(name, False)
        if not isinstance(value, bool):
            self._bad(name, "is not true or false")
            return False
        return value

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self._get(name)
        if name in self.document and not isinstance(value, dict):
            self._bad(name, "is not an object")
        return value if isinstance(value, dict) else {}

    def time(self, name: str) -> datetime:
        value = self._get(name)
        parsed = _iso_time(value) if isinstance(value, str) else None
        if parsed is None:
            if name in self.document:
                self._bad(name, "is not an ISO-8601 time")
            return datetime.min.replace(tzinfo=UTC)
        return parsed

    def uuid(self, name: str) -> uuid.UUID:
        value = self._get(name)
        parsed = _uuid(value)
        if parsed is None:
            if name in self.document:
                self._bad(name, "is not a UUID")
            return uuid.UUID(int=0)
        return parsed

    def attempts(self, name: str) -> tuple[Attempt, ...]:
        items = self.document.get(name, [])
        if not isinstance(items, list):
            self._bad(name, "is not a list")
            return ()
        found: list[Attempt] = []
        for index, item in enumerate(items):
            fields = _Fields(
                item if isinstance(item, dict) else {}, f"{name}[{index}].", self.problems
            )
            if not isinstance(item, dict):
                self._bad(f"{name}[{index}]", "is not an object")
                continue
            found.append(
                Attempt(
                    fields.integer("attempt"),
                    fields.time("at"),
                    fields.text("error_type"),
                    fields.text("reason", allow_empty=True),
                )
            )
        return tuple(found)

    def intent(self, name: str) -> IntentRef | None:
        item = self.document.get(name)
        if item is None:
            return None
        if not isinstance(item, dict):
            self._bad(name, "is not an object")
            return None
        fields = _Fields(item, f"{name}.", self.problems)
        return IntentRef(
            fields.uuid("intent_id"), fields.text("intent_type"), fields.text("target")
        )


@dataclass(frozen=True, slots=True)
class _Headers:
    """The headers a view keeps."""

    message_id: uuid.UUID | None = None
    max_retries: int | None = None
    source: str | None = None


def _headers(headers: Iterable[tuple[str, bytes]], problems: list[str]) -> _Headers:
    texts: dict[str, str] = {}
    for name, raw in headers:
        if name in ("message_id", "max_retries", "source"):
            try:
                texts[name] = raw.decode()
            except UnicodeDecodeError:
                problems.append(f"header {name} is not UTF-8")
    message_id = _uuid(texts["message_id"]) if "message_id" in texts else None
    if "message_id" in texts and message_id is None:
        problems.append("header message_id is not a UUID")
    max_retries = None
    if "max_retries" in texts:
        if texts["max_retries"].isdigit():
            max_retries = int(texts["max_retries"])
        else:
            problems.append("header max_retries is not an integer >= 0")
    return _Headers(message_id, max_retries, texts.get("source"))


def _original_key(text: str | None, record_key: bytes | None) -> bytes | None:
    """The original key's bytes. The document holds it as text — base64 when it was not UTF-8,
    without saying so, and cut like the value when it was longer than the value limit. ONEX
    also keys the dead-letter record itself by the original key, unchanged: those bytes are
    used when the document's text spells them, or their start."""
    if text is None:
        return None
    if record_key is not None and _spells(text, record_key):
        return record_key
    return text.encode()


def _spells(text: str, key: bytes) -> bool:
    """Whether ``text`` is ``key`` — or its non-empty start — as UTF-8 or as base64."""
    spelled = [text.encode()]
    with contextlib.suppress(binascii.Error, ValueError):
        spelled.append(base64.b64decode(text, validate=True))
    return any(data == key or (data and key.startswith(data)) for data in spelled)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _iso_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _show_bytes(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")
