"""Circuit breaker transitions and retry delays, as pure functions of time."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.errors import CircuitOpen, EffectRejected, EffectUnavailable, UsageError
from onex_core.resilience import (
    Admission,
    Breaker,
    BreakerPolicy,
    BreakerState,
    RetryPolicy,
    admit,
    closed_breaker,
    counts_as_failure,
    next_delay,
    record_failure,
    record_success,
    release,
    retry_delay,
)

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
POLICY = BreakerPolicy(failure_threshold=3, reset_timeout=10.0, success_threshold=2)


def closed(failures: int = 0) -> Breaker:
    return Breaker(CLOSED, failures=failures)


def opened(at: float, failures: int = 3) -> Breaker:
    return Breaker(OPEN, failures=failures, opened_at=at)


def half(successes: int = 0, *, probe: bool = True, at: float = 5.0) -> Breaker:
    return Breaker(HALF, successes=successes, opened_at=at, probe_in_flight=probe)


# --------------------------------------------------------------------------- defaults


def test_defaults_match_upstream() -> None:
    assert BreakerPolicy() == BreakerPolicy(
        failure_threshold=5, reset_timeout=60.0, success_threshold=1
    )
    assert RetryPolicy() == RetryPolicy(
        max_attempts=3, initial_delay=1.0, max_delay=60.0, multiplier=2.0, jitter=0.25
    )
    unjittered = [retry_delay(RetryPolicy(), attempt, 0.5) for attempt in range(1, 9)]
    assert unjittered == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_the_initial_breaker_is_closed() -> None:
    assert closed_breaker() is Breaker.CLOSED
    assert Breaker.CLOSED == Breaker() == closed()
    assert Breaker.CLOSED.state is CLOSED


# --------------------------------------------------------------------------- transitions

ADMISSIONS = [
    # (breaker, now, allowed, retry_after, probe, breaker after)
    pytest.param(closed(), 0.0, True, 0.0, False, closed(), id="closed-allows"),
    pytest.param(closed(2), 0.0, True, 0.0, False, closed(2), id="closed-with-failures-allows"),
    pytest.param(opened(5.0), 9.0, False, 6.0, False, opened(5.0), id="open-denies-remaining"),
    pytest.param(opened(5.0), 14.5, False, 0.5, False, opened(5.0), id="open-denies-just-before"),
    pytest.param(opened(5.0), 15.0, True, 0.0, True, half(at=5.0), id="open-elapsed-probes"),
    pytest.param(opened(5.0), 99.0, True, 0.0, True, half(at=5.0), id="open-long-elapsed-probes"),
    pytest.param(opened(5.0), 0.0, False, 10.0, False, opened(5.0), id="clock-went-backwards"),
    pytest.param(half(probe=True), 99.0, False, 0.0, False, half(), id="half-open-probe-busy"),
    pytest.param(half(1, probe=False), 99.0, True, 0.0, True, half(1), id="half-open-next-probe"),
]


@pytest.mark.parametrize(("breaker", "now", "allowed", "retry_after", "probe", "after"), ADMISSIONS)
def test_admit(
    breaker: Breaker, now: float, allowed: bool, retry_after: float, probe: bool, after: Breaker
) -> None:
    assert admit(POLICY, breaker, now) == Admission(allowed, after, retry_after, probe)


OUTCOMES = [
    # (breaker, operation, probe, now, breaker after)
    pytest.param(closed(), "success", False, 1.0, closed(), id="closed-success"),
    pytest.param(closed(2), "success", False, 1.0, closed(), id="closed-success-resets"),
    pytest.param(closed(), "failure", False, 1.0, closed(1), id="closed-failure-counts"),
    pytest.param(closed(1), "failure", False, 1.0, closed(2), id="closed-below-threshold"),
    pytest.param(closed(2), "failure", False, 7.0, opened(7.0), id="closed-threshold-opens"),
    pytest.param(opened(5.0), "failure", False, 8.0, opened(5.0), id="open-straggler-failure"),
    pytest.param(opened(5.0), "success", False, 8.0, opened(5.0), id="open-straggler-success"),
    pytest.param(half(), "success", True, 20.0, half(1, probe=False), id="half-success-counts"),
    pytest.param(half(1), "success", True, 20.0, closed(), id="half-success-closes"),
    pytest.param(
        half(1), "failure", True, 20.0, opened(20.0, failures=0), id="half-failure-reopens"
    ),
    pytest.param(half(), "success", False, 20.0, half(), id="half-straggler-success"),
    pytest.param(half(), "failure", False, 20.0, half(), id="half-straggler-failure"),
    pytest.param(half(1), "release", True, 20.0, half(1, probe=False), id="half-release"),
    pytest.param(half(1), "release", False, 20.0, half(1), id="half-straggler-release"),
    pytest.param(closed(1), "release", True, 20.0, closed(1), id="closed-release"),
]


def apply(breaker: Breaker, operation: str, probe: bool, now: float) -> Breaker:
    if operation == "success":
        return record_success(POLICY, breaker, now, probe=probe)
    if operation == "failure":
        return record_failure(POLICY, breaker, now, probe=probe)
    return release(breaker, probe=probe)


@pytest.mark.parametrize(("breaker", "operation", "probe", "now", "after"), OUTCOMES)
def test_outcomes(
    breaker: Breaker, operation: str, probe: bool, now: float, after: Breaker
) -> None:
    assert apply(breaker, operation, probe, now) == after


def test_opens_after_exactly_threshold_consecutive_failures() -> None:
    policy = BreakerPolicy(failure_threshold=5, reset_timeout=30.0)
    breaker = Breaker.CLOSED
    for count in range(1, 5):
        breaker = record_failure(policy, breaker, float(count))
        assert breaker.state is CLOSED
    breaker = record_success(policy, breaker, 5.0)  # a success ends the run
    for count in range(1, 6):
        assert breaker.state is CLOSED
        breaker = record_failure(policy, breaker, 10.0 + count)
    assert breaker.state is OPEN
    assert breaker.opened_at == 15.0
    assert not admit(policy, breaker, 44.9).allowed
    assert admit(policy, breaker, 45.0).allowed


def test_a_zero_reset_timeout_probes_at_once() -> None:
    policy = BreakerPolicy(failure_threshold=1, reset_timeout=0.0)
    breaker = record_failure(policy, Breaker.CLOSED, 3.0)
    admission = admit(policy, breaker, 3.0)
    assert (admission.allowed, admission.probe) == (True, True)


def test_half_open_failure_restarts_the_timer() -> None:
    breaker = admit(POLICY, opened(0.0), 10.0).breaker
    breaker = record_failure(POLICY, breaker, 12.0)
    assert admit(POLICY, breaker, 21.0) == Admission(False, breaker, 1.0)
    assert admit(POLICY, breaker, 22.0).probe


def outcome(
    policy: BreakerPolicy, breaker: Breaker, now: float, error: Exception | None
) -> Breaker:
    """What the runtime does with a call's outcome."""
    if error is not None and counts_as_failure(error):
        return record_failure(policy, breaker, now)
    return record_success(policy, breaker, now)


def test_permanent_rejections_never_open_the_breaker() -> None:
    policy = BreakerPolicy(failure_threshold=2)
    breaker = Breaker.CLOSED
    for now in range(50):
        breaker = outcome(policy, breaker, float(now), EffectRejected("403 permission denied"))
    assert breaker == Breaker.CLOSED
    breaker = outcome(policy, breaker, 50.0, EffectUnavailable("503"))
    breaker = outcome(policy, breaker, 51.0, EffectRejected("400"))  # the backend answered
    breaker = outcome(policy, breaker, 52.0, EffectUnavailable("503"))
    assert breaker.state is CLOSED


def test_a_rejected_probe_counts_as_a_success() -> None:
    policy = BreakerPolicy(failure_threshold=1, reset_timeout=1.0)
    breaker = outcome(policy, Breaker.CLOSED, 0.0, EffectUnavailable("timeout"))
    breaker = admit(policy, breaker, 1.0).breaker
    assert outcome(policy, breaker, 1.5, EffectRejected("404")) == Breaker.CLOSED


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (EffectUnavailable("timeout"), True),
        (EffectUnavailable("429", retry_after=3.0), True),
        (CircuitOpen("open"), False),
        (EffectRejected("403"), False),
        (ValueError("bug"), False),
    ],
)
def test_counts_as_failure(error: Exception, counts: bool) -> None:
    assert counts_as_failure(error) is counts


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"failure_threshold": 1.5},
        {"reset_timeout": -1.0},
        {"reset_timeout": math.inf},
        {"reset_timeout": math.nan},
        {"success_threshold": 0},
    ],
)
def test_breaker_policy_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="breaker"):
        BreakerPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failures": -1},
        {"state": OPEN},
        {"state": CLOSED, "probe_in_flight": True},
        {"state": OPEN, "opened_at": 1.0, "probe_in_flight": True},
    ],
)
def test_contradictory_breakers_cannot_be_built(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        Breaker(**kwargs)


# --------------------------------------------------------------------------- breaker properties

policies = st.builds(
    BreakerPolicy,
    failure_threshold=st.integers(1, 5),
    # Zero, or at least a millisecond: a clock of 1e6 s cannot tell 1e-18 s from nothing.
    reset_timeout=st.one_of(st.just(0.0), st.floats(0.001, 20.0)),
    success_threshold=st.integers(1, 3),
)
steps = st.lists(
    st.tuples(
        st.sampled_from(["admit"] * 4 + ["failure"] * 3 + ["success", "release"]),
        st.one_of(st.just(0.0), st.floats(0.0, 15.0)),  # zero gaps: concurrent callers
        st.integers(0, 1_000),
    ),
    min_size=10,
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, schedule=steps)
def test_breaker_holds_its_invariants_over_any_schedule(
    policy: BreakerPolicy, schedule: list[tuple[str, float, int]]
) -> None:
    breaker = Breaker.CLOSED
    now = 0.0
    outstanding: list[bool] = []  # admitted calls without an outcome yet: is each a probe?
    for operation, gap, pick in schedule:
        now += gap
        if operation == "admit":
            before = breaker
            admission = admit(policy, breaker, now)
            if before.state is OPEN:
                assert before.opened_at is not None
                if now < before.opened_at + policy.reset_timeout:
                    assert not admission.allowed
                    assert 0.0 < admission.retry_after <= policy.reset_timeout
            if before.probe_in_flight:
                assert not admission.allowed
            if admission.probe:
                assert admission.allowed
                assert not any(outstanding)
            breaker = admission.breaker
            if admission.allowed:
                outstanding.append(admission.probe)
        elif outstanding:
            probe = outstanding.pop(pick % len(outstanding))
            if operation == "success":
                breaker = record_success(policy, breaker, now, probe=probe)
            elif operation == "failure":
                breaker = record_failure(policy, breaker, now, probe=probe)
            else:
                breaker = release(breaker, probe=probe)
        # At most one probe at a time, and the breaker knows exactly when one is out.
        assert sum(outstanding) <= 1
        assert breaker.probe_in_flight is any(outstanding)
        assert (breaker.state is CLOSED) is (breaker.opened_at is None)


@settings(max_examples=200, deadline=None)
@given(
    policy=policies,
    callers=st.integers(1, 50),
    opened_at=st.floats(0.0, 1e6),
    late=st.floats(0.0, 1e3),
    results=st.lists(st.booleans(), min_size=1, max_size=6),
)
def test_exactly_one_probe_however_many_callers_ask(
    policy: BreakerPolicy, callers: int, opened_at: float, late: float, results: list[bool]
) -> None:
    breaker = Breaker(OPEN, failures=policy.failure_threshold, opened_at=opened_at)
    now = opened_at + policy.reset_timeout + late
    for succeeded in results:
        admissions = []
        for _ in range(callers):  # concurrent callers, each seeing the latest breaker
            admission = admit(policy, breaker, now)
            breaker = admission.breaker
            admissions.append(admission)
        allowed = [a for a in admissions if a.allowed]
        if breaker.state is CLOSED:
            assert len(allowed) == callers
            return
        assert len(allowed) == 1
        assert allowed[0].probe
        assert allowed[0] is admissions[0]
        if succeeded:
            breaker = record_success(policy, breaker, now, probe=True)
        else:
            breaker = record_failure(policy, breaker, now, probe=True)
            assert breaker.state is OPEN
            if policy.reset_timeout > 0:  # with no timeout it may probe again at once
                assert not any(admit(policy, breaker, now).allowed for _ in range(callers))
            now += policy.reset_timeout


# --------------------------------------------------------------------------- retry delays


@pytest.mark.parametrize(
    ("attempt", "sample", "expected"),
    [
        (1, 0.5, 1.0),
        (1, 0.0, 0.75),
        (3, 0.0, 3.0),
        (3, 0.75, 4.0 * 1.125),
        (7, 0.0, 45.0),
        (7, 0.99, 60.0),  # jitter above the cap is clamped to it
        (10_000, 0.5, 60.0),  # no overflow however many attempts
    ],
)
def test_retry_delay(attempt: int, sample: float, expected: float) -> None:
    assert retry_delay(RetryPolicy(), attempt, sample) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("attempt", "sample"),
    [(0, 0.5), (-1, 0.5), (1, 1.0), (1, -0.01), (1, math.nan), (1, math.inf)],
)
def test_retry_delay_refuses_bad_arguments(attempt: int, sample: float) -> None:
    with pytest.raises(UsageError):
        retry_delay(RetryPolicy(), attempt, sample)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_delay": -1.0},
        {"initial_delay": 61.0},
        {"max_delay": math.inf},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"jitter": math.nan},
    ],
)
def test_retry_policy_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="retry"):
        RetryPolicy(**kwargs)


retry_policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 10),
    initial_delay=st.floats(0.0, 5.0),
    max_delay=st.floats(5.0, 120.0),
    multiplier=st.floats(1.0, 4.0),
    jitter=st.floats(0.0, 1.0),
)
samples = st.floats(0.0, 1.0, exclude_max=True)


@settings(max_examples=300, deadline=None)
@given(policy=retry_policies, sample=samples)
def test_delays_grow_to_the_cap_and_never_exceed_it(policy: RetryPolicy, sample: float) -> None:
    delays = [retry_delay(policy, attempt, sample) for attempt in range(1, 80)]
    assert all(0.0 <= d <= policy.max_delay for d in delays)
    assert all(a <= b for a, b in itertools.pairwise(delays))
    for attempt, delay in enumerate(delays, start=1):
        base = min(policy.initial_delay * policy.multiplier ** (attempt - 1), policy.max_delay)
        low, high = base * (1 - policy.jitter), min(base * (1 + policy.jitter), policy.max_delay)
        assert low - 1e-9 <= delay <= high + 1e-9


@settings(max_examples=300, deadline=None)
@given(
    policy=retry_policies,
    attempt=st.integers(1, 12),
    sample=samples,
    retry_after=st.one_of(st.none(), st.floats(-5.0, 500.0)),
)
def test_next_delay(
    policy: RetryPolicy, attempt: int, sample: float, retry_after: float | None
) -> None:
    delay = next_delay(policy, attempt, sample, retry_after)
    if attempt >= policy.max_attempts:
        assert delay is None
        return
    plain = retry_delay(policy, attempt, sample)
    if retry_after is None:
        assert delay == plain
    else:
        assert delay == max(plain, retry_after)


def test_next_delay_counts_the_first_attempt() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert next_delay(policy, 1, 0.5) == 1.0
    assert next_delay(policy, 2, 0.5) == 2.0
    assert next_delay(policy, 3, 0.5) is None
    assert next_delay(RetryPolicy(max_attempts=1), 1, 0.5) is None


def test_retry_after_is_a_floor_even_above_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, max_delay=10.0)
    assert next_delay(policy, 1, 0.5, retry_after=30.0) == 30.0
    assert next_delay(policy, 1, 0.5, retry_after=0.2) == 1.0
    assert next_delay(policy, 1, 0.5, retry_after=-3.0) == 1.0
    with pytest.raises(UsageError, match="retry_after"):
        next_delay(policy, 1, 0.5, retry_after=math.nan)
