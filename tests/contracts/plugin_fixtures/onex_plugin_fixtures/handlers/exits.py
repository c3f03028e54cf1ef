"""Module top-level code that calls sys.exit."""

from __future__ import annotations

import sys

from onex_plugin_fixtures.canary import mark

mark(__name__)

sys.exit(3)
