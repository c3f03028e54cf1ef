"""The ports: small fakes conform, broken ones are caught by port_problems."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from onex_core.errors import UsageError
from onex_core.intents import Intent
from onex_core.outputs import Projection, is_stale
from onex_core.ports import (
    EffectHandler,
    EffectResult,
    EventBus,
    HandlerDescription,
    IdempotencyStore,
    ProjectionStore,
    Record,
    port_problems,
)

ID = UUID("00000000-0000-4000-8000-000000000001")
NOW = datetime(2025, 1, 1, tzinfo=UTC)

# --------------------------------------------------------------------------- conforming fakes


class FakeBus:
    def __init__(self) -> None:
        self.topics: tuple[str, ...] = ()
        self.published: list[Record] = []
        self.committed: dict[tuple[str, int], int] = {}

    async def subscribe(self, topics: Sequence[str]) -> None:
        self.topics = tuple(topics)

    async def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        return [r for r in self.published if r.topic in self.topics][:max_records]

    async def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.published.append(Record(topic, 0, len(self.published), key, value, tuple(headers)))

    async def commit(self, records: Sequence[Record]) -> None:
        for r in records:
            place = (r.topic, r.partition)
            self.committed[place] = max(self.committed.get(place, 0), r.offset + 1)

    async def close(self) -> None:
        self.topics = ()


class FakeProjections:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Projection] = {}

    async def get(self, entity_id: str, domain: str) -> Projection | None:
        return self.rows.get((entity_id, domain))

    async def put(self, projection: Projection) -> bool:
        key = (projection.entity_id, projection.domain)
        if is_stale(projection, self.rows.get(key)):
            return False
        self.rows[key] = projection
        return True

    async def overdue(
        self, domain: str, deadline_field: str, now: datetime, limit: int
    ) -> Sequence[Projection]:
        due = [
            p
            for p in self.rows.values()
            if p.domain == domain
            and isinstance(p.data.get(deadline_field), datetime)
            and p.data[deadline_field] < now
        ]
        return sorted(due, key=lambda p: p.data[deadline_field])[:limit]


class FakeIdempotency:
    def __init__(self) -> None:
        self.done: set[tuple[str, str]] = set()

    async def seen(self, domain: str, key: str) -> bool:
        return (domain, key) in self.done

    async def record(self, domain: str, key: str) -> None:
        self.done.add((domain, key))


class FakeHandler:
    def __init__(self) -> None:
        self.executed: list[Intent] = []

    @property
    def handler_type(self) -> str:
        return "memory"

    async def initialize(self, config: Mapping[str, Any]) -> None:
        pass

    async def shutdown(self, timeout: float = 30.0) -> None:
        pass

    async def execute(self, intent: Intent) -> EffectResult:
        self.executed.append(intent)
        return EffectResult(intent.intent_id, {"count": len(self.executed)})

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ("memory.write",))


CONFORMING = [
    (FakeBus, EventBus),
    (FakeProjections, ProjectionStore),
    (FakeIdempotency, IdempotencyStore),
    (FakeHandler, EffectHandler),
]


@pytest.mark.parametrize(("fake", "port"), CONFORMING, ids=lambda v: v.__name__)
def test_conforming_fakes_have_no_problems(fake: type, port: type) -> None:
    assert port_problems(fake, port) == ()
    assert port_problems(fake(), port) == ()
    assert isinstance(fake(), port)


@pytest.mark.parametrize(("fake", "port"), CONFORMING, ids=lambda v: v.__name__)
def test_a_fake_does_not_satisfy_the_other_ports(fake: type, port: type) -> None:
    for _other_fake, other in CONFORMING:
        if other is not port:
            assert port_problems(fake, other) != ()


def test_the_fakes_behave_as_the_ports_promise() -> None:
    async def scenario() -> None:
        store = FakeProjections()
        older = Projection("n", "registration", "accepted", {"ack": NOW}, 1, ID, "0", 1)
        newer = dataclasses.replace(older, state="active", sequence=2, data={})
        assert await store.put(newer)
        assert not await store.put(older)
        assert await store.get("n", "registration") == newer
        other = dataclasses.replace(older, entity_id="m")
        assert await store.put(other)
        assert await store.overdue("registration", "ack", NOW + timedelta(seconds=1), 10) == [other]
        assert await store.overdue("registration", "ack", NOW, 10) == []

        handler = FakeHandler()
        intent = Intent("memory.write", "memory://rows/1", {}, ID, ID)
        assert (await handler.execute(intent)).intent_id == ID

    asyncio.run(scenario())


# --------------------------------------------------------------------------- broken fakes


class MissingMethod(FakeHandler):
    describe = None  # type: ignore[assignment]


class NoDescribe:
    handler_type = "memory"

    async def initialize(self, config: Mapping[str, Any]) -> None:
        pass

    async def shutdown(self, timeout: float = 30.0) -> None:
        pass

    async def execute(self, intent: Intent) -> EffectResult:
        raise NotImplementedError


class SyncInitialize(NoDescribe):
    def initialize(self, config: Mapping[str, Any]) -> None:  # type: ignore[override]
        pass

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class AsyncDescribe(NoDescribe):
    async def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class RenamedParameter(NoDescribe):
    async def execute(self, envelope: Intent) -> EffectResult:
        raise NotImplementedError

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class ExtraRequiredParameter(NoDescribe):
    async def execute(  # type: ignore[override]
        self, intent: Intent, operation_config: Mapping[str, Any]
    ) -> EffectResult:
        raise NotImplementedError

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class MissingDefault(NoDescribe):
    async def shutdown(self, timeout: float) -> None:  # type: ignore[override]
        pass

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class MissingParameter(NoDescribe):
    async def shutdown(self) -> None:  # type: ignore[override]
        pass

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class MethodForProperty(NoDescribe):
    def handler_type(self) -> str:  # type: ignore[override]
        return "memory"

    def describe(self) -> HandlerDescription:
        return HandlerDescription("memory", ())


class PositionalKey(FakeBus):
    async def publish(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        pass


class SwappedParameters(FakeBus):
    async def poll(self, timeout: float, max_records: int) -> Sequence[Record]:  # type: ignore[override]
        return []


@pytest.mark.parametrize(
    ("broken", "port", "expected"),
    [
        (NoDescribe, EffectHandler, ["describe: missing"]),
        (MissingMethod, EffectHandler, ["describe: must be a method"]),
        (SyncInitialize, EffectHandler, ["initialize: must be async"]),
        (AsyncDescribe, EffectHandler, ["describe: must not be async"]),
        (
            RenamedParameter,
            EffectHandler,
            ["execute: parameter 1 is 'envelope', the port says 'intent'"],
        ),
        (
            ExtraRequiredParameter,
            EffectHandler,
            ["execute: parameter 'operation_config' is not in the port and has no default"],
        ),
        (MissingDefault, EffectHandler, ["shutdown: parameter 'timeout' must have a default"]),
        (MissingParameter, EffectHandler, ["shutdown: parameter 'timeout' is missing"]),
        (
            MethodForProperty,
            EffectHandler,
            ["handler_type: must be a property or attribute, not a method"],
        ),
        (
            PositionalKey,
            EventBus,
            [
                "publish: parameter 'key' is positional-or-keyword, the port says keyword-only",
                "publish: parameter 'headers' is positional-or-keyword, the port says keyword-only",
            ],
        ),
        (
            SwappedParameters,
            EventBus,
            [
                "poll: parameter 1 is 'timeout', the port says 'max_records'",
                "poll: parameter 2 is 'max_records', the port says 'timeout'",
            ],
        ),
    ],
    ids=lambda v: getattr(v, "__name__", "-"),
)
def test_broken_fakes_are_caught(broken: type, port: type, expected: list[str]) -> None:
    assert list(port_problems(broken, port)) == expected
    assert list(port_problems(broken(), port)) == expected


def test_isinstance_catches_missing_members_only() -> None:
    # runtime_checkable isinstance only checks presence; port_problems checks the rest.
    assert not isinstance(NoDescribe(), EffectHandler)
    assert isinstance(RenamedParameter(), EffectHandler)
    assert port_problems(RenamedParameter(), EffectHandler) != ()


def test_optional_extras_and_other_method_kinds_are_accepted() -> None:
    class Flexible(FakeHandler):
        handler_type = "flexible"  # a plain attribute serves for a property

        async def shutdown(self, timeout: float = 5.0, *, force: bool = False) -> None:
            pass

        async def execute(self, intent: Intent, *args: Any, **kwargs: Any) -> EffectResult:
            raise NotImplementedError

        @staticmethod
        def describe() -> HandlerDescription:
            return HandlerDescription("flexible", ())

    assert port_problems(Flexible, EffectHandler) == ()
    assert port_problems(Flexible(), EffectHandler) == ()


def test_callables_set_on_an_instance_are_checked_too() -> None:
    handler = FakeHandler()

    async def execute(envelope: Intent) -> EffectResult:
        raise NotImplementedError

    handler.execute = execute  # type: ignore[method-assign,assignment]
    assert port_problems(handler, EffectHandler) == (
        "execute: parameter 1 is 'envelope', the port says 'intent'",
    )

    async def good(intent: Intent) -> EffectResult:
        raise NotImplementedError

    handler.execute = good  # type: ignore[method-assign]
    assert port_problems(handler, EffectHandler) == ()


def test_port_problems_needs_a_protocol() -> None:
    with pytest.raises(UsageError, match="not a Protocol"):
        port_problems(FakeHandler(), FakeHandler)
    with pytest.raises(UsageError, match="not a Protocol"):
        port_problems(FakeHandler(), "EffectHandler")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- values


def test_handler_description_keeps_tuples_of_strings() -> None:
    description = HandlerDescription("consul", ["consul.register"], ["registration.discovery"])  # type: ignore[arg-type]
    assert description.intent_types == ("consul.register",)
    assert description.capabilities == ("registration.discovery",)
    assert description.version == "1"
    with pytest.raises(UsageError, match="intent_types must be a sequence of strings"):
        HandlerDescription("consul", "consul.register")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="capabilities must contain only strings"):
        HandlerDescription("consul", (), (1,))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="handler_type must not be empty"):
        HandlerDescription("", ())


def test_effect_results_and_records_are_frozen() -> None:
    result = EffectResult(ID)
    assert dict(result.detail) == {}
    with pytest.raises(TypeError):
        result.detail["x"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.intent_id = ID  # type: ignore[misc]
    record = Record("onex.evt.a.b.v1", 0, 7, None, b"{}")
    assert (record.headers, record.timestamp_ms) == ((), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.offset = 8  # type: ignore[misc]
