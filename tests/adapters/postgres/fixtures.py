"""Finding the tests' PostgreSQL server, the same way for every test package.

libpq reads ``PG*`` variables and ``~/.pgpass`` unasked, so both are scrubbed while the server
is used; without a server a test skips with a one-line reason — except under ``CI=true``, where
a missing server fails the run instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

from onex_adapters.postgres import Pool, PostgresSettings, open_pool
from tests.adapters.postgres._server import Found, discover

CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip — or, under CI=true, fail — because a server or a tool is missing."""
    if CI:
        pytest.fail(f"PostgreSQL tests cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def scrubbed_environment(home: Path) -> Iterator[None]:
    """No ``PG*`` variables, and ``HOME`` at ``home``, for as long as the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PG"):
                patch.delenv(name)
        patch.setenv("HOME", str(home))
        yield


@contextmanager
def postgres_server(home: Path | None = None) -> Iterator[Found]:
    """The discovered server (a throwaway cluster if need be, destroyed afterwards), with the
    environment scrubbed when ``home`` is given."""
    with scrubbed_environment(home) if home is not None else _nothing():
        try:
            found = discover()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        if isinstance(found, str):
            unavailable(found)
        try:
            yield found
        finally:
            if found.cluster is not None:
                found.cluster.destroy()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class PoolsClosedPerTest:
    """For the shared port suites: each test opens its pools on a migrated schema
    (``self.open_pool()``), and :meth:`run` closes them inside the test's own event loop."""

    settings: PostgresSettings
    pools: list[Pool]

    @pytest.fixture(autouse=True)
    def _database(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.pools = []

    async def open_pool(self) -> Pool:
        pool = await open_pool(self.settings)
        self.pools.append(pool)
        return pool

    def run(self, scenario: Awaitable[Any]) -> Any:
        async def closing() -> Any:
            try:
                return await scenario
            finally:
                for pool in self.pools:
                    await pool.close()

        return asyncio.run(closing())
