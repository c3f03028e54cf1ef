"""Shares a prefix with onex_plugin_fixtures but not a package boundary: never allowed."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark

mark(__name__)


class X:
    pass
