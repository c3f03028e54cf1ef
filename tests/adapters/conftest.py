"""Every adapter test runs without ambient credentials.

Client libraries read credentials nobody asked for: hvac takes ``VAULT_TOKEN`` or
``~/.vault-token``, py-consul lets ``CONSUL_HTTP_TOKEN`` override an explicit token, and libpq
reads ``PG*`` and ``~/.pgpass``. So for each test here, the ``VAULT_*``, ``CONSUL_*`` and ``PG*``
variables are removed and ``HOME`` is an empty temporary directory. (The opt-in real-server
variables are named ``ONEX_TEST_*`` and are left alone.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_SCRUBBED = ("VAULT_", "CONSUL_", "PG")


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(_SCRUBBED):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
