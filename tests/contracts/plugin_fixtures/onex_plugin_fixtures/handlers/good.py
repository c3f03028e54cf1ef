"""A handler that satisfies the effect handler port: the positive control."""

from __future__ import annotations

from typing import Any

from onex_plugin_fixtures.canary import mark

mark(__name__)


class Handler:
    @property
    def handler_type(self) -> str:
        return "fixture"

    async def initialize(self, config: Any) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    async def execute(self, intent: Any) -> Any:
        return None

    def describe(self) -> dict[str, Any]:
        return {"handler_type": "fixture"}


class Constructed(Handler):
    """Proves the loader never instantiates: constructing it leaves a marker."""

    def __init__(self) -> None:
        mark(f"{__name__}.Constructed")
