"""A private module: no class path may name it."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark

mark(__name__)


class X:
    pass
