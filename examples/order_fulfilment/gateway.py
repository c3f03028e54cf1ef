"""The payment effect: an in-memory payment gateway that fails now and then, reproducibly.

:class:`InMemoryPaymentGateway` implements the one effect-handler port
(:class:`onex_core.ports.EffectHandler`) for ``payment.capture`` intents. Like a real gateway, it
takes an *idempotency key* — the intent id — with every capture: a capture it already made is
answered with the same capture, never charged again. That is what makes retries safe when an
answer is lost.

How it misbehaves, all decided by a seeded random source so that a run is reproducible:

- an attempt fails transiently (``EffectUnavailable``: the runtime retries it) with probability
  ``unavailable_rate``;
- an attempt charges, then answers too late (after ``slow_seconds``, past the handler
  contract's 2 s timeout) with probability ``slow_rate``: the runtime times the attempt out and
  retries, and the retry finds the capture already made;
- instruments in ``issuer_down`` always fail transiently: their captures exhaust the retries,
  and the runtime dead-letters them;
- instruments in ``declined`` are refused for good (``EffectRejected``): dead-lettered at once.

Every answer takes ``latency`` seconds (of virtual time, in the example).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from onex_core.errors import EffectRejected, EffectUnavailable
from onex_core.intents import Intent
from onex_core.ports import EffectResult, HandlerDescription

__all__ = ["Capture", "InMemoryPaymentGateway"]

_BACKEND: Final = "payment-gateway"


@dataclass(frozen=True, slots=True)
class Capture:
    """Money taken: from which order, how much, in which currency."""

    capture_id: str
    order_id: str
    amount: float
    currency: str


@dataclass
class InMemoryPaymentGateway:
    """A payment gateway in memory (see the module docstring)."""

    seed: int = 0
    unavailable_rate: float = 0.25
    slow_rate: float = 0.1
    slow_seconds: float = 5.0
    latency: float = 0.05
    issuer_down: frozenset[str] = frozenset()
    declined: frozenset[str] = frozenset()
    captures: dict[str, Capture] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    handler_type: str = _BACKEND

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    def describe(self) -> HandlerDescription:
        return HandlerDescription(_BACKEND, ("payment.capture",), ("payments.capture",))

    def charged(self, order_id: str) -> list[Capture]:
        """Every capture made for ``order_id`` (a correct run has at most one)."""
        return [c for c in self.captures.values() if c.order_id == order_id]

    async def execute(self, intent: Intent) -> EffectResult:
        """Capture the intent's amount, once per intent id.

        Raises:
            EffectUnavailable: the gateway failed transiently (retry).
            EffectRejected: the payload is malformed, or the instrument was declined.
        """
        payload = intent.payload
        order_id, amount = payload.get("order_id"), payload.get("amount")
        currency, instrument = payload.get("currency"), payload.get("instrument")
        if not (
            isinstance(order_id, str)
            and isinstance(amount, int | float)
            and not isinstance(amount, bool)
            and isinstance(currency, str)
            and isinstance(instrument, str)
        ):
            raise EffectRejected("malformed payment.capture payload", backend=_BACKEND)
        key = str(intent.intent_id)
        self.attempts[order_id] = self.attempts.get(order_id, 0) + 1
        await asyncio.sleep(self.latency)
        done = self.captures.get(key)
        if done is not None:  # the idempotency key: answer with the capture already made
            return EffectResult(intent.intent_id, {"capture_id": done.capture_id, "repeat": True})
        if instrument in self.declined:
            raise EffectRejected("the issuer declined the payment", backend=_BACKEND)
        roll = self._random.random()
        if instrument in self.issuer_down or roll < self.unavailable_rate:
            raise EffectUnavailable("the payment gateway is unavailable", backend=_BACKEND)
        capture = Capture(f"cap_{len(self.captures) + 1:04d}", order_id, float(amount), currency)
        self.captures[key] = capture
        if roll < self.unavailable_rate + self.slow_rate:
            await asyncio.sleep(self.slow_seconds)  # charged, but the answer comes too late
        return EffectResult(intent.intent_id, {"capture_id": capture.capture_id})
