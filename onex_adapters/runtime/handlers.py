"""What the runtime calls: message handlers, and what they give back.

A *message handler* is the code behind a route: it receives one decoded envelope and returns an
:class:`Outcome` — the outputs of the nodes it ran, each built under the node-kind output law
(:class:`onex_core.outputs.Output`). An orchestrator handler typically reads a projection,
calls a pure reducer, and returns two outputs: the reducer's (new projection and intents) and its
own (events, perhaps more intents). The handler performs no I/O other than reading through the
context: the runtime applies the outcome — projections, then intents, then events — and commits
only after all of it succeeded.

Handlers signal failure by raising: an ``EffectUnavailable`` (a projection read that timed out)
makes the runtime retry the envelope with backoff; a ``ContentError`` dead-letters it at once;
anything else is a bug in the handler and dead-letters it too, with the error's type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from onex_core.intents import Intent
from onex_core.messages import Envelope
from onex_core.outputs import Output, Projection
from onex_core.ports import ProjectionStore, Record

__all__ = ["HandlerContext", "MessageHandler", "Outcome"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler may know besides the envelope.

    Attributes:
        now: the runtime's authority time for this envelope (timezone-aware).
        projections: read access to projections (handlers must not write; the runtime does).
        record: where the envelope was read from (topic, partition, offset).
    """

    now: datetime
    projections: ProjectionStore
    record: Record


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of handling one envelope: the law-checked outputs of the nodes that ran.

    ``note`` says, for logs and tests, why nothing happened when nothing did (a duplicate, an
    ACK in the wrong state).
    """

    outputs: tuple[Output, ...] = ()
    note: str = ""

    @classmethod
    def of(cls, *outputs: Output, note: str = "") -> Outcome:
        return cls(tuple(outputs), note)

    @classmethod
    def nothing(cls, note: str = "") -> Outcome:
        return cls((), note)

    @property
    def projections(self) -> tuple[Projection, ...]:
        return _flatten(o.projections for o in self.outputs)

    @property
    def intents(self) -> tuple[Intent, ...]:
        return _flatten(o.intents for o in self.outputs)

    @property
    def events(self) -> tuple[Envelope, ...]:
        return _flatten(o.events for o in self.outputs)


def _flatten(parts: Iterable[tuple[T, ...]]) -> tuple[T, ...]:
    out: list[T] = []
    for part in parts:
        out.extend(part)
    return tuple(out)


@runtime_checkable
class MessageHandler(Protocol):
    """The code behind a route. ``handler_id`` is the id route tables name."""

    @property
    def handler_id(self) -> str: ...

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome: ...
