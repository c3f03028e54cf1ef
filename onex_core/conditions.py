"""Guards: a tiny condition language, parsed once and compiled to a closure.

A guard is one line, ``field op value`` or ``field op`` for the unary operators::

    payload.node_id exists
    state.ack_timeouts < 3
    payload.kind in [effect, compute, "reducer"]
    payload.name matches ^node-[0-9]+$

What this module promises:

- **Parse once, fail loudly.** :func:`parse_condition` either returns a :class:`Condition` or
  raises :class:`~onex_core.errors.GuardError` saying exactly what is wrong (an unknown operator
  with the closest known one, a missing value, a bad regular expression, ...). A contract with a
  guard that does not parse never loads. The original implementation accepted operators it could
  not evaluate and silently answered ``False`` at run time; here every operator that parses also
  evaluates.
- **Evaluate fast, never raise.** The parser compiles each guard into a closure, stored as
  ``condition.evaluate``; evaluation is a dictionary walk and one comparison. Evaluation is
  fail-closed: anything unexpected (a type mismatch, a misbehaving mapping) answers ``False``.

Fields
    A dotted path of identifiers (``payload.node_id``). Each segment looks up a key in a
    :class:`~collections.abc.Mapping`; attributes are never read, so a guard cannot reach
    properties or methods of arbitrary objects. A segment starting with ``_`` is rejected.

Values
    JSON scalars (``42``, ``-1.5``, ``true``, ``false``, ``null``, ``"double-quoted"``),
    ``'single-quoted'`` strings (no escapes), or a bare word, which is a string (``active``,
    ``1.2.3``). A bare word may not contain spaces, quotes, brackets or commas: quote it.
    ``in`` and ``not_in`` take a list, ``[a, b, 3]`` or ``a,b,3``. ``matches`` takes a regular
    expression: quoted, or else the rest of the line as written. ``min_length`` and ``max_length``
    take a non-negative integer.

Semantics
    - A **missing field** (any segment absent, or a segment applied to a non-mapping) makes every
      operator ``False`` except ``not_exists``, which is ``True``. So ``x != 5`` and ``x not_in
      [1]`` are ``False`` when ``x`` is absent: a guard never passes on data it cannot see.
    - ``exists`` (alias ``is_present``) is ``True`` when the path resolves, even to ``null``.
    - Equality is typed: a string equals only a string, a number only a number (``1 == 1.0``),
      a bool only the same bool (``true`` is not ``1``), ``null`` only ``None``. ``!=`` is the
      exact negation of ``==`` on a present field. ``in`` is typed membership; ``not_in`` its
      negation on a present field.
    - ``< <= > >=`` compare numbers with numbers and strings with strings; anything else
      (``"abc" > 5``, ``true > 0``) is ``False``.
    - ``contains``: substring on a string, typed membership on a list, tuple or set, key
      membership on a mapping.
    - ``is_true`` / ``is_false`` need an actual bool: ``1`` is neither.
    - ``matches`` uses **full-match** semantics (:func:`re.fullmatch`): the whole string must
      match, so ``[0-9]+`` does not accept ``"abc123"``. Write ``.*foo.*`` to search. Only
      strings match. Patterns come from contract authors; keep them free of catastrophic
      backtracking, since the data they run on is not trusted.
    - ``min_length N`` / ``max_length N`` apply ``len()`` to strings, sequences, sets and
      mappings; anything else is ``False``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from operator import ge, gt, le, lt
from typing import Any, Final

from onex_core.errors import GuardError

__all__ = ["OPERATORS", "Condition", "parse_condition"]

Check = Callable[[Mapping[str, Any]], bool]

# Every accepted spelling, mapped to its canonical name.
_ALIASES: Final[Mapping[str, str]] = {
    "==": "==",
    "equals": "==",
    "!=": "!=",
    "not_equals": "!=",
    "<": "<",
    "less_than": "<",
    "<=": "<=",
    "less_than_or_equal": "<=",
    ">": ">",
    "greater_than": ">",
    ">=": ">=",
    "greater_than_or_equal": ">=",
    "in": "in",
    "not_in": "not_in",
    "contains": "contains",
    "matches": "matches",
    "exists": "exists",
    "is_present": "exists",
    "not_exists": "not_exists",
    "is_true": "is_true",
    "is_false": "is_false",
    "min_length": "min_length",
    "max_length": "max_length",
}

OPERATORS: Final[frozenset[str]] = frozenset(_ALIASES)
"""Every operator spelling :func:`parse_condition` accepts, aliases included."""

_UNARY: Final = frozenset({"exists", "not_exists", "is_true", "is_false"})
_ORDERING: Final = frozenset({"<", "<=", ">", ">="})

# Spellings people reach for that difflib cannot connect to ours.
_HINTS: Final[Mapping[str, str]] = {
    "=": "==",
    "===": "==",
    "<>": "!=",
    "!==": "!=",
    "=<": "<=",
    "=>": ">=",
    "not": "not_in or not_exists",
    "is": "is_true, is_false or is_present",
    "has": "contains",
    "like": "matches",
    "regex": "matches",
    "~=": "matches",
    "present": "exists",
    "missing": "not_exists",
}

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FIELD_TOKEN = re.compile(r"[^\s=!<>~]+")
_SYMBOLS = re.compile(r"[=!<>~]+")
_WORD = re.compile(r"\S+")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_BARE_FORBIDDEN = re.compile(r"""[\s"'\[\],]""")


class _Missing:
    """The value of a path that does not resolve."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed, compiled guard. Build one with :func:`parse_condition`.

    ``evaluate(data)`` answers the guard for a mapping ``data``; it never raises (see the module
    docstring for the rules). ``expression`` is the text as written, for messages; ``path`` the
    field split on dots; ``operator`` the canonical operator (aliases resolved); ``value`` the
    parsed literal (a tuple for ``in``/``not_in``, the pattern text for ``matches``, ``None``
    for unary operators). Two conditions are equal when their expression, operator and value
    are.
    """

    expression: str
    path: tuple[str, ...]
    operator: str
    value: Any
    evaluate: Check = dataclasses.field(repr=False, compare=False, hash=False)

    @property
    def field(self) -> str:
        """The field as written, ``payload.node_id``."""
        return ".".join(self.path)


def parse_condition(expression: str) -> Condition:
    """Parse and compile one guard expression.

    Args:
        expression: ``field op value`` or ``field op`` (unary operators).

    Returns:
        A frozen :class:`Condition` whose ``evaluate(data)`` answers the guard.

    Raises:
        GuardError: the expression does not parse; the message names the part that is wrong
            and, for an unknown operator, suggests the closest known one. Nothing is cached, so
            a failed parse leaves no trace.
    """
    if not isinstance(expression, str):
        raise GuardError(f"a guard must be a string, not {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise GuardError("empty guard expression; expected 'field operator value'")

    match = _FIELD_TOKEN.match(text)
    if match is None:
        raise GuardError(f"guard {expression!r} starts with an operator; expected a field first")
    path = _parse_field(match.group(), expression)
    rest = text[match.end() :].lstrip()
    if not rest:
        raise GuardError(
            f"guard {expression!r} has no operator after field {match.group()!r}; expected "
            f"for example '{match.group()} exists' or '{match.group()} == value'"
        )

    op_match = _SYMBOLS.match(rest) or _WORD.match(rest)
    assert op_match is not None  # rest is non-empty and stripped
    spelled = op_match.group()
    operator = _ALIASES.get(spelled)
    if operator is None:
        raise GuardError(f"guard {expression!r}: unknown operator {spelled!r}{_suggest(spelled)}")
    raw = rest[op_match.end() :].strip()

    if operator in _UNARY:
        if raw:
            raise GuardError(
                f"guard {expression!r}: operator {spelled!r} takes no value, but {raw!r} follows"
            )
        value: Any = None
    elif not raw:
        raise GuardError(f"guard {expression!r}: operator {spelled!r} needs a value")
    elif operator in ("in", "not_in"):
        value = _parse_list(raw, expression)
    elif operator == "matches":
        value = _parse_pattern(raw, expression)
    elif operator in ("min_length", "max_length"):
        value = _parse_length(raw, spelled, expression)
    else:
        value = _parse_literal(raw, expression)
        if operator in _ORDERING and (value is None or isinstance(value, bool)):
            raise GuardError(
                f"guard {expression!r}: operator {spelled!r} compares numbers or strings, "
                f"not {json.dumps(value)}"
            )
        if operator == "contains" and value is None:
            raise GuardError(f"guard {expression!r}: 'contains' needs a string or number, not null")

    check = _compile(path, operator, value)
    return Condition(expression, path, operator, value, check)


# --------------------------------------------------------------------------- parsing


def _suggest(spelled: str) -> str:
    hint = _HINTS.get(spelled) or _HINTS.get(spelled.lower())
    if hint is None:
        lowered = spelled.lower()
        if lowered in _ALIASES:
            hint = lowered
        else:
            close = difflib.get_close_matches(lowered, sorted(_ALIASES), n=1, cutoff=0.6)
            hint = close[0] if close else None
    if hint is not None:
        return f"; did you mean {hint}?"
    return f"; known operators: {', '.join(sorted(_ALIASES))}"


def _parse_field(token: str, expression: str) -> tuple[str, ...]:
    segments = token.split(".")
    for segment in segments:
        if not segment:
            raise GuardError(f"guard {expression!r}: field {token!r} has an empty path segment")
        if segment.startswith("_"):
            raise GuardError(
                f"guard {expression!r}: field segment {segment!r} starts with '_'; "
                "private fields cannot be guarded"
            )
        if not _SEGMENT.match(segment):
            raise GuardError(
                f"guard {expression!r}: field {token!r} is not a dotted path of identifiers "
                f"(segment {segment!r})"
            )
    return tuple(segments)


def _parse_literal(raw: str, expression: str) -> str | int | float | bool | None:
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            raise GuardError(
                f"guard {expression!r}: {raw!r} is not one complete double-quoted string"
            ) from None
        if not isinstance(value, str):
            raise GuardError(
                f"guard {expression!r}: {raw!r} is not one complete double-quoted string"
            )
        return value
    if raw.startswith("'"):
        if len(raw) < 2 or not raw.endswith("'") or "'" in raw[1:-1]:
            raise GuardError(
                f"guard {expression!r}: {raw!r} is not one complete single-quoted string "
                "(single-quoted strings have no escapes; use double quotes)"
            )
        return raw[1:-1]
    if raw == "true":
        return True
    if raw == "false":
        return False
    if raw == "null":
        return None
    if _INTEGER.match(raw):
        return int(raw)
    if _NUMBER.match(raw):
        number = float(raw)
        if not math.isfinite(number):
            raise GuardError(f"guard {expression!r}: number {raw!r} is not finite")
        return number
    bad = _BARE_FORBIDDEN.search(raw)
    if bad is not None:
        raise GuardError(
            f"guard {expression!r}: value {raw!r} contains {bad.group()!r}; quote it "
            "(for a list, use 'in' or 'not_in')"
        )
    return raw


def _split_items(body: str, expression: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    for char in body:
        if quote:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if quote:
        raise GuardError(f"guard {expression!r}: unterminated {quote} string in the list")
    items.append("".join(current).strip())
    return items


def _parse_list(raw: str, expression: str) -> tuple[str | int | float | bool | None, ...]:
    body = raw
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise GuardError(f"guard {expression!r}: list {raw!r} has no closing ']'")
        body = raw[1:-1]
    elif raw.endswith("]"):
        raise GuardError(f"guard {expression!r}: list {raw!r} has no opening '['")
    if not body.strip():
        raise GuardError(f"guard {expression!r}: the list is empty; it could never match")
    items = _split_items(body, expression)
    values = []
    for position, item in enumerate(items):
        if not item:
            raise GuardError(f"guard {expression!r}: list item {position} is empty")
        values.append(_parse_literal(item, expression))
    return tuple(values)


def _parse_pattern(raw: str, expression: str) -> str:
    pattern = raw
    if raw[0] in "\"'":
        literal = _parse_literal(raw, expression)
        assert isinstance(literal, str)
        pattern = literal
    try:
        re.compile(pattern)
    except re.error as exc:
        raise GuardError(
            f"guard {expression!r}: bad regular expression {pattern!r}: {exc}"
        ) from None
    return pattern


def _parse_length(raw: str, spelled: str, expression: str) -> int:
    if not _INTEGER.match(raw) or raw.startswith("-"):
        raise GuardError(
            f"guard {expression!r}: {spelled} needs a non-negative integer, not {raw!r}"
        )
    return int(raw)


# --------------------------------------------------------------------------- evaluation
#
# Each operator becomes ``test(value) -> bool`` over a *present* value; _compile wraps it with
# the path walk, the missing-field rule and the catch-all that makes evaluation fail-closed.

Test = Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(value: Any) -> tuple[int, Any] | None:
    """A hashable key under which typed-equal scalars collide, and nothing else does."""
    if isinstance(value, str):
        return (0, value)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if value is None:
        return (3, None)
    return None


def _equals(literal: Any) -> Test:
    if literal is None or isinstance(literal, bool):
        return lambda value: value is literal
    if isinstance(literal, str):
        return lambda value: isinstance(value, str) and value == literal
    return lambda value: _is_number(value) and bool(value == literal)


def _ordering(operator: str, literal: Any) -> Test:
    compare = _COMPARE[operator]
    if isinstance(literal, str):
        return lambda value: isinstance(value, str) and compare(value, literal)
    return lambda value: _is_number(value) and compare(value, literal)


_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
}


def _member_of(literals: tuple[Any, ...]) -> Test:
    keys = frozenset(_key(item) for item in literals)
    return lambda value: _key(value) in keys


def _contains(literal: Any) -> Test:
    wanted = _key(literal)

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return isinstance(literal, str) and literal in value
        if isinstance(value, Mapping):
            if isinstance(literal, str):
                return literal in value
            return any(_key(key) == wanted for key in value)
        if isinstance(value, Sequence | Set) and not isinstance(value, bytes | bytearray):
            return any(_key(item) == wanted for item in value)
        return False

    return test


def _sized(value: Any) -> bool:
    return isinstance(value, str | Sequence | Set | Mapping)


def _test_for(operator: str, value: Any) -> Test:
    if operator == "==":
        return _equals(value)
    if operator == "!=":
        equal = _equals(value)
        return lambda present: not equal(present)
    if operator in _ORDERING:
        return _ordering(operator, value)
    if operator == "in":
        return _member_of(value)
    if operator == "not_in":
        member = _member_of(value)
        return lambda present: not member(present)
    if operator == "contains":
        return _contains(value)
    if operator == "matches":
        fullmatch = re.compile(value).fullmatch
        return lambda present: isinstance(present, str) and fullmatch(present) is not None
    if operator == "exists":
        return lambda present: True
    if operator == "not_exists":
        return lambda present: False
    if operator == "is_true":
        return lambda present: present is True
    if operator == "is_false":
        return lambda present: present is False
    if operator == "min_length":
        return lambda present: _sized(present) and len(present) >= value
    if operator == "max_length":
        return lambda present: _sized(present) and len(present) <= value
    raise AssertionError(f"operator {operator!r} has no evaluator")  # every alias maps above


def _compile(path: tuple[str, ...], operator: str, value: Any) -> Check:
    if len(path) == 1:
        fast = _single_key(path[0], operator, value)
        if fast is not None:
            return fast
    test = _test_for(operator, value)
    if_missing = operator == "not_exists"
    missing = _MISSING
    first, rest = path[0], path[1:]

    if not rest:

        def evaluate(data: Mapping[str, Any]) -> bool:
            try:
                found = data.get(first, missing)
                if found is missing:
                    return if_missing
                return test(found)
            except Exception:
                return False

        return evaluate

    def evaluate_path(data: Mapping[str, Any]) -> bool:
        try:
            found = data.get(first, missing)
            for key in rest:
                if type(found) is not dict and not isinstance(found, Mapping):
                    return if_missing  # also when found is missing
                found = found.get(key, missing)
            if found is missing:
                return if_missing
            return test(found)
        except Exception:
            return False

    return evaluate_path


def _single_key(key: str, operator: str, literal: Any) -> Check | None:
    """One-call closures for the commonest guards on a top-level key; same answers as the
    general path (the tests check both)."""
    missing = _MISSING
    # .get, not ``in``: on a non-mapping ``in`` would test substrings or list items.
    if operator == "exists":

        def exists(data: Mapping[str, Any]) -> bool:
            try:
                return data.get(key, missing) is not missing
            except Exception:
                return False

        return exists
    if operator == "not_exists":

        def not_exists(data: Mapping[str, Any]) -> bool:
            try:
                return data.get(key, missing) is missing
            except Exception:
                return False

        return not_exists
    if operator in ("is_true", "is_false") or (operator == "==" and isinstance(literal, bool)):
        wanted = operator == "is_true" if operator != "==" else literal

        def is_bool(data: Mapping[str, Any]) -> bool:
            try:
                return data.get(key) is wanted
            except Exception:
                return False

        return is_bool
    if operator == "==" and isinstance(literal, str):

        def equals_string(data: Mapping[str, Any]) -> bool:
            try:
                found = data.get(key)
                return isinstance(found, str) and found == literal
            except Exception:
                return False

        return equals_string
    return None
