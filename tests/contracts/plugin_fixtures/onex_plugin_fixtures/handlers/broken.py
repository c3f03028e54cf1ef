"""Module top-level code that raises, quoting this file's path."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark

mark(__name__)

raise RuntimeError(f"cannot read {__file__} or ~/.config/onex/secret.yaml (see C:\\onex\\x)")
