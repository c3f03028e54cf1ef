"""The demo's event loop: virtual time that waits for real I/O.

The plain :class:`~onex_adapters.clock.VirtualTimeLoop` jumps to its next timer whenever nothing
is ready to run — also while a query is on the wire or a thread is working, so a 5-second
timeout can fire during a 1-millisecond round trip. :class:`DemoLoop` owns its time the same way
but moves it only when the process is truly idle:

- while a file descriptor is being waited on (psycopg registers its connection with the loop
  for exactly as long as it waits for the server), or a thread-pool job is out
  (``run_in_executor``, which is also behind ``getaddrinfo`` and ``asyncio.to_thread``), the
  loop waits for real, and virtual time stands still — real work takes no simulated time;
- should that real work stall for as long as the next timer is away, the timer fires: virtual
  time never runs faster than the wall clock while something real is pending, so timeouts
  still guard against a server that stopped answering;
- with nothing real pending it jumps to the next timer, exactly like ``VirtualTimeLoop``.

The loop's own wake-up pipe is registered for its whole life and is not real work. Nothing here
is specific to the demo; it lives beside it because the demo is its only user so far.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

from onex_adapters.clock import DelegatingSelector

__all__ = ["DemoLoop", "run_on_demo_loop"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _Selector(DelegatingSelector):
    """A real selector that, instead of blocking until the next timer, moves the loop's
    virtual time there — unless real work is outstanding (see :class:`DemoLoop`)."""

    def __init__(self, loop: DemoLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only I/O or a thread can wake us
            return self._real.select(None)
        if self._loop.waiting_for_io():
            ready = self._real.select(timeout)  # for real, at most until the next timer
            if ready:
                return ready
        self._loop.advance(timeout)
        return []


class DemoLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time that waits for real I/O (see the module docstring).

    Use it like any loop — ``asyncio.Runner(loop_factory=DemoLoop)`` — or through
    :func:`run_on_demo_loop`.
    """

    def __init__(self) -> None:
        self._virtual_time = 0.0
        self._jobs = 0
        selector = _Selector(self)
        super().__init__(selector)
        self._selector_in_use = selector
        # What is registered now is the loop's own wake-up pipe, never a sign of real I/O.
        self._own_fds = frozenset(key.fd for key in selector.get_map().values())

    def time(self) -> float:
        return self._virtual_time

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (the selector does this when the loop is idle)."""
        self._virtual_time += seconds

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._jobs += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _: asyncio.Future[Any]) -> None:
        self._jobs -= 1

    def waiting_for_io(self) -> bool:
        """Whether a thread-pool job is out or a file descriptor is being waited on."""
        if self._jobs:
            return True
        return any(key.fd not in self._own_fds for key in self._selector_in_use.get_map().values())


def run_on_demo_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`DemoLoop` and return its result."""
    with asyncio.Runner(loop_factory=DemoLoop) as runner:
        return runner.run(main)
