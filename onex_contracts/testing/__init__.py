"""Property-testing helpers for reducers built on ONEX contracts.

One of the three ways ONEX is used is to property-test reducers in isolation: the state machine
is in a contract, so the contract says what sequences of triggers are legal, what payloads the
guards accept, and which effects serve which intents. This package turns that into Hypothesis
strategies and ready checks.

Strategies (drawn from a compiled :class:`~onex_core.fsm.Machine` or a guard):

- :func:`event_sequences` — walks of the machine from its initial state, every event accepted,
  with payloads built to satisfy the guards on the way;
- :func:`invalid_sequences` — walks with illegal events mixed in (unknown triggers, triggers
  with no transition from the current state, payloads that break the guards);
- :func:`any_triggers` — anything at all, each event annotated with what the machine did;
- :func:`payloads_satisfying` / :func:`payloads_breaking` — payloads that make guards true or
  false, for every operator of the guard language.

Each drawn :class:`Event` carries its trigger, its payload, and the states before and after it
(``after is None``: refused), as :func:`~onex_core.fsm.fire` decided.

Checks (plain functions raising ``AssertionError``; usable in any test):
:func:`check_deterministic`, :func:`check_illegal_triggers_leave_state_untouched`,
:func:`check_every_intent_has_an_effect`, :func:`check_terminal_states_are_final`; and
:func:`reducer_properties`, which bundles them into one Hypothesis test::

    from onex_contracts.testing import reducer_properties

    test_order_reducer = reducer_properties(reducer, machine, make=to_envelope,
                                            contracts="contracts/")

This package needs Hypothesis, which the ``testing`` extra installs
(``pip install 'onex-workflows[testing]'``). Nothing else in ONEX imports it: neither
``onex_core`` nor ``import onex_contracts`` pulls Hypothesis in.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401 - imported first to fail with a useful message
except ImportError as exc:  # pragma: no cover - the test suite always has Hypothesis
    raise ImportError(
        "onex_contracts.testing needs Hypothesis; install the 'testing' extra: "
        "pip install 'onex-workflows[testing]'"
    ) from exc

from onex_contracts.testing._checks import (
    Make,
    check_deterministic,
    check_every_intent_has_an_effect,
    check_illegal_triggers_leave_state_untouched,
    check_terminal_states_are_final,
    clone,
    executors,
)
from onex_contracts.testing._guards import (
    GuardLike,
    json_values,
    payloads_breaking,
    payloads_satisfying,
)
from onex_contracts.testing._properties import reducer_properties
from onex_contracts.testing._walks import (
    Event,
    Payloads,
    any_triggers,
    event_sequences,
    invalid_sequences,
)

__all__ = [
    "Event",
    "GuardLike",
    "Make",
    "Payloads",
    "any_triggers",
    "check_deterministic",
    "check_every_intent_has_an_effect",
    "check_illegal_triggers_leave_state_untouched",
    "check_terminal_states_are_final",
    "clone",
    "event_sequences",
    "executors",
    "invalid_sequences",
    "json_values",
    "payloads_breaking",
    "payloads_satisfying",
    "reducer_properties",
]
