"""The in-memory stores pass the shared port suites, and their fault scripts behave."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from onex_adapters.memory import (
    FaultScript,
    InMemoryIdempotencyStore,
    InMemoryProjectionStore,
    InMemorySecretStore,
    InMemoryServiceRegistry,
    RegisteredService,
)
from onex_core.errors import EffectRejected, EffectUnavailable
from tests.adapters.port_suites import IdempotencyStoreSuite, ProjectionStoreSuite


class TestInMemoryProjectionStore(ProjectionStoreSuite):
    async def make_store(self) -> InMemoryProjectionStore:
        return InMemoryProjectionStore()


class TestInMemoryIdempotencyStore(IdempotencyStoreSuite):
    async def make_store(self) -> InMemoryIdempotencyStore:
        return InMemoryIdempotencyStore()


def test_fault_script_fails_the_next_calls_in_order_then_heals() -> None:
    faults = FaultScript("registry")
    faults.fail_next(2)
    faults.fail_next(1, permanent=True)
    with pytest.raises(EffectUnavailable):
        faults.check()
    with pytest.raises(EffectUnavailable):
        faults.check()
    with pytest.raises(EffectRejected):
        faults.check()
    faults.check()
    faults.fail_always()
    with pytest.raises(EffectUnavailable):
        faults.check()
    faults.heal()
    faults.check()
    assert faults.calls == 6


def test_service_registry_passes_checks_only_for_known_services() -> None:
    registry = InMemoryServiceRegistry()
    now = datetime(2026, 11, 21, tzinfo=UTC)
    assert registry.pass_check("onex-effect-1", now) is False
    registry.register(RegisteredService("onex-effect-1", "onex-effect", "10.0.0.1", 8080))
    assert registry.pass_check("onex-effect-1", now) is True
    assert registry.services["onex-effect-1"].check_status == "passing"
    registry.deregister("onex-effect-1")
    registry.deregister("onex-effect-1")
    assert registry.pass_check("onex-effect-1", now) is False


def test_secret_store_errors_name_the_key_not_the_value() -> None:
    store = InMemorySecretStore({"secret/data/onex/db": {"password": "hunter2-canary"}})
    assert store.read("secret/data/onex/db", "password") == "hunter2-canary"
    with pytest.raises(EffectRejected) as caught:
        store.read("secret/data/onex/db", "user")
    assert "hunter2" not in str(caught.value)
    assert "'user'" in str(caught.value)


def test_idempotency_store_counts_calls_and_fails_as_scripted() -> None:
    async def scenario() -> None:
        store = InMemoryIdempotencyStore()
        await store.record("a.put", "k1")
        await store.record("b.put", "k1")
        assert await store.seen("a.put", "k1")
        assert not await store.seen("a.put", "k2")
        assert len(store) == 2
        store.faults.fail_next(1)
        with pytest.raises(EffectUnavailable):
            await store.seen("a.put", "k1")
        store.faults.fail_always(permanent=True)
        with pytest.raises(EffectRejected):
            await store.record("a.put", "k3")
        store.faults.heal()
        assert not await store.seen("a.put", "k3")
        assert store.faults.calls == 7

    asyncio.run(scenario())
