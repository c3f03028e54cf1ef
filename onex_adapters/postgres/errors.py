"""Driver errors become ONEX errors here, and only here.

Every call into psycopg in this package runs inside ``with translating("<operation>"):``. What
comes out is an :class:`~onex_core.errors.EffectUnavailable` (transient: the runtime retries) or
an :class:`~onex_core.errors.EffectRejected` (permanent: the runtime dead-letters), chosen by
SQLSTATE class:

=================================================  ==========  ================================
SQLSTATE                                           verdict     why
=================================================  ==========  ================================
none (connection refused, lost, timed out)         retry       the server or network is down
``08`` connection exception                        retry
``40001`` serialization, ``40P01`` deadlock,       retry       the same work will succeed later
``40003`` completion unknown
``53`` insufficient resources (``53300`` too       retry
many connections, disk full, out of memory)
``57`` operator intervention (``57P01`` admin      retry       a restart or failover
shutdown, ``57P03`` starting up, ``57014``
statement timeout) — except ``57P04``
``55P03`` lock timeout, ``55006`` object in use    retry
``25006`` read-only transaction                    retry       connected to a standby mid-failover
``58`` system error (I/O)                          retry
``22`` data, ``23`` constraint, ``28`` auth,       reject      retrying sends the same bad request
``42`` syntax or undefined object, and the rest
=================================================  ==========  ================================

*Messages never carry the server's text.* PostgreSQL echoes values: ``22P02`` says ``invalid
input syntax for type integer: "<the value>"`` and ``23505`` adds ``Key (id)=(<the value>)``,
and a value can be a secret. A message is built from the operation name, a fixed description
of the SQLSTATE and, for constraint errors, the constraint's *name* (an identifier, never a
value) — and then passes through the redactor anyway. Connection failures have no SQLSTATE
(libpq reports them as text), so their text is matched against a short list of phrases that
only *select* a fixed description; the text itself is dropped. Servers configured to answer in
another language fall through to "connection failed or lost", which is retried.

*The chained cause is scrubbed too.* The ONEX error is raised ``from`` the driver's exception
so tracebacks keep their frames, but a traceback prints the cause's ``str()``; so before
chaining, every psycopg exception in the chain has its ``args`` replaced by the sanitized text.
Its ``sqlstate`` and ``diag`` stay for debuggers; nothing ONEX logs reads ``diag``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import psycopg
import psycopg_pool

from onex_adapters.redaction import REDACTOR, Redactor
from onex_core.errors import EffectError, EffectRejected, EffectUnavailable

__all__ = [
    "BACKEND",
    "PostgresRejected",
    "PostgresUnavailable",
    "is_transient",
    "translate",
    "translating",
]

BACKEND: Final = "postgres"


class PostgresUnavailable(EffectUnavailable):
    """A transient PostgreSQL failure. ``sqlstate`` is the server's code, or None when the
    connection itself failed."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message, backend=BACKEND)
        self.sqlstate = sqlstate


class PostgresRejected(EffectRejected):
    """A permanent PostgreSQL failure (bad data, constraint, authentication, bad SQL)."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message, backend=BACKEND)
        self.sqlstate = sqlstate


# Exact codes first, then two-character classes. Descriptions are fixed text: never values.
_CODES: Final[dict[str, tuple[bool, str]]] = {
    "40001": (True, "serialization failure"),
    "40P01": (True, "deadlock detected"),
    "40003": (True, "statement completion unknown"),
    "40002": (False, "integrity constraint violation at commit"),
    "53300": (True, "too many connections"),
    "57P01": (True, "server shut down by an administrator"),
    "57P02": (True, "server crashed"),
    "57P03": (True, "server is starting up or shutting down"),
    "57P04": (False, "database was dropped"),
    "57014": (True, "statement cancelled (statement timeout)"),
    "55P03": (True, "lock not available (lock timeout)"),
    "55006": (True, "object in use"),
    "25006": (True, "read-only transaction (connected to a standby)"),
    "22P02": (False, "invalid input value"),
    "22001": (False, "value too long for its column"),
    "22003": (False, "numeric value out of range"),
    "22P05": (False, "untranslatable character"),
    "23502": (False, "not-null violation"),
    "23503": (False, "foreign-key violation"),
    "23505": (False, "unique violation"),
    "23514": (False, "check violation"),
    "28P01": (False, "authentication failed"),
    "3D000": (False, "database does not exist"),
    "3F000": (False, "schema does not exist"),
    "42P01": (False, "undefined table"),
    "42703": (False, "undefined column"),
    "42883": (False, "undefined function"),
    "42601": (False, "syntax error"),
    "42501": (False, "insufficient privilege"),
}
_CLASSES: Final[dict[str, tuple[bool, str]]] = {
    "08": (True, "connection exception"),
    "40": (True, "transaction rollback"),
    "53": (True, "insufficient resources"),
    "57": (True, "operator intervention"),
    "58": (True, "system error"),
    "22": (False, "data exception"),
    "23": (False, "integrity constraint violation"),
    "28": (False, "invalid authorization"),
    "42": (False, "syntax error or access rule violation"),
    "0A": (False, "feature not supported"),
    "25": (False, "invalid transaction state"),
    "XX": (False, "internal error"),
}
# libpq reports connection failures as text only. A phrase selects a description; the text
# itself is never used. The first entry whose every part occurs (lowercase) wins.
_PHRASES: Final[tuple[tuple[tuple[str, ...], bool, str], ...]] = (
    (("password authentication failed",), False, "authentication failed"),
    (("no pg_hba.conf entry",), False, "no pg_hba.conf entry for this client"),
    (('role "', "does not exist"), False, "role does not exist"),
    (('database "', "does not exist"), False, "database does not exist"),
    (("certificate",), False, "TLS certificate verification failed"),
    (("too many clients",), True, "too many connections"),
    (("too many connections",), True, "too many connections"),
    (("starting up",), True, "server is starting up"),
    (("shutting down",), True, "server is shutting down"),
    (("recovery mode",), True, "server is in recovery"),
    (("connection refused",), True, "connection refused"),
    (("timeout expired",), True, "connection timed out"),
    (("could not translate host name",), True, "host name lookup failed"),
    (("server closed the connection",), True, "server closed the connection"),
    (("terminating connection",), True, "server terminated the connection"),
)


def _describe_connection_failure(text: str) -> tuple[bool, str]:
    lowered = text.lower()
    for parts, retry, description in _PHRASES:
        if all(part in lowered for part in parts):
            return retry, description
    return True, "connection failed or lost"


def _classify(exc: BaseException) -> tuple[bool, str, str | None]:
    """(transient?, fixed description, sqlstate) for a driver exception."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True, "no connection available from the pool in time", None
    if isinstance(exc, psycopg_pool.PoolClosed):
        return True, "the connection pool is closed", None
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return True, "too many requests waiting for a connection", None
    if isinstance(exc, UnicodeError):
        return False, "text that cannot be encoded as UTF-8", None
    if isinstance(exc, OverflowError):
        return False, "a number too large for its column", None
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        found = _CODES.get(sqlstate) or _CLASSES.get(sqlstate[:2])
        if found is None:
            return False, "server error", sqlstate
        return found[0], found[1], sqlstate
    if isinstance(exc, psycopg.OperationalError):
        retry, description = _describe_connection_failure(str(exc))
        return retry, description, None
    if isinstance(exc, psycopg.DataError):
        return False, "a value cannot be sent to the server", None
    return False, "driver error", None


def _identifier_detail(exc: BaseException, sqlstate: str | None) -> str:
    """For constraint errors, the constraint's (or table's) name — identifiers, never values."""
    if sqlstate is None or sqlstate[:2] != "23":
        return ""
    diag = getattr(exc, "diag", None)
    name = getattr(diag, "constraint_name", None) or getattr(diag, "table_name", None)
    return f" on {name}" if isinstance(name, str) and name else ""


def translate(exc: BaseException, operation: str, *, redactor: Redactor = REDACTOR) -> EffectError:
    """The ONEX error for a driver exception raised while doing ``operation``.

    The message reads ``postgres <operation> failed: <description> [SQLSTATE <code>]``. As a
    side effect, every psycopg exception in ``exc``'s chain has its text replaced by that
    message (see the module docstring), so raise the result ``from exc``.

    Args:
        exc: what psycopg, psycopg_pool or the encoder raised.
        operation: what was being done, e.g. ``projections.put`` — safe to log.
        redactor: the redactor the message passes through.

    Returns:
        A :class:`PostgresUnavailable` or :class:`PostgresRejected`.
    """
    retry, description, sqlstate = _classify(exc)
    detail = _identifier_detail(exc, sqlstate)
    code = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
    message = redactor.redact(f"postgres {operation} failed: {description}{detail}{code}")
    _scrub_chain(exc, message)
    if retry:
        return PostgresUnavailable(message, sqlstate=sqlstate)
    return PostgresRejected(message, sqlstate=sqlstate)


def _scrub_chain(exc: BaseException, message: str) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.Error):
            current.args = (f"(scrubbed) {message}",)
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether a driver exception is worth retrying (the classification :func:`translate`
    uses), without building the error."""
    return _classify(exc)[0]


@contextmanager
def translating(operation: str, *, redactor: Redactor = REDACTOR) -> Iterator[None]:
    """Run the body; translate any psycopg, pool or encoding error into an ONEX error.

    ``EffectError`` and everything that is not a driver error (``UsageError``, cancellation)
    pass through untouched.

    Raises:
        PostgresUnavailable: a transient failure; the transaction, if any, was rolled back or
            its outcome is unknown (a commit whose answer was lost).
        PostgresRejected: a permanent failure; the transaction was rolled back.
    """
    try:
        yield
    except EffectError:
        raise
    except (psycopg.Error, UnicodeError, OverflowError) as exc:
        raise translate(exc, operation, redactor=redactor) from exc
