"""Re-exports a good handler from a sibling module, inside the allowed package."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark
from onex_plugin_fixtures.handlers.good import Handler

mark(__name__)

__all__ = ["Handler"]
