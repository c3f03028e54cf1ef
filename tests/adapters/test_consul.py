"""The Consul adapter, driven through the real py-consul client.

Two lanes. The ``fake`` lane runs every test against the in-process Consul fake
(:mod:`tests.adapters.fakes.consul_fake`). The ``real`` lane runs the contract tests — the ones
taking the ``target`` fixture — against a real agent when ``ONEX_TEST_CONSUL_URL`` (and, with
ACLs, ``ONEX_TEST_CONSUL_TOKEN``) is set, under a unique id/key prefix that is cleaned up
afterwards. No Consul can be installed on this machine (DESIGN §7), so here the real lane skips
with a one-line reason, also under ``CI=true``: the fake lane is the gate, and the contract
tests are what keep the fake honest wherever a real agent exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import consul
import pytest
import requests
from pydantic import SecretStr

from onex_adapters.clock import SystemClock
from onex_adapters.consul import INTENT_TYPES, ConsulServiceRegistry, ConsulSettings, KVEntry
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryServiceRegistry
from onex_adapters.memory import RegisteredService as Service
from onex_adapters.runtime.effects import EffectBinding, EffectExecutor
from onex_core.errors import EffectRejected, EffectUnavailable, UsageError
from onex_core.intents import Intent
from onex_core.ports import EffectHandler, port_problems
from onex_core.resilience import BreakerPolicy, BreakerState, EffectPolicy, RetryPolicy
from tests.adapters.fakes.base import FakeClock, Fault
from tests.adapters.fakes.consul_fake import ConsulFake
from tests.adapters.fakes.golden import load, shape_problems
from tests.adapters.http_kit import (
    assert_no_foreign_chain,
    closed_port,
    dead_proxies,
    edge_faults,
    failure,
    fault_id,
    run,
)

REAL_URL = os.environ.get("ONEX_TEST_CONSUL_URL")
REAL_TOKEN = os.environ.get("ONEX_TEST_CONSUL_TOKEN")
TOKEN = f"consul-acl-{uuid.uuid4().hex}"
DEADLINE = 0.2
CAUSE = uuid.UUID("6f6e6578-0000-4000-8000-000000000001")


@dataclass
class Target:
    url: str
    token: str | None
    prefix: str
    fake: ConsulFake | None


def raw_client(url: str, token: str | None) -> consul.Consul:
    parts = urlsplit(url)
    return consul.Consul(
        host=parts.hostname, port=parts.port, scheme=parts.scheme, token=token, verify=True
    )


@pytest.fixture(params=["fake", "real"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "fake":
        with ConsulFake(tokens={TOKEN}) as fake:
            yield Target(fake.url, TOKEN, "onex-test", fake)
        return
    if not REAL_URL:
        pytest.skip("no real Consul: set ONEX_TEST_CONSUL_URL (+ ONEX_TEST_CONSUL_TOKEN)")
    prefix = f"onex-test-{uuid.uuid4().hex[:8]}"
    yield Target(REAL_URL, REAL_TOKEN, prefix, None)
    client = raw_client(REAL_URL, REAL_TOKEN)
    for service_id in client.agent.services():
        if service_id.startswith(prefix):
            client.agent.service.deregister(service_id)
    client.kv.delete(prefix, recurse=True)


@pytest.fixture
def fake() -> Iterator[ConsulFake]:
    with ConsulFake(tokens={TOKEN}, clock=FakeClock()) as server:
        yield server


def settings_for(url: str, token: str | None = TOKEN, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"url": url, "timeout": DEADLINE, **extra}
    if token is not None:
        config["token"] = token
    return config


@asynccontextmanager
async def connected(
    url: str, token: str | None = TOKEN, **extra: Any
) -> AsyncIterator[ConsulServiceRegistry]:
    handler = ConsulServiceRegistry()
    await handler.initialize(settings_for(url, token, **extra))
    try:
        yield handler
    finally:
        await handler.shutdown(0.5)


def service(prefix: str = "onex-test", n: int = 1, **changes: Any) -> Service:
    fields: dict[str, Any] = {
        "service_id": f"{prefix}-effect-{n}",
        "name": f"{prefix}-effect",
        "address": "10.0.0.7",
        "port": 8080,
        "tags": ("onex", "node-type:effect"),
        "check_ttl_seconds": 30.0,
    }
    fields.update(changes)
    return Service(**fields)


def intent(kind: str, payload: dict[str, Any], n: int = 0) -> Intent:
    return Intent(
        kind,
        f"consul://service/{payload.get('service_id') or payload.get('key') or 'x'}",
        payload,
        uuid.uuid5(CAUSE, f"{kind}:{n}"),
        CAUSE,
    )


def register_payload(prefix: str = "onex-test", n: int = 1, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "service_id": f"{prefix}-effect-{n}",
        "service_name": f"{prefix}-effect",
        "address": "10.0.0.7",
        "port": 8080,
        "tags": ["onex", "node-type:effect"],
        "check_ttl_seconds": 30,
    }
    payload.update(changes)
    return payload


def passing_instances(target: Target, name: str) -> list[Any]:
    _, entries = raw_client(target.url, target.token).health.service(name, passing=True)
    return list(entries)


# --------------------------------------------------------------------------- the port


def test_the_handler_conforms_to_the_effect_handler_port() -> None:
    assert port_problems(ConsulServiceRegistry(), EffectHandler) == ()
    assert port_problems(ConsulServiceRegistry, EffectHandler) == ()


def test_describe_names_intents_and_capabilities_never_the_token(fake: ConsulFake) -> None:
    async def scenario() -> None:
        async with connected(fake.url) as handler:
            description = handler.describe()
            assert description.handler_type == "consul"
            assert description.intent_types == INTENT_TYPES
            assert "registration.discovery" in description.capabilities
            assert TOKEN not in repr(description)

    run(scenario())
    settings = ConsulSettings.from_config(settings_for(fake.url))
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)


# --------------------------------------------------------------------------- contract (both lanes)


def test_a_registered_service_is_healthy_only_after_its_check_passes(target: Target) -> None:
    registered = service(target.prefix)

    async def scenario() -> None:
        async with connected(target.url, target.token) as handler:
            check_id = await handler.register(registered)
            assert check_id == f"service:{registered.service_id}"
            assert passing_instances(target, registered.name) == []
            assert await handler.pass_check(registered.service_id) is True
            instances = passing_instances(target, registered.name)
            assert [i["Service"]["ID"] for i in instances] == [registered.service_id]
            assert instances[0]["Service"]["Port"] == 8080
            assert set(instances[0]["Service"]["Tags"]) == {"onex", "node-type:effect"}

    run(scenario())


def test_a_heartbeat_for_a_check_the_agent_does_not_know_is_false(target: Target) -> None:
    async def scenario() -> None:
        async with connected(target.url, target.token) as handler:
            assert await handler.pass_check(f"{target.prefix}-never-registered") is False

    run(scenario())


def test_deregister_removes_the_service_and_a_second_one_reports_it_gone(target: Target) -> None:
    registered = service(target.prefix, 2)

    async def scenario() -> None:
        async with connected(target.url, target.token) as handler:
            await handler.register(registered)
            await handler.pass_check(registered.service_id)
            assert await handler.deregister(registered.service_id) is True
            assert passing_instances(target, registered.name) == []
            assert await handler.deregister(registered.service_id) is False
            assert await handler.pass_check(registered.service_id) is False

    run(scenario())


def test_kv_check_and_set(target: Target) -> None:
    key = f"{target.prefix}/config/feature"

    async def scenario() -> None:
        async with connected(target.url, target.token) as handler:
            assert await handler.kv.get(key) is None
            assert await handler.kv.put(key, "one", cas=0) is True
            assert await handler.kv.put(key, "two", cas=0) is False
            first = await handler.kv.get(key)
            assert isinstance(first, KVEntry)
            assert first.value == b"one"
            assert await handler.kv.put(key, "stale", cas=first.modify_index + 1000) is False
            assert await handler.kv.put(key, "three", cas=first.modify_index) is True
            second = await handler.kv.get(key)
            assert second == (b"three", second.modify_index)  # type: ignore[union-attr]
            assert second.modify_index > first.modify_index  # type: ignore[union-attr]
            assert await handler.kv.put(key, b"\x00\xffbinary") is True
            third = await handler.kv.get(key)
            assert third.value == b"\x00\xffbinary"  # type: ignore[union-attr]

    run(scenario())


def test_answers_have_the_documented_shapes_and_error_texts(target: Target) -> None:
    headers = {"X-Consul-Token": target.token} if target.token else {}
    key = f"{target.prefix}/shape"
    put = requests.put(f"{target.url}/v1/kv/{key}", data=b"test", headers=headers, timeout=5)
    golden = load("consul_kv_put")
    assert (put.status_code, put.json()) == (golden["status"], golden["body"])
    read = requests.get(f"{target.url}/v1/kv/{key}", headers=headers, timeout=5)
    golden = load("consul_kv_read")
    assert read.status_code == golden["status"]
    assert all(h in read.headers for h in golden["headers"])
    assert shape_problems(read.json(), golden["body"], golden["optional"]) == []
    missing = requests.get(f"{target.url}/v1/kv/{key}-missing", headers=headers, timeout=5)
    assert missing.status_code == 404
    assert "X-Consul-Index" in missing.headers
    registered = service(target.prefix, 3)

    async def register() -> None:
        async with connected(target.url, target.token) as handler:
            await handler.register(registered)
            await handler.pass_check(registered.service_id)

    run(register())
    health = requests.get(
        f"{target.url}/v1/health/service/{registered.name}", headers=headers, timeout=5
    )
    golden = load("consul_health_service")
    assert all(h in health.headers for h in golden["headers"])
    assert shape_problems(health.json(), golden["body"], golden["optional"]) == []
    errors = load("consul_errors")
    unknown = f"{target.prefix}-nope"
    for name, path in (
        ("unknown_check", f"/v1/agent/check/pass/{unknown}"),
        ("unknown_service", f"/v1/agent/service/deregister/{unknown}"),
    ):
        answer = requests.put(f"{target.url}{path}", headers=headers, timeout=5)
        expected = errors[name]
        assert answer.status_code == expected["status"]
        assert answer.text.strip() == expected["text"].replace("{id}", unknown)


# --------------------------------------------------------------------------- registry suite


class RegistryShim:
    """The registry operations, synchronous, over either implementation."""

    def register(self, service: Service) -> None:
        raise NotImplementedError

    def deregister(self, service_id: str) -> None:
        raise NotImplementedError

    def pass_check(self, service_id: str) -> bool:
        raise NotImplementedError

    def status(self, service_id: str) -> str | None:
        raise NotImplementedError

    def address(self, service_id: str) -> str | None:
        raise NotImplementedError


class ServiceRegistrySuite:
    """What the in-memory registry and Consul both promise."""

    def test_a_new_registration_is_critical_until_its_check_passes(
        self, registry: RegistryShim
    ) -> None:
        registry.register(service())
        assert registry.status("onex-test-effect-1") == "critical"
        assert registry.pass_check("onex-test-effect-1") is True
        assert registry.status("onex-test-effect-1") == "passing"

    def test_passing_the_check_of_an_unknown_service_reports_failure(
        self, registry: RegistryShim
    ) -> None:
        assert registry.pass_check("onex-test-nobody") is False
        assert registry.status("onex-test-nobody") is None

    def test_registering_again_replaces_the_service(self, registry: RegistryShim) -> None:
        registry.register(service())
        registry.register(service(address="10.0.0.99"))
        assert registry.address("onex-test-effect-1") == "10.0.0.99"

    def test_deregistering_twice_is_harmless_and_the_check_is_gone(
        self, registry: RegistryShim
    ) -> None:
        registry.register(service())
        registry.deregister("onex-test-effect-1")
        registry.deregister("onex-test-effect-1")
        assert registry.pass_check("onex-test-effect-1") is False


class MemoryShim(RegistryShim):
    def __init__(self) -> None:
        self.registry = InMemoryServiceRegistry()

    def register(self, service: Service) -> None:
        self.registry.register(service)

    def deregister(self, service_id: str) -> None:
        self.registry.deregister(service_id)

    def pass_check(self, service_id: str) -> bool:
        return self.registry.pass_check(service_id, SystemClock().now())

    def status(self, service_id: str) -> str | None:
        found = self.registry.services.get(service_id)
        return None if found is None else found.check_status

    def address(self, service_id: str) -> str | None:
        found = self.registry.services.get(service_id)
        return None if found is None else found.address


class ConsulShim(RegistryShim):
    def __init__(self, fake: ConsulFake) -> None:
        self.fake = fake
        self.handler = ConsulServiceRegistry()
        run(self.handler.initialize(settings_for(fake.url)))
        self.names: dict[str, str] = {}

    def register(self, service: Service) -> None:
        self.names[service.service_id] = service.name
        run(self.handler.register(service))

    def deregister(self, service_id: str) -> None:
        run(self.handler.deregister(service_id))

    def pass_check(self, service_id: str) -> bool:
        result: bool = run(self.handler.pass_check(service_id))
        return result

    def _instance(self, service_id: str) -> Any:
        name = self.names.get(service_id)
        if name is None:
            return None
        _, entries = raw_client(self.fake.url, TOKEN).health.service(name)
        return next((e for e in entries if e["Service"]["ID"] == service_id), None)

    def status(self, service_id: str) -> str | None:
        found = self._instance(service_id)
        if found is None:
            return None
        checks = [c for c in found["Checks"] if c["CheckID"] == f"service:{service_id}"]
        return str(checks[0]["Status"])

    def address(self, service_id: str) -> str | None:
        found = self._instance(service_id)
        return None if found is None else str(found["Service"]["Address"])


class TestInMemoryServiceRegistry(ServiceRegistrySuite):
    @pytest.fixture
    def registry(self) -> RegistryShim:
        return MemoryShim()


class TestConsulServiceRegistry(ServiceRegistrySuite):
    @pytest.fixture
    def registry(self, fake: ConsulFake) -> Iterator[RegistryShim]:
        shim = ConsulShim(fake)
        yield shim
        run(shim.handler.shutdown(0.5))


# --------------------------------------------------------------------------- TTLs on the fake clock


def test_a_check_not_passed_within_its_ttl_turns_critical(fake: ConsulFake) -> None:
    async def scenario() -> None:
        async with connected(fake.url) as handler:
            await handler.register(service(check_ttl_seconds=10))
            await handler.pass_check("onex-test-effect-1")
            fake.clock.advance(9.9)
            assert fake.check_status("service:onex-test-effect-1") == "passing"
            fake.clock.advance(0.2)
            assert fake.check_status("service:onex-test-effect-1") == "critical"
            await handler.pass_check("onex-test-effect-1")
            assert fake.check_status("service:onex-test-effect-1") == "passing"

    run(scenario())


def test_a_service_critical_for_longer_than_the_limit_is_reaped(fake: ConsulFake) -> None:
    async def scenario() -> None:
        async with connected(fake.url, deregister_critical_after="1m") as handler:
            await handler.register(service(check_ttl_seconds=10))
            await handler.pass_check("onex-test-effect-1")
            fake.clock.advance(10 + 59)
            assert fake.has_service("onex-test-effect-1")
            fake.clock.advance(2)
            assert not fake.has_service("onex-test-effect-1")
            assert await handler.pass_check("onex-test-effect-1") is False

    run(scenario())


def test_the_registration_carries_the_ttl_and_the_deregistration_limit(fake: ConsulFake) -> None:
    async def scenario() -> None:
        async with connected(fake.url, deregister_critical_after="90s") as handler:
            await handler.register(service(check_ttl_seconds=12.5))

    run(scenario())
    [sent] = fake.requests.matching("PUT", "/v1/agent/service/register")
    assert sent.param("replace-existing-checks") == "true"
    body = sent.json()
    assert body["id"] == "onex-test-effect-1"
    assert body["checks"] == [{"ttl": "12.5s", "DeregisterCriticalServiceAfter": "90s"}]


# --------------------------------------------------------------------------- client quirks (§0.8)


def test_py_consul_answers_false_instead_of_raising_on_an_unknown_check(fake: ConsulFake) -> None:
    client = raw_client(fake.url, TOKEN)
    assert client.agent.check.ttl_pass("service:nobody") is False
    [answer] = fake.requests.matching("PUT", "/v1/agent/check/pass/")
    assert answer.path.endswith("service:nobody")


def test_py_consul_raises_missing_index_header_and_cas_false(fake: ConsulFake) -> None:
    client = raw_client(fake.url, TOKEN)
    fake.faults.add(method="GET", path="/v1/kv/", status=200, body=[])
    with pytest.raises(consul.ConsulException, match="Missing index header"):
        client.kv.get("anything")
    assert client.kv.put("k", "v", cas=0) is True
    assert client.kv.put("k", "v", cas=0) is False


def test_a_heartbeat_after_the_agent_forgot_the_service_re_registers_it(
    fake: ConsulFake, caplog: pytest.LogCaptureFixture
) -> None:
    payload = register_payload()

    async def scenario() -> dict[str, Any]:
        async with connected(fake.url) as handler:
            await handler.execute(intent("consul.register", payload))
            fake.forget_services()
            result = await handler.execute(intent("consul.pass_check", payload, 1))
            return dict(result.detail)

    with caplog.at_level(logging.WARNING, logger="onex_adapters.consul"):
        detail = run(scenario())
    assert detail == {
        "service_id": "onex-test-effect-1",
        "check_id": "service:onex-test-effect-1",
        "reregistered": True,
    }
    assert fake.check_status("service:onex-test-effect-1") == "passing"
    sequence = [(r.method, r.path.split("/")[3]) for r in fake.requests]
    assert sequence == [
        ("PUT", "service"),
        ("PUT", "check"),
        ("PUT", "service"),
        ("PUT", "check"),
    ]
    assert any("re-registering" in r.getMessage() for r in caplog.records)


def test_a_heartbeat_without_the_registration_fails_transiently(fake: ConsulFake) -> None:
    error = failure(_execute(fake, intent("consul.pass_check", {"service_id": "onex-test-x"})))
    assert type(error) is EffectUnavailable
    assert "no registration to restore it" in str(error)


def test_a_check_still_unknown_after_re_registration_fails_transiently(fake: ConsulFake) -> None:
    fake.faults.add(method="PUT", path="/v1/agent/check/pass/", status=404, body="gone", times=2)
    error = failure(_execute(fake, intent("consul.pass_check", register_payload())))
    assert type(error) is EffectUnavailable
    assert "still unknown after re-registration" in str(error)
    assert len(fake.requests.matching("PUT", "/v1/agent/service/register")) == 1


def test_an_answer_without_x_consul_index_is_transient_and_not_echoed(fake: ConsulFake) -> None:
    fake.faults.add(
        method="GET", path="/v1/kv/", status=200, body=[], headers={"X-Echo": "header-canary"}
    )
    error = failure(_execute(fake, intent("consul.kv_get", {"key": "onex/config"})))
    assert type(error) is EffectUnavailable
    assert str(error) == "consul: kv get onex/config failed: malformed answer from the agent"
    assert "header-canary" not in repr(error.args)
    assert_no_foreign_chain(error)


async def _execute(fake: ConsulFake, request: Intent, **extra: Any) -> Any:
    async with connected(fake.url, **extra) as handler:
        return await handler.execute(request)


# --------------------------------------------------------------------------- error classification


ECHO = "body-canary-7f3a"


@pytest.mark.parametrize(
    ("fault", "kind", "text", "retry_after"),
    [
        (Fault(status=500, body=f"rpc error: {ECHO}"), EffectUnavailable, "internal error", None),
        (Fault(status=503, body=ECHO), EffectUnavailable, "unavailable (HTTP 503)", None),
        (
            Fault(status=503, body=ECHO, headers={"Retry-After": "3"}),
            EffectUnavailable,
            "HTTP 503",
            3.0,
        ),
        (
            Fault(status=429, body=ECHO, headers={"Retry-After": "7"}),
            EffectUnavailable,
            "rate limited (HTTP 429)",
            7.0,
        ),
        (Fault(status=429, body=ECHO), EffectUnavailable, "rate limited", None),
        (
            Fault(status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            EffectUnavailable,
            "rate limited",
            0.0,
        ),
        (
            Fault(status=429, headers={"Retry-After": "99999"}),
            EffectUnavailable,
            "rate limited",
            600.0,
        ),
        (Fault(status=400, body=f"Invalid address {ECHO}"), EffectRejected, "bad request", None),
        (
            Fault(status=403, body=f"Permission denied: token {ECHO}"),
            EffectRejected,
            "permission denied (HTTP 403)",
            None,
        ),
        (Fault(status=401, body=ECHO), EffectRejected, "not authorized (HTTP 401)", None),
        (Fault(status=404, body=ECHO), EffectRejected, "not found (HTTP 404)", None),
        (Fault(status=412, body=ECHO), EffectRejected, "precondition failed (HTTP 412)", None),
        *edge_faults(ECHO, DEADLINE),
    ],
    ids=fault_id,
)
def test_failures_are_classified_and_never_echo_the_answer(
    fake: ConsulFake,
    fault: Fault,
    kind: type[Exception],
    text: str,
    retry_after: float | None,
) -> None:
    fault.method, fault.path = "PUT", "/v1/agent/service/register"
    fake.faults.add(fault)
    error = failure(_execute(fake, intent("consul.register", register_payload())))
    assert type(error) is kind
    message = str(error)
    assert message.startswith("consul: register service onex-test-effect-1 failed")
    assert text in message
    assert ECHO not in message
    assert ECHO not in repr(error.args)
    if isinstance(error, EffectUnavailable):
        assert error.retry_after == retry_after
    assert error.backend == "consul"  # type: ignore[attr-defined]
    assert_no_foreign_chain(error)


def test_a_refused_connection_is_transient() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    async def scenario() -> None:
        async with connected(url) as handler:
            await handler.execute(intent("consul.register", register_payload()))

    error = failure(scenario())
    assert type(error) is EffectUnavailable
    assert str(error).endswith("connection refused")
    assert_no_foreign_chain(error)


def test_a_failed_tls_handshake_is_permanent(fake: ConsulFake) -> None:
    https_url = fake.url.replace("http://", "https://")

    async def scenario() -> None:
        async with connected(https_url) as handler:
            await handler.deregister("onex-test-effect-1")

    error = failure(scenario())
    assert type(error) is EffectRejected
    assert "TLS verification failed" in str(error)


# --------------------------------------------------------------------------- our deadline


def test_a_hanging_agent_is_cut_off_at_our_deadline_and_the_loop_keeps_running(
    fake: ConsulFake,
) -> None:
    fake.faults.add(method="PUT", path="/v1/agent/check/pass/", hang=True)

    async def scenario() -> tuple[float, int, BaseException | None]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with connected(fake.url) as handler:
            task = asyncio.create_task(ticker())
            started = time.monotonic()
            error: BaseException | None = None
            try:
                await handler.pass_check("onex-test-effect-1")
            except EffectUnavailable as exc:
                error = exc
            elapsed = time.monotonic() - started
            task.cancel()
            return elapsed, ticks, error

    elapsed, ticks, error = run(scenario())
    assert isinstance(error, EffectUnavailable)
    assert DEADLINE <= elapsed < DEADLINE + 0.25
    assert ticks >= 5  # the loop kept running while the client thread hung


def test_a_slow_answer_within_the_deadline_succeeds(fake: ConsulFake) -> None:
    fake.faults.add(method="PUT", path="/v1/kv/", latency=0.05)

    async def scenario() -> bool:
        async with connected(fake.url, timeout=1.0) as handler:
            return await handler.kv.put("onex/slow", "v")

    assert run(scenario()) is True


def executor(
    handler: ConsulServiceRegistry, kind: str, attempts: int = 3, threshold: int = 5
) -> EffectExecutor:
    policy = EffectPolicy(
        retry=RetryPolicy(max_attempts=attempts, initial_delay=0.01, max_delay=0.02),
        breaker=BreakerPolicy(failure_threshold=threshold, reset_timeout=60),
        timeout=5.0,
    )
    return EffectExecutor(
        [EffectBinding(kind, handler, policy)],
        InMemoryIdempotencyStore(),
        SystemClock(),
        jitter=random.Random(7),
    )


def test_a_zombie_kv_write_is_applied_exactly_once(fake: ConsulFake) -> None:
    fake.faults.add(method="PUT", path="/v1/kv/onex/leader", apply_then_hang=True)
    put = intent("consul.kv_put", {"key": "onex/leader", "value": "node-a", "cas": 0})

    async def scenario() -> Any:
        async with connected(fake.url) as handler:
            return await executor(handler, "consul.kv_put").run(put)

    report = run(scenario())
    assert report.status == "done"
    assert [a.error_type for a in report.attempts] == ["EffectUnavailable"]
    assert report.result.detail == {"key": "onex/leader", "written": True, "already_applied": True}
    entry = fake.state.kv["onex/leader"]
    assert entry.value == b"node-a"
    assert entry.create_index == entry.modify_index  # written once, never overwritten
    assert len(fake.requests.matching("PUT", "/v1/kv/onex/leader")) == 2


# --------------------------------------------------------------------------- the runtime around it


def test_transient_failures_are_retried_until_they_pass(fake: ConsulFake) -> None:
    fake.faults.add(method="PUT", path="/v1/agent/service/register", status=503, times=2)

    async def scenario() -> Any:
        async with connected(fake.url) as handler:
            return await executor(handler, "consul.register", attempts=3).run(
                intent("consul.register", register_payload())
            )

    report = run(scenario())
    assert report.status == "done"
    assert len(report.attempts) == 2
    assert len(fake.requests.matching("PUT", "/v1/agent/service/register")) == 3
    assert fake.has_service("onex-test-effect-1")


def test_permanent_failures_are_not_retried_and_leave_the_breaker_closed(
    fake: ConsulFake,
) -> None:
    fake.faults.add(method="PUT", path="/v1/agent/service/register", status=403, times=5)

    async def scenario() -> tuple[Any, BreakerState]:
        async with connected(fake.url) as handler:
            runner = executor(handler, "consul.register", attempts=3, threshold=2)
            first = await runner.run(intent("consul.register", register_payload()))
            await runner.run(intent("consul.register", register_payload(), 1))
            await runner.run(intent("consul.register", register_payload(), 2))
            return first, runner.breaker("consul").state

    report, state = run(scenario())
    assert (report.status, report.permanent, len(report.attempts)) == ("failed", True, 1)
    assert state == BreakerState.CLOSED
    assert len(fake.requests.matching("PUT", "/v1/agent/service/register")) == 3


# --------------------------------------------------------------------------- credentials


def test_the_environment_never_overrides_the_configured_token(
    fake: ConsulFake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "env-token-must-not-be-used")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "false")
    assert raw_client(fake.url, TOKEN).token == "env-token-must-not-be-used"  # the hazard

    async def scenario() -> None:
        async with connected(fake.url) as handler:
            await handler.register(service())
            assert await handler.pass_check("onex-test-effect-1") is True
            await handler.kv.put("onex/k", "v")

    with caplog.at_level(logging.WARNING, logger="onex_adapters.consul"):
        run(scenario())
    tokens = {r.headers.get("x-consul-token") for r in fake.requests}
    assert tokens == {TOKEN}
    assert len(fake.requests) == 3
    assert any("CONSUL_HTTP_TOKEN is set" in r.getMessage() for r in caplog.records)
    assert all("env-token" not in r.getMessage() for r in caplog.records)


def test_proxy_settings_in_the_environment_are_ignored(
    fake: ConsulFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxies(monkeypatch)
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get(f"{fake.url}/v1/kv/x", timeout=5)  # what requests alone would do

    async def scenario() -> bool:
        async with connected(fake.url) as handler:
            return await handler.kv.put("onex/direct", "v")

    assert run(scenario()) is True


def test_without_a_configured_token_none_is_sent_even_if_the_environment_has_one(
    fake: ConsulFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", TOKEN)
    error = failure(_execute_without_token(fake))
    assert type(error) is EffectRejected
    assert "permission denied (HTTP 403)" in str(error)
    assert [r.headers.get("x-consul-token") for r in fake.requests] == [None]


async def _execute_without_token(fake: ConsulFake) -> None:
    async with connected(fake.url, token=None) as handler:
        await handler.execute(intent("consul.register", register_payload()))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "url is required"),
        ({"url": "consul:8500"}, "http:// or https://"),
        ({"url": "http://user:pw@consul:8500"}, "user-info"),
        ({"url": "http://consul:8500/v1"}, "path, query or fragment"),
        ({"url": "http://consul:99999"}, "invalid port"),
        ({"url": "https://consul", "verify": False}, "allow_insecure_tls"),
        ({"url": "http://consul", "timeout": 0}, "timeout"),
        ({"url": "http://consul", "deregister_critical_after": "soon"}, "Go duration"),
        ({"url": "http://consul", "cert": ["only-one"]}, "cert"),
        ({"url": "http://consul", "token": 42}, "token must be a string"),
        ({"url": "http://consul", "max_workers": 0}, "max_workers"),
        ({"url": "http://consul", "address": "x"}, r"unknown keys \['address'\]"),
    ],
)
def test_settings_are_explicit_and_refuse_insecure_or_implicit_values(
    config: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
    with pytest.raises(UsageError, match=message):
        ConsulSettings.from_config(config)


def test_settings_accept_explicit_secrets_and_insecure_tls_only_when_asked() -> None:
    settings = ConsulSettings.from_config(
        {
            "url": "https://consul.internal",
            "token": SecretStr("from-pydantic-1"),
            "verify": False,
            "allow_insecure_tls": True,
            "cert": ["client.pem", "client.key"],
        }
    )
    assert settings.address() == ("https", "consul.internal", 8501)
    assert settings.token is not None
    assert settings.token.reveal() == "from-pydantic-1"
    assert settings.cert == ("client.pem", "client.key")
    assert "from-pydantic-1" not in repr(settings)


# --------------------------------------------------------------------------- payloads and usage


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        ("consul.register", register_payload(service_id="has space"), "'service_id'"),
        ("consul.register", register_payload(service_id="a/b"), "'service_id'"),
        ("consul.register", register_payload(service_name=None), "'service_name'"),
        ("consul.register", register_payload(port="8080-secret-ish"), "'port'"),
        ("consul.register", register_payload(port=0), "'port'"),
        ("consul.register", register_payload(port=True), "'port'"),
        ("consul.register", register_payload(address="10.0.0.1 evil"), "'address'"),
        ("consul.register", register_payload(tags="onex"), "'tags'"),
        ("consul.register", register_payload(tags=[""]), "'tags'"),
        ("consul.register", register_payload(check_ttl_seconds=0), "'check_ttl_seconds'"),
        ("consul.deregister", {}, "'service_id'"),
        ("consul.pass_check", {"service_id": 7}, "'service_id'"),
        ("consul.kv_get", {"key": "/leading"}, "'key'"),
        ("consul.kv_get", {"key": ""}, "'key'"),
        ("consul.kv_put", {"key": "a\nb", "value": "v"}, "'key'"),
        ("consul.kv_put", {"key": "a", "value": 5}, "'value'"),
        ("consul.kv_put", {"key": "a", "value": "v", "cas": -1}, "'cas'"),
        ("consul.kv_delete", {"key": "a"}, "not an intent the consul handler executes"),
    ],
)
def test_invalid_payloads_are_rejected_by_field_without_a_request(
    fake: ConsulFake, kind: str, payload: dict[str, Any], field: str
) -> None:
    error = failure(_execute(fake, intent(kind, payload)))
    assert type(error) is EffectRejected
    assert field in str(error)
    assert "secret-ish" not in str(error)
    assert len(fake.requests) == 0


def test_kv_intents_report_what_they_found_and_refuse_a_lost_race(fake: ConsulFake) -> None:
    async def scenario() -> list[Any]:
        async with connected(fake.url) as handler:
            missing = await handler.execute(intent("consul.kv_get", {"key": "onex/x"}))
            put = await handler.execute(intent("consul.kv_put", {"key": "onex/x", "value": "1"}))
            found = await handler.execute(intent("consul.kv_get", {"key": "onex/x"}, 1))
            lost: BaseException | None = None
            try:
                await handler.execute(
                    intent("consul.kv_put", {"key": "onex/x", "value": "2", "cas": 0}, 1)
                )
            except EffectRejected as exc:
                lost = exc
            return [missing.detail, put.detail, found.detail, lost]

    missing, put, found, lost = run(scenario())
    assert missing == {"key": "onex/x", "found": False}
    assert put == {"key": "onex/x", "written": True, "already_applied": False}
    assert (found["value"], found["found"]) == ("1", True)
    assert found["modify_index"] == fake.state.kv["onex/x"].modify_index
    assert isinstance(lost, EffectRejected)
    assert "check-and-set index 0 is stale" in str(lost)


def test_kv_values_that_are_registered_secrets_never_reach_an_effect_result(
    fake: ConsulFake,
) -> None:
    from onex_adapters.secrets import Secret

    Secret("kv-held-secret-31")

    async def scenario() -> Any:
        async with connected(fake.url) as handler:
            await handler.kv.put("onex/oops", "prefix kv-held-secret-31 suffix")
            return await handler.execute(intent("consul.kv_get", {"key": "onex/oops"}))

    assert run(scenario()).detail["value"] == "prefix *** suffix"


def test_the_kv_helper_refuses_malformed_arguments_before_any_request(fake: ConsulFake) -> None:
    async def scenario() -> None:
        async with connected(fake.url) as handler:
            with pytest.raises(UsageError, match="must not start with '/'"):
                await handler.kv.get("/x")
            with pytest.raises(UsageError, match="str or bytes"):
                await handler.kv.put("x", 5)  # type: ignore[arg-type]
            with pytest.raises(UsageError, match="non-negative"):
                await handler.kv.put("x", "v", cas=-2)

    run(scenario())
    assert len(fake.requests) == 0


def test_the_handler_must_be_initialized_and_is_unusable_after_shutdown(fake: ConsulFake) -> None:
    async def scenario() -> None:
        handler = ConsulServiceRegistry()
        with pytest.raises(UsageError, match="not initialized"):
            await handler.execute(intent("consul.deregister", {"service_id": "a"}))
        await handler.initialize(settings_for(fake.url))
        with pytest.raises(UsageError, match="already initialized"):
            await handler.initialize(settings_for(fake.url))
        await handler.shutdown(0.1)
        await handler.shutdown(0.1)
        with pytest.raises(UsageError, match="shut down"):
            await handler.deregister("a")

    run(scenario())


# --------------------------------------------------------------------------- registration workflow
#
# The registration workflow end to end with this handler on ConsulFake is in
# tests/registration/test_consul_e2e.py. Here: the heartbeat payload that workflow builds.


@pytest.mark.parametrize("check_id", ["onex-test-effect-1", "service:onex-test-effect-1"])
def test_the_registration_workflows_heartbeat_payload_restores_a_lost_service(
    fake: ConsulFake, check_id: str
) -> None:
    registration = register_payload()
    heartbeat = {"check_id": check_id, "registration": registration}

    async def scenario() -> dict[str, Any]:
        async with connected(fake.url) as handler:
            await handler.execute(intent("consul.register", registration))
            passed = await handler.execute(intent("consul.pass_check", heartbeat, 1))
            assert passed.detail["reregistered"] is False
            fake.forget_services()
            result = await handler.execute(intent("consul.pass_check", heartbeat, 2))
            return dict(result.detail)

    assert run(scenario())["reregistered"] is True
    assert fake.check_status("service:onex-test-effect-1") == "passing"
