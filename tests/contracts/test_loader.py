"""The loader: which model, how problems are reported, and what parse/load promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from onex_contracts import (
    ContractInvalid,
    HandlerContract,
    NodeContract,
    load,
    load_located,
    parse,
    parse_handler,
    parse_node,
)
from onex_contracts.issues import ContractIssue, quote, suggest
from onex_core.errors import ContractError
from tests.contracts.samples import EFFECT, HANDLER, REDUCER, edit


def _issues(text: str | bytes, **kwargs: str) -> list[ContractIssue]:
    with pytest.raises(ContractInvalid) as caught:
        parse(text, **kwargs)  # type: ignore[arg-type]
    return list(caught.value.errors)


def test_the_content_decides_the_kind() -> None:
    assert isinstance(parse(REDUCER), NodeContract)
    assert isinstance(parse(HANDLER), HandlerContract)
    assert isinstance(parse(HANDLER.encode()), HandlerContract)


def test_parse_node_and_parse_handler_insist_on_their_kind() -> None:
    assert parse_node(REDUCER).name == "door_reducer"
    assert parse_handler(HANDLER).handler_id == "effect.speaker"
    assert {i.code for i in _issues(HANDLER, kind="node")} >= {"unknown-field", "missing"}
    with pytest.raises(ContractInvalid):
        parse_handler(REDUCER)


def test_a_contract_of_no_known_kind_is_refused() -> None:
    [issue] = _issues("name: x\ndescription: y\n")
    assert (issue.code, issue.line, issue.column) == ("contract-kind", 1, 1)


def test_the_file_name_decides_the_kind(tmp_path: Path) -> None:
    handler_file = tmp_path / "handler_contract.yaml"
    handler_file.write_text(REDUCER)
    with pytest.raises(ContractInvalid) as caught:
        load(handler_file)
    assert "unknown field 'node_type'" in str(caught.value)
    node_file = tmp_path / "contract.yaml"
    node_file.write_text(REDUCER)
    assert load(node_file).name == "door_reducer"
    other = tmp_path / "door.yaml"
    other.write_text(HANDLER)
    assert isinstance(load(other), HandlerContract)


def test_issues_name_the_file_that_was_loaded(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(edit(REDUCER, "to_state: closed", "to_state: shut"))
    with pytest.raises(ContractInvalid) as caught:
        load(path)
    [issue] = caught.value.errors
    assert issue.source == str(path)
    assert str(issue) == (
        f"{path}:25:17: state_machine.transitions[1].to_state: unknown state 'shut'"
    )


def test_an_unreadable_path_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractInvalid) as caught:
        load(tmp_path)  # a directory
    [issue] = caught.value.errors
    assert issue.code == "io"
    assert isinstance(caught.value, ContractError)
    assert isinstance(caught.value, ValueError)


def test_every_problem_of_a_file_is_reported_together_and_sorted() -> None:
    text = edit(REDUCER, "node_version: ", "node_versoin: ")
    text = edit(text, "to_state: closed", "to_state: shut")
    text = edit(text, "enabled: true", 'enabled: "true"')
    text = edit(text, "state.jammed is_false", "state.jammed is_fals")
    text += "metadata:\n  token: abc\n"
    issues = _issues(text)
    assert [(i.line, i.code) for i in issues] == [
        (1, "missing"),  # a missing top-level field points at the document
        (4, "unknown-field"),
        (21, "guard"),
        (25, "unknown-state"),
        (32, "type"),
        (38, "secret"),
    ]
    assert issues == sorted(issues, key=lambda i: (i.line, i.column, i.path, i.code))


def test_the_exception_lists_one_line_per_problem() -> None:
    with pytest.raises(ContractInvalid) as caught:
        parse(edit(REDUCER, "trigger: lock", "trigger: 3"), source="x.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        "1 problem in x.yaml",
        "x.yaml:29:16: state_machine.transitions[2].trigger: expected a string, got an integer; "
        "quote it if it is text: '3'",
    ]
    assert caught.value.location is not None
    assert (caught.value.location.line, caught.value.location.column) == (29, 16)


def test_a_schema_error_elsewhere_does_not_hide_machine_problems() -> None:
    text = edit(REDUCER, "name: door_reducer", "name: Door")
    text = edit(text, "to_state: closed", "to_state: shut")
    assert [i.code for i in _issues(text)] == ["name", "unknown-state"]


def test_missing_fields_point_at_their_parent() -> None:
    text = edit(HANDLER, "  node_archetype: effect\n", "")
    [issue] = _issues(text)
    assert (issue.code, issue.line, issue.column, issue.path) == (
        "missing",
        5,
        1,
        "descriptor.node_archetype",
    )


def test_a_wrong_enum_value_suggests_the_closest() -> None:
    [issue] = _issues(edit(EFFECT, "operation_match", "operation_mach"))
    assert issue.code == "enum"
    assert "did you mean 'operation_match'" in issue.message


def test_echoed_values_are_cut_short() -> None:
    long_value = "x" * 500
    [issue] = _issues(edit(REDUCER, "trigger: lock", f"trigger: {long_value}"))
    assert issue.code == "length"
    assert long_value not in str(issue)


def test_loaded_keeps_positions_for_later_issues(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(REDUCER)
    loaded = load_located(path)
    issue = loaded.issue(("state_machine", "states", 1, "timeout_ms"), "x", "message")
    assert (issue.line, issue.column) == (12, 19)
    at_key = loaded.issue(("state_machine", "states", 1, "timeout_ms"), "x", "m", at_key=True)
    assert (at_key.line, at_key.column) == (12, 7)
    absent = loaded.issue(("state_machine", "states", 1, "description"), "x", "m")
    assert (absent.line, absent.column) == (11, 7)  # its nearest present parent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "'short'"),
        ("y" * 70, "'" + "y" * 60 + "…'"),
        ("postgres://me:pw@db/x", "<redacted>"),
    ],
)
def test_quote(text: str, expected: str) -> None:
    assert quote(text) == expected


def test_suggest() -> None:
    assert suggest("actve", ["active", "idle"]) == " (did you mean 'active'?)"
    assert suggest("zzz", ["active", "idle"]) == ""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "priority: 1",
            'priority: "1"',
            "expected an integer, got a string '1'; write it without quotes",
        ),
        ("priority: 1", "priority: 12:30", "expected an integer, got a string '12:30'"),
        ("priority: 1", "priority: 'high'", "expected an integer, got a string 'high'"),
        (
            "enabled: true",
            "enabled: yes",
            "expected true or false, got a string 'yes'; write true or false",
        ),
        (
            "trigger: lock",
            "trigger: 1.5",
            "expected a string, got a number; quote it if it is text: '1.5'",
        ),
        ("trigger: lock", "trigger: [a]", "expected a string, got a list"),
    ],
)
def test_type_errors_say_how_to_fix_them(old: str, new: str, message: str) -> None:
    [issue] = _issues(edit(REDUCER, old, new))
    assert issue.message == message
