"""Re-exports a class it does not define (bad input #23)."""

from __future__ import annotations

from subprocess import Popen

from onex_plugin_fixtures.canary import mark

mark(__name__)

__all__ = ["Popen"]
