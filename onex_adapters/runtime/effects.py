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
3. **Timeout**: each attempt may wait ``policy.timeout`` seconds; running over is a transient
   failure, and the handler's coroutine is cancelled.
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

**Cheap when nothing waits.** Most in-process effects, and every effect skipped as already
done, finish without suspending, and the executor does not pay for machinery they do not use
(an ``asyncio.timeout`` costs more than a whole in-memory effect). A closed breaker admits
without a new value. The handler's coroutine is started by hand: if it finishes without
waiting, no timer is ever armed — an attempt that never yields to the event loop cannot be
interrupted by a timer anyway. The first time it waits, the rest of the attempt runs under
``asyncio.timeout(policy.timeout)``: the timer counts from the first wait, so what the handler
does before it (work that holds the event loop, and that no timer could cut short) is not
counted. A handler that returns some other awaitable is awaited under the timeout as it is.
"""

from __future__ import annotations

import asyncio
import random
import types
from collections.abc import Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import msgspec

from onex_adapters.clock import Clock
from onex_adapters.redaction import REDACTOR, Redactor
from onex_adapters.runtime.dlq import Attempt
from onex_core.errors import CircuitOpen, EffectRejected, EffectUnavailable, UsageError
from onex_core.intents import Intent
from onex_core.ports import EffectHandler, EffectResult, IdempotencyStore
from onex_core.resilience import (
    Breaker,
    BreakerState,
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


@dataclass(frozen=True, slots=True, init=False)
class EffectReport:
    """How one intent went.

    ``status`` is ``done`` (executed now), ``skipped`` (already done before: idempotency) or
    ``failed``; a failure is ``permanent`` when it was not worth retrying.
    """

    intent: Intent
    status: Literal["done", "skipped", "failed"]
    attempts: tuple[Attempt, ...]
    result: EffectResult | None
    error: BaseException | None
    permanent: bool

    def __init__(
        self,
        intent: Intent,
        status: Literal["done", "skipped", "failed"],
        attempts: tuple[Attempt, ...] = (),
        result: EffectResult | None = None,
        error: BaseException | None = None,
        permanent: bool = False,
    ) -> None:
        # One report per intent: the slots are set through their descriptors, which costs half
        # of the generated frozen __init__; the instance is just as frozen afterwards.
        _set_intent(self, intent)
        _set_status(self, status)
        _set_attempts(self, attempts)
        _set_result(self, result)
        _set_error(self, error)
        _set_permanent(self, permanent)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


(
    _set_intent,
    _set_status,
    _set_attempts,
    _set_result,
    _set_error,
    _set_permanent,
) = (getattr(EffectReport, name).__set__ for name in EffectReport.__slots__)

_new = object.__new__


def _done(intent: Intent, result: EffectResult) -> EffectReport:
    """``EffectReport(intent, "done", (), result)``, built a little faster (one per intent)."""
    report: EffectReport = _new(EffectReport)
    _set_intent(report, intent)
    _set_status(report, "done")
    _set_attempts(report, ())
    _set_result(report, result)
    _set_error(report, None)
    _set_permanent(report, False)
    return report


_CLOSED = BreakerState.CLOSED
_CLOSED_BREAKER = Breaker.CLOSED
_Coroutine = types.CoroutineType
_canonical = msgspec.to_builtins


async def _finish(call: Coroutine[Any, Any, Any], signal: Any, timeout: float) -> Any:
    """Finish ``call``, which suspended yielding ``signal``, within ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        return await _resume(call, signal)


@types.coroutine
def _resume(call: Coroutine[Any, Any, Any], signal: Any) -> Generator[Any, Any, Any]:
    """Finish ``call``, a coroutine started by hand that suspended yielding ``signal``: hand
    each signal to the task driving us, and pass back whatever the task sends or throws (a
    cancellation from a timeout, typically)."""
    while True:
        try:
            sent = yield signal
        except GeneratorExit:
            call.close()
            raise
        except BaseException as exc:
            try:
                signal = call.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                signal = call.send(sent)
            except StopIteration as done:
                return done.value


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
        report = await self._run(intent, True)
        assert report is not None
        return report

    async def _run(self, intent: Intent, report_done: bool) -> EffectReport | None:
        """:meth:`run`; but when ``report_done`` is false, an intent done at its first attempt
        gives ``None`` instead of a report. The runtime only counts those, and building the
        report would be a tenth of the cost of carrying out an in-memory effect."""
        domain = intent.intent_type
        binding = self._bindings.get(domain)
        if binding is None:
            unbound = UsageError(f"no effect handler is bound to intent type {domain!r}")
            attempt = Attempt(1, self._clock.now(), type(unbound).__name__, str(unbound))
            return EffectReport(intent, "failed", (attempt,), error=unbound, permanent=True)
        intent_id = intent.intent_id
        # msgspec writes a UUID's canonical text in C: str() of it, four times faster.
        key = _canonical(intent_id) if type(intent_id) is UUID else str(intent_id)
        idempotency = self._idempotency
        if await idempotency.seen(domain, key):
            return EffectReport(intent, "skipped")
        policy = binding.policy
        backend = binding.backend or binding.handler.handler_type  # binding.breaker_key
        breakers = self._breakers
        attempts: list[Attempt] = []
        number = 0
        while True:
            number += 1
            breaker = breakers.get(backend, _CLOSED_BREAKER)
            error: BaseException | None = None
            if breaker.state is _CLOSED:
                probe = False  # what admit() says of a closed breaker, which it leaves as it is
            else:
                admission = admit(policy.breaker, breaker, self._clock.monotonic())
                breakers[backend] = admission.breaker
                probe = admission.probe
                error = (
                    None
                    if admission.allowed
                    else CircuitOpen(
                        f"circuit for {backend} is open",
                        backend=backend,
                        retry_after=admission.retry_after,
                    )
                )
            if error is None:
                try:
                    call = binding.handler.execute(intent)
                    if type(call) is _Coroutine:
                        # Started by hand, and timed only if it waits (see the module docstring).
                        try:
                            signal = call.send(None)
                        except StopIteration as done:
                            result = done.value
                        else:
                            result = await _finish(call, signal, policy.timeout)
                    else:  # some other awaitable: the plain way
                        async with asyncio.timeout(policy.timeout):
                            result = await call
                except asyncio.CancelledError:
                    breakers[backend] = release(breakers.get(backend, _CLOSED_BREAKER), probe=probe)
                    raise
                except Exception as exc:
                    error = self._failed(exc, backend, policy, probe)
                else:
                    breaker = breakers.get(backend, _CLOSED_BREAKER)
                    if breaker.state is not _CLOSED or breaker.failures:  # else it stays as is
                        breakers[backend] = record_success(
                            policy.breaker, breaker, self._clock.monotonic(), probe=probe
                        )
                    if isinstance(result, EffectResult):
                        await idempotency.record(domain, key)
                        if attempts:
                            return EffectReport(intent, "done", tuple(attempts), result)
                        return _done(intent, result) if report_done else None
                    error = UsageError(
                        f"effect handler {binding.handler.handler_type!r} returned "
                        f"{type(result).__name__}, not an EffectResult"
                    )
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

    def _failed(
        self, exc: Exception, backend: str, policy: EffectPolicy, probe: bool
    ) -> BaseException:
        """Record a failed attempt with the breaker; returns the error to report."""
        breakers = self._breakers
        breaker = breakers.get(backend, _CLOSED_BREAKER)
        if isinstance(exc, TimeoutError):
            exc = EffectUnavailable(
                f"{backend} did not answer within {policy.timeout:g} s", backend=backend
            )
        if isinstance(exc, EffectUnavailable):
            breakers[backend] = record_failure(
                policy.breaker, breaker, self._clock.monotonic(), probe=probe
            )
        elif isinstance(exc, EffectRejected):  # the backend answered: it is healthy
            breakers[backend] = record_success(
                policy.breaker, breaker, self._clock.monotonic(), probe=probe
            )
        else:  # a bug in the handler: permanent, and not the backend's fault
            breakers[backend] = release(breaker, probe=probe)
        return exc
