"""Running effects reliably: idempotency, circuit breaker, timeout, retry with backoff.

Every intent a handler returns is carried out here, by the effect handler bound to its
``intent_type``, in this order:

1. **Idempotency check** by ``intent_id``. Intent ids are derived from the message that caused
   them, so a redelivered message produces the very same intents, and those already done are
   skipped. The id is recorded *after* the effect succeeded, never before: a crash in between
   repeats the effect (at-least-once) instead of losing it.
2. **Circuit breaker**, one per backend (the handler's ``handler_type``). An open breaker fails
   the attempt locally with ``CircuitOpen`` — the backend is not called — and says how long
   until it lets a probe through; exactly one probe goes when it does.
3. **Timeout**: each attempt has ``policy.timeout`` seconds; running over is a transient failure.
4. **Retry with backoff** for transient failures only (``EffectUnavailable``, timeouts,
   ``CircuitOpen``), up to ``policy.retry.max_attempts`` attempts, waiting the jittered
   exponential delay (or the backend's ``retry_after``, when longer). Permanent failures
   (``EffectRejected``) and handler bugs (any other exception) are not retried.
5. **Execute**, then **record** the id as done.

The outcome is an :class:`EffectReport` with the full attempt history; the runtime turns a
failed one into a dead-letter record and, when the binding names an ``outcome_topic``, every
outcome into an event, so the workflow that asked for the effect learns how it went.

Breakers are values (:mod:`onex_core.resilience`); the executor keeps one per backend and swaps
it between ``await`` points, which makes each step atomic within the event loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from onex_adapters.clock import Clock
from onex_adapters.redaction import REDACTOR, Redactor
from onex_adapters.runtime.dlq import Attempt
from onex_core.errors import CircuitOpen, EffectRejected, EffectUnavailable, UsageError
from onex_core.intents import Intent
from onex_core.ports import EffectHandler, EffectResult, IdempotencyStore
from onex_core.resilience import (
    Breaker,
    EffectPolicy,
    admit,
    next_delay,
    record_failure,
    record_success,
    release,
)

__all__ = ["EffectBinding", "EffectExecutor", "EffectReport"]


@dataclass(frozen=True, slots=True)
class EffectBinding:
    """Which handler carries out intents of ``intent_type``, under which policy.

    Args:
        outcome_topic: when set, the runtime publishes an event on this topic for every
            outcome (done, skipped as already done, or failed), so the workflow can react.
        backend: the circuit-breaker key; defaults to the handler's ``handler_type``, so
            intents served by one backend share one breaker.
    """

    intent_type: str
    handler: EffectHandler
    policy: EffectPolicy = EffectPolicy()
    outcome_topic: str | None = None
    backend: str | None = None

    @property
    def breaker_key(self) -> str:
        return self.backend or self.handler.handler_type


@dataclass(frozen=True, slots=True)
class EffectReport:
    """How one intent went.

    ``status`` is ``done`` (executed now), ``skipped`` (already done before: idempotency) or
    ``failed``; a failure is ``permanent`` when it was not worth retrying.
    """

    intent: Intent
    status: Literal["done", "skipped", "failed"]
    attempts: tuple[Attempt, ...] = ()
    result: EffectResult | None = None
    error: BaseException | None = None
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class EffectExecutor:
    """Carries out intents through their bindings (see the module docstring).

    Args:
        bindings: one per intent type; two bindings for one intent type is an error.
        idempotency: where done intent ids are recorded.
        clock: the runtime clock (attempt timestamps, breaker time).
        jitter: the random source for backoff jitter (seed it in tests).
    """

    def __init__(
        self,
        bindings: Iterable[EffectBinding],
        idempotency: IdempotencyStore,
        clock: Clock,
        *,
        jitter: random.Random | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self._bindings: dict[str, EffectBinding] = {}
        for binding in bindings:
            if binding.intent_type in self._bindings:
                raise UsageError(f"two effect bindings for intent type {binding.intent_type!r}")
            self._bindings[binding.intent_type] = binding
        self._idempotency = idempotency
        self._clock = clock
        self._jitter = jitter or random.Random()
        self._redactor = redactor
        self._breakers: dict[str, Breaker] = {}

    @property
    def bindings(self) -> Mapping[str, EffectBinding]:
        return self._bindings

    def binding(self, intent_type: str) -> EffectBinding | None:
        return self._bindings.get(intent_type)

    def breaker(self, backend: str) -> Breaker:
        """The current breaker of ``backend`` (for health reporting and tests)."""
        return self._breakers.get(backend, Breaker.CLOSED)

    async def run(self, intent: Intent) -> EffectReport:
        """Carry out ``intent`` once, effectively (see the module docstring). Never raises for
        effect failures — they are in the report — but lets cancellation through."""
        binding = self._bindings.get(intent.intent_type)
        if binding is None:
            unbound = UsageError(
                f"no effect handler is bound to intent type {intent.intent_type!r}"
            )
            attempt = Attempt(1, self._clock.now(), type(unbound).__name__, str(unbound))
            return EffectReport(intent, "failed", (attempt,), error=unbound, permanent=True)
        domain = intent.intent_type
        key = str(intent.intent_id)
        if await self._idempotency.seen(domain, key):
            return EffectReport(intent, "skipped")
        attempts: list[Attempt] = []
        policy = binding.policy
        backend = binding.breaker_key
        number = 0
        while True:
            number += 1
            error, result = await self._attempt(binding, intent, backend, policy)
            if error is None:
                assert result is not None
                await self._idempotency.record(domain, key)
                return EffectReport(intent, "done", tuple(attempts), result)
            attempts.append(
                Attempt(
                    number,
                    self._clock.now(),
                    type(error).__name__,
                    self._redactor.redact(str(error)),
                )
            )
            if not isinstance(error, EffectUnavailable):
                return EffectReport(intent, "failed", tuple(attempts), error=error, permanent=True)
            delay = next_delay(policy.retry, number, self._jitter.random(), error.retry_after)
            if delay is None:
                return EffectReport(intent, "failed", tuple(attempts), error=error)
            await asyncio.sleep(delay)

    async def _attempt(
        self, binding: EffectBinding, intent: Intent, backend: str, policy: EffectPolicy
    ) -> tuple[BaseException | None, EffectResult | None]:
        now = self._clock.monotonic()
        admission = admit(policy.breaker, self._breakers.get(backend, Breaker.CLOSED), now)
        self._breakers[backend] = admission.breaker
        if not admission.allowed:
            return CircuitOpen(
                f"circuit for {backend} is open", backend=backend, retry_after=admission.retry_after
            ), None
        probe = admission.probe
        try:
            async with asyncio.timeout(policy.timeout):
                result: object = await binding.handler.execute(intent)
        except asyncio.CancelledError:
            self._breakers[backend] = release(self._breakers[backend], probe=probe)
            raise
        except TimeoutError:
            error: BaseException = EffectUnavailable(
                f"{backend} did not answer within {policy.timeout:g} s", backend=backend
            )
        except EffectUnavailable as exc:
            error = exc
        except EffectRejected as exc:
            self._breakers[backend] = record_success(
                policy.breaker, self._breakers[backend], self._clock.monotonic(), probe=probe
            )
            return exc, None
        except Exception as exc:  # a bug in the handler: permanent, and not the backend's fault
            self._breakers[backend] = release(self._breakers[backend], probe=probe)
            return exc, None
        else:
            self._breakers[backend] = record_success(
                policy.breaker, self._breakers[backend], self._clock.monotonic(), probe=probe
            )
            if not isinstance(result, EffectResult):
                return UsageError(
                    f"effect handler {binding.handler.handler_type!r} returned "
                    f"{type(result).__name__}, not an EffectResult"
                ), None
            return None, result
        self._breakers[backend] = record_failure(
            policy.breaker, self._breakers[backend], self._clock.monotonic(), probe=probe
        )
        return error, None
