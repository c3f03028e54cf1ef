"""Linting a directory: the cross-contract rules, each with a file, line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from onex_contracts import REGISTRATION_CONTRACTS, NodeContract, lint, load
from onex_contracts.issues import ContractIssue
from tests.contracts.samples import EFFECT, HANDLER, ORCHESTRATOR, REDUCER, edit

ORCH = "node_registration_orchestrator/contract.yaml"
REDUCER_FILE = "node_registration_reducer/contract.yaml"
STORAGE = "node_registration_storage_effect/contract.yaml"
REGISTRY = "node_service_registry_effect/contract.yaml"
STORAGE_HANDLER = "handlers/registration_storage/handler_contract.yaml"


@pytest.fixture
def family(tmp_path: Path) -> Path:
    """A private copy of the shipped registration family, to break."""
    target = tmp_path / "registration"
    shutil.copytree(REGISTRATION_CONTRACTS, target)
    return target


def _edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    path.write_text(edit(path.read_text(), old, new))


def _codes(issues: tuple[ContractIssue, ...]) -> list[tuple[str, str, int]]:
    return [(i.code, Path(i.source).name, i.line) for i in issues]


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_shipped_family_is_clean(family: Path) -> None:
    report = lint(family)
    assert report.ok
    assert report.errors == ()
    assert report.warnings == ()
    assert len(report.contracts) == 6


def test_an_intent_without_an_effect(family: Path) -> None:
    (family / STORAGE).unlink()
    (family / STORAGE_HANDLER).unlink()
    report = lint(family)
    assert not report.ok
    no_effect = [i for i in report.errors if i.code == "no-effect"]
    assert [(Path(i.source).parent.name, i.path) for i in no_effect] == [
        ("node_registration_reducer", "intent_emission.intents[1].intent_type"),
        ("node_registration_reducer", "intent_emission.intents[4].intent_type"),
    ]
    assert "postgres.upsert_registration" in no_effect[0].message
    assert no_effect[0].line > 1


def test_an_intent_with_two_effects(family: Path) -> None:
    _write(
        family,
        "extra/handler_contract.yaml",
        edit(
            edit(HANDLER, "handler_id: effect.speaker", "handler_id: effect.other_registry"),
            "intent_types: [doors.announce]",
            "intent_types: [consul.register]",
        ),
    )
    report = lint(family)
    [issue] = [i for i in report.errors if i.code == "ambiguous-intent"]
    assert "'consul.register' is executed by 2 handlers" in issue.message
    assert "effect.other_registry" in issue.message
    assert "effect.service_registry" in issue.message


def test_an_effect_entry_must_agree_with_its_handler_contract(family: Path) -> None:
    _edit(family, "handlers/service_registry/handler_contract.yaml", "  - consul.pass_check\n", "")
    report = lint(family)
    [issue] = report.errors
    assert issue.code == "handler-link"
    assert issue.path == "handler_routing.handlers[2].operation"
    assert "does not list 'consul.pass_check'" in issue.message


def test_a_subscribed_topic_nobody_publishes(family: Path) -> None:
    _edit(
        family,
        ORCH,
        "    - onex.evt.platform.registration-storage-outcome.v1\n  publish_topics:",
        "    - onex.evt.platform.registration-storage-outcome.v1\n"
        "    - onex.evt.platform.node-deregistered.v1\n  publish_topics:",
    )
    contract = load(family / ORCH)
    assert isinstance(contract, NodeContract)
    assert contract.event_bus is not None
    index = contract.event_bus.subscribe_topics.index("onex.evt.platform.node-deregistered.v1")
    report = lint(family)
    [issue] = report.errors
    assert (issue.code, issue.path) == ("unpublished-topic", f"event_bus.subscribe_topics[{index}]")
    assert Path(issue.source).parent.name == "node_registration_orchestrator"
    assert "external_topics" in issue.message


def test_an_external_topic_that_is_published_here_is_a_warning(family: Path) -> None:
    _edit(
        family,
        ORCH,
        "    - onex.intent.platform.runtime-tick.v1\n\ncapabilities:",
        "    - onex.intent.platform.runtime-tick.v1\n"
        "    - onex.evt.platform.service-registry-outcome.v1\n\ncapabilities:",
    )
    report = lint(family)
    assert report.ok
    [warning] = report.warnings
    assert warning.code == "stale-external"
    assert "node_service_registry_effect" in warning.message


def test_duplicate_names(tmp_path: Path) -> None:
    _write(tmp_path, "a/contract.yaml", REDUCER)
    _write(tmp_path, "b/contract.yaml", REDUCER)
    _write(tmp_path, "c/handler_contract.yaml", HANDLER)
    _write(tmp_path, "d/handler_contract.yaml", HANDLER)
    _write(tmp_path, "e/contract.yaml", EFFECT)
    report = lint(tmp_path)
    duplicates = [i for i in report.errors if i.code == "duplicate-name"]
    assert [(Path(i.source).parent.name, i.path, i.line) for i in duplicates] == [
        ("b", "name", 1),
        ("d", "handler_id", 1),
    ]
    assert "a/contract.yaml:1" in duplicates[0].message


def test_a_directory_with_both_kinds_is_ambiguous(tmp_path: Path) -> None:
    _write(tmp_path, "x/contract.yaml", REDUCER)
    _write(tmp_path, "x/handler_contract.yaml", HANDLER)
    report = lint(tmp_path)
    [issue] = report.errors
    assert issue.code == "ambiguous-directory"
    assert issue.source == str(tmp_path / "x")
    assert report.contracts == ()


def test_bad_files_are_collected_and_the_scan_goes_on(tmp_path: Path) -> None:
    _write(tmp_path, "a/contract.yaml", "name: [\n")
    _write(tmp_path, "b/contract.yaml", edit(REDUCER, "to_state: closed", "to_state: shut"))
    _write(tmp_path, "c/contract.yaml", ORCHESTRATOR)
    _write(tmp_path, "d/contract.yaml", EFFECT)
    _write(tmp_path, "e/handler_contract.yaml", HANDLER)
    report = lint(tmp_path)
    assert _codes(report.errors) == [
        ("yaml-syntax", "contract.yaml", 2),
        ("unknown-state", "contract.yaml", 25),
    ]
    assert [Path(i.source).parent.name for i in report.errors] == ["a", "b"]
    assert len(report.contracts) == 3


def test_technology_named_capabilities_are_warnings(tmp_path: Path) -> None:
    _write(tmp_path, "e/contract.yaml", edit(EFFECT, "name: announcements.play", "name: redis"))
    _write(
        tmp_path,
        "h/handler_contract.yaml",
        edit(
            HANDLER,
            "capability_outputs: [announcements.play]",
            "capability_outputs: [kafka.produce, messaging.produce]",
        ),
    )
    report = lint(tmp_path)
    assert report.ok
    assert [(i.code, i.path) for i in report.warnings] == [
        ("technology-capability", "capabilities[0].name"),
        ("technology-capability", "capability_outputs[0]"),
    ]
    assert all(i.line > 1 for i in report.warnings)


def test_an_empty_directory_is_clean(tmp_path: Path) -> None:
    report = lint(tmp_path)
    assert (report.errors, report.warnings, report.contracts) == ((), (), ())
