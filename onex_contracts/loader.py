"""Loading contracts: text → strict YAML → strict models → cross-field checks → state machine.

:func:`parse` is pure (text in, a contract or :class:`~onex_contracts.issues.ContractInvalid`
out); :func:`load` reads a file, with the size cap applied to the bytes before anything is parsed,
and calls it. The steps, each of which reports every problem it finds:

1. :mod:`onex_contracts._yaml` reads exactly one mapping document — no tags, anchors, aliases,
   duplicate or non-string keys, no YAML 1.1 coercions, bounded size and depth — keeping the
   position of every key and value. A YAML-level problem stops here: the data is not what the
   author wrote, so checking it further would only add noise.
2. The raw data is scanned for secrets (passwords, DSNs with credentials, Vault tokens, PEM
   blocks). The message names the field, never the value.
3. The strict pydantic model validates the shape; each pydantic error becomes one issue located
   at the offending key (unknown or forbidden fields) or value (wrong types, bad values), with the
   closest known field name suggested for a typo.
4. The cross-field rules (:func:`~onex_contracts.schema.node_findings`,
   :func:`~onex_contracts.schema_handler.handler_findings`) run on the valid model.
5. A reducer's state machine is compiled (:func:`onex_contracts.compile.compile_machine`): guards
   are parsed, states checked for reachability and determinism. When step 3 failed elsewhere in
   the file the ``state_machine`` section is still validated and compiled alone, so its problems
   are reported with the schema errors.

All issues of steps 2 to 5 are raised together, sorted by position (at most
:data:`MAX_REPORTED`, then one line saying more exist). Nothing in a contract is ever imported or
executed: ``handler_class`` is text here.
"""

from __future__ import annotations

import itertools
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from onex_contracts import _yaml
from onex_contracts._fields import Finding, PathT, secret_findings
from onex_contracts.compile import machine_findings
from onex_contracts.issues import ContractInvalid, ContractIssue, is_secret_key, quote, suggest
from onex_contracts.schema import DEFER_CHECKS, NodeContract, StateMachine, node_findings
from onex_contracts.schema_handler import HandlerContract, handler_findings
from onex_core.errors import format_path

__all__ = [
    "HANDLER_FILE",
    "MAX_BYTES",
    "NODE_FILE",
    "Contract",
    "ContractInvalid",
    "ContractIssue",
    "Loaded",
    "dump",
    "load",
    "load_located",
    "parse",
    "parse_handler",
    "parse_located",
    "parse_node",
]

Contract = NodeContract | HandlerContract
"""Either kind of contract."""

MAX_BYTES: Final = _yaml.MAX_BYTES
MAX_REPORTED: Final = 100
"""At most this many issues are reported for one file; a last one says that more exist."""
NODE_FILE: Final = "contract.yaml"
HANDLER_FILE: Final = "handler_contract.yaml"

Kind = Literal["node", "handler"]
_KIND_OF_FILE: Final[dict[str, Kind]] = {NODE_FILE: "node", HANDLER_FILE: "handler"}


def parse(text: str | bytes, *, source: str = "<string>", kind: Kind | None = None) -> Contract:
    """Parse one contract from its text.

    Args:
        text: the YAML, as text or UTF-8 bytes.
        source: the name issues give as the file (a path, or ``<string>``).
        kind: ``"node"`` or ``"handler"``; when omitted the content decides (a node contract has
            ``node_type``, a handler contract ``handler_id``).

    Returns:
        A :class:`~onex_contracts.schema.NodeContract` or
        :class:`~onex_contracts.schema_handler.HandlerContract`.

    Raises:
        ContractInvalid: every problem found, each with its line, column and field path.
    """
    return parse_located(text, source=source, kind=kind).contract


@dataclass(frozen=True, slots=True)
class Loaded:
    """A valid contract together with where each of its fields is in its file.

    Cross-contract checks (:mod:`onex_contracts.lint`) use it to point at the line of the
    offending field.
    """

    source: str
    contract: Contract
    spots: Mapping[PathT, _yaml.Spot]

    def issue(self, path: PathT, code: str, message: str, *, at_key: bool = False) -> ContractIssue:
        """An issue about the field at ``path`` of this contract."""
        return _locate(Finding(path, code, message, at_key), self.spots, self.source)


def parse_located(
    text: str | bytes, *, source: str = "<string>", kind: Kind | None = None
) -> Loaded:
    """:func:`parse`, keeping the position of every field (see :class:`Loaded`).

    Raises:
        ContractInvalid: as for :func:`parse`.
    """
    document = _yaml.read(text, source)
    if kind is None:
        kind = _kind_of(document, source)
    model: type[NodeContract] | type[HandlerContract] = (
        NodeContract if kind == "node" else HandlerContract
    )
    spots = document.spots
    issues = [
        _locate(f, spots, source)
        for f in itertools.islice(secret_findings(document.data), MAX_REPORTED + 1)
    ]
    contract: Contract | None = None
    try:
        contract = model.model_validate(document.data, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        issues.extend(_from_pydantic(exc, model, document, source))
    if contract is not None:
        findings = (
            node_findings(contract)
            if isinstance(contract, NodeContract)
            else handler_findings(contract)
        )
        issues.extend(_locate(f, spots, source) for f in findings)
    if kind == "node":
        issues.extend(_machine_issues(contract, document, source))
    if issues:
        raise ContractInvalid(_capped(issues))
    assert contract is not None
    return Loaded(source, contract, spots)


def _capped(issues: list[ContractIssue]) -> list[ContractIssue]:
    """The first :data:`MAX_REPORTED` issues by position, and one line saying how many more."""
    if len(issues) <= MAX_REPORTED:
        return issues
    ordered = sorted(issues, key=lambda i: (i.line, i.column, i.path, i.code))
    first_hidden = ordered[MAX_REPORTED]
    more = ContractIssue(
        first_hidden.source,
        first_hidden.line,
        first_hidden.column,
        "",
        f"and more problems from here on (only the first {MAX_REPORTED} are shown)",
        "truncated",
    )
    return [*ordered[:MAX_REPORTED], more]


def parse_node(text: str | bytes, *, source: str = "<string>") -> NodeContract:
    """:func:`parse` a node contract (``contract.yaml``)."""
    contract = parse(text, source=source, kind="node")
    assert isinstance(contract, NodeContract)
    return contract


def parse_handler(text: str | bytes, *, source: str = "<string>") -> HandlerContract:
    """:func:`parse` a handler contract (``handler_contract.yaml``)."""
    contract = parse(text, source=source, kind="handler")
    assert isinstance(contract, HandlerContract)
    return contract


def load(path: str | os.PathLike[str]) -> Contract:
    """Read and parse one contract file: :func:`load_located` without the positions.

    Raises:
        ContractInvalid: the file is too large, unreadable, or invalid (every problem found).
    """
    return load_located(path).contract


def load_located(path: str | os.PathLike[str]) -> Loaded:
    """Read and parse one contract file, keeping field positions.

    The file name decides the kind (``contract.yaml`` → node, ``handler_contract.yaml`` →
    handler; any other name → by content). At most :data:`MAX_BYTES` are read: a larger file
    is refused before it is parsed.

    Raises:
        ContractInvalid: the file is too large, unreadable, or invalid (every problem found).
    """
    where = os.fspath(path)
    name = os.path.basename(where)
    kind = _KIND_OF_FILE.get(name)
    try:
        with open(where, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ContractInvalid(
            [ContractIssue(where, 0, 0, "", f"cannot read the file: {reason}", "io")]
        ) from None
    if len(raw) > MAX_BYTES:
        raise ContractInvalid(
            [
                ContractIssue(
                    where, 1, 1, "", "contract is larger than the limit of 1 MiB", "too-large"
                )
            ]
        )
    return parse_located(raw, source=where, kind=kind)


def dump(contract: Contract) -> str:
    """The contract as YAML that :func:`parse` reads back into an equal contract.

    Only the fields that were set are written, in schema order. Strings that the strict reader
    would take for something else (``"on"`` is fine; ``"12"``, ``"true"``, ``"1.10"`` are not)
    are quoted.
    """
    data = contract.model_dump(mode="json", exclude_unset=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    """A safe dumper that quotes every string the strict reader would not read as that string."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = None
    if value == "" or _yaml.resolve_plain(value) != value or value != value.strip():
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


# --------------------------------------------------------------------------- kind


def _kind_of(document: _yaml.Document, source: str) -> Kind:
    data = document.data
    if "node_type" in data:
        return "node"
    if "handler_id" in data or "descriptor" in data:
        return "handler"
    base = os.path.basename(source)
    if base == HANDLER_FILE:
        return "handler"
    if base == NODE_FILE:
        return "node"
    raise ContractInvalid(
        [
            ContractIssue(
                source,
                1,
                1,
                "",
                "cannot tell what this contract is: a node contract has 'node_type', "
                "a handler contract has 'handler_id'",
                "contract-kind",
            )
        ]
    )


# --------------------------------------------------------------------------- locating


def _spot_for(path: PathT, spots: Mapping[PathT, _yaml.Spot]) -> tuple[PathT, _yaml.Spot]:
    """The spot of ``path``, or of its longest prefix that has one."""
    for end in range(len(path), -1, -1):
        spot = spots.get(path[:end])
        if spot is not None:
            return path[:end], spot
    return (), _yaml.Spot(1, 1, 1, 1)


def _locate(finding: Finding, spots: Mapping[PathT, _yaml.Spot], source: str) -> ContractIssue:
    found, spot = _spot_for(finding.path, spots)
    exact = found == finding.path
    if finding.at_key or not exact:
        line, column = spot.key_line, spot.key_column
    else:
        line, column = spot.line, spot.column
    return ContractIssue(
        source, line, column, format_path(finding.path), finding.message, finding.code
    )


# --------------------------------------------------------------------------- pydantic errors

_TYPE_WORDS: Final = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_RANGE_TYPES: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
)
_LENGTH_TYPES: Final = frozenset({"too_short", "too_long", "string_too_short", "string_too_long"})


def _from_pydantic(
    exc: ValidationError, model: type[BaseModel], document: _yaml.Document, source: str
) -> list[ContractIssue]:
    issues = []
    for error in itertools.islice(exc.errors(include_url=False), MAX_REPORTED + 1):
        loc: PathT = tuple(error["loc"])
        etype: str = error["type"]
        found, spot = _spot_for(loc, document.spots)
        exact = found == loc
        path = format_path(loc)
        if etype == "extra_forbidden":
            name = str(loc[-1])
            message = f"unknown field {quote(name)}" + suggest(name, _fields_at(model, loc[:-1]))
            issues.append(
                ContractIssue(
                    source, spot.key_line, spot.key_column, path, message, "unknown-field"
                )
            )
            continue
        if etype == "missing":
            message = f"missing required field {quote(str(loc[-1]))}"
            issues.append(
                ContractIssue(source, spot.key_line, spot.key_column, path, message, "missing")
            )
            continue
        line, column = (spot.line, spot.column) if exact else (spot.key_line, spot.key_column)
        code, message = _describe(error, loc, spot if exact else None)
        issues.append(ContractIssue(source, line, column, path, message, code))
    return issues


def _describe(error: Any, loc: PathT, spot: _yaml.Spot | None) -> tuple[str, str]:
    etype: str = error["type"]
    value = error.get("input")
    secret = any(isinstance(part, str) and is_secret_key(part) for part in loc)
    if etype in _TYPE_WORDS:
        wanted = _TYPE_WORDS[etype]
        message = f"expected {wanted}, got {_kind_word(value)}"
        if not secret and isinstance(value, str):
            message += f" {quote(value)}"
            if etype == "bool_type":
                message += "; write true or false"
            elif spot is not None and spot.quoted and _yaml.resolve_plain(value) != value:
                message += "; write it without quotes"
        elif not secret and etype == "string_type" and spot is not None and spot.text:
            message += f"; quote it if it is text: {quote(spot.text)}"
        return "type", message
    if etype == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"must be one of {expected}"
        if isinstance(value, str) and not secret:
            options = [part.strip().strip("'") for part in expected.replace(" or ", ",").split(",")]
            message = f"{quote(value)} is not one of {expected}" + suggest(value, options)
        return "enum", message
    text = str(error.get("msg", "invalid value"))
    if text.startswith("Input should be "):
        text = "must be " + text.removeprefix("Input should be ")
    elif text.startswith(("String should", "Tuple should", "List should", "Value should")):
        text = "must " + text.split(" should ", 1)[1]
    if etype in _RANGE_TYPES:
        if not secret and isinstance(value, int | float) and not isinstance(value, bool):
            text += f" (got {value})"
        return "range", text
    if etype in _LENGTH_TYPES:
        return "length", text
    if etype == "value_error":
        return "value", text.removeprefix("Value error, ")
    return etype, text


def _kind_word(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, tuple | list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _fields_at(model: type[BaseModel], path: PathT) -> list[str]:
    """The field names of the model found at ``path`` below ``model``, or ``[]``."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            current = _element_type(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _unwrap(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            if arg is not type(None):
                return _unwrap(arg)
    return annotation


def _element_type(annotation: Any) -> Any:
    args = get_args(_unwrap(annotation))
    return _unwrap(args[0]) if args else None


# --------------------------------------------------------------------------- state machine


def _machine_issues(
    contract: Contract | None, document: _yaml.Document, source: str
) -> Iterable[ContractIssue]:
    machine: StateMachine | None = None
    if isinstance(contract, NodeContract):
        machine = contract.state_machine
    elif contract is None and isinstance(document.data.get("state_machine"), dict):
        try:
            machine = StateMachine.model_validate(document.data["state_machine"])
        except ValidationError:
            machine = None  # its errors are already reported
    if machine is None:
        return ()
    return [_locate(f, document.spots, source) for f in machine_findings(machine)[1]]
