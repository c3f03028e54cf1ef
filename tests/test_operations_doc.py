"""docs/operations.md names only things that exist: commands, options, environment variables,
``RuntimeConfig`` knobs and their defaults, failure classes, loggers and Python names."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

from onex_adapters import cli
from onex_adapters.runtime import RuntimeConfig
from onex_core.dispatch import UnroutableReason

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
SOURCES = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "onex_adapters").rglob("*.py"))
SPANS = re.findall(r"`([^`\n]+(?:\n[^`\n]+)?)`", DOC)


def _section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n#", start + len(title))
    return DOC[start : end if end >= 0 else len(DOC)]


def _first_column(section: str) -> list[str]:
    """The backquoted first cells of the tables in ``section``, header rows left out."""
    lines = section.splitlines()
    return [
        match.group(1)
        for line, following in zip(lines, [*lines[1:], ""], strict=True)
        if (match := re.match(r"\| `([^`]+)` \|", line)) and not following.startswith("|---")
    ]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


COMMAND_SPANS = [span for span in SPANS if span.startswith("onex ")]


def test_the_document_names_commands() -> None:
    assert {span.split()[1] for span in COMMAND_SPANS} >= {"db", "topics", "dlq", "demo"}


@pytest.mark.parametrize("span", COMMAND_SPANS)
def test_every_command_and_option_named_exists(span: str) -> None:
    words = span.replace("[", " ").replace("]", " ").split()
    commands = _subparsers(cli._parser())
    assert words[1] in commands, f"no command onex {words[1]}"
    parser = commands[words[1]]
    actions = _subparsers(parser)
    if actions and len(words) > 2 and not words[2].startswith("-"):
        assert words[2] in actions, f"no command onex {words[1]} {words[2]}"
        parser = actions[words[2]]
    for option in (w for w in words if w.startswith("--")):
        assert option in _options(parser), f"{span!r}: no option {option}"


VARIABLES = sorted(set(re.findall(r"\bONEX_[A-Z0-9_]*[A-Z0-9]\b", DOC)))


@pytest.mark.parametrize("name", VARIABLES)
def test_every_environment_variable_named_is_read(name: str) -> None:
    if name.endswith("_FILE"):  # read as <secret variable> + "_FILE"
        name = name.removesuffix("_FILE")
        assert f"{name}_FILE" in DOC
        assert 'name + "_FILE"' in (ROOT / "onex_adapters/kafka/wiring.py").read_text()
    assert name in SOURCES, f"{name} is read nowhere"


def test_every_postgres_and_kafka_variable_is_documented() -> None:
    read = set(re.findall(r"\bONEX_(?:POSTGRES|KAFKA)_[A-Z0-9_]*[A-Z0-9]\b", SOURCES))
    assert read, "the pattern found nothing"
    assert read <= set(VARIABLES), f"undocumented: {sorted(read - set(VARIABLES))}"


def test_runtime_config_knobs_and_their_defaults() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", _section("### `RuntimeConfig`"), re.M)
    fields = {f.name: f.default for f in dataclasses.fields(RuntimeConfig)}
    assert [name for name, _ in rows] == list(fields), "one row per field, in order"
    for name, shown in rows:
        shown = shown.strip().strip("`")
        if re.fullmatch(r'-?[\d.]+|"\w*"|None', shown):
            assert repr(fields[name]) == shown.replace('"', "'"), name
    retry = RuntimeConfig().handler_retry
    assert (retry.max_attempts, retry.initial_delay, retry.max_delay) == (3, 0.2, 5.0)
    publish = RuntimeConfig().publish_retry
    assert (publish.initial_delay, publish.max_delay) == (0.1, 5.0)


def test_failure_classes_are_the_ones_the_host_writes() -> None:
    documented = set(_first_column(_section("### When records are written")))
    host = (ROOT / "onex_adapters/runtime/host.py").read_text()
    written = {r.value for r in UnroutableReason}
    written.update(re.findall(r'_dead_letter\(\s*record,\s*"(\w+)"', host))
    for pair in re.findall(r'"(\w+)" if report\.permanent else "(\w+)"', host):
        written.update(pair)
    assert documented == written
    assert {"undecodable", "effect_exhausted", "effect_rejected", "handler_error"} <= documented


def test_loggers_named_exist() -> None:
    loggers = [
        n for cell in _first_column(_section("## Logging")) for n in re.findall(r"[\w.]+", cell)
    ]
    assert "onex.runtime" in loggers
    for name in loggers:
        if name.startswith("onex."):
            assert f'getLogger("{name}")' in SOURCES, name
        else:  # a module logging under its own name, itself or through the HTTP edge
            source = inspect.getsource(importlib.import_module(name))
            assert "getLogger(__name__)" in source or "_HttpEdge" in source, name


@pytest.mark.parametrize(
    "path", sorted({s for s in SPANS if re.fullmatch(r"onex_\w+(?:\.\w+)+", s)})
)
def test_dotted_names_resolve(path: str) -> None:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return
    pytest.fail(f"{path} does not resolve")


NAMES = {
    "RuntimeHost": "onex_adapters.runtime",
    "RuntimeConfig": "onex_adapters.runtime",
    "RuntimeStats": "onex_adapters.runtime",
    "EffectBinding": "onex_adapters.runtime",
    "KafkaBus": "onex_adapters.kafka",
    "KafkaSettings": "onex_adapters.kafka",
    "SystemClock": "onex_adapters.clock",
    "RandomIds": "onex_adapters.runtime",
    "Secret": "onex_adapters.secrets",
    "RedactingFilter": "onex_adapters.redaction",
    "EventBus": "onex_core.ports",
    "EffectRejected": "onex_core.errors",
    "EffectUnavailable": "onex_core.errors",
    "UsageError": "onex_core.errors",
    "open_backends": "onex_adapters.registration.app",
    "build_registration_from_env": "onex_adapters.registration.app",
    "settings_from_env": "onex_adapters.kafka.wiring",
    "KafkaBuses": "onex_adapters.kafka.wiring",
}


@pytest.mark.parametrize(("name", "module"), sorted(NAMES.items()))
def test_names_cited_exist_where_they_live(name: str, module: str) -> None:
    assert f"`{name}" in DOC
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("owner", "attribute"),
    [
        ("RuntimeHost", "start_background"),
        ("RuntimeHost", "stop"),
        ("RuntimeHost", "is_draining"),
        ("RuntimeStats", "dead_lettered"),
        ("RuntimeStats", "polled"),
        ("KafkaSettings", "close_timeout"),
        ("RuntimeConfig", "dlq_topic"),
        ("Secret", "reveal"),
    ],
)
def test_attributes_cited_exist(owner: str, attribute: str) -> None:
    assert attribute in DOC
    cls = getattr(importlib.import_module(NAMES[owner]), owner)
    assert hasattr(cls, attribute) or attribute in {f.name for f in dataclasses.fields(cls)}
