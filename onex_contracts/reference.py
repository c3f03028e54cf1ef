"""The contract reference, generated from the schema itself.

``python -m onex_contracts.reference`` prints the Markdown of ``docs/reference/contracts.md``:
every key of ``contract.yaml`` and ``handler_contract.yaml``, its type, whether it is required
or its default, its limits, and an example taken from the shipped contracts. Because it is
generated from the pydantic models that validate contracts, it cannot drift from what the
loader accepts; a test regenerates it and fails when the checked-in copy is stale.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from onex_contracts import _fields, schema, schema_handler, sections
from onex_contracts.schema import NodeContract
from onex_contracts.schema_handler import HandlerContract, HandlerId

__all__ = ["render_reference"]

_ALIASES: dict[str, tuple[Any, str, str]] = {
    "Name": (_fields.Name, "a snake_case name", "pending_registration"),
    "StateRef": (_fields.StateRef, "a state name, or `*` for every non-terminal state", "*"),
    "FieldName": (_fields.FieldName, "a payload field name", "node_id"),
    "ClassName": (_fields.ClassName, "a Python class name", "HandlerNodeIntrospected"),
    "ModulePath": (_fields.ModulePath, "a dotted Python module path", "myapp.handlers"),
    "ClassPath": (
        _fields.ClassPath,
        "`package.module:Class` (never imported on load)",
        "myapp.effects:Payments",
    ),
    "CapabilityName": (
        _fields.CapabilityName,
        "a dotted name of what a node does",
        "registration.storage",
    ),
    "HandlerKey": (_fields.HandlerKey, "a kebab-case handler id", "registration-orchestrator"),
    "OperationName": (_fields.OperationName, "an operation name", "upsert_registration"),
    "Version": (_fields.Version, 'a version string `"X.Y.Z"`', '"1.0.0"'),
    "Topic": (
        _fields.Topic,
        "a topic `onex.<kind>.<producer>.<event-name>.v<N>`",
        "onex.evt.platform.node-heartbeat.v1",
    ),
    "TopicOrPattern": (
        _fields.TopicOrPattern,
        "a topic, or a pattern with `*` (one segment) and `**` (many)",
        "onex.evt.platform.*.v1",
    ),
    "IntentType": (_fields.IntentType, "a lowercase dotted intent type", "consul.register"),
    "EventType": (_fields.EventType, "`producer.event-name`", "platform.node-introspection"),
    "TargetPattern": (
        _fields.TargetPattern,
        "`protocol://resource/{field}`",
        "consul://service/{node_id}",
    ),
    "Description": (
        _fields.Description,
        "free text, 1 to 2000 characters",
        "Decides a node's lifecycle.",
    ),
    "Metadata": (
        _fields.Metadata,
        "a mapping of JSON-like values (extensions live here)",
        "{owner: platform}",
    ),
    "HandlerId": (
        HandlerId,
        "`<archetype>.<name>[.<more>]`, matching the descriptor's archetype",
        "effect.registration_storage.handler",
    ),
}
_ALIAS_OF = {id(value): name for name, (value, _, _) in _ALIASES.items()}


def _type_name(annotation: Any) -> str:
    alias = _ALIAS_OF.get(id(annotation))
    if alias is not None:
        return f"[{alias}](#value-types)"
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(annotation.__origin__)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in kept)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is str:
        return "string"
    return getattr(annotation, "__name__", str(annotation))


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _limits(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attribute, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"at least {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return ""
    else:
        value = field.default
    if value is None:
        return "—"
    if value == () or value == {}:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def _examples(directory: Path) -> dict[tuple[str, ...], Any]:
    """The first value seen at each key path (list items collapse) in the shipped contracts."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                found.setdefault((*path, key), item)
                walk(item, (*path, key))
        elif isinstance(value, list):
            for item in value:
                walk(item, path)

    for file in sorted(directory.rglob("*.yaml")):
        root = "handler" if file.name == "handler_contract.yaml" else "node"
        walk(yaml.safe_load(file.read_text(encoding="utf-8")), (root,))
    return found


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
    text = " ".join(text.split())
    if len(text) > 60:
        text = text[:59] + "…"
    return f"`{text}`".replace("|", "\\|")


def _first_line(doc: str | None) -> str:
    text = " ".join((doc or "").strip().split("\n\n")[0].split())
    return re.sub(r":(?:mod|data|func|class):`([^`]+)`", r"`\1`", text.replace("``", "`"))


def _markdown(doc: str | None) -> list[str]:
    """A docstring's paragraphs and bullet lists as Markdown (double backticks made single)."""
    text = re.sub(r":(?:mod|data|func|class):`([^`]+)`", r"`\1`", (doc or "").strip())
    return [line.rstrip() for line in text.replace("``", "`").splitlines()]


def _render_model(
    model: type[BaseModel], path: tuple[str, ...], examples: dict[tuple[str, ...], Any]
) -> list[str]:
    lines = [f"### {model.__name__}", ""]
    where = ".".join(path[1:]) or "(top level)"
    lines += [f"At `{where}`. {_first_line(model.__doc__)}", ""]
    lines += ["| key | type | default | limits | example |", "|---|---|---|---|---|"]
    hints = typing.get_type_hints(model, include_extras=True)
    for name, field in model.model_fields.items():
        example = examples.get((*path, name))
        lines.append(
            f"| `{name}` | {_type_name(hints.get(name, field.annotation))} | {_default(field)} | "
            f"{_limits(field)} | {'' if example is None else _show(example)} |"
        )
    return [*lines, ""]


def _render_contract(
    title: str,
    root: type[BaseModel],
    key: str,
    examples: dict[tuple[str, ...], Any],
    rules: str | None,
) -> list[str]:
    lines = [f"## {title}", "", *_markdown(rules), ""]
    queue: list[tuple[type[BaseModel], tuple[str, ...]]] = [(root, (key,))]
    seen: set[type[BaseModel]] = set()
    while queue:
        model, path = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += _render_model(model, path, examples)
        for name, field in model.model_fields.items():
            for nested in _models_in(field.annotation):
                queue.append((nested, (*path, name)))
    return lines


def render_reference() -> str:
    """The Markdown of the contract reference."""
    shipped = Path(__file__).parent / "contracts"
    examples = _examples(shipped)
    lines = [
        "# Contract reference",
        "",
        "<!-- Generated by `python -m onex_contracts.reference`; do not edit by hand. -->",
        "",
        "Every key a contract may have. Unknown keys are errors; extensions go under "
        "`metadata:`. Examples come from the shipped registration family.",
        "",
        "## Value types",
        "",
        "| type | accepts | example |",
        "|---|---|---|",
    ]
    for name, (_, meaning, example) in _ALIASES.items():
        lines.append(f"| {name} | {meaning} | `{example}` |")
    lines.append("")
    lines += _render_contract("contract.yaml", NodeContract, "node", examples, schema.__doc__)
    lines += _render_contract(
        "handler_contract.yaml", HandlerContract, "handler", examples, schema_handler.__doc__
    )
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    sys.stdout.write(render_reference())
    return 0


_ = sections  # the section models are reached through NodeContract's fields

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
