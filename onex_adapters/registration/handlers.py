"""The registration workflow's message handlers: the orchestrator, and deadline scans on ticks.

:class:`RegistrationOrchestrator` handles every message about one node — introspection, effect
outcomes, ACK commands, heartbeats and deadline checks. It is an
:class:`~onex_adapters.runtime.EntityOrchestrator` over the registration decision
(:func:`onex_core.registration.decider`) and the registration projection layout: it reads the
node's projection, applies the message, replays the last one, or skips a duplicate, and returns
the reducer's output (new state, intents, and the new projection, which the runtime writes
*before* any effect runs) and the orchestrator's (events). It writes nothing itself.

:class:`RegistrationTicks` handles runtime ticks. It asks the projection store which nodes are
past a deadline (``overdue``, strict ``deadline < now``) and emits one deadline-check command per
node and deadline, keyed by the node. It never touches a node's projection: the node's own
messages may be in flight, and only the node's orchestrator step — handled in the node's order —
may change its state. A check that arrives after a heartbeat moved the deadline is a no-op.

A projection read that fails transiently raises ``EffectUnavailable`` out of ``handle``: the
runtime retries the message with backoff (the seed's "projection query fails → retry").
"""

from __future__ import annotations

from datetime import datetime

from onex_adapters.runtime import EntityOrchestrator, HandlerContext, Outcome
from onex_adapters.runtime.entity import Observer
from onex_core.errors import ContentError
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.reducers import FsmReducer
from onex_core.registration import RegistrationConfig, Step, deadline_checks, decider
from onex_core.registration.orchestrator import DEADLINE_KINDS
from onex_core.registration.projection import layout

__all__ = ["Observer", "RegistrationOrchestrator", "RegistrationTicks"]


class RegistrationOrchestrator(EntityOrchestrator):
    """Handles every message about a node (see the module docstring).

    Args:
        reducer: the registration reducer (over the contract's machine).
        config: timing and limits, and the projection domain.
        observe: optional; told about every message handled.
    """

    def __init__(
        self,
        reducer: FsmReducer[Step],
        config: RegistrationConfig,
        *,
        observe: Observer | None = None,
    ) -> None:
        super().__init__(
            "registration-orchestrator",
            layout(config.domain),
            decider(config, reducer),
            observe=observe,
        )
        self.reducer = reducer
        self.config = config


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
