"""The error hierarchy: families by who is at fault, builtins, formatting and retry flags."""

from __future__ import annotations

import inspect

import pytest

from onex_core import errors
from onex_core.errors import (
    CircuitOpen,
    ContentError,
    ContractError,
    EffectError,
    EffectRejected,
    EffectUnavailable,
    GuardError,
    Location,
    MachineError,
    OnexError,
    OutputLawError,
    Problem,
    RouteConflict,
    TopicError,
    UsageError,
    format_path,
)

FAMILIES = (ContractError, ContentError, UsageError, EffectError)

# (error class, its family, the builtin it refines or None)
HIERARCHY = [
    (ContractError, ContractError, ValueError),
    (GuardError, ContractError, ValueError),
    (MachineError, ContractError, ValueError),
    (RouteConflict, ContractError, ValueError),
    (ContentError, ContentError, ValueError),
    (TopicError, ContentError, ValueError),
    (UsageError, UsageError, TypeError),
    (OutputLawError, UsageError, TypeError),
    (EffectError, EffectError, None),
    (EffectUnavailable, EffectError, None),
    (CircuitOpen, EffectError, None),
    (EffectRejected, EffectError, None),
]


@pytest.mark.parametrize(("cls", "family", "builtin"), HIERARCHY, ids=lambda v: str(v))
def test_each_error_belongs_to_exactly_one_family(
    cls: type[Exception], family: type[Exception], builtin: type[Exception] | None
) -> None:
    assert issubclass(cls, OnexError)
    assert [f for f in FAMILIES if issubclass(cls, f)] == [family]
    for other in (ValueError, TypeError):
        assert issubclass(cls, other) is (other is builtin)


def test_every_error_class_in_the_module_is_covered() -> None:
    defined = {
        obj
        for _name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }
    assert defined == {cls for cls, _f, _b in HIERARCHY} | {OnexError}


def test_all_lists_the_public_names() -> None:
    public = {
        name
        for name, obj in vars(errors).items()
        if not name.startswith("_")
        and getattr(obj, "__module__", None) == errors.__name__
        and (inspect.isclass(obj) or inspect.isfunction(obj))
    }
    assert set(errors.__all__) == public


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (EffectError("x"), False),
        (EffectUnavailable("x"), True),
        (CircuitOpen("x"), True),
        (EffectRejected("x"), False),
    ],
)
def test_retryable_flags(error: EffectError, retryable: bool) -> None:
    assert error.retryable is retryable
    assert type(error).retryable is retryable


def test_effect_errors_carry_backend_and_retry_after() -> None:
    error = EffectUnavailable("rate limited", backend="vault", retry_after=2.5)
    assert (str(error), error.backend, error.retry_after) == ("rate limited", "vault", 2.5)
    rejected = EffectRejected("permission denied", backend="consul")
    assert (rejected.backend, str(rejected)) == ("consul", "permission denied")
    assert EffectUnavailable("down").retry_after is None
    assert EffectError("x").backend is None


@pytest.mark.parametrize(
    ("location", "text"),
    [
        (Location(), "<contract>"),
        (Location(source="node.yaml"), "node.yaml"),
        (Location(source="node.yaml", line=3), "node.yaml:3"),
        (Location(source="node.yaml", line=3, column=7), "node.yaml:3:7"),
        (Location(source="node.yaml", column=7), "node.yaml"),  # a column needs a line
        (Location(path="state_machine.states"), "<contract>: state_machine.states"),
        (
            Location("node.yaml", 12, 5, "state_machine.transitions[3].to_state"),
            "node.yaml:12:5: state_machine.transitions[3].to_state",
        ),
    ],
)
def test_location_formatting(location: Location, text: str) -> None:
    assert str(location) == text


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("states",), "states"),
        (("transitions", 3, "to_state"), "transitions[3].to_state"),
        (("a", 0, 1, "b"), "a[0][1].b"),
        ((2, "name"), "[2].name"),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_problem_formatting() -> None:
    assert str(Problem("unknown state 'done'", ("transitions", 3, "to_state"))) == (
        "transitions[3].to_state: unknown state 'done'"
    )
    assert str(Problem("no initial state")) == "no initial state"


def test_contract_error_names_where_and_what() -> None:
    where = Location("node.yaml", 4, 2, "name")
    error = ContractError("must not be empty", where)
    assert str(error) == "node.yaml:4:2: name: must not be empty"
    assert (error.message, error.location) == ("must not be empty", where)
    bare = GuardError("guard 'x ~ 1' does not parse")
    assert str(bare) == "guard 'x ~ 1' does not parse"
    assert bare.location is None


def test_machine_error_lists_every_problem() -> None:
    problems = (
        Problem("unknown state 'gone'", ("transitions", 0, "to_state")),
        Problem("state is unreachable", ("states", 2)),
        Problem("no initial state"),
    )
    error = MachineError("registration", iter(problems))
    assert error.machine == "registration"
    assert error.problems == problems
    text = str(error)
    assert text.startswith("state machine 'registration': ")
    for problem in problems:
        assert str(problem) in text
    assert text.count("; ") == len(problems) - 1
    assert isinstance(error, ContractError)
    assert error.location is None


def test_errors_can_be_caught_by_builtins() -> None:
    with pytest.raises(ValueError, match="bad topic"):
        raise TopicError("bad topic")
    with pytest.raises(TypeError, match="reducer"):
        raise OutputLawError("reducer output may not carry events")
