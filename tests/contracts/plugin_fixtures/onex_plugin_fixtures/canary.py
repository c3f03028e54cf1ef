"""Markers that prove a module was imported.

When ``ONEX_PLUGIN_CANARY_DIR`` names a directory, :func:`mark` creates ``<module>.imported``
in it. Without the variable it does nothing, so an accidental import outside the tests is
harmless.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "mark"]

ENV = "ONEX_PLUGIN_CANARY_DIR"


def mark(module: str) -> None:
    directory = os.environ.get(ENV)
    if directory:
        (Path(directory) / f"{module}.imported").touch()
