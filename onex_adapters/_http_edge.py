"""The blocking HTTP edge the Consul and Vault adapters share.

py-consul and hvac are synchronous clients on ``requests``. Both adapters run them the same
way, and this module is that way, written once:

- **A bounded private thread pool under our own deadline.** :class:`Edge` runs each client call
  in a pool of ``max_workers`` threads (a hung server cannot make threads pile up) and awaits it
  under ``asyncio.timeout``; the event loop never blocks. When the deadline passes, the call is
  abandoned, not cancelled — a thread cannot be — and the caller gets ``EffectUnavailable``. The
  client's own socket timeout is set :data:`CLIENT_MARGIN` seconds longer than the deadline,
  only so that abandoned threads come back.
- **Status and headers from a response hook.** Neither client keeps the HTTP status or
  ``Retry-After`` on its exceptions, so a ``requests`` response hook records them per thread
  (:class:`Tap`) and the translation reads them from there — never from the exception's text,
  which embeds response bodies (py-consul) or the full URL with the secret path (hvac).
- **One translation pipeline.** Transport failures are read the same way for both clients
  (:func:`transport_error`): a failed TLS verification is permanent, the client's timeout and a
  broken connection are transient, named from the exception *types* in the chain
  (:func:`network_reason`). Then the adapter's own reading of its client's exceptions, then a
  fixed fallback. :func:`status_error` makes 429 and 5xx transient (``Retry-After`` honoured,
  :func:`parse_retry_after`) and every other error status permanent. The resulting error is
  built outside the ``except`` block, so no driver exception rides along as cause or context.
- **Explicit transport settings.** :func:`check_url`, :func:`check_transport` and
  :func:`config_values` are the settings checks both adapters make, each message prefixed with
  the adapter's name (``consul settings: …``); nothing is read from the environment, and the
  ``requests`` session the edge runs on ignores it (``trust_env`` off: no proxies, ``.netrc`` or
  CA bundles from it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, NamedTuple, TypeVar
from urllib.parse import urlsplit

import requests

from onex_adapters.secrets import secret_text
from onex_core.errors import EffectError, EffectRejected, EffectUnavailable, UsageError

__all__ = [
    "CLIENT_MARGIN",
    "STATUS_TEXT",
    "Edge",
    "Tap",
    "check_transport",
    "check_url",
    "config_values",
    "network_reason",
    "parse_retry_after",
    "status_error",
    "transport_error",
]

T = TypeVar("T")

CLIENT_MARGIN = 0.5  # seconds the client's own socket timeout exceeds our deadline
MAX_RETRY_AFTER = 600.0
STATUS_TEXT: Mapping[int, str] = {
    400: "bad request",
    401: "not authorized",
    403: "permission denied",
    404: "not found",
    412: "precondition failed",
    413: "request too large",
    429: "rate limited",
    500: "internal error",
    502: "bad gateway",
    503: "unavailable",
    504: "gateway timeout",
}
_NETWORK_TEXT = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (ConnectionAbortedError, "connection aborted"),
    (TimeoutError, "network timeout"),
)

# --------------------------------------------------------------------------- the runner


class Tap(threading.local):
    """The status and ``Retry-After`` of the last response seen in this thread."""

    status: int | None = None
    retry_after: str | None = None

    def reset(self) -> None:
        self.status = None
        self.retry_after = None

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.status = response.status_code
        self.retry_after = response.headers.get("Retry-After")


class _Outcome(NamedTuple):
    value: Any
    error: EffectError | None


class Edge:
    """A blocking client, its thread pool, and the one place where its errors are read.

    An adapter subclasses it, naming its ``backend`` (the errors' ``backend`` and the messages'
    prefix) and the message a call after :meth:`close` gets, and reading its client's
    exceptions in :meth:`translate`. Successful calls are logged at DEBUG on the subclass's
    module logger.

    Args:
        client: what each call's function receives.
        session: the client's ``requests`` session; the edge turns its environment lookups off
            and hooks its responses.
        timeout: our deadline for one call, in seconds.
        max_workers: the size of the thread pool.
    """

    backend: ClassVar[str]
    closed_text: ClassVar[str]

    def __init__(
        self, client: Any, session: requests.Session, *, timeout: float, max_workers: int
    ) -> None:
        self.client = client
        self.session = session
        self.session.trust_env = False
        self.tap = Tap()
        self.session.hooks["response"].append(self.tap.hook)
        self.timeout = timeout
        self.executor = ThreadPoolExecutor(max_workers, thread_name_prefix=f"onex-{self.backend}")
        self.inflight: set[asyncio.Future[_Outcome]] = set()
        self.closed = False
        self._log = logging.getLogger(type(self).__module__)

    def translate(
        self, exc: Exception, status: int | None, retry_after: str | None, where: str
    ) -> EffectError | None:
        """The adapter's reading of an exception that is not a transport failure, with the
        status and ``Retry-After`` of the last response (if any); None falls back to a fixed
        reading. ``where`` is ``"<backend>: <operation> <subject> failed"``. Runs in the pool
        thread; must never read the exception's text."""
        return None

    async def call(self, operation: str, subject: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` in the pool under our deadline.

        ``subject`` names what the call is about in messages; it must already be safe to show
        (a masked path, a service id).

        Raises:
            EffectUnavailable, EffectRejected: translated failures (no driver exception is
                attached as cause or context).
            UsageError: the edge is closed.
        """
        if self.closed:
            raise UsageError(self.closed_text)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._guarded, operation, subject, fn)
        self.inflight.add(future)
        future.add_done_callback(self.inflight.discard)
        outcome: _Outcome | None = None
        try:
            async with asyncio.timeout(self.timeout):
                outcome = await future
        except TimeoutError:
            pass
        if outcome is None:
            raise EffectUnavailable(
                f"{self.backend}: {operation} {subject} failed: "
                f"no answer within {self.timeout:g} s",
                backend=self.backend,
            )
        if outcome.error is not None:
            raise outcome.error
        self._log.debug("%s: %s %s ok", self.backend, operation, subject)
        result: T = outcome.value
        return result

    def _guarded(self, operation: str, subject: str, fn: Callable[[Any], Any]) -> _Outcome:
        self.tap.reset()
        try:
            return _Outcome(fn(self.client), None)
        except Exception as exc:
            return _Outcome(None, self._error(exc, f"{self.backend}: {operation} {subject} failed"))

    def _error(self, exc: Exception, where: str) -> EffectError:
        """The ONEX error for ``exc``. Never reads ``str(exc)``."""
        backend = self.backend
        error = transport_error(exc, where, backend)
        if error is None:
            error = self.translate(exc, self.tap.status, self.tap.retry_after, where)
        if error is not None:
            return error
        if isinstance(exc, requests.exceptions.RequestException):
            return EffectUnavailable(f"{where}: {type(exc).__name__}", backend=backend)
        return EffectRejected(f"{where}: unexpected {type(exc).__name__}", backend=backend)

    async def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for calls in flight, then release the pool and the
        connections. Calls still running are abandoned."""
        self.closed = True
        pending = [f for f in self.inflight if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, timeout))
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.session.close()


# --------------------------------------------------------------------------- translation


def transport_error(exc: Exception, where: str, backend: str) -> EffectError | None:
    """The error for a failure below HTTP — TLS, the client's timeout, the connection — or
    None when ``exc`` is not one."""
    if isinstance(exc, requests.exceptions.SSLError):
        return EffectRejected(f"{where}: TLS verification failed", backend=backend)
    if isinstance(exc, requests.exceptions.Timeout):
        return EffectUnavailable(f"{where}: the client timed out", backend=backend)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return EffectUnavailable(f"{where}: {network_reason(exc)}", backend=backend)
    return None


def status_error(
    where: str,
    status: int,
    retry_after: str | None,
    backend: str,
    texts: Mapping[int, str] = STATUS_TEXT,
) -> EffectError:
    """The ONEX error for an HTTP error status: 429 and 5xx are transient (with the server's
    ``Retry-After`` as ``retry_after``), every other status permanent. ``texts`` names the
    statuses (others are ``error``)."""
    text = f"{where}: {texts.get(status, 'error')} (HTTP {status})"
    if status == 429 or status >= 500:
        return EffectUnavailable(text, backend=backend, retry_after=parse_retry_after(retry_after))
    return EffectRejected(text, backend=backend)


def network_reason(exc: BaseException) -> str:
    """A fixed description of a network failure, from the exception types in its chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for kind, text in _NETWORK_TEXT:
            if isinstance(current, kind):
                return text
        if type(current).__name__ in ("RemoteDisconnected", "ProtocolError"):
            return "connection closed by the server"
        current = current.__cause__ or current.__context__ or _inner(current)
    return "connection failed"


def _inner(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` wraps without chaining it: urllib3 and requests keep it in
    ``args`` or ``reason``."""
    for arg in exc.args:
        if isinstance(arg, BaseException):
            return arg
        inner = getattr(arg, "reason", None)
        if isinstance(inner, BaseException):
            return inner
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), clamped to
    0 to 600; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


# --------------------------------------------------------------------------- settings


def check_url(url: object, what: str, missing: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of an ``http(s)://host[:port]`` URL (port None when absent).

    Args:
        what: the message prefix, e.g. ``consul settings``.
        missing: why nothing else supplies a URL, for the message when there is none.

    Raises:
        UsageError: no URL, another scheme, user-info, a path, query or fragment, a bad port,
            or no host.
    """
    if not isinstance(url, str) or not url:
        raise UsageError(f"{what}: url is required ({missing})")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{what}: url must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{what}: url must not carry user-info; use token")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"{what}: url must not have a path, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{what}: url has an invalid port") from None
    if not parts.hostname:
        raise UsageError(f"{what}: url has no host")
    return parts.scheme, parts.hostname, port


def check_transport(
    what: str,
    *,
    verify: object,
    allow_insecure_tls: bool,
    cert: object,
    timeout: object,
    max_workers: object,
) -> None:
    """Check the settings every HTTP adapter has: TLS verification, the client certificate,
    the deadline and the pool size.

    Raises:
        UsageError: a value is malformed or out of range, or verification is off without
            ``allow_insecure_tls``; the message names the field.
    """
    if not isinstance(verify, bool | str) or verify == "":
        raise UsageError(f"{what}: verify must be true or a CA bundle path")
    if verify is False and not allow_insecure_tls:
        raise UsageError(
            f"{what}: verify=false turns off certificate checks; "
            "set allow_insecure_tls to accept that"
        )
    if cert is not None and not (
        isinstance(cert, tuple) and len(cert) == 2 and all(isinstance(p, str) and p for p in cert)
    ):
        raise UsageError(f"{what}: cert must be a (certificate, key) pair of paths")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise UsageError(f"{what}: timeout must be a number of seconds")
    if not 0 < timeout <= 3600:
        raise UsageError(f"{what}: timeout must be between 0 and 3600 seconds")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise UsageError(f"{what}: max_workers must be an integer")
    if not 1 <= max_workers <= 64:
        raise UsageError(f"{what}: max_workers must be between 1 and 64")


def config_values(
    config: Mapping[str, Any], what: str, keys: frozenset[str], missing: str
) -> dict[str, Any]:
    """The keyword arguments for a settings class, from a configuration mapping: only known
    keys, a ``url`` present, ``token`` as a :class:`~onex_adapters.secrets.Secret` (from a
    string, a Secret or a pydantic ``SecretStr``; None when absent or empty), ``cert`` as a
    tuple.

    Raises:
        UsageError: not a mapping, an unknown key, no URL, or a token of another type.
    """
    if not isinstance(config, Mapping):
        raise UsageError(f"{what}: config must be a mapping")
    unknown = sorted(str(k) for k in config if k not in keys)
    if unknown:
        raise UsageError(f"{what}: unknown keys {unknown}")
    values = dict(config)
    if "url" not in values:
        raise UsageError(f"{what}: url is required ({missing})")
    values["token"] = secret_text(f"{what}: token", values.get("token"))
    if isinstance(values.get("cert"), list):
        values["cert"] = tuple(values["cert"])
    return values
