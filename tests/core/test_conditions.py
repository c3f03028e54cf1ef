"""The guard language: parsing, every operator's semantics, fail-closed evaluation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.conditions import OPERATORS, Condition, parse_condition
from onex_core.errors import ContractError, GuardError


def holds(expression: str, data: Mapping[str, Any]) -> bool:
    return parse_condition(expression).evaluate(data)


# --------------------------------------------------------------------------- operators

# (expression, value of field x, expected)
OPERATOR_CASES: list[tuple[str, Any, bool]] = [
    # equality is typed
    ("x == 3", 3, True),
    ("x == 3", 3.0, True),
    ("x == 3", 4, False),
    ("x == 3", "3", False),
    ("x == 1", True, False),
    ("x == true", 1, False),
    ("x == true", True, True),
    ("x == false", False, True),
    ("x == false", 0, False),
    ("x == null", None, True),
    ("x == null", 0, False),
    ("x == active", "active", True),
    ("x == 'active'", "active", True),
    ('x == "active"', "active", True),
    ("x == active", "Active", False),
    ("x == 1.5", 1.5, True),
    ("x == -2", -2, True),
    ("x == 1e3", 1000, True),
    ("x == 1.2.3", "1.2.3", True),
    ("x equals 3", 3, True),
    ("x != 3", 4, True),
    ("x != 3", 3, False),
    ("x != 3", "3", True),
    ("x != 1", True, True),
    ("x not_equals active", "idle", True),
    # ordering: numbers with numbers, strings with strings
    ("x < 3", 2, True),
    ("x < 3", 3, False),
    ("x <= 3", 3, True),
    ("x > 3", 3.5, True),
    ("x >= 3", 3, True),
    ("x >= 3", 2.99, False),
    ("x > 0", True, False),
    ("x > 5", "abc", False),
    ("x < abc", 5, False),
    ("x < b", "a", True),
    ("x >= 2025-01-01", "2025-06-30", True),
    ("x less_than 3", 1, True),
    ("x less_than_or_equal 3", 3, True),
    ("x greater_than 3", 4, True),
    ("x greater_than_or_equal 3", 2, False),
    ("x > 1", float("nan"), False),
    ("x < 1", [0], False),
    # membership
    ("x in [a, b, 3]", "a", True),
    ("x in [a, b, 3]", 3, True),
    ("x in [a, b, 3]", 3.0, True),
    ("x in [a, b, 3]", "3", False),
    ("x in a,b,3", "b", True),
    ("x in [1]", True, False),
    ("x in [true]", 1, False),
    ("x in [null]", None, True),
    ('x in ["a,b", c]', "a,b", True),
    ('x in ["a,b", c]', "a", False),
    ("x in ['it is', c]", "it is", True),
    ("x in [a]", ["a"], False),
    ("x in single", "single", True),
    ("x not_in [a, b]", "c", True),
    ("x not_in [a, b]", "a", False),
    ("x not_in [1]", True, True),
    # contains
    ("x contains ell", "hello", True),
    ("x contains xyz", "hello", False),
    ("x contains 3", "a3", False),
    ("x contains a", ["a", "b"], True),
    ("x contains a", ("a",), True),
    ("x contains a", frozenset({"a"}), True),
    ("x contains 1", [True], False),
    ("x contains 1", [1.0], True),
    ("x contains true", [1], False),
    ("x contains key", {"key": 1}, True),
    ("x contains 1", {1: "a"}, True),
    ("x contains 1", {True: "a"}, False),
    ("x contains value", {"key": "value"}, False),
    ("x contains a", 5, False),
    ("x contains a", b"a", False),
    # matches: full match
    ("x matches ^node-[0-9]+$", "node-42", True),
    ("x matches node-[0-9]+", "node-42", True),
    ("x matches [0-9]+", "abc123", False),
    ("x matches .*123", "abc123", True),
    ("x matches [0-9]+", 123, False),
    ("x matches 'a b'", "a b", True),
    ("x matches a b", "a b", True),
    ('x matches "\\\\d+"', "12", True),
    # unary
    ("x exists", None, True),
    ("x exists", 0, True),
    ("x is_present", "", True),
    ("x not_exists", None, False),
    ("x is_true", True, True),
    ("x is_true", 1, False),
    ("x is_true", "true", False),
    ("x is_false", False, True),
    ("x is_false", 0, False),
    ("x is_false", None, False),
    # lengths
    ("x min_length 2", "ab", True),
    ("x min_length 3", "ab", False),
    ("x min_length 2", [1, 2], True),
    ("x min_length 1", {"k": 1}, True),
    ("x min_length 1", set(), False),
    ("x min_length 0", "", True),
    ("x max_length 2", "abc", False),
    ("x max_length 3", "abc", True),
    ("x max_length 3", (1, 2), True),
    ("x max_length 5", 12345, False),
    ("x min_length 0", None, False),
]


@pytest.mark.parametrize(("expression", "value", "expected"), OPERATOR_CASES)
def test_operator_semantics(expression: str, value: Any, expected: bool) -> None:
    assert holds(expression, {"x": value}) is expected


@pytest.mark.parametrize(("expression", "value", "expected"), OPERATOR_CASES)
def test_a_nested_path_answers_like_a_top_level_key(
    expression: str, value: Any, expected: bool
) -> None:
    # Top-level keys of common operators take a specialised path; nested ones the general path.
    nested = "a.b." + expression
    assert holds(nested, {"a": {"b": {"x": value}}}) is expected


def test_every_operator_is_covered_by_the_table() -> None:
    canonical = {parse_condition(expression_for(op)).operator for op in OPERATORS}
    assert {
        parse_condition(expression).operator for expression, _, _ in OPERATOR_CASES
    } == canonical


class Color(StrEnum):
    RED = "red"


def test_string_subclasses_compare_as_strings() -> None:
    assert holds("x == red", {"x": Color.RED})
    assert holds("x in [red, blue]", {"x": Color.RED})


# --------------------------------------------------------------------------- missing fields

UNARY = ("exists", "not_exists", "is_true", "is_false")
WITH_VALUE = {
    "min_length": "1",
    "max_length": "1",
    "in": "[a]",
    "not_in": "[a]",
    "matches": ".*",
    "contains": "a",
}


def expression_for(operator: str, field: str = "x") -> str:
    if operator in UNARY or operator == "is_present":
        return f"{field} {operator}"
    return f"{field} {operator} {WITH_VALUE.get(operator, '1')}"


@pytest.mark.parametrize("operator", sorted(OPERATORS))
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"y": 1},
        {"a": 1},  # a.x: the segment before is not a mapping
        {"a": {"y": 1}},
        {"a": [1]},
    ],
)
@pytest.mark.parametrize("field", ["x", "a.x"])
def test_a_missing_field_is_false_except_for_not_exists(
    operator: str, data: dict[str, Any], field: str
) -> None:
    condition = parse_condition(expression_for(operator, field))
    assert condition.evaluate(data) is (condition.operator == "not_exists")


def test_paths_walk_mappings_not_attributes() -> None:
    class Carrier:
        x = 1

    assert not holds("a.x exists", {"a": Carrier()})
    assert holds("a.x exists", {"a": MappingProxyType({"x": 1})})
    assert holds("a.b.c == 1", {"a": {"b": {"c": 1}}})


# --------------------------------------------------------------------------- fail-closed


class Hostile(Mapping[str, Any]):
    """A mapping whose every read raises."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        raise RuntimeError("boom")

    def __contains__(self, key: object) -> bool:
        raise RuntimeError("boom")

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("boom")


class BadLength(list[int]):
    def __len__(self) -> int:
        raise RuntimeError("boom")


@pytest.mark.parametrize("operator", sorted(OPERATORS))
@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (Hostile(), ("x", "a.x")),
        ({"a": Hostile()}, ("a.x",)),
        (None, ("x", "a.x")),
        ([1, 2], ("x", "a.x")),
        ("x", ("x", "a.x")),
        (7, ("x", "a.x")),
    ],
)
def test_evaluation_never_raises_and_fails_closed(
    operator: str, data: Any, fields: tuple[str, ...]
) -> None:
    for field in fields:
        assert parse_condition(expression_for(operator, field)).evaluate(data) is False


def test_a_value_that_raises_while_tested_is_false() -> None:
    assert holds("x min_length 0", {"x": BadLength()}) is False


# --------------------------------------------------------------------------- parsing

BAD_GUARDS: list[tuple[str, str]] = [
    ("", "empty guard"),
    ("   ", "empty guard"),
    ("x", "no operator after field 'x'"),
    ("== 3", "starts with an operator"),
    ("x = 3", "did you mean ==?"),
    ("x => 3", "did you mean >=?"),
    ("x <> 3", "did you mean !=?"),
    ("x EQUALS 3", "did you mean equals?"),
    ("x equal 3", "did you mean equals?"),
    ("x greater 3", "did you mean greater_than?"),
    ("x not in [a]", "did you mean not_in or not_exists?"),
    ("x is true", "did you mean is_true, is_false or is_present?"),
    ("x frobnicates 3", "known operators:"),
    ("x ==", "needs a value"),
    ("x in", "needs a value"),
    ("x exists 3", "takes no value"),
    ("x is_true yes", "takes no value"),
    ("_x == 1", "starts with '_'"),
    ("a._secret exists", "starts with '_'"),
    ("a.__class__ exists", "starts with '_'"),
    ("a..b exists", "empty path segment"),
    ("a. exists", "empty path segment"),
    ("1x == 1", "not a dotted path of identifiers"),
    ("a-b == 1", "not a dotted path of identifiers"),
    ('"x" == 1', "not a dotted path of identifiers"),
    ("x matches (", "bad regular expression '('"),
    ("x matches [a-", "bad regular expression"),
    ("x min_length abc", "non-negative integer, not 'abc'"),
    ("x min_length 1.5", "non-negative integer"),
    ("x max_length -1", "non-negative integer"),
    ("x max_length true", "non-negative integer"),
    ("x == hello world", "quote it"),
    ("x == a,b", "for a list, use 'in' or 'not_in'"),
    ('x == "open', "double-quoted string"),
    ('x == "a" b', "double-quoted string"),
    ("x == 'open", "single-quoted string"),
    ("x == 'it's'", "single-quoted string"),
    ("x == 1e999", "not finite"),
    ("x < true", "compares numbers or strings, not true"),
    ("x >= null", "compares numbers or strings, not null"),
    ("x contains null", "not null"),
    ("x in []", "the list is empty"),
    ("x in [a, , b]", "list item 1 is empty"),
    ("x in [a, b", "no closing ']'"),
    ("x in a, b]", "no opening '['"),
    ('x in ["a, b]', "unterminated"),
]


@pytest.mark.parametrize(("expression", "message"), BAD_GUARDS)
def test_a_bad_guard_says_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(GuardError) as caught:
        parse_condition(expression)
    assert message in str(caught.value)
    assert isinstance(caught.value, ContractError)


def test_a_guard_must_be_text() -> None:
    with pytest.raises(GuardError, match="must be a string, not int"):
        parse_condition(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "path", "operator", "value"),
    [
        ("payload.node_id exists", ("payload", "node_id"), "exists", None),
        ("x>=3", ("x",), ">=", 3),
        ("x<-1", ("x",), "<", -1),
        ("  x   ==   'a b'  ", ("x",), "==", "a b"),
        ("x equals -0.5", ("x",), "==", -0.5),
        ("x in [a, 2, true, null]", ("x",), "in", ("a", 2, True, None)),
        ("x not_in a,b", ("x",), "not_in", ("a", "b")),
        ('x matches "^a$"', ("x",), "matches", "^a$"),
        ("x matches ^a b$", ("x",), "matches", "^a b$"),
        ("x min_length 0", ("x",), "min_length", 0),
        ("x is_present", ("x",), "exists", None),
        ('x == "caf\\u00e9"', ("x",), "==", "café"),
        ("x == 007", ("x",), "==", "007"),
    ],
)
def test_parse_results(expression: str, path: tuple[str, ...], operator: str, value: Any) -> None:
    condition = parse_condition(expression)
    assert condition.path == path
    assert condition.operator == operator
    assert condition.value == value
    assert type(condition.value) is type(value)
    assert condition.expression == expression
    assert condition.field == ".".join(path)


def test_conditions_are_frozen_values() -> None:
    a = parse_condition("x in [a, b]")
    b = parse_condition("x in [a, b]")
    assert a == b
    assert hash(a) == hash(b)
    assert a != parse_condition("x in [a, c]")
    assert "x in [a, b]" in repr(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.operator = "=="  # type: ignore[misc]


def test_aliases_parse_to_the_canonical_operator() -> None:
    pairs = [
        ("equals", "=="),
        ("not_equals", "!="),
        ("less_than", "<"),
        ("less_than_or_equal", "<="),
        ("greater_than", ">"),
        ("greater_than_or_equal", ">="),
    ]
    for alias, canonical in pairs:
        assert parse_condition(f"x {alias} 1") == dataclasses.replace(
            parse_condition(f"x {canonical} 1"), expression=f"x {alias} 1"
        )
    assert parse_condition("x is_present").operator == "exists"


# --------------------------------------------------------------------------- properties

KEYS = ("a", "b", "node_id", "state")
json_scalars = (
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-10, 10) | st.text(max_size=4)
)
json_like = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(".".join)
literals = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-10, 10, allow_nan=False).map(repr),
    st.sampled_from(["true", "false", "null", "active", "'a b'", '"x"', "1.2.3"]),
)


@st.composite
def conditions(draw: st.DrawFn) -> str:
    field = draw(fields)
    operator = draw(st.sampled_from(sorted(OPERATORS)))
    if operator in ("exists", "not_exists", "is_true", "is_false", "is_present"):
        return f"{field} {operator}"
    if operator in ("min_length", "max_length"):
        return f"{field} {operator} {draw(st.integers(0, 4))}"
    if operator in ("in", "not_in"):
        return f"{field} {operator} [{', '.join(draw(st.lists(literals, min_size=1, max_size=3)))}]"
    if operator == "matches":
        return f"{field} matches {draw(st.sampled_from(['.*', 'a+', '[0-9]{1,3}', '^x$']))}"
    value = draw(literals)
    if operator in (
        "<",
        "<=",
        ">",
        ">=",
        "less_than",
        "greater_than",
        "less_than_or_equal",
        "greater_than_or_equal",
        "contains",
    ) and value in ("true", "false", "null"):
        value = "1"
    return f"{field} {operator} {value}"


@settings(max_examples=300, deadline=None)
@given(conditions(), st.dictionaries(st.sampled_from(KEYS), json_like, max_size=4))
def test_valid_conditions_evaluate_without_raising(expression: str, data: dict[str, Any]) -> None:
    condition = parse_condition(expression)
    result = condition.evaluate(data)
    assert result is True or result is False
    assert parse_condition(expression).evaluate(data) is result  # deterministic


@settings(max_examples=200, deadline=None)
@given(conditions(), st.dictionaries(st.sampled_from(KEYS), json_like, max_size=4))
def test_negated_operators_are_exact_complements_on_present_fields(
    expression: str, data: dict[str, Any]
) -> None:
    condition = parse_condition(expression)
    opposite = {
        "==": "!=",
        "!=": "==",
        "in": "not_in",
        "not_in": "in",
        "exists": "not_exists",
        "not_exists": "exists",
    }.get(condition.operator)
    if opposite is None:
        return
    parts = expression.split(None, 2)
    negated = parse_condition(" ".join([parts[0], opposite, *parts[2:]]))
    if parse_condition(f"{condition.field} exists").evaluate(data):
        assert negated.evaluate(data) is not condition.evaluate(data)
    else:
        assert condition.evaluate(data) is (condition.operator == "not_exists")
        assert negated.evaluate(data) is (negated.operator == "not_exists")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_parsing_arbitrary_text_only_ever_raises_guard_error(text: str) -> None:
    try:
        condition = parse_condition(text)
    except GuardError:
        return
    assert isinstance(condition, Condition)
    assert condition.evaluate({}) in (True, False)
