"""The building blocks of the contract schema: the strict base model and validated text types.

Every model is ``frozen=True, extra="forbid", strict=True``: unknown keys are errors and nothing is
coerced (``timeout_ms: "30"`` is a string, and a string is not an integer). Sequences are tuples —
the strict YAML reader produces tuples, so a list handed in from Python is refused like any other
wrong type.

Text fields that carry meaning are checked by their grammar here, once: names are snake_case,
topics go through :func:`onex_core.topics.parse_topic`, intent types through
:func:`onex_core.intents.is_valid_intent_type`, class paths through a dotted-identifier grammar
(checked as text only; nothing is ever imported here). A failed check raises a
``PydanticCustomError`` whose type is the stable issue code (``topic``, ``name``, …), so the
loader can report it with its file, line and column.

:class:`Finding` is a problem found by a cross-field check (a rule that needs more than one field,
like "this topic is not in ``subscribe_topics``"): a field path, a code and a message. The loader
locates findings the same way it locates pydantic errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from onex_contracts.issues import is_secret_key, is_secret_like
from onex_core.dispatch import is_valid_event_type
from onex_core.errors import ContentError, TopicError, format_path
from onex_core.intents import is_valid_intent_type, parse_target
from onex_core.topics import parse_pattern, parse_topic

__all__ = [
    "CapabilityName",
    "ClassName",
    "ClassPath",
    "ContractVersion",
    "Description",
    "EventType",
    "FieldName",
    "Finding",
    "HandlerKey",
    "IntentType",
    "Metadata",
    "Model",
    "ModulePath",
    "Name",
    "OperationName",
    "PathT",
    "StateRef",
    "TargetPattern",
    "Topic",
    "TopicOrPattern",
    "Version",
    "secret_findings",
]

PathT = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found by a cross-field check: where (a field path), a stable code and a message.

    ``at_key`` points the location at the field's key (for "this field must not be here") rather
    than at its value.
    """

    path: PathT
    code: str
    message: str
    at_key: bool = False

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}" if self.path else self.message


class Model(BaseModel):
    """The base of every contract model: frozen, no unknown fields, no coercion.

    ``hide_input_in_errors``: a ``ValidationError``'s text never repeats the input, which could
    hold a secret.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)


def _grammar(code: str, pattern: str, what: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise PydanticCustomError(code, "{what}", {"what": what})
        return value

    return check


def _topic(value: str) -> str:
    try:
        parse_topic(value)
    except TopicError as exc:
        raise PydanticCustomError("topic", "{detail}", {"detail": str(exc)}) from None
    return value


def _topic_or_pattern(value: str) -> str:
    segments = value.split(".")
    if "*" not in segments and "**" not in segments:
        return _topic(value)
    try:
        parse_pattern(value)
    except TopicError as exc:
        raise PydanticCustomError("topic", "{detail}", {"detail": str(exc)}) from None
    return value


def _intent_type(value: str) -> str:
    if not is_valid_intent_type(value):
        raise PydanticCustomError(
            "intent-type",
            "must be a lowercase dotted intent type like 'consul.register'",
        )
    return value


def _event_type(value: str) -> str:
    if not is_valid_event_type(value):
        raise PydanticCustomError(
            "event-type",
            "must be '<producer>.<event-name>' in lowercase kebab-case, "
            "like 'platform.node-heartbeat'",
        )
    return value


_PLACEHOLDER: Final = re.compile(r"\{[a-z_][a-z0-9_]*\}")


def _target_pattern(value: str) -> str:
    bare = _PLACEHOLDER.sub("x", value)
    if "{" in bare or "}" in bare:
        raise PydanticCustomError(
            "target", "placeholders must look like '{node_id}' (snake_case names in braces)"
        )
    try:
        parse_target(bare)
    except ContentError:
        raise PydanticCustomError(
            "target", "must look like 'protocol://resource/{id}' (placeholders allowed)"
        ) from None
    if "{" in value.partition("://")[0]:
        raise PydanticCustomError("target", "the protocol of a target cannot be a placeholder")
    return value


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    problem = _json_problem(value, 0)
    if problem is not None:
        raise PydanticCustomError("metadata", "{detail}", {"detail": problem})
    return value


def _json_problem(value: object, depth: int) -> str | None:
    if depth > 64:
        return "nested too deeply"
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if isinstance(value, list | tuple):
        for item in value:
            problem = _json_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "keys must be strings"
            problem = _json_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    return (
        "values must be JSON-like (null, booleans, numbers, strings, lists, mappings), "
        f"not {type(value).__name__}"
    )


_IDENT: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_PUBLIC: Final = r"[A-Za-z][A-Za-z0-9_]*"

Name = Annotated[
    str,
    Field(min_length=1, max_length=100),
    AfterValidator(_grammar("name", r"[a-z][a-z0-9_]*", "must be snake_case: a-z, 0-9 and _")),
]
"""A snake_case identifier: contract, state, trigger and action names."""

StateRef = Annotated[
    str,
    Field(min_length=1, max_length=100),
    AfterValidator(
        _grammar("name", r"\*|[a-z][a-z0-9_]*", "must be a snake_case state name or '*'")
    ),
]
"""A ``from_state``: a state name, or ``*`` for any state."""

FieldName = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(
        _grammar(
            "name",
            rf"{_IDENT}(?:\.{_IDENT})*",
            "must be a field name (letters, digits and _; dots between parts)",
        )
    ),
]
"""A data field, possibly dotted: ``node_id``, ``state.service_registered``."""

ClassName = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(_grammar("name", _IDENT, "must be a Python identifier")),
]
ModulePath = Annotated[
    str,
    Field(min_length=1, max_length=300),
    AfterValidator(_grammar("module", rf"{_IDENT}(?:\.{_IDENT})*", "must be a dotted module path")),
]
ClassPath = Annotated[
    str,
    Field(min_length=1, max_length=300),
    AfterValidator(
        _grammar(
            "class-path",
            rf"{_PUBLIC}(?:\.{_PUBLIC})+(?::{_PUBLIC})?",
            "must be 'package.module:Class' or 'package.module.Class' (checked as text only)",
        )
    ),
]
"""A handler class path, checked as text only. Loading is :mod:`onex_contracts.plugins`' job."""

CapabilityName = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(
        _grammar(
            "capability",
            r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*",
            "must be a lowercase dotted capability like 'registration.storage'",
        )
    ),
]
HandlerKey = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(
        _grammar(
            "handler-id",
            r"[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*",
            "must be lowercase words joined by '-', '_' or '.' (like 'effect.service_registry')",
        )
    ),
]
"""A handler id as routes name it: ``handler-node-introspected``, ``effect.storage.handler``."""

OperationName = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(
        _grammar(
            "name",
            r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_-]*)*",
            "must be a lowercase operation name like 'consul.register' or 'upsert_record'",
        )
    ),
]
Version = Annotated[
    str,
    AfterValidator(
        _grammar("version", r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)){2}", "must be 'X.Y.Z'")
    ),
]
Topic = Annotated[str, AfterValidator(_topic)]
TopicOrPattern = Annotated[str, AfterValidator(_topic_or_pattern)]
IntentType = Annotated[str, Field(max_length=200), AfterValidator(_intent_type)]
EventType = Annotated[str, Field(max_length=200), AfterValidator(_event_type)]
TargetPattern = Annotated[str, Field(max_length=500), AfterValidator(_target_pattern)]
Description = Annotated[str, Field(min_length=1, max_length=2000)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
"""Free extension data: JSON-like values only."""


class ContractVersion(Model):
    """``{major, minor, patch}``, each a non-negative integer."""

    major: int = Field(ge=0)
    minor: int = Field(ge=0)
    patch: int = Field(ge=0)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


# --------------------------------------------------------------------------- secrets


def secret_findings(data: Mapping[str, Any], path: PathT = ()) -> Iterator[Finding]:
    """Every place in plain data that holds what looks like a secret.

    A field named like a credential (``password``, ``vault_token``, ``dsn``) with a non-empty
    scalar value, or any string that looks like one (``scheme://user:pass@host``, a Vault token,
    a PEM block). Findings name the field path only, never the value.
    """
    stack: list[tuple[PathT, object]] = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                here = (*where, key)
                if (
                    isinstance(key, str)
                    and is_secret_key(key)
                    and item not in (None, "", False)
                    and not isinstance(item, Mapping | list | tuple)
                ):
                    yield _secret(here)
                    continue
                stack.append((here, item))
        elif isinstance(value, list | tuple):
            stack.extend(((*where, index), item) for index, item in enumerate(value))
        elif isinstance(value, str) and is_secret_like(value):
            yield _secret(where)


def _secret(path: PathT) -> Finding:
    return Finding(
        path,
        "secret",
        "contracts must not contain secrets; reference them through the secrets adapter",
    )
