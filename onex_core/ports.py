"""Ports: the Protocols the adapters implement, and a check that they really do.

The core never performs I/O. What it needs from the world it names here, as
:class:`typing.Protocol` classes, and ``onex_adapters`` implements them — in memory (the
embedded default and most tests), and for Kafka, PostgreSQL, Consul and Vault. The ports declare
``async`` methods because the adapters are asyncio code; nothing in the core awaits them.

- :class:`EventBus` — the in-memory bus and Kafka. ``publish`` returns only once the broker
  confirmed the record, and raises ``EffectUnavailable`` otherwise. ``commit`` moves the group's
  offsets past exactly the given records; the runtime calls it only after they were applied or
  dead-lettered, so nothing is committed that was not handled.
- :class:`ProjectionStore` — in memory and PostgreSQL. ``put`` writes a projection only when it
  is not stale against the stored one (:func:`onex_core.outputs.is_stale`), atomically — a
  conditional upsert, never read-then-write — and the write is durable when ``put`` returns True.
- :class:`IdempotencyStore` — in memory and PostgreSQL. ``record`` is called only *after* an
  effect succeeded, is durable when it returns, and recording a key twice is harmless. A crash
  between the effect and the record therefore repeats the effect (at-least-once); it never
  skips one. In PostgreSQL the record shares the effect's transaction where it can.
- :class:`EffectHandler` — Consul, PostgreSQL, Vault and in-memory handlers. ``execute`` carries
  out one intent once, with no retries inside (the runtime owns retries, the breaker and the
  timeout), and signals failure by raising ``EffectUnavailable`` (transient) or
  ``EffectRejected`` (permanent) with sanitized text. ``describe`` never returns secrets.

There is one handler port for every effect; the original implementation had two handler
systems, and its adapters drifted from their own protocol (``execute(request,
operation_config)`` in the protocol, ``execute(envelope)`` in the adapter) without any check
noticing. :func:`port_problems` is that check: it compares an implementation's members with a
port's — presence, ``async`` or not, parameter names, kinds and defaults — and the adapters'
tests and the plugin loader call it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from onex_core.errors import UsageError
from onex_core.intents import Intent
from onex_core.messages import EMPTY_MAPPING
from onex_core.outputs import Projection

__all__ = [
    "EffectHandler",
    "EffectResult",
    "EventBus",
    "HandlerDescription",
    "IdempotencyStore",
    "ProjectionStore",
    "Record",
    "port_problems",
]


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read from the bus: where it was (topic, partition, offset) and its bytes.

    ``timestamp_ms`` is the broker's timestamp in milliseconds since the epoch, when known.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


@runtime_checkable
class EventBus(Protocol):
    """A partitioned, at-least-once message bus with consumer-group offsets."""

    async def subscribe(self, topics: Sequence[str]) -> None:
        """Join the consumer group for ``topics`` (exact names). Replaces any earlier
        subscription; an empty sequence unsubscribes."""
        ...

    async def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.
        Records of one partition come in offset order. An empty result is normal."""
        ...

    async def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Publish one record and return once the broker confirmed it.

        Raises:
            EffectUnavailable: the broker did not confirm; the record may or may not have been
                written (publishing again is safe: consumers are idempotent).
        """
        ...

    async def commit(self, records: Sequence[Record]) -> None:
        """Advance the group's offsets past ``records`` (for each partition, to the highest
        offset given plus one). Never moves an offset backwards.

        Raises:
            EffectUnavailable: the commit was not confirmed; the records will be redelivered.
        """
        ...

    async def close(self) -> None:
        """Leave the group and release connections. Safe to call twice."""
        ...


@runtime_checkable
class ProjectionStore(Protocol):
    """Where projections (read models) live, keyed by ``(entity_id, domain)``."""

    async def get(self, entity_id: str, domain: str) -> Projection | None:
        """The stored projection, or None."""
        ...

    async def put(self, projection: Projection) -> bool:
        """Store ``projection`` unless it is stale against the stored one.

        Returns:
            True if written (and durable); False if stale, in which case nothing changed.
        """
        ...

    async def overdue(
        self, domain: str, deadline_field: str, now: datetime, limit: int
    ) -> Sequence[Projection]:
        """Projections of ``domain`` whose ``data[deadline_field]`` is a datetime strictly
        earlier than ``now``, earliest deadline first, at most ``limit``. The runtime's tick
        uses this to find timeouts; projections without the field are never overdue."""
        ...


@runtime_checkable
class IdempotencyStore(Protocol):
    """Which effects are done, by ``(domain, key)`` — typically ``intent_id`` as text."""

    async def seen(self, domain: str, key: str) -> bool:
        """Whether ``key`` was recorded in ``domain``."""
        ...

    async def record(self, domain: str, key: str) -> None:
        """Record ``key`` as done. Called only after the effect succeeded; idempotent."""
        ...


@dataclass(frozen=True, slots=True, init=False)
class EffectResult:
    """What an effect handler reports for one executed intent. ``detail`` is a small JSON-like
    mapping for logs and events (a row count, a service id) — never secrets."""

    intent_id: UUID
    detail: Mapping[str, Any]

    def __init__(self, intent_id: UUID, detail: Mapping[str, Any] = EMPTY_MAPPING) -> None:
        # One per executed intent: set through the slot descriptors (half the generated cost).
        _set_result_intent_id(self, intent_id)
        _set_result_detail(self, detail)


_set_result_intent_id = EffectResult.__dict__["intent_id"].__set__
_set_result_detail = EffectResult.__dict__["detail"].__set__


@dataclass(frozen=True, slots=True)
class HandlerDescription:
    """What an effect handler says about itself. Never secrets, never connection strings.

    Args:
        handler_type: the handler's name, e.g. ``consul``.
        intent_types: the intent types it executes, e.g. ``("consul.register",)``.
        capabilities: what it provides, named by function (``registration.storage``).
        version: the handler's own version.

    Raises:
        UsageError: ``handler_type`` is empty, or a sequence is not of strings.
    """

    handler_type: str
    intent_types: tuple[str, ...]
    capabilities: tuple[str, ...] = ()
    version: str = "1"

    def __post_init__(self) -> None:
        if not self.handler_type:
            raise UsageError("handler description: handler_type must not be empty")
        for name in ("intent_types", "capabilities"):
            object.__setattr__(self, name, _strings(name, getattr(self, name)))


def _strings(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise UsageError(f"handler description: {name} must be a sequence of strings")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise UsageError(f"handler description: {name} must contain only strings")
    return items


@runtime_checkable
class EffectHandler(Protocol):
    """The one handler port. Every effect handler implements these five members.

    Failures are signalled by raising ``EffectUnavailable`` (transient: the runtime retries) or
    ``EffectRejected`` (permanent: the runtime dead-letters the intent).
    """

    @property
    def handler_type(self) -> str:
        """The handler's name, e.g. ``consul``."""
        ...

    async def initialize(self, config: Mapping[str, Any]) -> None:
        """Connect and get ready. ``config`` may hold resolved secrets: never log it."""
        ...

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Finish or abandon in-flight work within ``timeout`` seconds and release resources."""
        ...

    async def execute(self, intent: Intent) -> EffectResult:
        """Carry out ``intent`` once."""
        ...

    def describe(self) -> HandlerDescription:
        """A description of the handler. Never secrets."""
        ...


# --------------------------------------------------------------------------- conformance

_IGNORED = frozenset({"__init__", "__class_getitem__", "__subclasshook__", "__init_subclass__"})


def _port_members(port: type) -> dict[str, object]:
    members: dict[str, object] = {}
    for klass in reversed(port.__mro__):
        if klass in (object, Protocol) or klass.__module__ == "typing":
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in _IGNORED:
                continue
            if isinstance(value, property) or inspect.isfunction(value):
                members[name] = value
    return members


def _implementation(obj: object, name: str) -> tuple[object, bool] | None:
    """The raw member ``name`` of ``obj`` and whether it is bound (its first parameter is
    ``self`` or ``cls``, to be dropped). None when missing."""
    owner = obj if isinstance(obj, type) else type(obj)
    if not isinstance(obj, type):
        instance_vars = getattr(obj, "__dict__", None)
        if isinstance(instance_vars, dict) and name in instance_vars:
            return instance_vars[name], False
    try:
        raw = inspect.getattr_static(owner, name)
    except AttributeError:
        if not isinstance(obj, type) and hasattr(obj, name):  # e.g. __getattr__
            return getattr(obj, name), False
        return None
    if isinstance(raw, staticmethod):
        return raw.__func__, False
    if isinstance(raw, classmethod):
        return raw.__func__, True
    return raw, inspect.isfunction(raw)


def _params(func: Any, bound: bool) -> list[inspect.Parameter] | None:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    return params[1:] if bound else params


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func)


def port_problems(obj: object, port: type) -> tuple[str, ...]:
    """Compare ``obj`` (a class or an instance) with ``port``, a Protocol of this module.

    For every member of the port: it must exist; a property must not be implemented by a
    method (any attribute or property will do); a method must be callable, ``async`` exactly
    when the port's is, and take the port's parameters — the same names, in the same order,
    of the same kinds (positional, keyword-only, ``*args``, ``**kwargs``), with a default
    wherever the port has one. Extra parameters are allowed only when they are optional
    (have a default, or are ``*args``/``**kwargs``).

    Returns:
        One line per problem, ``"<member>: <what is wrong>"``; an empty tuple when ``obj``
        conforms.

    Raises:
        UsageError: ``port`` is not a Protocol class.
    """
    if not (isinstance(port, type) and getattr(port, "_is_protocol", False)):
        raise UsageError(f"{port!r} is not a Protocol class")
    problems: list[str] = []
    for name, wanted in _port_members(port).items():
        found = _implementation(obj, name)
        if found is None:
            problems.append(f"{name}: missing")
            continue
        impl, bound = found
        if isinstance(wanted, property):
            if inspect.isfunction(impl) and bound:
                problems.append(f"{name}: must be a property or attribute, not a method")
            continue
        if isinstance(impl, property) or not callable(impl):
            problems.append(f"{name}: must be a method")
            continue
        if _is_async(wanted) != _is_async(impl):
            problems.append(f"{name}: must {'' if _is_async(wanted) else 'not '}be async")
        want_params = _params(wanted, True)
        have_params = _params(impl, bound)
        if want_params is None or have_params is None:
            problems.append(f"{name}: its signature cannot be inspected")
            continue
        problems.extend(f"{name}: {p}" for p in _param_problems(want_params, have_params))
    return tuple(problems)


_KIND_NAMES = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional-or-keyword",
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.KEYWORD_ONLY: "keyword-only",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
}


def _param_problems(wanted: list[inspect.Parameter], have: list[inspect.Parameter]) -> list[str]:
    problems: list[str] = []
    by_name = {p.name: p for p in have}
    positional = [p for p in have if p.kind in _POSITIONAL]
    wanted_positional = [p for p in wanted if p.kind in _POSITIONAL]
    for index, want in enumerate(wanted_positional):
        if index >= len(positional):
            problems.append(f"parameter {want.name!r} is missing")
            continue
        got = positional[index]
        if got.name != want.name:
            problems.append(f"parameter {index + 1} is {got.name!r}, the port says {want.name!r}")
        problems.extend(_one_param_problems(want, got))
    for want in (p for p in wanted if p.kind not in _POSITIONAL):
        got_or_none = by_name.get(want.name)
        if got_or_none is None:
            problems.append(f"parameter {want.name!r} is missing")
            continue
        problems.extend(_one_param_problems(want, got_or_none))
    wanted_names = {p.name for p in wanted}
    wanted_names.update(p.name for p in positional[: len(wanted_positional)])
    for got in have:
        optional = got.default is not inspect.Parameter.empty or got.kind in _VARIADIC
        if got.name not in wanted_names and not optional:
            problems.append(f"parameter {got.name!r} is not in the port and has no default")
    return problems


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _one_param_problems(want: inspect.Parameter, got: inspect.Parameter) -> list[str]:
    problems = []
    if got.kind != want.kind:
        problems.append(
            f"parameter {want.name!r} is {_KIND_NAMES[got.kind]}, "
            f"the port says {_KIND_NAMES[want.kind]}"
        )
    if want.default is not inspect.Parameter.empty and got.default is inspect.Parameter.empty:
        problems.append(f"parameter {want.name!r} must have a default")
    return problems
