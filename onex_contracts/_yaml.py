"""Strict YAML: exactly one mapping of plain data, with a mark for every node.

``yaml.safe_load`` is not a safe contract reader. It accepts alias bombs (shared references that
explode on the first traversal), keeps the last of two duplicate keys, raises ``RecursionError``
past a thousand levels, and applies YAML 1.1's coercions: ``NO`` becomes ``False``, ``on`` becomes
``True``, ``1.10`` becomes ``1.1``, ``12:30:00`` becomes ``45000`` and ``0777`` becomes ``511``.

So this module does not construct anything with PyYAML. It reads the *event stream* of PyYAML's
parser (the C parser from libyaml when available, the pure-Python one otherwise; both give the same
events and character-based marks) and builds the values itself, with an explicit stack:

- every tag (``!!python/…``, ``!include``, ``!env``, even ``!!str``), every anchor and every alias
  is refused, naming its line and column — nothing is ever resolved, imported or read;
- mapping keys must be strings, and a duplicate key names both lines;
- nesting deeper than :data:`MAX_DEPTH` stops the read at once (no recursion, so no
  ``RecursionError``);
- plain scalars resolve by the YAML 1.2 core schema: only ``true``/``false`` are booleans, only
  ``null``/``~``/empty is null, ``yes``/``no``/``on``/``off``, ``12:30:00`` and dates stay strings.
  Numbers that YAML 1.1 and 1.2 read differently, or that lose what was written, are refused
  with a hint: ``0777`` (octal in 1.1, decimal in 1.2), ``1.10`` (would silently be ``1.1``),
  ``.nan``/``.inf``, and integers beyond 64 bits;
- the text must be UTF-8 without a byte-order mark, with no NUL, C0/C1 control character or lone
  surrogate — in the file or produced by an escape inside a quoted scalar;
- the input is at most :data:`MAX_BYTES`, checked before anything is parsed, and holds at most
  :data:`MAX_NODES` values, so reading any accepted input takes well under a second.

Sequences become tuples and mappings dicts, so the result validates against strict, frozen
pydantic models without coercion. :class:`Document.spots` maps each field path to where its key and
its value start, which is how a schema error about ``state_machine.transitions[3].to_state`` gets a
file, line and column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from onex_contracts.issues import ContractInvalid, ContractIssue, quote
from onex_core.errors import format_path

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "Path",
    "Spot",
    "read",
    "resolve_plain",
]

MAX_BYTES: Final = 1 << 20
"""The largest contract accepted, in bytes (1 MiB)."""
MAX_DEPTH: Final = 64
"""The deepest nesting of mappings and sequences accepted."""
MAX_ISSUES: Final = 50
"""A read stops after this many problems; the first ones are what an author needs."""
MAX_NODES: Final = 20_000
"""The most values (scalars, mappings and sequences) a contract may hold."""

Path = tuple[str | int, ...]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOMS: Final = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_FORBIDDEN: Final = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

_NULL: Final = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL: Final = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_BOOL_FALSE_UPPER: Final = "FALSE"
_INT: Final = re.compile(r"[-+]?[0-9]+\Z")
_OCT: Final = re.compile(r"0o[0-7]+\Z")
_HEX: Final = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT: Final = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.([0-9]*))?)(?:[eE][-+]?[0-9]+)?\Z")
_SPECIAL_FLOAT: Final = re.compile(r"[-+]?\.(?:inf|Inf|INF)\Z|\.(?:nan|NaN|NAN)\Z")
_INT_LIMIT: Final = 2**63


@dataclass(frozen=True, slots=True)
class Spot:
    """Where a value sits: its key (or, in a sequence, the item itself) and its value.

    Lines and columns are 1-based. ``text`` is the source text of a scalar value (cut at 200
    characters), ``None`` for a mapping or sequence; ``quoted`` says whether the scalar was
    written quoted (or as a block), which decides how an error message advises fixing it.
    """

    key_line: int
    key_column: int
    line: int
    column: int
    text: str | None = None
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Document:
    """One read contract: the data and the spot of every field path."""

    data: dict[str, Any]
    spots: dict[Path, Spot]


class _Ambiguous:
    """A plain scalar that must not silently become a value."""

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


def resolve_plain(text: str) -> Any:
    """Resolve a plain (unquoted) scalar by the YAML 1.2 core schema, refusing ambiguities.

    Returns:
        ``None``, a ``bool``, an ``int``, a finite ``float`` or the text itself — or an internal
        marker for a refused scalar (see :func:`read`).
    """
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if text == _BOOL_FALSE_UPPER:
        return False
    first = text[0]
    if not (first.isdigit() or first in "+-."):
        return text
    if _INT.match(text):
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            return _Ambiguous(
                "ambiguous-number",
                f"{text} has a leading zero (octal in YAML 1.1, decimal in YAML 1.2): "
                f"write {digits.lstrip('0') or '0'}, 0o{digits.lstrip('0') or '0'}, "
                f"or quote it as a string",
            )
        if len(digits) > 19 or abs(int(text)) >= _INT_LIMIT:
            return _Ambiguous("number-range", "integer is out of range (at most 64 bits)")
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8) if len(text) < 24 else _Ambiguous("number-range", "too large")
    if _HEX.match(text):
        return int(text[2:], 16) if len(text) < 19 else _Ambiguous("number-range", "too large")
    if _SPECIAL_FLOAT.match(text):
        return _Ambiguous("non-finite", f"non-finite number {text} is not allowed")
    match = _FLOAT.match(text)
    if match:
        fraction = match.group(1) or ""
        if len(fraction) > 1 and fraction.endswith("0"):
            return _Ambiguous(
                "ambiguous-number",
                f"{text} would silently become {float(text)!r}; quote it ('{text}') "
                "if it is a version or other text",
            )
        value = float(text)
        if not math.isfinite(value):
            return _Ambiguous("non-finite", "number is too large (not finite)")
        return value
    return text


def read(raw: str | bytes, source: str) -> Document:
    """Read one contract document.

    Args:
        raw: the file's bytes (UTF-8) or its text.
        source: the name used in issues (a path, or ``<string>``).

    Returns:
        The :class:`Document`.

    Raises:
        ContractInvalid: every YAML-level problem found (up to :data:`MAX_ISSUES`), each located.
    """
    text = _decode(raw, source)
    builder = _Builder(source)
    builder.run(text)
    if builder.issues:
        raise ContractInvalid(builder.issues)
    assert isinstance(builder.root, dict)
    return Document(builder.root, builder.spots)


# --------------------------------------------------------------------------- decoding


def _decode(raw: str | bytes, source: str) -> str:
    def fail(line: int, column: int, code: str, message: str) -> ContractInvalid:
        return ContractInvalid([ContractIssue(source, line, column, "", message, code)])

    if isinstance(raw, bytes):
        if len(raw) > MAX_BYTES:
            raise fail(1, 1, "too-large", f"contract is {len(raw)} bytes; the limit is 1 MiB")
        for bom in _BOMS:
            if raw.startswith(bom):
                raise fail(
                    1, 1, "encoding", "byte-order mark found: contracts are UTF-8 without a BOM"
                )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            line_start = raw.rfind(b"\n", 0, exc.start) + 1
            column = len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1
            raise fail(line, column, "encoding", f"invalid UTF-8 at byte {exc.start}") from None
    else:
        text = raw
        if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise fail(1, 1, "too-large", "contract is larger than the limit of 1 MiB")
        if text.startswith("\ufeff"):
            raise fail(1, 1, "encoding", "byte-order mark found: contracts are UTF-8 without a BOM")
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        pos = bad.start()
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        where = ""
        if isinstance(raw, bytes):
            where = f" at byte {len(text[:pos].encode('utf-8'))}"
        raise fail(line, column, "encoding", f"{_describe_char(bad.group())}{where} is not allowed")
    return text


def _describe_char(char: str) -> str:
    point = ord(char)
    if 0xD800 <= point <= 0xDFFF:
        return f"lone surrogate U+{point:04X}"
    return f"control character U+{point:04X}"


# --------------------------------------------------------------------------- building


def _position(event: yaml.Event) -> tuple[int, int]:
    """The 1-based line and column where an event starts."""
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Stop(Exception):
    """Internal: the read cannot usefully continue."""


_NO_KEY: Final = object()
_BAD_KEY: Final = object()


@dataclass(slots=True)
class _Frame:
    is_map: bool
    path: Path
    key_line: int
    key_column: int
    line: int
    column: int
    discard: bool
    is_key: bool = False
    items: list[Any] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)
    key: object = _NO_KEY
    key_mark: tuple[int, int] = (0, 0)
    seen: dict[str, int] = field(default_factory=dict)


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[ContractIssue] = []
        self.spots: dict[Path, Spot] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.root_seen = False
        self.root_mark = (1, 1)
        self.documents = 0
        self.nodes = 0

    # -- reporting

    def issue(self, line: int, column: int, code: str, message: str, path: Path = ()) -> None:
        self.issues.append(
            ContractIssue(self.source, line, column, format_path(path), message, code)
        )
        if len(self.issues) >= MAX_ISSUES:
            raise _Stop

    # -- the event loop

    def run(self, text: str) -> None:
        loader = _LOADER(text)
        try:
            while True:
                try:
                    if not loader.check_event():
                        break
                    event = loader.get_event()
                except yaml.MarkedYAMLError as exc:
                    self._syntax(exc)
                    return
                except yaml.YAMLError as exc:  # a reader error: has a position, no mark
                    self.issues.append(
                        ContractIssue(self.source, 1, 1, "", f"unreadable YAML: {exc}", "yaml")
                    )
                    return
                self._feed(event)
        except _Stop:
            return
        except (RecursionError, MemoryError):
            self.issues.append(
                ContractIssue(self.source, 1, 1, "", "document is too complex", "too-complex")
            )
            return
        finally:
            loader.dispose()
        if not self.root_seen or (self.root is None and not self.issues):
            self.issues.append(
                ContractIssue(
                    self.source,
                    1,
                    1,
                    "",
                    "expected exactly one mapping document, found none",
                    "document",
                )
            )
        elif not isinstance(self.root, dict) and not self.issues:
            kind = "a sequence" if isinstance(self.root, tuple) else "a scalar"
            line, column = self.root_mark
            self.issues.append(
                ContractIssue(
                    self.source,
                    line,
                    column,
                    "",
                    f"expected exactly one mapping document, found {kind}",
                    "document",
                )
            )

    def _syntax(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "; ".join(parts) or "invalid YAML"
        self.issues.append(ContractIssue(self.source, line, column, "", message, "yaml-syntax"))

    def _feed(self, event: yaml.Event) -> None:
        line, column = _position(event)
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.issue(
                    line,
                    column,
                    "document",
                    "expected exactly one mapping document; a second document starts here",
                )
                raise _Stop
            return
        if isinstance(event, yaml.CollectionEndEvent):
            self._end_collection()
            return
        if not isinstance(event, yaml.NodeEvent):
            return  # stream start/end, document end
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.issue(line, column, "too-large", f"contract holds more than {MAX_NODES:,} values")
            raise _Stop
        if event.anchor is not None:
            if isinstance(event, yaml.AliasEvent):
                self.issue(
                    line,
                    column,
                    "yaml-alias",
                    f"aliases (*{event.anchor}) are not allowed; repeat the value instead",
                )
            else:
                self.issue(
                    line,
                    column,
                    "yaml-anchor",
                    f"anchors (&{event.anchor}) are not allowed; repeat the value instead",
                )
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            self.issue(line, column, "yaml-tag", f"tags are not allowed ({quote(shown)})")
        top = self.stack[-1] if self.stack else None
        as_key = top is not None and top.is_map and top.key is _NO_KEY
        if isinstance(event, yaml.CollectionStartEvent):
            self._start_collection(event, top, as_key, line, column)
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event, top, as_key, line, column)
        elif as_key:  # an alias used as a key
            assert top is not None
            top.key = _BAD_KEY
        else:
            self._place(None, top, line, column, None)

    def _start_collection(
        self,
        event: yaml.CollectionStartEvent,
        top: _Frame | None,
        as_key: bool,
        line: int,
        column: int,
    ) -> None:
        if len(self.stack) >= MAX_DEPTH:
            self.issue(line, column, "too-deep", f"nesting is deeper than {MAX_DEPTH} levels")
            raise _Stop
        is_map = isinstance(event, yaml.MappingStartEvent)
        if as_key:
            self.issue(
                line,
                column,
                "key-type",
                f"mapping keys must be strings, not a {'mapping' if is_map else 'sequence'}",
            )
        path, key_line, key_column, discard = self._slot(top, line, column)
        self.stack.append(
            _Frame(
                is_map,
                path,
                key_line,
                key_column,
                line,
                column,
                discard=discard or as_key,
                is_key=as_key,
            )
        )

    def _end_collection(self) -> None:
        frame = self.stack.pop()
        top = self.stack[-1] if self.stack else None
        if frame.is_key:
            assert top is not None
            top.key = _BAD_KEY
            return
        value: Any = frame.mapping if frame.is_map else tuple(frame.items)
        self._place(value, top, frame.line, frame.column, None, frame=frame)

    def _scalar(
        self, event: yaml.ScalarEvent, top: _Frame | None, as_key: bool, line: int, column: int
    ) -> None:
        plain = event.style in (None, "") and event.tag is None
        value: Any = resolve_plain(event.value) if plain else event.value
        if isinstance(value, _Ambiguous) and not as_key:  # as a key, _key refuses it
            path, *_ = self._slot(top, line, column)
            self.issue(line, column, value.code, value.message, path)
            value = None
        if isinstance(value, str) and not plain:
            bad = _FORBIDDEN.search(value)
            if bad is not None:
                self.issue(
                    line,
                    column,
                    "encoding",
                    f"{_describe_char(bad.group())} in a quoted scalar is not allowed",
                )
        if as_key:
            assert top is not None
            self._key(top, value, line, column)
            return
        self._place(value, top, line, column, event.value[:200], quoted=not plain)

    def _key(self, top: _Frame, key: Any, line: int, column: int) -> None:
        if not isinstance(key, str):
            self.issue(
                line, column, "key-type", "mapping keys must be strings; quote this key", top.path
            )
            top.key = _BAD_KEY
            return
        if key in top.seen:
            first = top.seen[key]
            self.issue(
                line,
                column,
                "duplicate-key",
                f"duplicate key {quote(key)} (lines {first} and {line})",
                (*top.path, key),
            )
            top.key = _BAD_KEY
            return
        top.seen[key] = line
        top.key = key
        top.key_mark = (line, column)

    def _slot(self, top: _Frame | None, line: int, column: int) -> tuple[Path, int, int, bool]:
        """The path, key mark and discard flag of a value arriving under ``top``."""
        if top is None:
            return (), line, column, False
        if top.is_map:
            if top.key is _BAD_KEY or top.key is _NO_KEY:
                return top.path, line, column, True
            assert isinstance(top.key, str)
            return (*top.path, top.key), top.key_mark[0], top.key_mark[1], top.discard
        return (*top.path, len(top.items)), line, column, top.discard

    def _place(
        self,
        value: Any,
        top: _Frame | None,
        line: int,
        column: int,
        text: str | None,
        frame: _Frame | None = None,
        *,
        quoted: bool = False,
    ) -> None:
        if frame is not None:
            path, key_line, key_column, discard = (
                frame.path,
                frame.key_line,
                frame.key_column,
                frame.discard,
            )
        else:
            path, key_line, key_column, discard = self._slot(top, line, column)
        if not discard:
            self.spots[path] = Spot(key_line, key_column, line, column, text, quoted)
        if top is None:
            self.root = value
            self.root_seen = True
            self.root_mark = (line, column)
        elif top.is_map:
            if top.key is not _BAD_KEY:
                assert isinstance(top.key, str)
                top.mapping[top.key] = value
            top.key = _NO_KEY
        else:
            top.items.append(value)
