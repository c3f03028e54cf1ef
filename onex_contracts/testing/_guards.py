"""Payloads for guards: data that makes a guard true, and data that makes it false.

A guard (:mod:`onex_core.conditions`) reads one dotted path of a mapping and applies one
operator. To make it true or false we only need a value for that path — or no value at all: a
missing field makes every operator false except ``not_exists``. So the work splits in two:

1. **One value per constraint.** For each operator and each wanted answer there is a *primary*
   strategy that aims at the answer (``total > 0`` → integers from 1 and positive floats;
   ``name matches ^a+$`` → :func:`hypothesis.strategies.from_regex`; breaking ``x == 5`` → the
   string ``"5"``, other numbers, a missing field …) and, where one exists, a *fallback* value
   that certainly gives the answer. Every drawn value is checked against the real guard and
   replaced by the fallback when it misses, so the strategies are exact without filtering —
   Hypothesis never has to throw an example away. ``matches`` has no general fallback, so its
   values are filtered instead (``from_regex`` is exact already; the filter is a safety net).
2. **One payload per set of constraints.** Constraints are grouped by path. Several ordering
   guards on one path are intersected into one interval (``total > 0`` and ``total <= 100``
   draw from ``(0, 100]``), several length guards into one range; otherwise the most specific
   constraint draws and the others check. The values are then written into a payload — dotted
   paths build nested mappings, shallow paths first — on top of an optional base payload.

Public entry points are :func:`payloads_satisfying` and :func:`payloads_breaking`; the walks in
:mod:`onex_contracts.testing._walks` use the unfiltered :func:`assignments` and let
:func:`~onex_core.fsm.fire` have the last word.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, Final, TypeAlias

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from onex_core.conditions import Condition, parse_condition
from onex_core.errors import UsageError
from onex_core.fsm import Guard

__all__ = [
    "Constraint",
    "GuardLike",
    "Hole",
    "apply",
    "as_condition",
    "assignments",
    "json_values",
    "payloads_breaking",
    "payloads_satisfying",
    "scalars",
]

GuardLike: TypeAlias = Condition | Guard | str
"""A guard as :func:`payloads_satisfying` takes it: compiled, from a machine, or as text."""

Constraint: TypeAlias = tuple[Condition, bool]
"""A guard and the answer wanted from it."""


class Hole(Enum):
    """Values that are not values: how a path is left unresolved."""

    ABSENT = "absent"
    """The last segment is left out of its mapping."""
    BLOCKED = "blocked"
    """The parent of the last segment is a number, so the path cannot resolve."""


_ABSENT: Final = Hole.ABSENT
_BLOCKED: Final = Hole.BLOCKED
_ORDERING: Final = frozenset({"<", "<=", ">", ">="})
_LENGTH: Final = frozenset({"min_length", "max_length"})
_NO_FALLBACK: Final = object()
_MAX_SIZED: Final = 64  # the longest string, list or mapping built for a length guard

_TEXTS: Final = st.text(max_size=10)
_KEYS: Final = st.text(min_size=1, max_size=8)


_SCALARS: Final[SearchStrategy[Any]] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXTS,
)
_JSON: Final[SearchStrategy[Any]] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=8,
)


def scalars() -> SearchStrategy[Any]:
    """JSON scalars: null, booleans, integers, finite floats and short strings."""
    return _SCALARS


def json_values() -> SearchStrategy[Any]:
    """Small JSON values: scalars, and lists and mappings of them, a few levels deep."""
    return _JSON


def as_condition(guard: GuardLike) -> Condition:
    """A compiled condition from a :class:`Condition`, a machine's :class:`Guard` or text.

    Raises:
        GuardError: ``guard`` is text that does not parse.
        UsageError: ``guard`` is none of the three.
    """
    if isinstance(guard, Condition):
        return guard
    if isinstance(guard, Guard):
        return guard.condition
    if isinstance(guard, str):
        return parse_condition(guard)
    raise UsageError(f"expected a guard (Condition, Guard or text), not {type(guard).__name__}")


# --------------------------------------------------------------------------- one value


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The smallest payload in which ``path`` holds ``value`` (or is a hole)."""
    if value is _ABSENT:
        return {}
    if value is _BLOCKED:
        return _nest(path[:-1], 0) if len(path) > 1 else {}
    data: dict[str, Any] = {path[-1]: value}
    for segment in reversed(path[:-1]):
        data = {segment: data}
    return data


def _answers(condition: Condition, value: Any) -> bool:
    return condition.evaluate(_nest(condition.path, value))


def _twin(value: Any) -> Any:
    """A value equal to ``value`` in loose languages but not in the guard language."""
    if isinstance(value, bool):
        return int(value)
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return 0


def _below(value: int | float) -> int | float:
    return value - 1 if isinstance(value, int) else math.nextafter(value, -math.inf)


def _above(value: int | float) -> int | float:
    return value + 1 if isinstance(value, int) else math.nextafter(value, math.inf)


def _numbers_between(
    low: float | None, low_open: bool, high: float | None, high_open: bool
) -> SearchStrategy[Any]:
    """Integers and floats in an interval (``None``: unbounded on that side)."""
    int_low = None if low is None else (math.floor(low) + 1 if low_open else math.ceil(low))
    int_high = None if high is None else (math.ceil(high) - 1 if high_open else math.floor(high))
    options: list[SearchStrategy[Any]] = []
    if int_low is None or int_high is None or int_low <= int_high:
        options.append(st.integers(min_value=int_low, max_value=int_high))
    if low is None or high is None or low < high or (low == high and not (low_open or high_open)):
        options.append(
            st.floats(
                min_value=low,
                max_value=high,
                exclude_min=low_open and low is not None,
                exclude_max=high_open and high is not None,
                allow_nan=False,
                allow_infinity=False,
            )
        )
    if not options:  # an empty interval: nothing satisfies it, so leave the field out
        return st.just(_ABSENT)
    return st.one_of(options)


_OPPOSITE: Final = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _ordered(op: str, v: Any) -> SearchStrategy[Any]:
    """Values ``x`` with ``x op v``: numbers around a number, strings around a string."""
    if not isinstance(v, str):
        low_ops = {">": True, ">=": False}
        if op in low_ops:
            return _numbers_between(v, low_ops[op], None, False)
        return _numbers_between(None, False, v, op == "<")
    if op in ("<", "<="):
        # a proper prefix is below v; the checks in _one catch the texts that are not
        prefixes = st.integers(0, max(len(v) - 1, 0)).map(lambda k: v[:k])
        return st.one_of(prefixes, _TEXTS)
    return st.one_of(_TEXTS.map(lambda tail: v + tail), _TEXTS)


def _sized(low: int, high: int) -> SearchStrategy[Any]:
    """Strings, lists and mappings whose length is in ``[low, high]``."""
    return st.one_of(
        st.text(min_size=low, max_size=high),
        st.lists(scalars(), min_size=low, max_size=high),
        st.dictionaries(st.text(min_size=1, max_size=6), scalars(), min_size=low, max_size=high),
    )


def _fallback(condition: Condition, want: bool) -> Any:
    """A value that certainly gives ``want``, or ``_NO_FALLBACK``."""
    op, v = condition.operator, condition.value
    if not want:
        return 0 if op == "not_exists" else _ABSENT
    if op in ("==", "is_true", "is_false"):
        return {"is_true": True, "is_false": False}.get(op, v)
    if op == "!=":
        return 0 if isinstance(v, str) else "x"
    if op in _ORDERING:
        if isinstance(v, str):
            if op == "<":
                return "" if v else _NO_FALLBACK
            return v + "a" if op == ">" else v
        return {"<": _below(v), ">": _above(v)}.get(op, v)
    if op == "in":
        return v[0]
    if op == "not_in":
        longest = max((len(item) for item in v if isinstance(item, str)), default=0)
        return "x" * (longest + 1)
    if op == "contains":
        return v if isinstance(v, str) else [v]
    if op == "exists":
        return 0
    if op == "not_exists":
        return _ABSENT
    if op == "min_length":
        return "a" * v
    if op == "max_length":
        return ""
    return _NO_FALLBACK  # matches


def _true_values(condition: Condition) -> SearchStrategy[Any]:
    op, v = condition.operator, condition.value
    if op == "==":
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53:
            return st.sampled_from([v, float(v)])
        return st.just(v)
    if op in ("!=", "not_in"):
        return scalars()
    if op in _ORDERING:
        return _ordered(op, v)
    if op == "in":
        return st.sampled_from(v)
    if op == "contains":
        if isinstance(v, str):
            return st.one_of(
                st.builds(lambda a, b: a + v + b, _TEXTS, _TEXTS),
                st.lists(scalars(), max_size=3).map(lambda items: [*items, v]),
                st.dictionaries(_KEYS, scalars(), max_size=3).map(lambda d: {**d, v: 0}),
            )
        return st.lists(scalars(), max_size=3).map(lambda items: [v, *items])
    if op == "matches":
        return st.from_regex(v, fullmatch=True)
    if op == "exists":
        return json_values()
    if op == "not_exists":
        return _holes(condition)
    if op in ("is_true", "is_false"):
        return st.just(op == "is_true")
    if op == "min_length":
        return _sized(v, v + 3) if v <= _MAX_SIZED else st.just("a" * v)
    assert op == "max_length", op
    return _sized(0, min(v, 6))


def _holes(condition: Condition) -> SearchStrategy[Any]:
    if len(condition.path) > 1:
        return st.sampled_from([_ABSENT, _BLOCKED])
    return st.just(_ABSENT)


def _false_values(condition: Condition) -> SearchStrategy[Any]:
    op, v = condition.operator, condition.value
    options: list[SearchStrategy[Any]] = [] if op == "not_exists" else [_holes(condition)]
    if op == "==":
        options += [st.just(_twin(v)), scalars()]
    elif op == "!=":
        options.append(st.just(v))
    elif op in _ORDERING:
        options += [_ordered(_OPPOSITE[op], v), st.just(_twin(v)), st.sampled_from([True, None])]
    elif op == "in":
        options += [scalars(), st.sampled_from([_twin(item) for item in v])]
    elif op == "not_in":
        options.append(st.sampled_from(v))
    elif op == "contains":
        options += [_TEXTS, st.lists(scalars(), max_size=3), st.just(0)]
    elif op == "matches":
        options += [_TEXTS, st.sampled_from([0, None, True])]
    elif op == "not_exists":
        options.append(json_values())
    elif op == "is_true":
        options.append(st.sampled_from([False, 1, "true", None]))
    elif op == "is_false":
        options.append(st.sampled_from([True, 0, "false", None]))
    elif op == "min_length":
        if v > 0:
            options.append(_sized(0, v - 1) if v <= _MAX_SIZED else _sized(0, 3))
        options.append(st.sampled_from([0, 1.5, True, None]))
    elif op == "max_length":
        options += [_sized(v + 1, v + 3), st.sampled_from([0, 1.5, True, None])]
    return st.one_of(options)


def _one(condition: Condition, want: bool) -> SearchStrategy[Any]:
    """Values for one constraint; exact (checked, with the fallback) unless ``matches``."""
    fallback = _fallback(condition, want)
    values = _true_values(condition) if want else _false_values(condition)
    if fallback is _NO_FALLBACK:
        if condition.operator != "matches":  # x < "": never true; _payloads refuses it
            return values
        return values.filter(lambda value: _answers(condition, value) is want)

    def fix(value: Any) -> Any:
        return value if _answers(condition, value) is want else fallback

    return values.map(fix)


# --------------------------------------------------------------------------- several on a path


def _interval_values(constraints: Sequence[Constraint]) -> SearchStrategy[Any]:
    """Numbers satisfying every wanted-true numeric ordering constraint."""
    low: float | None = None
    high: float | None = None
    low_open = high_open = False
    for condition, _ in constraints:
        value, op = condition.value, condition.operator
        if op in (">", ">=") and (low is None or value > low or (value == low and op == ">")):
            low, low_open = value, op == ">"
        elif op in ("<", "<=") and (high is None or value < high or (value == high and op == "<")):
            high, high_open = value, op == "<"
    return _numbers_between(low, low_open, high, high_open)


def _path_values(constraints: Sequence[Constraint]) -> SearchStrategy[Any]:
    """Values for one path that aim at every constraint on it (not guaranteed: a payload is
    checked as a whole by :func:`_payloads`, or by :func:`~onex_core.fsm.fire` in a walk).
    Contradictory constraints get a missing field rather than no value at all, so a walk
    through a transition that can never fire just does not take it."""
    if len(constraints) == 1:
        return _one(*constraints[0])
    wanted = [c for c, want in constraints if want]
    numeric = [
        (c, True)
        for c in wanted
        if c.operator in _ORDERING and not isinstance(c.value, str | bool) and c.value is not None
    ]
    if numeric:
        return _interval_values(numeric)
    lengths = [c for c in wanted if c.operator in _LENGTH]
    if lengths:
        low = max((c.value for c in lengths if c.operator == "min_length"), default=0)
        high = min((c.value for c in lengths if c.operator == "max_length"), default=low + 3)
        return _sized(low, high) if low <= high else st.just(_ABSENT)
    ranked = sorted(constraints, key=_specificity)
    return _one(*ranked[0])


_RANK: Final = {
    "==": 0,
    "in": 1,
    "is_true": 1,
    "is_false": 1,
    "matches": 2,
    "not_exists": 2,
    "contains": 3,
}


def _specificity(constraint: Constraint) -> int:
    condition, want = constraint
    if not want:
        return 8
    return _RANK.get(condition.operator, 5)


def assignments(
    constraints: Iterable[Constraint],
) -> SearchStrategy[list[tuple[tuple[str, ...], Any]]]:
    """``(path, value or hole)`` pairs aiming at every constraint, shallow paths first.

    Not filtered: with several constraints on one path, or constraints on a path and on a path
    inside it, the result may miss. :func:`payloads_satisfying` filters; the walks ask
    :func:`~onex_core.fsm.fire`.
    """
    by_path: dict[tuple[str, ...], list[Constraint]] = {}
    for constraint in constraints:
        by_path.setdefault(constraint[0].path, []).append(constraint)
    paths = sorted(by_path, key=len)
    values = [_path_values(by_path[path]) for path in paths]
    return st.tuples(*values).map(lambda drawn: list(zip(paths, drawn, strict=True)))


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def apply(base: Mapping[str, Any], pairs: Iterable[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """A copy of ``base`` with each ``(path, value)`` written in (holes remove or block)."""
    data = _copy(base)
    for path, value in pairs:
        parent: dict[str, Any] = data
        if value is _BLOCKED:
            path, value = path[:-1], 0
        for segment in path[:-1]:
            child = parent.get(segment)
            if not isinstance(child, dict):
                if value is _ABSENT:
                    break
                child = parent[segment] = {}
            parent = child
        else:
            if value is _ABSENT:
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
    return data


def _payloads(
    constraints: list[Constraint], base: SearchStrategy[Mapping[str, Any]] | None
) -> SearchStrategy[dict[str, Any]]:
    for condition, want in constraints:
        if condition.operator == "<" and want and condition.value == "":
            raise UsageError(
                f"guard {condition.expression!r} can never be true: no string is below ''"
            )
    bases = st.just({}) if base is None else base
    built = st.builds(apply, bases, assignments(constraints))

    def holds(data: dict[str, Any]) -> bool:
        return all(condition.evaluate(data) is want for condition, want in constraints)

    return built.filter(holds)


def payloads_satisfying(
    *guards: GuardLike, base: SearchStrategy[Mapping[str, Any]] | None = None
) -> SearchStrategy[dict[str, Any]]:
    """Payloads on which every guard is true.

    Args:
        guards: one or more guards: compiled :class:`~onex_core.conditions.Condition`\\ s, a
            machine's :class:`~onex_core.fsm.Guard`\\ s, or guard text (``"total > 0"``).
        base: payloads to start from (default: empty); the guards' fields are written over them.

    Returns:
        A strategy of plain, JSON-like ``dict``\\ s. Dotted fields build nested mappings.

    Raises:
        GuardError: guard text does not parse.
        UsageError: no guard was given, or a guard can never be true (``x < ""``). Guards that
            contradict each other (``x == 1`` and ``x == 2``) are found only when drawing:
            Hypothesis reports them as unsatisfiable.
    """
    if not guards:
        raise UsageError("payloads_satisfying needs at least one guard")
    return _payloads([(as_condition(g), True) for g in guards], base)


def payloads_breaking(
    guard: GuardLike,
    *,
    keep: Iterable[GuardLike] = (),
    base: SearchStrategy[Mapping[str, Any]] | None = None,
) -> SearchStrategy[dict[str, Any]]:
    """Payloads on which ``guard`` is false, and every guard in ``keep`` true.

    ``keep`` makes the rejection precise: break one guard of a transition, keep the others, and
    the transition is refused for exactly that guard. Breaking values include a missing field
    (and, for dotted fields, a parent that is not a mapping), values of the wrong type
    (``"5"`` for ``x == 5``, ``1`` for ``x is_true``) and values on the wrong side.

    Raises:
        GuardError, UsageError: as :func:`payloads_satisfying`.
    """
    constraints = [(as_condition(guard), False)]
    constraints += [(as_condition(g), True) for g in keep]
    return _payloads(constraints, base)
