"""Imports a dependency that is not installed."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark

mark(__name__)

import onex_plugin_fixtures_absent_dependency  # noqa: E402, F401
