"""The effect executor: the cheap way for effects that finish without waiting, and everything
else — effects that wait (timed), that fail before or after waiting, that are cancelled — on
virtual time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

import pytest

from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.memory import InMemoryIdempotencyStore
from onex_adapters.runtime import EffectBinding, EffectExecutor, EffectReport
from onex_core.errors import EffectRejected, EffectUnavailable
from onex_core.intents import Intent
from onex_core.ports import EffectResult, HandlerDescription
from onex_core.resilience import Breaker, BreakerPolicy, EffectPolicy, RetryPolicy

POLICY = EffectPolicy(
    retry=RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=10.0, jitter=0.0),
    breaker=BreakerPolicy(failure_threshold=5, reset_timeout=60.0),
    timeout=5.0,
)


def intent(n: int = 1) -> Intent:
    intent_id = uuid.UUID(int=n, version=4)
    return Intent("box.put", f"box://things/{n}", {"n": n}, intent_id, intent_id)


class Box:
    """An effect whose behaviour each test scripts with ``body``: an async function of the
    intent. Counts calls and how each one ended."""

    handler_type = "box"

    def __init__(self, body: Callable[[Intent], Awaitable[object]]) -> None:
        self.body = body
        self.calls = 0
        self.ended: list[str] = []

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    def describe(self) -> HandlerDescription:
        return HandlerDescription("box", ("box.put",))

    async def execute(self, intent: Intent) -> EffectResult:
        self.calls += 1
        try:
            result = await self.body(intent)
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        except BaseException as exc:
            self.ended.append(type(exc).__name__)
            raise
        self.ended.append("returned")
        return result  # type: ignore[return-value]  # some tests return the wrong type


def executor(box: Box, store: InMemoryIdempotencyStore | None = None) -> EffectExecutor:
    return EffectExecutor(
        [EffectBinding("box.put", box, POLICY)],
        InMemoryIdempotencyStore() if store is None else store,
        LoopClock(),
    )


async def done_at_once(item: Intent) -> EffectResult:
    return EffectResult(item.intent_id, {"rows": 1})


def test_an_effect_done_without_waiting_is_recorded_and_then_skipped() -> None:
    async def scenario() -> None:
        box = Box(done_at_once)
        store = InMemoryIdempotencyStore()
        effects = executor(box, store)
        report = await effects.run(intent())
        assert (report.status, report.attempts, report.error) == ("done", (), None)
        assert report.result == EffectResult(intent().intent_id, {"rows": 1})
        assert report.ok
        assert not report.permanent
        assert len(store) == 1
        again = await effects.run(intent())
        assert again == EffectReport(intent(), "skipped")
        assert box.calls == 1
        assert effects.breaker("box") == Breaker.CLOSED

    run_virtual(scenario())


def test_the_quiet_entry_gives_none_only_for_an_intent_done_at_once() -> None:
    async def scenario() -> None:
        effects = executor(Box(done_at_once))
        assert await effects._run(intent(), False) is None
        skipped = await effects._run(intent(), False)
        assert skipped is not None
        assert skipped.status == "skipped"

    run_virtual(scenario())


def test_an_effect_that_waits_is_finished_with_what_it_awaited() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def waits(item: Intent) -> EffectResult:
            await asyncio.sleep(1.0)
            future: asyncio.Future[int] = loop.create_future()
            loop.call_later(2.0, future.set_result, 7)
            rows = await future
            await asyncio.sleep(0)
            return EffectResult(item.intent_id, {"rows": rows})

        started = loop.time()
        report = await executor(Box(waits)).run(intent())
        assert report.status == "done"
        assert report.result is not None
        assert report.result.detail == {"rows": 7}
        assert loop.time() - started == pytest.approx(3.0)

    run_virtual(scenario())


def test_an_effect_that_waits_too_long_is_cancelled_and_retried_then_fails() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def hangs(item: Intent) -> EffectResult:
            await asyncio.sleep(3600)
            return EffectResult(item.intent_id)

        box = Box(hangs)
        store = InMemoryIdempotencyStore()
        started = loop.time()
        report = await executor(box, store).run(intent())
        assert report.status == "failed"
        assert not report.permanent
        assert [a.error_type for a in report.attempts] == ["EffectUnavailable"] * 3
        assert "did not answer within 5 s" in str(report.error)
        assert box.ended == ["cancelled"] * 3
        # Three timeouts of 5 s, and the backoff between them: 1 s, then 2 s.
        assert loop.time() - started == pytest.approx(3 * 5.0 + 1.0 + 2.0)
        assert len(store) == 0

    run_virtual(scenario())


def test_the_timer_runs_from_the_first_wait() -> None:
    async def scenario() -> None:
        async def slow_then_quick(item: Intent) -> EffectResult:
            await asyncio.sleep(4.9)
            return EffectResult(item.intent_id)

        assert (await executor(Box(slow_then_quick)).run(intent())).status == "done"

    run_virtual(scenario())


class Refuse(Exception):
    pass


@pytest.mark.parametrize("wait_first", [False, True], ids=["at once", "after waiting"])
@pytest.mark.parametrize(
    ("error", "status", "permanent", "attempts", "error_type"),
    [
        (EffectRejected("no such row", backend="box"), "failed", True, 1, "EffectRejected"),
        (EffectUnavailable("busy", backend="box"), "failed", False, 3, "EffectUnavailable"),
        (TimeoutError(), "failed", False, 3, "EffectUnavailable"),
        (Refuse("a bug"), "failed", True, 1, "Refuse"),
    ],
)
def test_failures_are_classified_alike_before_and_after_waiting(
    wait_first: bool,
    error: Exception,
    status: str,
    permanent: bool,
    attempts: int,
    error_type: str,
) -> None:
    async def scenario() -> None:
        async def fails(item: Intent) -> EffectResult:
            if wait_first:
                await asyncio.sleep(0.5)
            raise error

        box = Box(fails)
        store = InMemoryIdempotencyStore()
        effects = executor(box, store)
        report = await effects.run(intent())
        assert (report.status, report.permanent) == (status, permanent)
        assert [a.error_type for a in report.attempts] == [error_type] * attempts
        assert box.calls == attempts
        assert len(store) == 0
        # Only transient failures count against the backend.
        failures = effects.breaker("box").failures
        assert failures == (attempts if error_type == "EffectUnavailable" else 0)

    run_virtual(scenario())


def test_a_result_that_is_not_an_effect_result_is_a_permanent_failure() -> None:
    async def wrong(item: Intent) -> object:
        return {"rows": 1}

    async def scenario() -> None:
        report = await executor(Box(wrong)).run(intent())
        assert report.status == "failed"
        assert report.permanent
        assert "not an EffectResult" in str(report.error)

    run_virtual(scenario())


def test_cancelling_a_waiting_effect_reaches_the_effect_and_records_nothing() -> None:
    async def scenario() -> None:
        started = asyncio.Event()

        async def waits(item: Intent) -> EffectResult:
            started.set()
            await asyncio.sleep(3600)
            return EffectResult(item.intent_id)

        box = Box(waits)
        store = InMemoryIdempotencyStore()
        task = asyncio.ensure_future(executor(box, store).run(intent()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert box.ended == ["cancelled"]
        assert len(store) == 0

    run_virtual(scenario())


def test_a_cancelled_probe_frees_the_half_open_breaker() -> None:
    async def scenario() -> None:
        outcomes: list[str] = ["fail"] * 5

        async def flaky(item: Intent) -> EffectResult:
            if outcomes and outcomes.pop() == "fail":
                raise EffectUnavailable("down", backend="box")
            await asyncio.sleep(3600)
            return EffectResult(item.intent_id)

        policy = EffectPolicy(
            retry=RetryPolicy(max_attempts=1),
            breaker=BreakerPolicy(failure_threshold=5, reset_timeout=30.0),
            timeout=5000.0,
        )
        effects = EffectExecutor(
            [EffectBinding("box.put", Box(flaky), policy)], InMemoryIdempotencyStore(), LoopClock()
        )
        for n in range(5):
            await effects.run(intent(n))
        assert effects.breaker("box").state == "open"
        await asyncio.sleep(30.0)
        probe = asyncio.ensure_future(effects.run(intent(9)))
        await asyncio.sleep(1.0)
        assert effects.breaker("box").probe_in_flight
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert not effects.breaker("box").probe_in_flight

    run_virtual(scenario())


class Later:
    """An awaitable that is not a coroutine: yields to the loop once, then gives its value."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __await__(self) -> Generator[None, None, object]:
        yield None
        return self.value


class AwaitableBox(Box):
    def execute(self, intent: Intent) -> Later:  # type: ignore[override]
        self.calls += 1
        return Later(EffectResult(intent.intent_id))


def test_an_effect_may_return_any_awaitable() -> None:
    async def scenario() -> None:
        box = AwaitableBox(done_at_once)
        assert (await executor(box).run(intent())).status == "done"
        assert box.calls == 1

    run_virtual(scenario())
