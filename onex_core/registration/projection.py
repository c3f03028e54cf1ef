"""A node's projection, and handling one message against it: apply, replay or skip.

The rules — replay the message that produced the stored projection from the state before it,
at the time it was first decided; skip the recently applied; record only what changed — and
the projection's layout are the generic ones of :mod:`onex_core.entities`. This module binds
them to the registration workflow: :func:`~onex_core.registration.orchestrator.decide` with its
configuration and reducer, the ``registration`` domain, and the extended-state keys that hold
datetimes.

The extended state sits at the top level of the projection's ``data``, so the deadlines
(``ack_deadline``, ``liveness_deadline``) are where a projection store's ``overdue`` scan reads
them; a deadline that no longer applies is absent, so the scan stops finding the node.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from onex_core.entities import WINDOW, Decide, EntityDecision, Handled, Layout, apply_to_projection
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.reducers import FsmReducer, FsmState
from onex_core.registration.model import DOMAIN, RegistrationConfig
from onex_core.registration.orchestrator import decide
from onex_core.registration.reducer import DATETIME_KEYS, Step

__all__ = [
    "APPLIED_WINDOW",
    "Handled",
    "decider",
    "handle",
    "layout",
    "state_of",
]

APPLIED_WINDOW: Final = WINDOW
"""How many recently applied message ids a node's projection remembers."""


def layout(domain: str = DOMAIN) -> Layout:
    """The layout of registration projections in ``domain``."""
    return Layout(domain, APPLIED_WINDOW, datetime_keys=DATETIME_KEYS)


_DEFAULT: Final = layout()


def _layout(domain: str) -> Layout:
    return _DEFAULT if domain == _DEFAULT.domain else layout(domain)


def decider(config: RegistrationConfig, reducer: FsmReducer[Step]) -> Decide:
    """:func:`~onex_core.registration.orchestrator.decide`, bound to ``config`` and ``reducer``."""

    def decide_for_node(
        state: FsmState | None, envelope: Envelope, now: datetime
    ) -> EntityDecision:
        return decide(state, envelope, now, config, reducer)

    return decide_for_node


def state_of(projection: Projection | None) -> FsmState | None:
    """The FSM state a node's projection holds (None for no projection); deadlines stored as
    ISO-8601 text become datetimes again."""
    return _DEFAULT.state_of(projection)


def handle(
    projection: Projection | None,
    envelope: Envelope,
    now: datetime,
    config: RegistrationConfig,
    reducer: FsmReducer[Step],
    *,
    partition: str | None = None,
    offset: int | None = None,
) -> Handled:
    """Handle one message for the node whose stored projection is ``projection``. Pure.

    Args:
        projection: the node's stored projection, or None.
        envelope: the message; ``entity_id`` is the node id.
        now: the runtime's time.
        config, reducer: as for :func:`~onex_core.registration.orchestrator.decide`.
        partition, offset: where the message was read (stored on the new projection).

    Returns:
        A :class:`~onex_core.entities.Handled`: applied, replayed, duplicate or unchanged.

    Raises:
        ContentError: as :func:`~onex_core.registration.orchestrator.decide`.
    """
    return apply_to_projection(
        projection,
        envelope,
        now,
        decider(config, reducer),
        layout=_layout(config.domain),
        partition=partition,
        offset=offset,
    )
