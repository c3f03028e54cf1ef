"""The ProjectionStore port in PostgreSQL: ``onex_projections`` and its deadline index.

*Staleness in one statement.* ``put`` is a single ``INSERT … ON CONFLICT (entity_id, domain) DO
UPDATE … WHERE <incoming is newer>``. The ``WHERE`` is :func:`onex_core.outputs.is_stale`
negated, in SQL: a higher sequence wins; at equal sequence a different partition wins (``IS
DISTINCT FROM``, so two unknown partitions are the same partition), and within one partition
only a strictly higher, known offset wins — an exact replay is refused. There is no read before
the write: two concurrent writers of one entity queue on the row lock that ``ON CONFLICT``
takes, and the second one's ``WHERE`` is checked against the first one's committed row. ``put``
is told whether the row was written by ``RETURNING``.

*Datetimes.* ``data`` is stored as JSONB in the encoding of :mod:`.jsondata`, so datetimes
come back as timezone-aware datetimes (equal to what was written) and UUIDs as UUIDs.

*Overdue, indexed.* ``overdue(domain, field, now, limit)`` must not scan every projection on
every tick. An expression index cannot serve it: the field is chosen by the caller, and casting
JSONB text to ``timestamptz`` is not immutable. So every top-level datetime of ``data`` is also
written to ``onex_projection_deadlines(entity_id, domain, field, deadline, version)`` — by the
same statement as the projection, in data-modifying CTEs that run only when the upsert wrote
— and ``overdue`` walks the index ``(domain, field, deadline, entity_id)`` in order and stops at
``limit``. Each projection row counts its writes in ``version``, each deadline row carries the
version that wrote it, and ``overdue`` joins on it: if a concurrent writer's statement could not
yet see a deadline row it should have deleted, the leftover is simply never returned, and the
next write of that entity removes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from onex_adapters.postgres.errors import translating
from onex_adapters.postgres.jsondata import datetimes, decode, encode
from onex_adapters.postgres.pool import Connection, Pool, borrow
from onex_core.errors import UsageError
from onex_core.outputs import Projection

__all__ = ["PostgresProjectionStore", "newer"]


def newer(incoming: tuple[str, str, str], current: tuple[str, str, str]) -> str:
    """The staleness rule, negated, as a SQL condition: is ``incoming`` newer than ``current``?

    Each argument names the ``(sequence, partition, offset)`` of one side as SQL expressions —
    column references or placeholders, constants of this package, never values. An offset
    comparison with an unknown (NULL) side is NULL: not newer.
    """
    (seq, part, off), (cur_seq, cur_part, cur_off) = incoming, current
    return (
        f"({seq} > {cur_seq} OR ({seq} = {cur_seq} AND "
        f"({part} IS DISTINCT FROM {cur_part} OR {off} > {cur_off})))"
    )


_PUT: Final = (
    """
WITH written AS (
    INSERT INTO onex_projections AS cur
        (entity_id, domain, state, data, sequence, event_id, partition, "offset", updated_at)
    VALUES (%(entity_id)s, %(domain)s, %(state)s, %(data)s::jsonb, %(sequence)s,
            %(event_id)s, %(partition)s, %(offset)s, %(updated_at)s)
    ON CONFLICT (entity_id, domain) DO UPDATE SET
        state = EXCLUDED.state,
        data = EXCLUDED.data,
        sequence = EXCLUDED.sequence,
        event_id = EXCLUDED.event_id,
        partition = EXCLUDED.partition,
        "offset" = EXCLUDED."offset",
        updated_at = EXCLUDED.updated_at,
        version = cur.version + 1
    WHERE """
    + newer(
        ("EXCLUDED.sequence", "EXCLUDED.partition", 'EXCLUDED."offset"'),
        ("cur.sequence", "cur.partition", 'cur."offset"'),
    )
    + """
    RETURNING entity_id, domain, version
), dropped AS (
    DELETE FROM onex_projection_deadlines AS d
    USING written AS w
    WHERE d.entity_id = w.entity_id AND d.domain = w.domain
      AND d.field <> ALL (%(fields)s::text[])
), kept AS (
    INSERT INTO onex_projection_deadlines (entity_id, domain, field, deadline, version)
    SELECT w.entity_id, w.domain, f.field, f.deadline, w.version
    FROM written AS w,
         unnest(%(fields)s::text[], %(deadlines)s::timestamptz[]) AS f(field, deadline)
    ON CONFLICT (entity_id, domain, field)
    DO UPDATE SET deadline = EXCLUDED.deadline, version = EXCLUDED.version
)
SELECT count(*) FROM written
"""
)
_COLUMNS: Final = (
    "p.entity_id, p.domain, p.state, p.data::text, p.sequence, p.event_id, p.partition, "
    'p."offset", p.updated_at'
)
_GET: Final = f"SELECT {_COLUMNS} FROM onex_projections AS p WHERE entity_id = %s AND domain = %s"
_OVERDUE: Final = f"""
SELECT {_COLUMNS}
FROM onex_projection_deadlines AS d
JOIN onex_projections AS p
  ON p.entity_id = d.entity_id AND p.domain = d.domain AND p.version = d.version
WHERE d.domain = %s AND d.field = %s AND d.deadline < %s
ORDER BY d.deadline, d.entity_id
LIMIT %s
"""


def _projection(row: Sequence[Any]) -> Projection:
    entity_id, domain, state, data, sequence, event_id, partition, offset, updated_at = row
    return Projection(
        entity_id=entity_id,
        domain=domain,
        state=state,
        data=decode(data),
        sequence=sequence,
        event_id=event_id,
        partition=partition,
        offset=offset,
        updated_at=updated_at,
    )


class PostgresProjectionStore:
    """Projections in PostgreSQL; implements the ProjectionStore port.

    The pool belongs to the caller, who opens and closes it. Every method also accepts
    ``conn=``: a connection of the caller's, perhaps inside a transaction it commits.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def get(
        self, entity_id: str, domain: str, *, conn: Connection | None = None
    ) -> Projection | None:
        """The stored projection, or None.

        Raises:
            PostgresUnavailable, PostgresRejected: the read failed.
        """
        with translating("projections.get"):
            async with borrow(self._pool, conn) as db:
                cursor = await db.execute(_GET, [entity_id, domain])
                row = await cursor.fetchone()
        return None if row is None else _projection(row)

    async def put(self, projection: Projection, *, conn: Connection | None = None) -> bool:
        """Store ``projection`` unless it is stale against the stored one — atomically, in one
        statement.

        Returns:
            True if written (durable once the statement, or the caller's transaction,
            committed); False if stale, and then nothing changed.

        Raises:
            UsageError: ``data`` holds a value JSONB cannot carry (nothing was sent).
            PostgresUnavailable: the write failed transiently; whether it committed is unknown
                only if the connection broke during the commit — putting it again is safe.
            PostgresRejected: the write was refused; nothing changed.
        """
        fields, deadlines = datetimes(projection.data)
        params = {
            "entity_id": projection.entity_id,
            "domain": projection.domain,
            "state": projection.state,
            "data": encode(projection.data),
            "sequence": projection.sequence,
            "event_id": projection.event_id,
            "partition": projection.partition,
            "offset": projection.offset,
            "updated_at": projection.updated_at,
            "fields": fields,
            "deadlines": deadlines,
        }
        with translating("projections.put"):
            async with borrow(self._pool, conn) as db:
                cursor = await db.execute(_PUT, params)
                row = await cursor.fetchone()
        return bool(row and row[0])

    async def overdue(
        self,
        domain: str,
        deadline_field: str,
        now: datetime,
        limit: int,
        *,
        conn: Connection | None = None,
    ) -> Sequence[Projection]:
        """Projections of ``domain`` whose ``data[deadline_field]`` is a datetime strictly
        before ``now``, earliest first (ties by entity id), at most ``limit``. An index scan.

        Raises:
            UsageError: ``now`` is naive, or ``limit`` is negative.
            PostgresUnavailable, PostgresRejected: the read failed.
        """
        if now.utcoffset() is None:
            raise UsageError("overdue: now must be timezone-aware")
        if limit < 0:
            raise UsageError("overdue: limit must not be negative")
        if limit == 0:
            return []
        with translating("projections.overdue"):
            async with borrow(self._pool, conn) as db:
                cursor = await db.execute(_OVERDUE, [domain, deadline_field, now, limit])
                rows = await cursor.fetchall()
        return [_projection(row) for row in rows]
