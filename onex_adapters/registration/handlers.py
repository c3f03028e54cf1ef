"""The registration workflow's message handlers: the orchestrator, and deadline scans on ticks.

:class:`RegistrationOrchestrator` handles every message about one node — introspection, effect
outcomes, ACK commands, heartbeats and deadline checks. It reads the node's projection, lets the
pure :func:`onex_core.registration.handle` decide (apply, replay the last message, or skip a
duplicate), and returns two law-checked outputs: the reducer's (new state, intents, and the new
projection, which the runtime writes *before* any effect runs) and the orchestrator's (events).
It writes nothing itself.

:class:`RegistrationTicks` handles runtime ticks. It asks the projection store which nodes are
past a deadline (``overdue``, strict ``deadline < now``) and emits one deadline-check command per
node and deadline, keyed by the node. It never touches a node's projection: the node's own
messages may be in flight, and only the node's orchestrator step — handled in the node's order —
may change its state. A check that arrives after a heartbeat moved the deadline is a no-op.

A projection read that fails transiently raises ``EffectUnavailable`` out of ``handle``: the
runtime retries the message with backoff (the seed's "projection query fails → retry").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from onex_adapters.runtime import HandlerContext, Outcome
from onex_core.errors import ContentError
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.reducers import FsmReducer
from onex_core.registration import Handled, RegistrationConfig, Step, deadline_checks, handle
from onex_core.registration.orchestrator import DEADLINE_KINDS

__all__ = ["Observer", "RegistrationOrchestrator", "RegistrationTicks"]

Observer = Callable[[Envelope, Handled], None]
"""Called with every message and how it was handled (for logs, demos and tests)."""


class RegistrationOrchestrator:
    """Handles every message about a node (see the module docstring).

    Args:
        reducer: the registration reducer (over the contract's machine).
        config: timing and limits.
        observe: optional; told about every message handled.
    """

    handler_id = "registration-orchestrator"

    def __init__(
        self,
        reducer: FsmReducer[Step],
        config: RegistrationConfig,
        *,
        observe: Observer | None = None,
    ) -> None:
        self.reducer = reducer
        self.config = config
        self.observe = observe

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        """Decide ``envelope`` against the node's projection.

        Raises:
            EffectUnavailable: the projection could not be read (retried by the runtime).
            ContentError: the message names another node than its key (dead-lettered).
        """
        projection = await context.projections.get(envelope.entity_id, self.config.domain)
        record = context.record
        handled = handle(
            projection,
            envelope,
            context.now,
            self.config,
            self.reducer,
            partition=f"{record.topic}:{record.partition}",
            offset=record.offset,
        )
        if self.observe is not None:
            self.observe(envelope, handled)
        decision = handled.decision
        if handled.kind == "duplicate" or not (decision.changed or handled.kind == "replayed"):
            return Outcome.nothing(decision.note)
        projections = () if handled.projection is None else (handled.projection,)
        return Outcome.of(
            Output.reducer(decision.state, decision.intents, projections),
            Output.orchestrator(events=decision.events),
            note=f"{handled.kind}: {decision.note}",
        )


def _datetime(value: object) -> datetime:
    """A deadline as a store returned it: a datetime, or ISO-8601 text from a JSON column."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ContentError("a projection deadline is neither a datetime nor ISO-8601 text")
    return value


class RegistrationTicks:
    """Turns runtime ticks into per-node deadline checks (see the module docstring).

    Args:
        config: the projection domain and the per-tick limit of overdue nodes.
    """

    handler_id = "registration-ticks"

    def __init__(self, config: RegistrationConfig) -> None:
        self.config = config

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        """Scan for passed deadlines at the runtime's ``now`` and emit the checks.

        Raises:
            EffectUnavailable: the scan failed (the runtime retries the tick).
        """
        now = context.now
        overdue: dict[str, list[tuple[str, datetime]]] = {}
        for kind, key in DEADLINE_KINDS.items():
            rows = await context.projections.overdue(
                self.config.domain, key, now, self.config.overdue_limit
            )
            overdue[kind] = [(row.entity_id, _datetime(row.data[key])) for row in rows]
        commands = deadline_checks(envelope, overdue, now)
        if not commands:
            return Outcome.nothing("no deadline has passed")
        return Outcome.of(
            Output.orchestrator(events=commands), note=f"{len(commands)} deadline check(s)"
        )
