"""The ``onex`` command: validate, lint, diagram; exit codes 0, 1 and 2."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from onex_adapters.cli import COMMANDS, main
from onex_contracts import REGISTRATION_CONTRACTS
from tests.contracts.samples import EFFECT, HANDLER, ORCHESTRATOR, REDUCER, edit

ISSUE_LINE = re.compile(r"^.+:\d+:\d+: [\w.\[\]]+: .+$")


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_validate_the_shipped_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REGISTRATION_CONTRACTS)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(out.splitlines()) == 6
    assert all(line.endswith(")") and ": ok (" in line for line in out.splitlines())


def test_validate_reports_each_problem_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, "good/contract.yaml", REDUCER)
    bad = _write(
        tmp_path,
        "bad/contract.yaml",
        edit(edit(REDUCER, "to_state: closed", "to_state: shut"), '"1.0.0"', '"1.0"'),
    )
    assert main(["validate", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{good}: ok (node door_reducer)\n"
    lines = err.splitlines()
    assert lines == [
        f"{bad}:4:15: node_version: must be 'X.Y.Z'",
        f"{bad}:25:17: state_machine.transitions[1].to_state: unknown state 'shut'",
    ]
    assert all(ISSUE_LINE.match(line) for line in lines)


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "a/contract.yaml", REDUCER)
    _write(tmp_path, "b/handler_contract.yaml", edit(HANDLER, "name: speaker", "name: Speaker"))
    assert main(["validate", "--json", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    assert report["ok"] is False
    assert report["error_count"] == 1
    files = {Path(f["source"]).parent.name: f for f in report["files"]}
    assert files["a"] == {
        "source": str(tmp_path / "a" / "contract.yaml"),
        "ok": True,
        "kind": "node",
        "name": "door_reducer",
        "errors": [],
    }
    [error] = files["b"]["errors"]
    assert {k: error[k] for k in ("line", "column", "path", "code")} == {
        "line": 2,
        "column": 7,
        "path": "name",
        "code": "name",
    }


def test_validate_a_directory_without_contracts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert "no contract files found" in capsys.readouterr().err


def test_lint_the_shipped_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(REGISTRATION_CONTRACTS)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("6 contracts, 0 errors, 0 warnings\n", "")
    assert main(["lint", "--strict", str(REGISTRATION_CONTRACTS)]) == 0


def test_lint_warnings_fail_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "e/contract.yaml", edit(EFFECT, "name: announcements.play", "name: postgres"))
    assert main(["lint", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "1 contracts, 0 errors, 1 warnings\n"
    assert err.startswith("warning: ")
    assert ":18:11: capabilities[0].name: capability 'postgres' is named after" in err
    assert main(["lint", "--strict", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["lint", "--strict", "--json", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [w["code"] for w in report["warnings"]] == ["technology-capability"]


def test_lint_errors_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "r/contract.yaml", REDUCER)  # emits doors.announce; nobody executes it
    assert main(["lint", "--json", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["code"] for e in report["errors"]] == ["no-effect"]
    assert report["contracts"] == 1


def test_diagram_of_a_reducer_and_of_a_directory(capsys: pytest.CaptureFixture[str]) -> None:
    reducer = REGISTRATION_CONTRACTS / "node_registration_reducer" / "contract.yaml"
    assert main(["diagram", str(reducer)]) == 0
    assert capsys.readouterr().out.startswith("stateDiagram-v2\n    unregistered : ")
    assert main(["diagram", str(REGISTRATION_CONTRACTS)]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR\n")


def test_diagram_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orchestrator = _write(tmp_path, "o/contract.yaml", ORCHESTRATOR)
    assert main(["diagram", str(orchestrator)]) == 1
    assert "has no state machine" in capsys.readouterr().err
    bad = _write(tmp_path, "b/contract.yaml", edit(REDUCER, "to_state: closed", "to_state: shut"))
    assert main(["diagram", str(bad)]) == 1
    assert capsys.readouterr().err == (
        f"{bad}:25:17: state_machine.transitions[1].to_state: unknown state 'shut'\n"
    )
    assert main(["diagram", str(tmp_path)]) == 1
    assert "unknown state 'shut'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["diagram", str(empty)]) == 1
    assert "no contracts found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["validate"],
        ["lint"],
        ["diagram"],
        ["validate", "/no/such/contract.yaml"],
        ["lint", "/no/such/dir"],
        ["diagram", "/no/such/path"],
        ["validate", "--frob", "x"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err


def test_lint_needs_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract = _write(tmp_path, "contract.yaml", REDUCER)
    assert main(["lint", str(contract)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command.name in out


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError

    def fileno(self) -> int:
        raise ValueError("no file descriptor")


def test_a_closed_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["validate", str(REGISTRATION_CONTRACTS)]) == 1
