"""Checking a directory of contracts as a whole.

One contract can be valid on its own and still be wrong in company: a reducer emits an intent no
effect executes, an orchestrator subscribes to a topic nobody publishes, two effects claim the
same intent type. :func:`lint` loads every ``contract.yaml`` and ``handler_contract.yaml`` under a
directory — collecting each file's own problems without stopping the scan — and then checks the
set:

- every intent type a reducer or orchestrator may emit (``intent_emission``) is executed by
  exactly one effect handler. A handler is named by its id: an effect contract's
  ``operation_match`` entry (its ``handler_id``) or a handler contract listing the type in
  ``intent_types``. An effect entry whose ``handler_id`` is a handler contract's id is that same
  handler, and the handler contract must list the entry's operation. Zero handlers, or two
  different ones, is an error;
- every subscribed topic is published by some contract in the directory, or declared in the
  subscriber's ``event_bus.external_topics`` (an external topic that the directory does publish
  is a warning: the declaration is stale);
- node contract names and handler ids are unique;
- a directory holding both a ``contract.yaml`` and a ``handler_contract.yaml`` is ambiguous;
- capabilities named after a technology (``postgres``, ``kafka.consumer``) are warnings: name
  what the node does (``registration.storage``).

Topics, guards and reachability of states are checked when each contract loads. Every issue
names a file, line and column.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from onex_contracts._fields import PathT
from onex_contracts.issues import ContractInvalid, ContractIssue
from onex_contracts.loader import HANDLER_FILE, NODE_FILE, Loaded, load_located
from onex_contracts.schema import NodeContract
from onex_contracts.schema_handler import HandlerContract

__all__ = ["TECHNOLOGY_NAMES", "LintReport", "contract_files", "lint", "load_directory"]

TECHNOLOGY_NAMES: Final = frozenset(
    {
        "consul",
        "docker",
        "elasticsearch",
        "grpc",
        "http",
        "https",
        "infisical",
        "k8s",
        "kafka",
        "kubernetes",
        "mongo",
        "mongodb",
        "mysql",
        "nats",
        "postgres",
        "postgresql",
        "rabbitmq",
        "redis",
        "s3",
        "sqlite",
        "vault",
    }
)
"""Capability names (or first segments) that name a technology rather than a function."""


@dataclass(frozen=True, slots=True)
class LintReport:
    """The result of :func:`lint`: errors, warnings, and the contracts that loaded.

    ``ok`` is true when there are no errors (warnings do not count; ``onex lint --strict``
    makes them count).
    """

    errors: tuple[ContractIssue, ...]
    warnings: tuple[ContractIssue, ...]
    contracts: tuple[Loaded, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors


def contract_files(directory: str | os.PathLike[str]) -> tuple[list[str], list[ContractIssue]]:
    """Every contract file under ``directory``, sorted, and the directory-level problems.

    A directory holding both a node and a handler contract is ambiguous: it is reported, and
    neither file is returned.
    """
    found: list[str] = []
    issues: list[ContractIssue] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        names = set(files)
        if NODE_FILE in names and HANDLER_FILE in names:
            issues.append(
                ContractIssue(
                    root,
                    0,
                    0,
                    "",
                    f"holds both {NODE_FILE} and {HANDLER_FILE}; a directory describes one "
                    "node or one handler",
                    "ambiguous-directory",
                )
            )
            continue
        for name in (NODE_FILE, HANDLER_FILE):
            if name in names:
                found.append(os.path.join(root, name))
    return sorted(found), issues


def load_directory(
    directory: str | os.PathLike[str],
) -> tuple[list[Loaded], list[ContractIssue]]:
    """Load every contract under ``directory``; return the valid ones and every file's issues.

    Never stops at a bad file: each file's problems are collected and the scan goes on.
    """
    paths, issues = contract_files(directory)
    loaded: list[Loaded] = []
    for path in paths:
        try:
            loaded.append(load_located(path))
        except ContractInvalid as exc:
            issues.extend(exc.errors)
    return loaded, issues


def lint(directory: str | os.PathLike[str]) -> LintReport:
    """Check every contract under ``directory``, on its own and as a set (module docstring).

    Returns:
        A :class:`LintReport`; each issue has a file, line and column (directory-level issues
        name the directory only). Raises nothing for bad contracts.
    """
    loaded, errors = load_directory(directory)
    warnings: list[ContractIssue] = []
    nodes = [item for item in loaded if isinstance(item.contract, NodeContract)]
    handlers = [item for item in loaded if isinstance(item.contract, HandlerContract)]
    errors.extend(_unique_names(nodes, handlers))
    errors.extend(_intent_issues(nodes, handlers))
    topic_errors, topic_warnings = _topic_issues(nodes)
    errors.extend(topic_errors)
    warnings.extend(topic_warnings)
    warnings.extend(_capability_warnings(nodes, handlers))
    return LintReport(
        tuple(sorted(errors, key=_sort_key)), tuple(sorted(warnings, key=_sort_key)), tuple(loaded)
    )


def _sort_key(issue: ContractIssue) -> tuple[str, int, int, str, str]:
    return (issue.source, issue.line, issue.column, issue.path, issue.code)


def _where(item: Loaded, path: PathT) -> str:
    issue = item.issue(path, "", "")
    return f"{issue.source}:{issue.line}"


# --------------------------------------------------------------------------- names


def _unique_names(nodes: list[Loaded], handlers: list[Loaded]) -> Iterable[ContractIssue]:
    for group, attribute in ((nodes, "name"), (handlers, "handler_id")):
        first: dict[str, Loaded] = {}
        for item in group:
            name = getattr(item.contract, attribute)
            if name in first:
                yield item.issue(
                    (attribute,),
                    "duplicate-name",
                    f"{name!r} is already used by {_where(first[name], (attribute,))}",
                )
            else:
                first[name] = item


# --------------------------------------------------------------------------- intents


@dataclass(frozen=True, slots=True)
class _Executor:
    handler_id: str
    item: Loaded
    path: PathT


def _intent_issues(nodes: list[Loaded], handlers: list[Loaded]) -> Iterable[ContractIssue]:
    by_id = {h.contract.handler_id: h for h in handlers if isinstance(h.contract, HandlerContract)}
    executors: dict[str, dict[str, _Executor]] = {}

    def add(intent_type: str, executor: _Executor) -> None:
        executors.setdefault(intent_type, {}).setdefault(executor.handler_id, executor)

    for item in handlers:
        contract = item.contract
        assert isinstance(contract, HandlerContract)
        if contract.descriptor.node_archetype != "effect":
            continue
        for i, intent_type in enumerate(contract.intent_types):
            add(intent_type, _Executor(contract.handler_id, item, ("intent_types", i)))
    for item in nodes:
        contract = item.contract
        assert isinstance(contract, NodeContract)
        routing = contract.handler_routing
        if contract.node_type != "EFFECT_GENERIC" or routing is None:
            continue
        for i, entry in enumerate(routing.handlers):
            if entry.operation is None:
                continue
            at: PathT = ("handler_routing", "handlers", i)
            linked = by_id.get(entry.effective_id)
            if linked is not None:
                linked_contract = linked.contract
                assert isinstance(linked_contract, HandlerContract)
                if linked_contract.descriptor.node_archetype != "effect":
                    yield item.issue(
                        (*at, "handler_id"),
                        "handler-link",
                        f"handler {entry.effective_id!r} ({_where(linked, ('handler_id',))}) "
                        "is not an effect handler",
                    )
                elif entry.operation not in linked_contract.intent_types:
                    yield item.issue(
                        (*at, "operation"),
                        "handler-link",
                        f"handler {entry.effective_id!r} ({_where(linked, ('handler_id',))}) "
                        f"does not list {entry.operation!r} in its intent_types",
                    )
            add(entry.operation, _Executor(entry.effective_id, item, (*at, "operation")))

    for intent_type, found in sorted(executors.items()):
        if len(found) > 1:
            listed = sorted(found.values(), key=lambda e: e.handler_id)
            names = ", ".join(f"{e.handler_id!r} ({_where(e.item, e.path)})" for e in listed)
            for executor in listed[1:]:
                yield executor.item.issue(
                    executor.path,
                    "ambiguous-intent",
                    f"intent type {intent_type!r} is executed by {len(found)} handlers: {names}; "
                    "exactly one may execute it",
                )

    reported: set[str] = set()
    for item in nodes:
        contract = item.contract
        assert isinstance(contract, NodeContract)
        emission = contract.intent_emission
        if emission is None or not emission.enabled:
            continue
        for i, intent in enumerate(emission.intents):
            if intent.intent_type in executors or intent.intent_type in reported:
                continue
            reported.add(intent.intent_type)
            yield item.issue(
                ("intent_emission", "intents", i, "intent_type"),
                "no-effect",
                f"no effect handler executes intent type {intent.intent_type!r}: route it in an "
                "effect contract (operation_match) or list it in a handler contract's "
                "intent_types",
            )


# --------------------------------------------------------------------------- topics


def _topic_issues(nodes: list[Loaded]) -> tuple[list[ContractIssue], list[ContractIssue]]:
    errors: list[ContractIssue] = []
    warnings: list[ContractIssue] = []
    publishers: dict[str, str] = {}  # topic → the name of the first contract publishing it
    for item in nodes:
        contract = item.contract
        assert isinstance(contract, NodeContract)
        if contract.event_bus is not None:
            for topic in contract.event_bus.publish_topics:
                publishers.setdefault(topic, contract.name)
    for item in nodes:
        contract = item.contract
        assert isinstance(contract, NodeContract)
        bus = contract.event_bus
        if bus is None:
            continue
        external = set(bus.external_topics)
        for i, topic in enumerate(bus.subscribe_topics):
            if topic in external or topic in publishers:
                continue
            errors.append(
                item.issue(
                    ("event_bus", "subscribe_topics", i),
                    "unpublished-topic",
                    f"no contract publishes {topic!r}; publish it, or declare it in "
                    "event_bus.external_topics if it comes from outside",
                )
            )
        for i, topic in enumerate(bus.external_topics):
            if topic in publishers:
                warnings.append(
                    item.issue(
                        ("event_bus", "external_topics", i),
                        "stale-external",
                        f"{topic!r} is declared external but {publishers[topic]!r} publishes it",
                    )
                )
    return errors, warnings


# --------------------------------------------------------------------------- capabilities


def _technology(name: str) -> bool:
    return name in TECHNOLOGY_NAMES or name.split(".", 1)[0] in TECHNOLOGY_NAMES


def _capability_warnings(nodes: list[Loaded], handlers: list[Loaded]) -> Iterable[ContractIssue]:
    message = (
        "capability {name!r} is named after a technology; name what it does "
        "(for example 'registration.storage', not 'postgres')"
    )
    for item in nodes:
        contract = item.contract
        assert isinstance(contract, NodeContract)
        for i, capability in enumerate(contract.capabilities):
            if _technology(capability.name):
                yield item.issue(
                    ("capabilities", i, "name"),
                    "technology-capability",
                    message.format(name=capability.name),
                )
    for item in handlers:
        contract = item.contract
        assert isinstance(contract, HandlerContract)
        for i, name in enumerate(contract.capability_outputs):
            if _technology(name):
                yield item.issue(
                    ("capability_outputs", i), "technology-capability", message.format(name=name)
                )
