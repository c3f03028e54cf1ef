"""A good handler whose import pulls in a sibling module, for the import audit."""

from __future__ import annotations

from onex_plugin_fixtures.canary import mark
from onex_plugin_fixtures.handlers import helper

mark(__name__)


class Handler(helper.Base):
    pass
