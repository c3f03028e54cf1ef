"""An orchestrator for one kind of entity: read its projection, decide, return the outcome.

:class:`EntityOrchestrator` is the message handler most workflows need. For each message it
reads the entity's projection (the message's ``entity_id`` in the layout's domain) through the
handler context, lets :func:`onex_core.entities.apply_to_projection` apply the workflow's pure
decision — or replay the message that produced the projection, or skip a duplicate — and
returns up to two law-checked outputs: the reducer's (the new state, its intents and the new
projection, which the runtime writes *before* any intent runs) and the orchestrator's (the
events). It writes nothing itself.

A projection read that fails transiently raises ``EffectUnavailable`` out of :meth:`handle`: the
runtime retries the message with backoff. What ``decide`` raises comes out unchanged (a
``ContentError`` dead-letters the message).
"""

from __future__ import annotations

from collections.abc import Callable

from onex_adapters.runtime.handlers import HandlerContext, Outcome
from onex_core.entities import Decide, Handled, Layout, apply_to_projection
from onex_core.messages import Envelope
from onex_core.outputs import Output

__all__ = ["EntityOrchestrator", "Observer"]

Observer = Callable[[Envelope, Handled], None]
"""Told about every message and how it was handled (for logs, demos and tests)."""


class EntityOrchestrator:
    """The handler that decides every message about one kind of entity (module docstring).

    Args:
        handler_id: the handler's id (for logs; the route table decides what reaches it).
        layout: the projection domain, or a full :class:`~onex_core.entities.Layout`.
        decide: the workflow's pure decision.
        observe: optional; told about every message handled.

    Raises:
        UsageError: ``layout`` is an empty domain.
    """

    def __init__(
        self,
        handler_id: str,
        layout: str | Layout,
        decide: Decide,
        *,
        observe: Observer | None = None,
    ) -> None:
        self.handler_id = handler_id
        self.layout = layout if isinstance(layout, Layout) else Layout(layout)
        self.decide = decide
        self.observe = observe

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        """Decide ``envelope`` against its entity's projection.

        Raises:
            EffectUnavailable: the projection could not be read (retried by the runtime).
            ContentError: ``decide`` refused the message (dead-lettered).
        """
        layout = self.layout
        projection = await context.projections.get(envelope.entity_id, layout.domain)
        record = context.record
        handled = apply_to_projection(
            projection,
            envelope,
            context.now,
            self.decide,
            layout=layout,
            partition=f"{record.topic}:{record.partition}",
            offset=record.offset,
        )
        if self.observe is not None:
            self.observe(envelope, handled)
        decision = handled.decision
        note = f"{handled.kind}: {decision.note}"
        if handled.kind == "duplicate":
            return Outcome.nothing(note)
        written = () if handled.projection is None else (handled.projection,)
        intents, events = decision.intents, decision.events
        if written or intents:
            reduced = Output.reducer(decision.state, intents, written)
            if events:
                return Outcome.of(reduced, Output.orchestrator(events=events), note=note)
            return Outcome.of(reduced, note=note)
        if events:
            return Outcome.of(Output.orchestrator(events=events), note=note)
        return Outcome.nothing(note)
