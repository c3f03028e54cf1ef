"""Clocks, and an event loop that runs on virtual time.

The core never reads a clock: time enters as data. The runtime does read one — to stamp
envelopes, to set deadlines, to back off between retries — and it reads it only through a
:class:`Clock`, so that the same code runs against the wall clock in production and against
virtual time in tests and in the demo.

Virtual time is done at the level of the event loop, not by faking individual sleeps.
:class:`VirtualTimeLoop` is an ordinary asyncio loop whose ``time()`` is a number it owns. When
the loop has nothing ready to run and would block waiting for its next timer, it instead moves
its time forward to that timer and carries on. Everything built on the loop's timers —
``asyncio.sleep``, ``asyncio.timeout``, ``wait_for``, ``call_later`` — therefore works unchanged,
and an hour of simulated heartbeats and deadlines passes in milliseconds, in a deterministic
order. Time never jumps while work is ready to run, so a timeout cannot fire early.

The loop still waits for real I/O (its selector is polled first), but it does not wait for
threads: while a thread is busy, the loop may jump ahead. Run code that uses threads — the hvac
and py-consul adapters call their clients in threads — on a normal loop.

:class:`LoopClock` turns the loop's time into wall-clock datetimes from a fixed start, for use on
the virtual loop. :class:`SystemClock` is the production clock.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "Clock",
    "DelegatingSelector",
    "LoopClock",
    "SystemClock",
    "VirtualTimeLoop",
    "run_virtual",
]

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """Where the runtime gets time from.

    ``now()`` is the authority wall clock (timezone-aware UTC) used for deadlines and
    timestamps; ``monotonic()`` is in the event loop's time base, for measuring intervals.
    """

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)`` and ``time.monotonic()``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class LoopClock:
    """Wall-clock time derived from the running loop's time, starting at ``start``.

    On a :class:`VirtualTimeLoop` this is virtual wall-clock time; on a normal loop it is a
    monotonic wall clock that starts at ``start``.
    """

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        if start.utcoffset() is None:
            raise ValueError("LoopClock start must be timezone-aware")
        self._start = start
        self._origin: float | None = None

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> datetime:
        current = asyncio.get_running_loop().time()
        if self._origin is None:
            self._origin = current
        return self._start + timedelta(seconds=current - self._origin)


class DelegatingSelector(selectors.BaseSelector):
    """A real selector behind a hook: subclasses override :meth:`select` to decide how long the
    loop may block (or to move a virtual clock instead). The loops in this package and in the
    adapters that need another notion of time build on it."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self._real.select(timeout)


class _VirtualSelector(DelegatingSelector):
    """Instead of blocking, advances the loop's virtual time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing is scheduled at all: only I/O or another thread can wake us. Wait for real.
            return self._real.select(None)
        self._loop._advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time (see the module docstring)."""

    def __init__(self) -> None:
        self._virtual_time = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_time

    def _advance(self, seconds: float) -> None:
        self._virtual_time += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` and return its result."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
