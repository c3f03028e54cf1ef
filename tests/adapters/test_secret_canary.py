"""Secret canaries: one random secret, used everywhere a secret can be, shows up nowhere.

The canary is the Vault token, the Consul ACL token, a Vault KV secret value, and two resolved
configuration secrets (an ``env:`` and a ``vault:`` reference). The fakes are adversarial: their
error bodies and headers echo it back, the way py-consul's exception texts embed response
bodies and hvac's embed the URL. The adapters then fail in every way they can — permission
denied, bad request, rate limit, sealed, server error, malformed answer, reset, hang, lost
check-and-set — directly and through the runtime's effect executor.

Searched for the canary and its base64 and URL-encoded forms:

- every log record captured at DEBUG on the root logger (hvac, urllib3, requests, py-consul
  and ONEX alike), as formatted text including exception text;
- every exception raised: ``str``, ``repr``, ``args`` and the formatted traceback, down its
  ``__cause__``/``__context__`` chain;
- every dead-letter record built by ``onex_adapters.runtime.dlq.dead_letter`` for a failed
  intent (value and headers), the attempt histories, and every effect result;
- the ``repr`` of the resolved configuration, the settings and the adapters.

The assertion is that the hit count is 0 — and, so that it cannot pass vacuously, that the
canary really was sent to the fakes and that every kind of artifact was produced.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import secrets
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from onex_adapters.clock import SystemClock
from onex_adapters.consul import ConsulServiceRegistry, ConsulSettings
from onex_adapters.memory import InMemoryIdempotencyStore
from onex_adapters.redaction import REDACTOR
from onex_adapters.runtime.dlq import DeadLetter, dead_letter
from onex_adapters.runtime.effects import EffectBinding, EffectExecutor, EffectReport
from onex_adapters.secrets import resolve
from onex_adapters.vault import VaultSecrets
from onex_core.intents import Intent
from onex_core.ports import Record
from onex_core.resilience import BreakerPolicy, EffectPolicy, RetryPolicy
from tests.adapters.fakes.base import Fault
from tests.adapters.fakes.consul_fake import ConsulFake
from tests.adapters.fakes.vault_fake import VaultFake

CANARY = f"cnry-{secrets.token_hex(16)}"
FORMS = {
    CANARY,
    quote(CANARY, safe=""),
    quote_plus(CANARY),
    base64.b64encode(CANARY.encode()).decode(),
    base64.urlsafe_b64encode(CANARY.encode()).decode(),
    base64.b64encode(CANARY.encode()).decode().rstrip("="),
}
CAUSE = uuid.UUID("6f6e6578-0000-4000-8000-0000000000ca")
DEADLINE = 0.2


def hits(text: str) -> int:
    return sum(text.count(form) for form in FORMS)


def test_the_hit_counter_finds_every_form() -> None:
    encoded = base64.b64encode(CANARY.encode()).decode()
    assert hits(f"a {CANARY} b {quote_plus(CANARY)} c {encoded}") >= 3
    assert hits("nothing here") == 0


class Artifacts:
    """Everything a leak could end up in."""

    def __init__(self) -> None:
        self.exceptions: list[BaseException] = []
        self.texts: list[str] = []
        self.dead_letters: list[DeadLetter] = []
        self.reports: list[EffectReport] = []

    def failed(self, exc: BaseException) -> None:
        self.exceptions.append(exc)

    def exception_texts(self) -> Iterator[str]:
        for exc in self.exceptions:
            seen: set[int] = set()
            current: BaseException | None = exc
            while current is not None and id(current) not in seen:
                seen.add(id(current))
                yield str(current)
                yield repr(current)
                yield repr(current.args)
                yield "".join(traceback.format_exception(current))
                current = current.__cause__ or current.__context__


async def capture(artifacts: Artifacts, call: Any) -> Any:
    try:
        return await call
    except Exception as exc:
        artifacts.failed(exc)
        return None


def intent(kind: str, payload: dict[str, Any], n: int) -> Intent:
    target = f"consul://service/{payload.get('service_id') or payload.get('key')}"
    return Intent(kind, target, payload, uuid.uuid5(CAUSE, f"{kind}:{n}"), CAUSE)


def register_payload() -> dict[str, Any]:
    return {
        "service_id": "onex-effect-canary",
        "service_name": "onex-effect",
        "address": "10.0.0.9",
        "port": 8080,
        "tags": ["onex"],
    }


async def vault_scenario(vault_fake: VaultFake, artifacts: Artifacts) -> dict[str, Any]:
    """Resolve configuration through Vault, then make Vault fail every way it can."""
    vault_fake.put("secret", "onex/db", {"password": CANARY, "user": "app"})
    vault = VaultSecrets({"url": vault_fake.url, "token": CANARY, "timeout": DEADLINE})
    artifacts.texts.append(repr(vault))
    artifacts.texts.append(repr(vault.settings))
    try:
        await vault.start()
        resolved = await resolve(
            {
                "db": {"password": "vault:secret/data/onex/db#password", "user": "app"},
                "consul": {"token": "env:ONEX_CANARY_CONSUL_TOKEN"},
            },
            vault,
            environ={"ONEX_CANARY_CONSUL_TOKEN": CANARY},
        )
        artifacts.texts.extend([repr(resolved), str(resolved)])
        echo = {"errors": [f"permission denied for {CANARY} on secret/data/onex/db"]}
        faults = [
            Fault(method="GET", path="/v1/secret/", status=403, body=echo, times=2),
            Fault(method="GET", path="/v1/secret/", status=400, body=echo),
            Fault(
                method="GET",
                path="/v1/secret/",
                status=429,
                body=echo,
                headers={"Retry-After": CANARY},
            ),
            Fault(method="GET", path="/v1/secret/", status=500, body=f"boom {CANARY}"),
            Fault(
                method="GET",
                path="/v1/secret/",
                status=503,
                body=json.dumps(echo),
                headers={"Content-Type": "application/json; charset=utf-8"},
            ),
            Fault(method="GET", path="/v1/secret/", status=200, body=f"<html>{CANARY}</html>"),
            Fault(method="GET", path="/v1/secret/", reset=True),
            Fault(method="GET", path="/v1/secret/", hang=True),
        ]
        for fault in faults:
            vault_fake.faults.add(fault)
            await capture(artifacts, vault.read("onex/db", "password"))
        await capture(artifacts, vault.read("onex/db", "nope"))
        await capture(artifacts, vault.write("onex/db", {"password": CANARY}, cas=99))
        vault_fake.seal()
        await capture(artifacts, vault.read("onex/db"))
        await capture(artifacts, vault.renew_if_due(float("inf")))
        vault_fake.unseal()
        vault_fake.revoke(CANARY)
        await capture(artifacts, vault.read("onex/db"))
        return resolved
    finally:
        await vault.close(0.5)


async def consul_scenario(consul_fake: ConsulFake, token: Any, artifacts: Artifacts) -> None:
    """Run consul intents through the effect executor while the agent misbehaves."""
    handler = ConsulServiceRegistry()
    await handler.initialize({"url": consul_fake.url, "token": token, "timeout": DEADLINE})
    artifacts.texts.append(repr(handler.describe()))
    artifacts.texts.append(
        repr(ConsulSettings.from_config({"url": consul_fake.url, "token": token}))
    )
    policy = EffectPolicy(
        retry=RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02),
        breaker=BreakerPolicy(failure_threshold=100),
        timeout=5.0,
    )
    kinds = ("consul.register", "consul.pass_check", "consul.kv_put", "consul.kv_get")
    runner = EffectExecutor(
        [EffectBinding(kind, handler, policy) for kind in kinds],
        InMemoryIdempotencyStore(),
        SystemClock(),
        jitter=random.Random(3),
    )
    echo = f"Permission denied: token {CANARY} lacks permission 'service:write'"
    plans: list[tuple[list[Fault], Intent]] = [
        ([Fault(status=403, body=echo)], intent("consul.register", register_payload(), 0)),
        (
            [Fault(status=500, body=f"rpc error: {CANARY}", times=2)],
            intent("consul.register", register_payload(), 1),
        ),
        (
            [Fault(status=429, body=CANARY, headers={"Retry-After": CANARY}, times=2)],
            intent("consul.register", register_payload(), 2),
        ),
        ([Fault(reset=True, times=2)], intent("consul.register", register_payload(), 3)),
        ([Fault(hang=True, times=2)], intent("consul.register", register_payload(), 4)),
        (
            [Fault(method="GET", status=200, body=[], headers={"X-Echo": CANARY}, times=2)],
            intent("consul.kv_get", {"key": "onex/config/db"}, 5),
        ),
        ([], intent("consul.pass_check", {"service_id": "onex-unknown"}, 6)),
        ([], intent("consul.kv_put", {"key": "onex/config/db", "value": CANARY, "cas": 0}, 7)),
        ([], intent("consul.kv_put", {"key": "onex/config/db", "value": "other", "cas": 0}, 8)),
        ([], intent("consul.kv_get", {"key": "onex/config/db"}, 9)),
        (
            [Fault(status=400, body=CANARY)],
            intent("consul.kv_put", {"key": "k", "value": CANARY}, 10),
        ),
    ]
    try:
        for number, (faults, planned) in enumerate(plans):
            for fault in faults:
                consul_fake.faults.add(fault)
            report = await runner.run(planned)
            consul_fake.faults.clear()
            artifacts.reports.append(report)
            if report.error is not None:
                artifacts.failed(report.error)
                record = Record(
                    topic="onex.intent.platform.consul-effects.v1",
                    partition=0,
                    offset=number,
                    key=b"node-canary",
                    value=json.dumps(
                        {"intent_type": planned.intent_type, **planned.payload}
                    ).encode(),
                )
                artifacts.dead_letters.append(
                    dead_letter(
                        dlq_topic="onex.dlq.platform.consul-effects.v1",
                        record=record,
                        failure_class="effect_rejected" if report.permanent else "effect_exhausted",
                        error=report.error,
                        reason=str(report.error),
                        now=datetime(2026, 11, 21, tzinfo=UTC),
                        redactor=REDACTOR,
                        correlation_id=planned.correlation_id,
                        attempts=report.attempts,
                        max_retries=1,
                        intent=planned,
                    )
                )
    finally:
        await handler.shutdown(0.5)


def test_the_canary_never_appears_in_logs_exceptions_or_dead_letters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    artifacts = Artifacts()
    caplog.set_level(logging.DEBUG)
    for name in ("hvac", "urllib3", "requests", "consul", "onex_adapters"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with VaultFake(root_token=CANARY) as vault_fake, ConsulFake(tokens={CANARY}) as consul_fake:

            async def scenario() -> None:
                resolved = await vault_scenario(vault_fake, artifacts)
                await consul_scenario(consul_fake, resolved["consul"]["token"], artifacts)

            asyncio.run(scenario())
            vault_saw = [r.headers.get("x-vault-token") for r in vault_fake.requests]
            consul_saw = [r.headers.get("x-consul-token") for r in consul_fake.requests]
            stored = consul_fake.state.kv["onex/config/db"].value
    finally:
        for name in ("hvac", "urllib3", "requests", "consul", "onex_adapters"):
            logging.getLogger(name).setLevel(logging.NOTSET)

    # The canary was really used, and every kind of artifact was produced.
    assert vault_saw.count(CANARY) >= 10
    assert set(consul_saw) == {CANARY}
    assert stored == CANARY.encode()
    assert len(artifacts.exceptions) >= 20
    assert len(artifacts.dead_letters) >= 7
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert any(r.name.startswith("onex_adapters") for r in caplog.records)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    found = {
        "logs": sum(hits(formatter.format(record)) for record in caplog.records),
        "exceptions": sum(hits(text) for text in artifacts.exception_texts()),
        "dead letters": sum(
            hits(letter.value.decode()) + sum(hits(value.decode()) for _, value in letter.headers)
            for letter in artifacts.dead_letters
        ),
        "attempts and results": sum(
            hits(repr([a.as_json() for a in report.attempts]))
            + hits(repr(dict(report.result.detail) if report.result else {}))
            for report in artifacts.reports
        ),
        "config and settings": sum(hits(text) for text in artifacts.texts),
    }
    assert found == dict.fromkeys(found, 0)
