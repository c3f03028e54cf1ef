"""PostgreSQL: projections, idempotency records and registration storage.

Needs the ``postgres`` extra (``psycopg[binary]``, ``psycopg-pool``). A typical start-up::

    settings = PostgresSettings.from_dsn(dsn, schema="onex")   # the password is now redacted
    await migrate(settings)                                     # idempotent; serialized
    pool = await open_pool(settings)
    projections = PostgresProjectionStore(pool)
    idempotency = PostgresIdempotencyStore(pool)
    registrations = RegistrationStorage(pool)
    ...
    await pool.close()

Modules: :mod:`.pool` (settings, the pool, transactions), :mod:`.errors` (driver errors become
``EffectUnavailable``/``EffectRejected`` here and nowhere else), :mod:`.migrations`,
:mod:`.projections`, :mod:`.idempotency`, :mod:`.registrations`, and :mod:`.jsondata` (how
datetimes and UUIDs survive JSONB).
"""

from __future__ import annotations

from onex_adapters.postgres.errors import (
    PostgresRejected,
    PostgresUnavailable,
    translate,
    translating,
)
from onex_adapters.postgres.idempotency import PostgresIdempotencyStore
from onex_adapters.postgres.migrations import Migration, MigrationConflict, migrate
from onex_adapters.postgres.pool import (
    Connection,
    Pool,
    PostgresSettings,
    connect,
    open_pool,
    transaction,
)
from onex_adapters.postgres.projections import PostgresProjectionStore
from onex_adapters.postgres.registrations import (
    KEEP,
    RegistrationRow,
    RegistrationStorage,
    RegistrationUpdate,
)

__all__ = [
    "KEEP",
    "Connection",
    "Migration",
    "MigrationConflict",
    "Pool",
    "PostgresIdempotencyStore",
    "PostgresProjectionStore",
    "PostgresRejected",
    "PostgresSettings",
    "PostgresUnavailable",
    "RegistrationRow",
    "RegistrationStorage",
    "RegistrationUpdate",
    "connect",
    "migrate",
    "open_pool",
    "transaction",
    "translate",
    "translating",
]
