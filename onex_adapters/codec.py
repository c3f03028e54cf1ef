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
``NaN`` / ``Infinity``        ``non-finite``         also a float that overflows (``1e400``)
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

Encoding is canonical and refuses payload values JSON cannot carry: convert datetimes and UUIDs
to strings in the handler that builds the payload. The canonical form is compact, UTF-8 (only
control characters, quotes and backslashes are escaped), with the fields in a fixed order, UUIDs
in lowercase 8-4-4-4-12 form, ``emitted_at`` in RFC 3339 with ``Z`` for UTC (an offset that is
not whole minutes, which RFC 3339 cannot write, is kept in ISO 8601 form), and floats in their
shortest round-tripping form. Non-finite floats, and keys that collide once converted to
strings, are refused.

**Two ways in.** Almost every record a topic carries was written by this encoder, so decoding
tries the cheap way first: msgspec parses the record straight into an :class:`Envelope`, in C
(UUID and datetime fields typed; NaN, overlong numbers, invalid UTF-8 and lone surrogates
refused), and the envelope is then *re-encoded*. msgspec silently keeps the last of two
duplicate keys and skips unknown fields, but a record that is byte for byte the canonical
encoding of what was decoded cannot have held a duplicate or an unknown field (the re-encoding
would be shorter), nor any other non-canonical spelling. Such a record is then only checked for
what the parser does not know: the topic it arrived on, the schema version, the nesting depth of
the payload, and the rules ``Envelope.__init__`` enforces (msgspec does not call it). Anything
that fails any of this — a bad record, or a good one from another producer that spaces, orders
or spells its JSON differently — is decoded again the careful way, with the standard library and
every check above, which either accepts it or says precisely what is wrong. The careful way is
the authority: the cheap way accepts only records the careful way accepts, as equal envelopes.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn
from uuid import UUID, SafeUUID

import msgspec

from onex_core.errors import ContentError, UsageError
from onex_core.messages import EMPTY_HEADERS, MAX_ENTITY_ID_LENGTH, Envelope

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


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # 1e400 overflows to inf; inf - inf is nan
        raise DecodeError("non-finite", "a number is too large for a float")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_to_dict, parse_constant=_reject_constant, parse_float=_finite_float
)


class _Wire(msgspec.Struct, gc=False):
    """What the encoder writes: an envelope's fields in :class:`Envelope`'s own order, with the
    payload and headers already made JSON-ready. (The decoder reads straight into an
    :class:`Envelope`, whose field order is therefore the canonical one.)"""

    envelope_id: UUID
    topic: str
    event_type: str
    payload: dict[str, Any]
    correlation_id: UUID
    entity_id: str
    emitted_at: datetime
    causation_id: UUID | None
    headers: dict[str, str]
    schema_version: int


# msgspec builds a dataclass without calling its __init__, so the decoder re-checks what
# Envelope.__init__ checks (a test holds the two to the same answers).
_envelope_decode = msgspec.json.Decoder(Envelope).decode
_encoder = msgspec.json.Encoder()
_wire_encode = _encoder.encode
_encode_into = _encoder.encode_into
# The decoder re-encodes every record it takes the cheap way into a buffer of its thread's own,
# reused (a fresh bytes object per record costs a fifth of the check). It grows to the largest
# record re-encoded in the thread, and its contents never leave the decoder.
_scratch = threading.local()
_NO_HEADERS: dict[str, str] = {}  # encoded as {}; never handed out, never mutated
_set_headers = Envelope.__dict__["headers"].__set__

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
        """The canonical JSON form of ``envelope`` (see the module docstring).

        Raises:
            UsageError: the payload or headers hold a value JSON cannot carry (the handler that
                built it must convert it), a non-finite float, or keys that collide once
                converted to strings.
        """
        try:
            payload = _json_ready(envelope.payload)
            headers = _json_ready(envelope.headers) if envelope.headers else _NO_HEADERS
            stamp: object = envelope.emitted_at
            offset = envelope.emitted_at.utcoffset()
            if offset is not None and (offset.microseconds or offset.seconds % 60):
                stamp = envelope.emitted_at.isoformat()  # RFC 3339 offsets are whole minutes
            wire = _Wire(
                envelope.envelope_id,
                envelope.topic,
                envelope.event_type,
                payload,
                envelope.correlation_id,
                envelope.entity_id,
                stamp,  # type: ignore[arg-type]  # a datetime, or its ISO 8601 text
                envelope.causation_id,
                headers,
                envelope.schema_version,
            )
            return _wire_encode(wire)
        except (TypeError, ValueError, RecursionError) as exc:
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
        # The cheap way: only a canonical encoding of an acceptable envelope gets through.
        try:
            buffer: bytearray = _scratch.buffer
        except AttributeError:
            buffer = _scratch.buffer = bytearray(1024)
        try:
            envelope = _envelope_decode(data)
            _encode_into(envelope, buffer)
        except Exception:  # msgspec's errors, UnicodeDecodeError, RecursionError: all declined
            return self._decode_carefully(data, arrived_on)
        entity_id = envelope.entity_id
        version = envelope.schema_version
        if (
            buffer != data  # a duplicate key, or anything not spelled canonically
            or (arrived_on is not None and envelope.topic != arrived_on)
            or not 1 <= version <= self.max_schema_version
            # what Envelope.__init__ refuses (msgspec gives a datetime a fixed-offset tzinfo
            # or none, so "no tzinfo" is "no offset", and much cheaper to ask):
            or envelope.emitted_at.tzinfo is None
            or not entity_id
            or len(entity_id) > MAX_ENTITY_ID_LENGTH
            or not envelope.event_type
        ):
            return self._decode_carefully(data, arrived_on)
        payload = envelope.payload
        for value in payload.values():
            if type(value) is dict or type(value) is list:
                if not _shallow(payload, self.max_depth - 2):
                    return self._decode_carefully(data, arrived_on)
                break
        if not envelope.headers:
            _set_headers(envelope, EMPTY_HEADERS)
        return envelope

    def _decode_carefully(self, data: bytes, arrived_on: str | None) -> Envelope:
        """The standard library's way, with every check: the authority (see the module
        docstring)."""
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


def _shallow(payload: Mapping[str, Any], levels: int) -> bool:
    """Whether no container in ``payload`` lies more than ``levels`` levels below it."""
    stack: list[tuple[Any, int]] = [(payload, 0)]
    while stack:
        node, depth = stack.pop()
        for value in node.values() if type(node) is dict else node:
            if type(value) is dict or type(value) is list:
                if depth >= levels:
                    return False
                stack.append((value, depth + 1))
    return True


def _json_ready(value: Any) -> Any:
    """``value`` itself when it holds only what JSON carries, in the plain types msgspec encodes
    exactly as the standard library would; otherwise a converted copy (read-only mappings become
    dicts, keys strings, subclasses of str, int and float their base type).

    Raises:
        TypeError: a value JSON cannot carry (a datetime, a UUID, bytes, a set, ...), or a key
            that is not a string, number, boolean or None.
        ValueError: a non-finite float, or two keys that collide once converted to strings.
        RecursionError: a container that contains itself.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return _converted(value)
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                continue
            if kind is float:
                if item - item != 0.0:  # inf - inf and nan - nan are nan
                    raise ValueError("a float is not finite")
                continue
            if _json_ready(item) is not item:
                return _converted(value)
        return value
    if kind is list or kind is tuple:
        for item in value:
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                continue
            if kind is float:
                if item - item != 0.0:
                    raise ValueError("a float is not finite")
                continue
            if _json_ready(item) is not item:
                return _converted(value)
        return value
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if value - value != 0.0:
            raise ValueError("a float is not finite")
        return value
    return _converted(value)


def _converted(value: Any) -> Any:
    """The plain-typed copy of ``value``, converted as the standard library's encoder would."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a float is not finite")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key)
            if name in out:
                raise ValueError("two keys are the same once converted to strings")
            out[name] = _converted(item)
        return out
    if isinstance(value, list | tuple):
        return [_converted(item) for item in value]
    raise TypeError(type(value).__name__)


def _key(key: object) -> str:
    # The standard library's conversions of non-string keys.
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, float):
        if not math.isfinite(key):
            raise ValueError("a float key is not finite")
        return float.__repr__(key)
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


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
