"""A second level under the look-alike package."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark

mark(__name__)


class Handler:
    pass
