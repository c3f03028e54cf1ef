"""The JSON envelope codec: strict on the way in, canonical on the way out.

Whatever arrives on a topic was written by someone else, so decoding is where ONEX decides what
it will not accept. The standard library's ``json`` is lenient in ways that matter here: it
accepts ``NaN`` and ``Infinity``, silently keeps the last of two duplicate keys, raises
``RecursionError`` on deep nesting and happily returns lone surrogates that blow up later. The
codec refuses all of these, and a few more:

============================  =====================  =========================================
input                         code                   note
============================  =====================  =========================================
more than ``max_bytes``       ``too-large``          checked before any parsing; size only
invalid UTF-8, BOM            ``not-utf8``           names the byte offset
not JSON                      ``not-json``           names line and column
duplicate key                 ``duplicate-key``      names the object's JSON pointer
``NaN`` / ``Infinity``        ``non-finite``
integer of 4,300+ digits      ``bad-number``         the digits are never echoed
nesting beyond ``max_depth``  ``too-deep``
lone surrogate in a string    ``bad-string``
missing or mistyped field     ``missing-field`` /    names the field
                              ``bad-field``
naive ``emitted_at``          ``bad-field``
``schema_version`` too new    ``schema-mismatch``
``topic`` disagrees with the  ``topic-mismatch``     the record was re-routed or forged
topic it arrived on
============================  =====================  =========================================

Every failure is a :class:`DecodeError`, a :class:`~onex_core.errors.ContentError`: the runtime
dead-letters the record at once and moves on. Messages name the field and the rule, never the
value, because values may be secrets.

Encoding is canonical (compact separators, UTF-8, no NaN) and refuses payload values JSON cannot
carry: convert datetimes and UUIDs to strings in the handler that builds the payload.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn
from uuid import UUID, SafeUUID

from onex_core.errors import ContentError, UsageError
from onex_core.messages import EMPTY_HEADERS, Envelope

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DecodeError",
    "EnvelopeCodec",
    "decode_envelope",
    "encode_envelope",
]

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 64


class DecodeError(ContentError):
    """A record could not be decoded into an envelope.

    ``code`` is stable and short (see the module table); ``pointer`` is the JSON pointer of the
    offending field when there is one.
    """

    def __init__(self, code: str, message: str, pointer: str | None = None) -> None:
        self.code = code
        self.pointer = pointer
        shown = pointer if pointer is None or len(pointer) <= 80 else pointer[:80] + "…"
        where = f" at {shown}" if shown else ""
        super().__init__(f"{code}{where}: {message}")


def _reject_constant(name: str) -> NoReturn:
    raise DecodeError("non-finite", f"{name} is not a JSON number")


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_to_dict, parse_constant=_reject_constant)


def _plain(value: object) -> object:
    # Read-only mappings (MappingProxyType, frozen views) encode as objects; nothing else extra.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):  # pragma: no cover - the C encoder handles tuples itself
        return list(value)
    raise TypeError(type(value).__name__)


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain
)

_REQUIRED_STR = ("topic", "event_type", "entity_id", "emitted_at")


class EnvelopeCodec:
    """Encode envelopes to JSON bytes and decode them back, strictly.

    Args:
        max_bytes: the largest record accepted, checked before parsing.
        max_depth: the deepest nesting of objects and arrays accepted.
        max_schema_version: the newest ``schema_version`` this reader understands.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_schema_version: int = 1,
    ) -> None:
        if max_bytes < 1 or max_depth < 2 or max_schema_version < 1:
            raise UsageError("codec limits must be positive (max_depth at least 2)")
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_schema_version = max_schema_version

    # ------------------------------------------------------------------ encode

    def encode(self, envelope: Envelope) -> bytes:
        """The canonical JSON form of ``envelope``.

        Raises:
            UsageError: the payload holds a value JSON cannot carry (the handler that built it
                must convert it), or a non-finite float.
        """
        document = {
            "envelope_id": str(envelope.envelope_id),
            "topic": envelope.topic,
            "event_type": envelope.event_type,
            "payload": envelope.payload,
            "correlation_id": str(envelope.correlation_id),
            "causation_id": None if envelope.causation_id is None else str(envelope.causation_id),
            "entity_id": envelope.entity_id,
            "emitted_at": envelope.emitted_at.isoformat(),
            "headers": envelope.headers,
            "schema_version": envelope.schema_version,
        }
        try:
            return _ENCODER.encode(document).encode()
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"envelope {envelope.event_type!r}: payload is not JSON-serialisable "
                f"({type(exc).__name__}: convert datetimes, UUIDs and other objects to strings, "
                "and use finite numbers only)"
            ) from None

    # ------------------------------------------------------------------ decode

    def decode(self, data: bytes, *, arrived_on: str | None = None) -> Envelope:
        """Decode one record into an :class:`Envelope`.

        Args:
            data: the record's value.
            arrived_on: the topic the record was read from; when given, the envelope's own
                ``topic`` must equal it.

        Raises:
            DecodeError: the record is not an acceptable envelope; nothing is returned.
        """
        if len(data) > self.max_bytes:
            raise DecodeError(
                "too-large", f"record is {len(data)} bytes; the limit is {self.max_bytes}"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("not-utf8", f"invalid UTF-8 at byte {exc.start}") from None
        if text.startswith("\ufeff"):
            raise DecodeError("not-utf8", "a byte-order mark is not allowed")
        document = self._parse(text)
        if not isinstance(document, dict):
            raise DecodeError("bad-field", "an envelope must be a JSON object", "")
        # The walk below is needed only when the text could hold deep nesting or an escaped
        # lone surrogate; both leave traces a C-speed scan of the text finds.
        if "\\u" in text or text.count("{") + text.count("[") > self.max_depth:
            _check_depth(document, self.max_depth)
        return self._envelope(document, arrived_on)

    def _parse(self, text: str) -> Any:
        try:
            return _DECODER.decode(text)
        except DecodeError:
            raise
        except _DuplicateKey as exc:
            raise DecodeError("duplicate-key", f"key {_quote(exc.key)} appears twice") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(
                "not-json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except RecursionError:
            raise DecodeError("too-deep", f"nesting deeper than {self.max_depth}") from None
        except ValueError:
            # CPython's int-digit limit; the message would echo the digits, so it is replaced.
            raise DecodeError("bad-number", "a number has too many digits") from None

    def _envelope(self, doc: dict[str, Any], arrived_on: str | None) -> Envelope:
        # The fast path: a well-formed envelope passes these checks in one go. Anything else
        # takes the careful path below, which says exactly what is wrong.
        get = doc.get
        topic = get("topic")
        payload = get("payload")
        headers = get("headers")
        version = get("schema_version", 1)
        causation = get("causation_id")
        emitted = get("emitted_at")
        if (
            type(topic) is str
            and (arrived_on is None or topic == arrived_on)
            and type(payload) is dict
            and type(emitted) is str
            and type(get("event_type")) is str
            and type(get("entity_id")) is str
            and (headers is None or (type(headers) is dict and not headers))
            and type(version) is int
            and 1 <= version <= self.max_schema_version
            and doc.keys() <= _KNOWN_FIELDS
        ):
            try:
                stamp = datetime.fromisoformat(emitted)
                if stamp.utcoffset() is not None:
                    return Envelope(
                        _uuid(get("envelope_id"), "envelope_id"),
                        topic,
                        doc["event_type"],
                        payload,
                        _uuid(get("correlation_id"), "correlation_id"),
                        doc["entity_id"],
                        stamp,
                        None if causation is None else _uuid(causation, "causation_id"),
                        EMPTY_HEADERS,
                        version,
                    )
            except (ValueError, ContentError):
                pass  # the careful path names the problem
        return self._envelope_carefully(doc, arrived_on)

    def _envelope_carefully(self, doc: dict[str, Any], arrived_on: str | None) -> Envelope:
        for name in _REQUIRED_STR:
            value = doc.get(name)
            if not isinstance(value, str):
                _field_error(doc, name, "a string")
        payload = doc.get("payload")
        if not isinstance(payload, dict):
            _field_error(doc, "payload", "an object")
        headers = doc.get("headers", EMPTY_HEADERS)
        if headers is None:
            headers = EMPTY_HEADERS
        elif not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise DecodeError("bad-field", "must be an object of strings", "/headers")
        version = doc.get("schema_version", 1)
        if type(version) is not int or version < 1:
            raise DecodeError("bad-field", "must be a positive integer", "/schema_version")
        if version > self.max_schema_version:
            raise DecodeError(
                "schema-mismatch",
                f"schema_version {version} is newer than the supported {self.max_schema_version}",
                "/schema_version",
            )
        topic: str = doc["topic"]
        if arrived_on is not None and topic != arrived_on:
            raise DecodeError(
                "topic-mismatch",
                f"envelope names topic {_quote(topic)} but arrived on {_quote(arrived_on)}",
                "/topic",
            )
        emitted_at = _timestamp(doc["emitted_at"])
        causation = doc.get("causation_id")
        extra = doc.keys() - _KNOWN_FIELDS
        if extra:
            raise DecodeError("bad-field", f"unknown field {_quote(min(extra))}", "")
        try:
            return Envelope(
                envelope_id=_uuid(doc.get("envelope_id"), "envelope_id"),
                topic=topic,
                event_type=doc["event_type"],
                payload=payload,
                correlation_id=_uuid(doc.get("correlation_id"), "correlation_id"),
                entity_id=doc["entity_id"],
                emitted_at=emitted_at,
                causation_id=None if causation is None else _uuid(causation, "causation_id"),
                headers=headers,
                schema_version=version,
            )
        except DecodeError:
            raise
        except ContentError as exc:
            raise DecodeError("bad-field", str(exc)) from None


_KNOWN_FIELDS = frozenset(
    {
        "envelope_id",
        "topic",
        "event_type",
        "payload",
        "correlation_id",
        "causation_id",
        "entity_id",
        "emitted_at",
        "headers",
        "schema_version",
    }
)


def _field_error(doc: Mapping[str, Any], name: str, expected: str) -> NoReturn:
    if name not in doc:
        raise DecodeError("missing-field", "required field is missing", f"/{name}")
    raise DecodeError("bad-field", f"must be {expected}", f"/{name}")


_new = object.__new__
_setattr = object.__setattr__
_UNKNOWN_SAFETY = SafeUUID.unknown


def _uuid(value: Any, name: str) -> UUID:
    # The canonical form only, parsed without UUID.__init__'s generality (a third faster).
    if (
        isinstance(value, str)
        and len(value) == 36
        and value[8] == value[13] == value[18] == value[23] == "-"
    ):
        digits = value.replace("-", "")
        if len(digits) == 32 and digits.isascii() and digits.isalnum():
            try:
                number = int(digits, 16)
            except ValueError:
                pass
            else:
                result: UUID = _new(UUID)
                _setattr(result, "int", number)
                _setattr(result, "is_safe", _UNKNOWN_SAFETY)
                return result
    if value is None:
        raise DecodeError("missing-field", "required field is missing", f"/{name}")
    raise DecodeError("bad-field", "must be a UUID in canonical 8-4-4-4-12 form", f"/{name}")


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DecodeError("bad-field", "must be an ISO-8601 timestamp", "/emitted_at") from None
    if parsed.utcoffset() is None:
        raise DecodeError("bad-field", "must carry a timezone offset", "/emitted_at")
    return parsed


def _check_depth(root: Any, max_depth: int) -> None:
    """Walk containers only (payloads are shallow), refusing deep nesting and lone surrogates."""
    stack: list[tuple[Any, int, str]] = [(root, 1, "")]
    while stack:
        node, depth, pointer = stack.pop()
        if depth > max_depth:
            raise DecodeError("too-deep", f"nesting deeper than {max_depth}", pointer)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and not _encodable(key):
                raise DecodeError("bad-string", "a key holds a lone surrogate", pointer)
            if isinstance(value, (dict, list)):
                stack.append((value, depth + 1, f"{pointer}/{_escape(key)}"))
            elif isinstance(value, str):
                if not _encodable(value):
                    raise DecodeError(
                        "bad-string", "a string holds a lone surrogate", f"{pointer}/{_escape(key)}"
                    )
            elif isinstance(value, float) and not math.isfinite(value):  # pragma: no cover
                raise DecodeError("non-finite", "number is not finite", f"{pointer}/{key}")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")[:60]


def _quote(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


_DEFAULT = EnvelopeCodec()


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode with the default codec."""
    return _DEFAULT.encode(envelope)


def decode_envelope(data: bytes, *, arrived_on: str | None = None) -> Envelope:
    """Decode with the default codec (1 MiB, depth 64, schema version 1)."""
    return _DEFAULT.decode(data, arrived_on=arrived_on)
