"""Small valid contracts, as YAML text, for the contract tests to start from and break."""

from __future__ import annotations

REDUCER = """\
name: door_reducer
node_type: REDUCER_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: A door that opens, closes and can be locked for good.
state_machine:
  state_machine_name: door
  initial_state: closed
  states:
    - state_name: closed
    - state_name: open
      timeout_ms: 5000
    - state_name: locked
      is_terminal: true
  transitions:
    - from_state: closed
      to_state: open
      trigger: push
      priority: 1
      conditions:
        - expression: state.jammed is_false
      actions:
        - {action_name: announce_open, action_type: intent_emission}
    - from_state: open
      to_state: closed
      trigger: pull
    - from_state: closed
      to_state: locked
      trigger: lock
  terminal_states: [locked]
intent_emission:
  enabled: true
  intents:
    - intent_type: doors.announce
      target_pattern: "speaker://lobby/{door_id}"
      action: announce_open
"""

ORCHESTRATOR = """\
name: door_orchestrator
node_type: ORCHESTRATOR_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: Routes door events.
handler_routing:
  routing_strategy: topic_match
  handlers:
    - handler: {name: HandlerDoorPushed}
      topic: onex.evt.doors.door-pushed.v1
      output_events: [onex.evt.doors.door-opened.v1]
    - handler: {name: HandlerDoorPulled}
      event_type: doors.door-pulled
event_bus:
  subscribe_topics:
    - onex.evt.doors.door-pushed.v1
    - onex.evt.doors.door-pulled.v1
  publish_topics:
    - onex.evt.doors.door-opened.v1
  dlq_topics: [onex.dlq.doors.events.v1]
  external_topics:
    - onex.evt.doors.door-pushed.v1
    - onex.evt.doors.door-pulled.v1
"""

EFFECT = """\
name: speaker_effect
node_type: EFFECT_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: Plays announcements.
handler_routing:
  routing_strategy: operation_match
  handlers:
    - operation: doors.announce
      handler: {name: SpeakerHandler}
      handler_id: effect.speaker
error_handling:
  retry_policy: {max_retries: 2, initial_delay_ms: 200, max_delay_ms: 2000,
                 exponential_base: 3, jitter: 0.2}
  circuit_breaker: {failure_threshold: 4, reset_timeout_ms: 30000, success_threshold: 2}
  timeout_ms: 1500
capabilities:
  - name: announcements.play
"""

HANDLER = """\
handler_id: effect.speaker
name: speaker
contract_version: {major: 1, minor: 0, patch: 0}
description: Talks to the lobby speaker.
descriptor:
  node_archetype: effect
  timeout_ms: 2000
  retry_policy: {enabled: true, max_retries: 2, backoff_strategy: fixed, base_delay_ms: 500,
                 max_delay_ms: 500}
  circuit_breaker: {enabled: true, failure_threshold: 3, success_threshold: 1, timeout_ms: 10000}
capability_outputs: [announcements.play]
handler_class: doorapp.handlers.speaker:SpeakerHandler
intent_types: [doors.announce]
"""

ALL = {"reducer": REDUCER, "orchestrator": ORCHESTRATOR, "effect": EFFECT, "handler": HANDLER}


def edit(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced (fails loudly if it is not there)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)
