"""The node-registration domain, pure: what a node says, what the workflow decides.

- :mod:`~onex_core.registration.model` — topics, intent types, timing
  (:class:`RegistrationConfig`) and the validated introspection (:class:`NodeInfo`).
- :mod:`~onex_core.registration.reducer` — the contract's state machine as a reducer over
  :class:`Step` values, with the extended state and the intent builders.
- :mod:`~onex_core.registration.orchestrator` — :func:`decide`: one message → steps, intents and
  events; :func:`deadline_checks` for runtime ticks.
- :mod:`~onex_core.registration.projection` — :func:`decide` bound as an entity decision
  (:func:`decider`), and :func:`handle`, which applies a message, replays the last one, or skips
  a duplicate, by the generic rules of :mod:`onex_core.entities`.

Everything here is standard library only, synchronous and clock-free: ``now`` comes in as data.
"""

from onex_core.registration.model import NodeInfo, RegistrationConfig, parse_introspection
from onex_core.registration.orchestrator import Decision, deadline_checks, decide
from onex_core.registration.projection import Handled, decider, handle, state_of
from onex_core.registration.reducer import Step, check_limits, registration_reducer

__all__ = [
    "Decision",
    "Handled",
    "NodeInfo",
    "RegistrationConfig",
    "Step",
    "check_limits",
    "deadline_checks",
    "decide",
    "decider",
    "handle",
    "parse_introspection",
    "registration_reducer",
    "state_of",
]
