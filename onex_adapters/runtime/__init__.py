"""The asyncio runtime host: poll → decode → route → handle → apply → commit."""

from onex_adapters.runtime.dlq import Attempt, DeadLetter, dead_letter
from onex_adapters.runtime.effects import EffectBinding, EffectExecutor, EffectReport
from onex_adapters.runtime.entity import EntityOrchestrator
from onex_adapters.runtime.handlers import HandlerContext, MessageHandler, Outcome
from onex_adapters.runtime.host import RuntimeConfig, RuntimeHost, RuntimeStats, envelope_headers
from onex_adapters.runtime.ids import IdSource, RandomIds, SeededIds
from onex_adapters.runtime.ticks import RUNTIME_TICK_TOPIC, TickSource

__all__ = [
    "RUNTIME_TICK_TOPIC",
    "Attempt",
    "DeadLetter",
    "EffectBinding",
    "EffectExecutor",
    "EffectReport",
    "EntityOrchestrator",
    "HandlerContext",
    "IdSource",
    "MessageHandler",
    "Outcome",
    "RandomIds",
    "RuntimeConfig",
    "RuntimeHost",
    "RuntimeStats",
    "SeededIds",
    "TickSource",
    "dead_letter",
    "envelope_headers",
]
