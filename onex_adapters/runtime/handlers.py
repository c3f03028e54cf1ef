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


# Both values below are built once per envelope, so their slots are set through the slot
# descriptors, which costs half of a generated frozen __init__; they are just as frozen after.


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, now: datetime, projections: ProjectionStore, record: Record) -> None:
        _set_now(self, now)
        _set_projections(self, projections)
        _set_record(self, record)


_set_now, _set_projections, _set_record = (
    getattr(HandlerContext, name).__set__ for name in HandlerContext.__slots__
)


@dataclass(frozen=True, slots=True, init=False)
class Outcome:
    """The result of handling one envelope: the law-checked outputs of the nodes that ran.

    ``note`` says, for logs and tests, why nothing happened when nothing did (a duplicate, an
    ACK in the wrong state).
    """

    outputs: tuple[Output, ...]
    note: str

    def __init__(self, outputs: tuple[Output, ...] = (), note: str = "") -> None:
        _set_outputs(self, outputs)
        _set_note(self, note)

    @classmethod
    def of(cls, *outputs: Output, note: str = "") -> Outcome:
        if cls is not Outcome:
            return cls(outputs, note)
        outcome: Outcome = _new(Outcome)  # what __init__ does, one call less
        _set_outputs(outcome, outputs)
        _set_note(outcome, note)
        return outcome

    @classmethod
    def nothing(cls, note: str = "") -> Outcome:
        return cls((), note)

    @property
    def projections(self) -> tuple[Projection, ...]:
        outputs = self.outputs
        if len(outputs) == 1:
            return outputs[0].projections
        return _flatten(o.projections for o in outputs)

    @property
    def intents(self) -> tuple[Intent, ...]:
        outputs = self.outputs
        if len(outputs) == 1:
            return outputs[0].intents
        return _flatten(o.intents for o in outputs)

    @property
    def events(self) -> tuple[Envelope, ...]:
        outputs = self.outputs
        if len(outputs) == 1:
            return outputs[0].events
        return _flatten(o.events for o in outputs)


_set_outputs, _set_note = (getattr(Outcome, name).__set__ for name in Outcome.__slots__)
_new = object.__new__


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
