"""Resilience arithmetic: a circuit breaker and retry delays, as pure functions of time.

*The breaker is a value, and the caller holds it.* A :class:`Breaker` is a frozen record of a
breaker's state; :func:`admit`, :func:`record_success`, :func:`record_failure` and
:func:`release` take one and return the next. Nothing here reads a clock, sleeps, locks or
awaits: the current time comes in as ``now`` (seconds on a monotonic clock), so every transition
can be tested exactly, and replayed, without waiting sixty seconds for a timeout.

The runtime keeps one breaker per backend in a variable and replaces it with the value these
functions return. It does that inside its event loop, between two ``await`` points — read the
variable, compute the next value, write it back, with no ``await`` in between — so each step is
atomic with respect to every other coroutine, and no lock is needed. (The original
implementation mutated a shared object under a lock that its callers were expected to take, and
only logged when they did not.) Several threads must not share one breaker variable without
their own lock; the runtime does not do that.

*Exactly one probe.* When the reset timeout has elapsed, the first :func:`admit` moves the
breaker from OPEN to HALF_OPEN with ``probe_in_flight=True`` and lets that one call through
(``Admission.probe`` is True). Every other :func:`admit` sees ``probe_in_flight`` and is denied,
however many callers ask, until the probe's outcome is recorded:

- :func:`record_failure` re-opens the breaker with a fresh timer;
- :func:`record_success` counts a half-open success; at ``success_threshold`` successes the
  breaker closes, and below it the flag is cleared so the *next single* probe may go;
- :func:`release` clears the flag when the admitted call never reached the backend (cancelled
  before it was sent), so a lost probe cannot wedge the breaker half-open for ever.

For every allowed admission the caller must record exactly one of these, typically in a
``finally``, passing ``probe=admission.probe``. Outcomes of calls admitted *before* the breaker
opened (stragglers, possible when a call lasts longer than the reset timeout) are passed with
``probe=False``: they are ignored while the breaker is open or half-open, so only the probe
decides whether it closes.

*Only transient failures count.* :func:`record_failure` is for :class:`EffectUnavailable` (a
timeout, a refused connection, a 503). A permanent :class:`EffectRejected` (a 403, a constraint
violation) means the backend is up and answered; ONEX records it as a **success** — it ends a
run of consecutive failures and can close a half-open breaker — because a wrong request must
not open a healthy backend's circuit (:func:`counts_as_failure` says which is which).
:class:`CircuitOpen` is never recorded: that call was not attempted.

*Retry delays* are exponential, capped and jittered: the ``k``-th retry waits
``min(initial_delay * multiplier**(k-1), max_delay) * (1 + jitter * (2*sample - 1))``, clamped to
``[0, max_delay]``, where ``sample`` in ``[0, 1)`` is drawn by the caller. With the defaults
(from the original implementation) that is 1, 2, 4, 8, … s up to 60 s, each ±25 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from onex_core.errors import CircuitOpen, EffectUnavailable, UsageError

__all__ = [
    "Admission",
    "Breaker",
    "BreakerPolicy",
    "BreakerState",
    "EffectPolicy",
    "RetryPolicy",
    "admit",
    "closed_breaker",
    "counts_as_failure",
    "next_delay",
    "record_failure",
    "record_success",
    "release",
    "retry_delay",
]


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# --------------------------------------------------------------------------- circuit breaker


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How a circuit breaker behaves.

    Args:
        failure_threshold: consecutive transient failures that open a closed breaker (≥ 1).
        reset_timeout: seconds an open breaker waits before letting one probe through (≥ 0).
        success_threshold: probe successes in a row that close a half-open breaker (≥ 1).

    Raises:
        UsageError: a value is out of range or not a finite number.
    """

    failure_threshold: int = 5
    reset_timeout: float = 60.0
    success_threshold: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.failure_threshold, int) or self.failure_threshold < 1:
            raise UsageError("breaker failure_threshold must be an integer of at least 1")
        if not _finite(self.reset_timeout) or self.reset_timeout < 0:
            raise UsageError("breaker reset_timeout must be a finite number of seconds, ≥ 0")
        if not isinstance(self.success_threshold, int) or self.success_threshold < 1:
            raise UsageError("breaker success_threshold must be an integer of at least 1")


class BreakerState(StrEnum):
    """Closed: calls pass. Open: calls are refused locally. Half-open: one probe at a time."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Breaker:
    """One breaker's state, as a value. ``Breaker()`` (or :data:`Breaker.CLOSED`) is closed.

    Attributes:
        state: closed, open or half-open.
        failures: consecutive transient failures counted while closed.
        successes: probe successes counted while half-open.
        opened_at: when the breaker last opened (``now`` of the failure that opened it);
            ``None`` while closed.
        probe_in_flight: a half-open probe has been admitted and its outcome not yet recorded.

    Raises:
        UsageError: the fields contradict each other (negative counts, an open breaker without
            ``opened_at``, a probe outside half-open).
    """

    CLOSED: ClassVar[Breaker]

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    successes: int = 0
    opened_at: float | None = None
    probe_in_flight: bool = False

    def __post_init__(self) -> None:
        if self.failures < 0 or self.successes < 0:
            raise UsageError("breaker counts must not be negative")
        if self.state is not BreakerState.CLOSED and self.opened_at is None:
            raise UsageError(f"a {self.state.value} breaker needs opened_at")
        if self.probe_in_flight and self.state is not BreakerState.HALF_OPEN:
            raise UsageError("only a half-open breaker can have a probe in flight")


Breaker.CLOSED = Breaker()


def closed_breaker() -> Breaker:
    """The initial breaker: closed, no failures. Same as :data:`Breaker.CLOSED`."""
    return Breaker.CLOSED


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer of :func:`admit`.

    Attributes:
        allowed: whether the call may go to the backend now.
        breaker: the breaker to keep (it changes when an open breaker lets its probe through).
        retry_after: when denied, the seconds until the breaker will let a probe through; ``0.0``
            when allowed, and when denied because a probe is in flight (its outcome decides,
            so there is no known wait — use the normal backoff).
        probe: this admission is the half-open probe; pass it on to the ``record_*`` call.
    """

    allowed: bool
    breaker: Breaker
    retry_after: float = 0.0
    probe: bool = False


def admit(policy: BreakerPolicy, breaker: Breaker, now: float) -> Admission:
    """Ask the breaker whether a call may go through at ``now``.

    - CLOSED: allowed, breaker unchanged.
    - OPEN, ``now < opened_at + reset_timeout``: denied, ``retry_after`` the time remaining
      (never more than ``reset_timeout``, even if the clock went backwards).
    - OPEN, timeout elapsed: the breaker becomes HALF_OPEN with a probe in flight, and this one
      call is allowed as the probe.
    - HALF_OPEN with a probe in flight: denied.
    - HALF_OPEN without (a probe succeeded but ``success_threshold`` is not reached yet): the
      next single probe is allowed.

    Returns:
        An :class:`Admission`; keep its ``breaker``. The input breaker is never modified.
    """
    state = breaker.state
    if state is BreakerState.CLOSED:
        return Admission(True, breaker)
    if state is BreakerState.OPEN:
        opened_at = breaker.opened_at
        assert opened_at is not None  # guaranteed by Breaker.__post_init__
        remaining = opened_at + policy.reset_timeout - now
        if remaining > 0:
            return Admission(False, breaker, min(remaining, policy.reset_timeout))
        probing = Breaker(BreakerState.HALF_OPEN, 0, 0, opened_at, True)
        return Admission(True, probing, 0.0, True)
    if breaker.probe_in_flight:
        return Admission(False, breaker)
    probing = Breaker(BreakerState.HALF_OPEN, 0, breaker.successes, breaker.opened_at, True)
    return Admission(True, probing, 0.0, True)


def record_success(
    policy: BreakerPolicy, breaker: Breaker, now: float, *, probe: bool = True
) -> Breaker:
    """Record that an admitted call succeeded — or was permanently rejected (the backend
    answered; see the module docstring).

    - CLOSED: the run of consecutive failures ends (failures back to 0).
    - OPEN: ignored (a straggler admitted before the breaker opened).
    - HALF_OPEN, ``probe``: one more success; at ``success_threshold`` the breaker closes,
      otherwise the probe slot is freed for the next probe.
    - HALF_OPEN, not ``probe``: ignored.

    Args:
        probe: ``Admission.probe`` of the call. The default suits callers that do not track it,
            treating a half-open outcome as the probe's.

    Returns:
        The next breaker (the same object when nothing changes).
    """
    state = breaker.state
    if state is BreakerState.CLOSED:
        return breaker if breaker.failures == 0 else Breaker.CLOSED
    if state is BreakerState.OPEN or not probe:
        return breaker
    successes = breaker.successes + 1
    if successes >= policy.success_threshold:
        return Breaker.CLOSED
    return Breaker(BreakerState.HALF_OPEN, 0, successes, breaker.opened_at, False)


def record_failure(
    policy: BreakerPolicy, breaker: Breaker, now: float, *, probe: bool = True
) -> Breaker:
    """Record that an admitted call failed *transiently* (:func:`counts_as_failure`).

    - CLOSED: one more consecutive failure; at ``failure_threshold`` the breaker opens, with
      ``opened_at = now``.
    - OPEN: ignored (a straggler; it must not push the reset timer forward).
    - HALF_OPEN, ``probe``: the breaker re-opens with a fresh timer (``opened_at = now``).
    - HALF_OPEN, not ``probe``: ignored; the probe decides.

    Returns:
        The next breaker (the same object when nothing changes).
    """
    state = breaker.state
    if state is BreakerState.CLOSED:
        failures = breaker.failures + 1
        if failures >= policy.failure_threshold:
            return Breaker(BreakerState.OPEN, failures, 0, now, False)
        return Breaker(BreakerState.CLOSED, failures, 0, None, False)
    if state is BreakerState.OPEN or not probe:
        return breaker
    return Breaker(BreakerState.OPEN, breaker.failures, 0, now, False)


def release(breaker: Breaker, *, probe: bool = True) -> Breaker:
    """Record that an admitted call never reached the backend (cancelled before it was sent),
    so it says nothing about the backend's health.

    A half-open probe's slot is freed so the next caller may probe; anything else is unchanged.
    """
    if probe and breaker.probe_in_flight:
        return Breaker(BreakerState.HALF_OPEN, 0, breaker.successes, breaker.opened_at, False)
    return breaker


def counts_as_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failure the breaker counts: a transient :class:`EffectUnavailable`
    that was actually attempted (not a :class:`CircuitOpen`). Everything else, including a
    permanent ``EffectRejected``, is not."""
    return isinstance(error, EffectUnavailable) and not isinstance(error, CircuitOpen)


# --------------------------------------------------------------------------- retry delays


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how patiently, to retry a transient failure.

    Args:
        max_attempts: attempts in all, including the first (≥ 1; 1 means never retry).
        initial_delay: seconds before the first retry (≥ 0).
        max_delay: the cap on any delay (≥ ``initial_delay``).
        multiplier: growth factor per retry (≥ 1).
        jitter: relative spread, ``0.25`` meaning ±25 % (0 to 1).

    Raises:
        UsageError: a value is out of range or not a finite number.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise UsageError("retry max_attempts must be an integer of at least 1")
        for name in ("initial_delay", "max_delay", "multiplier", "jitter"):
            if not _finite(getattr(self, name)):
                raise UsageError(f"retry {name} must be a finite number")
        if not 0 <= self.initial_delay <= self.max_delay:
            raise UsageError("retry delays must satisfy 0 ≤ initial_delay ≤ max_delay")
        if self.multiplier < 1:
            raise UsageError("retry multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise UsageError("retry jitter must be between 0 and 1")


def retry_delay(policy: RetryPolicy, attempt: int, sample: float) -> float:
    """The delay, in seconds, after failed attempt number ``attempt`` (1 for the first).

    ``min(initial_delay * multiplier**(attempt-1), max_delay) * (1 + jitter * (2*sample - 1))``,
    clamped to ``[0, max_delay]``. For a fixed ``sample`` the delays never decrease as
    ``attempt`` grows.

    Args:
        attempt: the number of the attempt that just failed, ≥ 1.
        sample: a uniform random number in ``[0, 1)``, drawn by the caller (0.5 means no jitter).

    Raises:
        UsageError: ``attempt`` < 1, or ``sample`` outside ``[0, 1)``.
    """
    if not isinstance(attempt, int) or attempt < 1:
        raise UsageError("retry attempt numbers start at 1")
    if not (isinstance(sample, int | float) and 0.0 <= sample < 1.0):
        raise UsageError("retry jitter sample must be a number in [0, 1)")
    cap = policy.max_delay
    try:
        base = min(policy.initial_delay * policy.multiplier ** (attempt - 1), cap)
    except OverflowError:
        base = cap
    delay = base * (1.0 + policy.jitter * (2.0 * sample - 1.0))
    return min(max(delay, 0.0), cap)


def next_delay(
    policy: RetryPolicy, attempt: int, sample: float, retry_after: float | None = None
) -> float | None:
    """The delay before the next attempt, or ``None`` when there is none left.

    Args:
        attempt: the number of the attempt that just failed, ≥ 1.
        sample: as for :func:`retry_delay`.
        retry_after: the backend's own "wait at least this long" (``EffectUnavailable.
            retry_after``). It is a floor, honoured even above ``max_delay``: the backend knows
            best. A negative value is no floor.

    Returns:
        ``None`` when ``attempt >= max_attempts``; otherwise the delay in seconds.

    Raises:
        UsageError: as for :func:`retry_delay`, or ``retry_after`` is not finite.
    """
    if retry_after is not None and not _finite(retry_after):
        raise UsageError("retry_after must be a finite number of seconds")
    delay = retry_delay(policy, attempt, sample)
    if attempt >= policy.max_attempts:
        return None
    if retry_after is not None and retry_after > delay:
        return float(retry_after)
    return delay


# --------------------------------------------------------------------------- effect policy


@dataclass(frozen=True, slots=True)
class EffectPolicy:
    """Everything the runtime needs to run one kind of effect reliably.

    Args:
        retry: how transient failures are retried.
        breaker: when the backend's circuit opens and how it recovers.
        timeout: seconds one attempt may take before it counts as a transient failure.

    Raises:
        UsageError: ``timeout`` is not a positive finite number.
    """

    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not _finite(self.timeout) or self.timeout <= 0:
            raise UsageError("effect timeout must be a positive number of seconds")
