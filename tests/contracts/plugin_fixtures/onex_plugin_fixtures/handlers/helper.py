"""A base class that satisfies the effect handler port."""

from __future__ import annotations

from typing import Any

from onex_plugin_fixtures.canary import mark

mark(__name__)


class Base:
    handler_type = "fixture"

    async def initialize(self, config: Any) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    async def execute(self, intent: Any) -> Any:
        return None

    def describe(self) -> dict[str, Any]:
        return {}
