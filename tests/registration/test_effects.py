"""The registration effect handlers: the port, their backends' faults, and what they keep."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.memory import InMemoryServiceRegistry
from onex_adapters.registration import (
    InMemoryRegistrationTable,
    RegistrationStorageEffect,
    ServiceRegistryEffect,
)
from onex_core.errors import EffectRejected, EffectUnavailable
from onex_core.intents import Intent
from onex_core.ports import EffectHandler, port_problems
from onex_core.registration.model import (
    DEREGISTER_SERVICE,
    PASS_CHECK,
    REGISTER_SERVICE,
    STORE_REGISTRATION,
    UPDATE_REGISTRATION,
)
from tests.registration.kit import START

REGISTRATION = {
    "service_id": "onex-effect-n1",
    "service_name": "onex-effect",
    "node_id": "n1",
    "node_type": "effect",
    "address": "10.0.0.1",
    "port": 8080,
    "tags": ["onex"],
    "check_ttl_seconds": 30.0,
    "attempt": 1,
}


def intent(intent_type: str, payload: dict[str, Any], n: int = 0) -> Intent:
    return Intent(
        intent_type=intent_type,
        target="consul://service/onex-effect-n1",
        payload=payload,
        intent_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{intent_type}/{n}"),
        correlation_id=uuid.uuid5(uuid.NAMESPACE_URL, "c"),
    )


def stored(intent_type: str, attempt: int, revision: int, state: str, **fields: Any) -> Intent:
    payload = {"node_id": "n1", "attempt": attempt, "revision": revision, "state": state, **fields}
    return intent(intent_type, payload, attempt * 1000 + revision)


@pytest.mark.parametrize(
    "handler",
    [
        ServiceRegistryEffect(InMemoryServiceRegistry(), LoopClock(START)),
        RegistrationStorageEffect(InMemoryRegistrationTable()),
    ],
    ids=lambda h: h.handler_type,
)
def test_both_handlers_implement_the_effect_port(handler: object) -> None:
    assert port_problems(handler, EffectHandler) == ()
    assert isinstance(handler, EffectHandler)
    description = handler.describe()
    assert set(description.intent_types) == set(handler.intent_types)  # type: ignore[attr-defined]


def test_the_service_registry_registers_passes_and_deregisters() -> None:
    async def scenario() -> None:
        registry = InMemoryServiceRegistry()
        effect = ServiceRegistryEffect(registry, LoopClock(START))
        result = await effect.execute(intent(REGISTER_SERVICE, REGISTRATION))
        assert result.detail == {"service_id": "onex-effect-n1"}
        service = registry.services["onex-effect-n1"]
        assert (service.address, service.port, service.check_status) == (
            "10.0.0.1",
            8080,
            "critical",
        )
        check = {"check_id": "onex-effect-n1", "registration": REGISTRATION}
        await effect.execute(intent(PASS_CHECK, check))
        assert registry.services["onex-effect-n1"].check_status == "passing"
        await effect.execute(intent(DEREGISTER_SERVICE, {"service_id": "onex-effect-n1"}))
        assert registry.services == {}

    run_virtual(scenario())


def test_a_check_for_a_lost_service_re_registers_it_instead_of_silently_succeeding() -> None:
    async def scenario() -> None:
        registry = InMemoryServiceRegistry()
        effect = ServiceRegistryEffect(registry, LoopClock(START))
        check = {"check_id": "onex-effect-n1", "registration": REGISTRATION}
        result = await effect.execute(intent(PASS_CHECK, check))
        assert result.detail["reregistered"] is True
        assert registry.services["onex-effect-n1"].check_status == "passing"
        assert (registry.registrations, effect.reregistrations) == (1, 1)

    run_virtual(scenario())


def test_backend_faults_surface_as_transient_or_permanent_errors() -> None:
    async def scenario() -> None:
        registry = InMemoryServiceRegistry()
        effect = ServiceRegistryEffect(registry, LoopClock(START))
        registry.faults.fail_next(1)
        with pytest.raises(EffectUnavailable):
            await effect.execute(intent(REGISTER_SERVICE, REGISTRATION))
        registry.faults.fail_next(1, permanent=True)
        with pytest.raises(EffectRejected):
            await effect.execute(intent(REGISTER_SERVICE, REGISTRATION))
        assert registry.services == {}
        table = InMemoryRegistrationTable()
        table.faults.fail_next(1)
        with pytest.raises(EffectUnavailable):
            await RegistrationStorageEffect(table).execute(
                stored(STORE_REGISTRATION, 1, 0, "pending_registration")
            )
        assert table.rows == {}

    run_virtual(scenario())


@pytest.mark.parametrize(
    ("handler", "bad"),
    [
        ("registry", intent(REGISTER_SERVICE, {**REGISTRATION, "port": "8080"})),
        ("registry", intent(REGISTER_SERVICE, {**REGISTRATION, "tags": [1]})),
        ("registry", intent("consul.read", REGISTRATION)),
        ("storage", intent(STORE_REGISTRATION, {"node_id": "n1", "attempt": True})),
        ("storage", intent(REGISTER_SERVICE, REGISTRATION)),
    ],
)
def test_malformed_intents_are_rejected_for_good_without_echoing_values(
    handler: str, bad: Intent
) -> None:
    async def scenario() -> None:
        effect = (
            ServiceRegistryEffect(InMemoryServiceRegistry(), LoopClock(START))
            if handler == "registry"
            else RegistrationStorageEffect(InMemoryRegistrationTable())
        )
        with pytest.raises(EffectRejected) as raised:
            await effect.execute(bad)
        assert "10.0.0.1" not in str(raised.value)

    run_virtual(scenario())


def test_the_registration_table_keeps_the_newest_row() -> None:
    async def scenario() -> None:
        table = InMemoryRegistrationTable()
        effect = RegistrationStorageEffect(table)
        await effect.execute(stored(STORE_REGISTRATION, 1, 0, "pending_registration", a=1))
        await effect.execute(stored(UPDATE_REGISTRATION, 1, 5, "active", b=2))
        late = await effect.execute(stored(UPDATE_REGISTRATION, 1, 3, "active", b=99))
        assert late.detail["written"] is False
        row = table.rows["n1"]
        assert (row.attempt, row.revision, row.state, dict(row.fields)) == (
            1,
            5,
            "active",
            {"a": 1, "b": 2},
        )
        again = await effect.execute(stored(STORE_REGISTRATION, 2, 0, "pending_registration"))
        assert again.detail["written"] is True
        assert (table.rows["n1"].attempt, table.upserts, table.updates, table.stale) == (
            2,
            2,
            1,
            1,
        )

    run_virtual(scenario())
