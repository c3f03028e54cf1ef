"""Things that are not usable handler classes, each for one refusal."""

from __future__ import annotations

import abc
from typing import Any

from onex_plugin_fixtures.canary import mark
from onex_plugin_fixtures.handlers.good import Handler

mark(__name__)


def function(intent: Any) -> None:
    return None


instance = Handler()


class Empty:
    pass


class NoExecuteNoDescribe:
    @property
    def handler_type(self) -> str:
        return "fixture"

    async def initialize(self, config: Any) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None


class SyncExecute(Handler):
    def execute(self, intent: Any) -> Any:  # type: ignore[override]
        return None


class AsyncDescribe(Handler):
    async def describe(self) -> dict[str, Any]:  # type: ignore[override]
        return {}


class ExecuteNotCallable(Handler):
    execute = "not a method"  # type: ignore[assignment]


class Abstract(Handler, abc.ABC):
    @abc.abstractmethod
    async def execute(self, intent: Any) -> Any: ...


class Concrete(Abstract):
    async def execute(self, intent: Any) -> Any:
        return None
