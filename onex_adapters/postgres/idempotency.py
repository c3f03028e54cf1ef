"""The IdempotencyStore port in PostgreSQL, and the way to record inside an effect's transaction.

``onex_idempotency(domain, key, recorded_at)`` holds one row per finished effect; recording is
``INSERT … ON CONFLICT DO NOTHING``, so recording twice is harmless.

How the runtime uses it:

- **An effect outside PostgreSQL** (Consul, a bus publish): ``seen`` before executing, ``record``
  only after the effect succeeded. A crash between the two repeats the effect, never skips it,
  so the effect itself must tolerate a repeat (Consul registration is a put).
- **An effect that writes PostgreSQL** (registration storage): the effect and its done-mark
  commit together, so neither can exist without the other::

      async with idempotency.transaction() as conn:
          if not await idempotency.claim("postgres", str(intent.intent_id), conn=conn):
              return  # done before: the earlier transaction committed both
          await registrations.upsert_registrations(rows, conn=conn)
      # COMMIT here; an error anywhere above rolls back the writes *and* the claim

  ``claim`` inserts the key first and reports whether it was new. A second executor of the same
  intent blocks on that row until the first commits (then it sees the key and skips) or rolls
  back (then it proceeds). If the connection breaks during ``COMMIT`` the outcome is unknown;
  the runtime retries, and the retry's ``claim`` finds the key exactly when the first attempt
  committed — so an ambiguous commit never applies twice.

Rows only grow; :meth:`PostgresIdempotencyStore.forget_before` trims what is older than the
redelivery horizon (a week is ample: keys are intent ids, and a redelivery comes from the
broker's retention).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Final

from onex_adapters.postgres.errors import translating
from onex_adapters.postgres.pool import Connection, Pool, borrow, transaction
from onex_core.errors import UsageError

__all__ = ["PostgresIdempotencyStore"]

_SEEN: Final = "SELECT 1 FROM onex_idempotency WHERE domain = %s AND key = %s"
_RECORD: Final = (
    "INSERT INTO onex_idempotency (domain, key) VALUES (%s, %s) "
    "ON CONFLICT (domain, key) DO NOTHING RETURNING 1"
)
_FORGET: Final = """
DELETE FROM onex_idempotency
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM onex_idempotency WHERE recorded_at < %s LIMIT %s))
"""


class PostgresIdempotencyStore:
    """Done effects in PostgreSQL; implements the IdempotencyStore port.

    The pool belongs to the caller. Every method accepts ``conn=`` to run inside the caller's
    transaction (see the module docstring).
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def seen(self, domain: str, key: str, *, conn: Connection | None = None) -> bool:
        """Whether ``key`` was recorded in ``domain`` (and committed, or recorded in ``conn``'s
        own transaction).

        Raises:
            PostgresUnavailable, PostgresRejected: the read failed.
        """
        with translating("idempotency.seen"):
            async with borrow(self._pool, conn) as db:
                cursor = await db.execute(_SEEN, [domain, key])
                return await cursor.fetchone() is not None

    async def record(self, domain: str, key: str, *, conn: Connection | None = None) -> None:
        """Record ``key`` as done. Idempotent. Durable on return when ``conn`` is None;
        otherwise it commits with the caller's transaction.

        Raises:
            PostgresUnavailable: the write failed transiently (recording again is safe).
            PostgresRejected: the write was refused.
        """
        await self.claim(domain, key, conn=conn)

    async def claim(self, domain: str, key: str, *, conn: Connection | None = None) -> bool:
        """Record ``key``; True if this call recorded it, False if it was there already.

        Inside a transaction, a concurrent claim of the same key waits for this transaction
        to end. Raises as :meth:`record`.
        """
        with translating("idempotency.record"):
            async with borrow(self._pool, conn) as db:
                cursor = await db.execute(_RECORD, [domain, key])
                return await cursor.fetchone() is not None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside a transaction, for an effect and its :meth:`claim` to
        commit together. Raises as :func:`onex_adapters.postgres.pool.transaction`."""
        async with transaction(self._pool, "idempotency.transaction") as conn:
            yield conn

    async def forget_before(self, before: datetime, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` records made before ``before``; returns how many. Call it
        again until it returns less than ``limit``.

        Raises:
            UsageError: ``before`` is naive or ``limit`` is not positive.
            PostgresUnavailable, PostgresRejected: the delete failed; nothing was deleted.
        """
        if before.utcoffset() is None or limit <= 0:
            raise UsageError("forget_before: give an aware datetime and a positive limit")
        with translating("idempotency.forget"):
            async with borrow(self._pool) as db:
                cursor = await db.execute(_FORGET, [before, limit])
                return cursor.rowcount
