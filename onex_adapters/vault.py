"""Vault: KV v2 secrets and the life of the token that reads them.

:class:`VaultSecrets` reads, writes and lists the versions of KV v2 secrets through hvac, and
keeps its token alive. hvac is synchronous (``requests``), so every call runs in a small,
bounded private thread pool under the adapter's own deadline (``asyncio.timeout``); the event
loop never blocks, and the client's socket timeout is set slightly longer than the deadline only
so abandoned threads come back (the edge it shares with the Consul adapter,
:mod:`onex_adapters._http_edge`).

**The token is configuration, never the environment.** Given no token, hvac falls back to
``VAULT_TOKEN`` and then to ``~/.vault-token``; given no URL, to ``VAULT_ADDR``; given no
certificate, to ``VAULT_CLIENT_CERT``. The adapter refuses to start without a configured URL
and token, and always passes the token, URL, verification and client certificate (an empty one
when none is configured) explicitly, on a ``requests`` session that ignores the environment
(``trust_env`` off: no proxies, ``.netrc`` or CA bundles from it).

**Token lifetime.** :meth:`VaultSecrets.start` looks the token up (``lookup-self``) and records
its TTL as a :class:`TokenLease`. :meth:`VaultSecrets.renew_if_due` renews it (``renew-self``)
once two thirds of the TTL have passed; the caller runs it on its own tick and re-resolves the
configuration after a renewal if it wants rotated values. A call answered 401 or 403 gets one
recovery — the ``reauthenticate`` callback when one is given (a fresh token, e.g. from a file
or a login), otherwise a ``renew-self`` — and is then tried once more; a second refusal is
permanent (:class:`AccessDenied`).

**Errors are translated in one place** (the edge's transport reading, then
:meth:`_Client.translate`). hvac's exception text contains the method and the full URL, secret
path included, so it is never used: messages are built from the operation, the path with its
middle masked (:func:`~onex_adapters.secrets.mask_path`), the HTTP status and a few known Vault
phrases (``Vault is sealed``, the check-and-set messages), and no driver exception is chained.
hvac parses Vault's ``{"errors": [...]}`` only when the ``Content-Type`` is exactly
``application/json``; the adapter reads the status itself (a response hook) and the phrases
from the body, so a proxy's charset suffix changes nothing.

========================================  =====================================================
answer                                    error
========================================  =====================================================
connection refused/reset, client timeout  ``EffectUnavailable``
our deadline                              ``EffectUnavailable``
429                                       ``EffectUnavailable`` with ``retry_after``
500, 501, 502, 503 (also ``sealed``)      ``EffectUnavailable`` (``Retry-After`` honoured)
400 check-and-set mismatch                :class:`WriteConflict` (permanent)
401, 403 (after one recovery)             :class:`AccessDenied` (permanent)
400, 404, 412, other 4xx; TLS failure     ``EffectRejected``
========================================  =====================================================

Every value read or written becomes a :class:`~onex_adapters.secrets.Secret`, registered with
the redactor before it is returned. Values that are not strings in Vault are returned as their
compact JSON text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import requests

from onex_adapters._http_edge import (
    CLIENT_MARGIN,
    STATUS_TEXT,
    Edge,
    check_transport,
    check_url,
    config_values,
    parse_retry_after,
    status_error,
)
from onex_adapters.clock import Clock, SystemClock
from onex_adapters.secrets import Secret, mask_path, secret_text
from onex_core.errors import EffectError, EffectRejected, EffectUnavailable, UsageError

__all__ = [
    "AccessDenied",
    "SecretVersions",
    "TokenLease",
    "VaultSecrets",
    "VaultSettings",
    "VersionState",
    "WriteConflict",
]

_BACKEND = "vault"
_WHAT = "vault settings"
_NO_ENVIRONMENT = "VAULT_ADDR is never read"
_log = logging.getLogger(__name__)
T = TypeVar("T")

_SEGMENT = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9._-]+\Z")
_KEY = re.compile(r"[A-Za-z0-9._-]{1,256}\Z")
_DURATION = re.compile(r"(?:\d+(?:ns|us|µs|ms|s|m|h))+\Z")
_SEALED = "Vault is sealed"
_CAS_MISMATCH = "check-and-set parameter did not match the current version"
_CAS_REQUIRED = "check-and-set parameter required for this call"
_CONFIG_KEYS = frozenset(
    {
        "url",
        "token",
        "mount",
        "namespace",
        "verify",
        "cert",
        "timeout",
        "renew_increment",
        "max_workers",
        "allow_insecure_tls",
    }
)
_STATUS_OF = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}
_STATUS_TEXT = {**STATUS_TEXT, 501: "not initialized"}


class AccessDenied(EffectRejected):
    """Vault refused the token (401 or 403), also after one renewal or re-authentication."""


class WriteConflict(EffectRejected):
    """A check-and-set write lost: the secret's current version is not the ``cas`` given."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class VaultSettings:
    """How to reach Vault. Every field is explicit; nothing comes from the environment.

    Args:
        url: ``http(s)://host[:port]`` — no path, query or user-info.
        token: the Vault token (required). ``repr`` shows ``***``.
        mount: the KV v2 mount :meth:`VaultSecrets.read` and friends use by default.
        namespace: the Vault Enterprise namespace, if any.
        verify: True, or the path of a CA bundle. False only with ``allow_insecure_tls``.
        cert: the client certificate and key paths, for mutual TLS.
        timeout: our deadline for one call, in seconds.
        renew_increment: the increment asked for on renewal (a Go duration such as ``1h``);
            None lets Vault choose.
        max_workers: the size of the thread pool the blocking client runs in.

    Raises:
        UsageError: a field is missing, malformed or insecure; the message names the field.
    """

    url: str
    token: Secret
    mount: str = "secret"
    namespace: str | None = None
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    timeout: float = 5.0
    renew_increment: str | None = None
    max_workers: int = 4
    allow_insecure_tls: bool = False

    def __post_init__(self) -> None:
        check_url(self.url, _WHAT, _NO_ENVIRONMENT)
        if not isinstance(self.token, Secret):
            raise UsageError(
                "vault settings: token is required (VAULT_TOKEN and ~/.vault-token are never read)"
            )
        _check_path(self.mount, "vault settings: mount")
        if self.namespace is not None and not (
            isinstance(self.namespace, str) and _path_ok(self.namespace)
        ):
            raise UsageError("vault settings: namespace must be a path of plain segments")
        check_transport(
            _WHAT,
            verify=self.verify,
            allow_insecure_tls=self.allow_insecure_tls,
            cert=self.cert,
            timeout=self.timeout,
            max_workers=self.max_workers,
        )
        if self.renew_increment is not None and not (
            isinstance(self.renew_increment, str) and _DURATION.match(self.renew_increment)
        ):
            raise UsageError("vault settings: renew_increment must be a Go duration like '1h'")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VaultSettings:
        """Settings from a configuration mapping with the field names above. ``token`` may be
        a string, a :class:`~onex_adapters.secrets.Secret` or a pydantic ``SecretStr``.

        Raises:
            UsageError: an unknown key, a missing URL or token, or an invalid value.
        """
        return cls(**config_values(config, _WHAT, _CONFIG_KEYS, _NO_ENVIRONMENT))


def _path_ok(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and all(_SEGMENT.match(part) for part in parts)


def _check_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not _path_ok(path):
        raise UsageError(
            f"{what} must be '/'-separated segments of letters, digits, '-', '_' and '.'"
        )
    return path


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class TokenLease:
    """What ``lookup-self`` or ``renew-self`` said about the token, and when (on the
    adapter's monotonic clock). ``ttl`` 0 means the token never expires."""

    ttl: float
    renewable: bool
    obtained_at: float
    policies: tuple[str, ...] = ()

    @property
    def renew_at(self) -> float:
        """When to renew: two thirds of the TTL after it was obtained (never for ttl 0)."""
        return float("inf") if self.ttl <= 0 else self.obtained_at + self.ttl * 2 / 3

    @property
    def expires_at(self) -> float:
        return float("inf") if self.ttl <= 0 else self.obtained_at + self.ttl


@dataclass(frozen=True, slots=True)
class VersionState:
    """One version of a secret, from its metadata."""

    created_time: str
    deletion_time: str
    destroyed: bool


@dataclass(frozen=True, slots=True)
class SecretVersions:
    """The version history of one secret (``read_secret_metadata``)."""

    current_version: int
    oldest_version: int
    versions: Mapping[int, VersionState]


def _lease(ttl: Any, answer: Mapping[str, Any], at: float) -> TokenLease:
    """The lease a ``lookup-self`` (``data``) or ``renew-self`` (``auth``) answer describes."""
    return TokenLease(
        float(ttl or 0), bool(answer.get("renewable")), at, tuple(answer.get("policies") or ())
    )


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------- the blocking edge


class _Client(Edge):
    """hvac on the shared edge."""

    backend = _BACKEND
    closed_text = "vault client is closed"

    def translate(
        self, exc: Exception, status: int | None, retry_after: str | None, where: str
    ) -> EffectError | None:
        """hvac's part of the translation (the edge reads the transport first). Never reads
        ``str(exc)`` or ``exc.url``."""
        if isinstance(exc, hvac.exceptions.VaultError):
            return _vault_error(exc, status, retry_after, where)
        if status is not None and status >= 400:
            return status_error(where, status, retry_after, _BACKEND, _STATUS_TEXT)
        if isinstance(exc, KeyError | TypeError | ValueError | AttributeError):
            return EffectUnavailable(f"{where}: malformed answer from Vault", backend=_BACKEND)
        return None


def _open_client(settings: VaultSettings) -> _Client:
    """The hvac client on the edge, on a session of our own with every credential passed
    explicitly."""
    session = requests.Session()
    session.verify = settings.verify
    session.cert = settings.cert
    client = hvac.Client(
        url=settings.url,
        token=settings.token.reveal(),
        # An empty pair, not None: hvac replaces None with VAULT_CLIENT_CERT.
        cert=settings.cert or (),
        verify=settings.verify,
        timeout=settings.timeout + CLIENT_MARGIN,
        session=session,
        namespace=settings.namespace,
    )
    return _Client(client, session, timeout=settings.timeout, max_workers=settings.max_workers)


def _vault_error(
    exc: hvac.exceptions.VaultError, status: int | None, retry_after: str | None, where: str
) -> EffectError:
    """The error for an exception hvac raised: from the status (ours, else the exception's
    class) and Vault's phrases."""
    code = status if status is not None and status >= 400 else _STATUS_OF.get(type(exc))
    phrases = _phrases(exc)
    if code == 400 and _CAS_MISMATCH in phrases:
        return WriteConflict(
            f"{where}: check-and-set did not match the current version", backend=_BACKEND
        )
    if code == 400 and _CAS_REQUIRED in phrases:
        return EffectRejected(f"{where}: the secret requires check-and-set", backend=_BACKEND)
    if code in (401, 403):
        return AccessDenied(f"{where}: permission denied (HTTP {code})", backend=_BACKEND)
    if code == 503 and _SEALED in phrases:
        return EffectUnavailable(
            f"{where}: Vault is sealed (HTTP 503)",
            backend=_BACKEND,
            retry_after=parse_retry_after(retry_after),
        )
    if code == 404 and (state := _deleted_state(exc.json)) is not None:
        return EffectRejected(f"{where}: the version was {state}", backend=_BACKEND)
    if code is None:  # raised by hvac itself, before or without an HTTP error
        return EffectRejected(
            f"{where}: the client refused the request ({type(exc).__name__})", backend=_BACKEND
        )
    return status_error(where, code, retry_after, _BACKEND, _STATUS_TEXT)


def _phrases(exc: hvac.exceptions.VaultError) -> tuple[str, ...]:
    """Vault's error strings, from hvac's parse or, when hvac did not parse (content type not
    exactly ``application/json``), from the body itself. Compared, never echoed."""
    errors = exc.errors
    if errors is None and isinstance(exc.text, str):
        try:
            body = json.loads(exc.text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            errors = body.get("errors")
    if isinstance(errors, str):
        errors = [errors]
    if not isinstance(errors, list):
        return ()
    return tuple(e.strip() for e in errors if isinstance(e, str))


def _deleted_state(body: object) -> str | None:
    try:
        metadata = body["data"]["metadata"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    if not isinstance(metadata, dict):
        return None
    if metadata.get("destroyed") is True:
        return "destroyed"
    if metadata.get("deletion_time"):
        return "deleted"
    return None


# --------------------------------------------------------------------------- the adapter


class VaultSecrets:
    """KV v2 secrets and the token's lifetime (see the module docstring).

    Implements :class:`~onex_adapters.secrets.SecretSource`, so configuration references
    ``vault:<mount>/data/<path>#<key>`` resolve through it.

    Args:
        settings: a :class:`VaultSettings` or a configuration mapping for
            :meth:`VaultSettings.from_config`.
        clock: the monotonic clock the token lease is measured on.
        reauthenticate: called once after a 401/403 to obtain a fresh token; without it the
            adapter tries a ``renew-self``.

    Raises:
        UsageError: invalid settings — in particular no URL or no token.
    """

    def __init__(
        self,
        settings: VaultSettings | Mapping[str, Any],
        *,
        clock: Clock | None = None,
        reauthenticate: Callable[[], Awaitable[Secret]] | None = None,
    ) -> None:
        if not isinstance(settings, VaultSettings):
            settings = VaultSettings.from_config(settings)
        self.settings = settings
        self._clock: Clock = clock or SystemClock()
        self._reauthenticate = reauthenticate
        self._client = _open_client(settings)
        self._lease: TokenLease | None = None
        self._recovery = asyncio.Lock()

    def __repr__(self) -> str:
        host = urlsplit(self.settings.url).hostname
        return f"VaultSecrets(host={host!r}, mount={self.settings.mount!r})"

    @property
    def lease(self) -> TokenLease | None:
        """The token lease recorded by :meth:`start` or the last renewal."""
        return self._lease

    # ------------------------------------------------------------------ token

    async def start(self) -> TokenLease:
        """Look the token up and record its TTL.

        Raises:
            AccessDenied: the token is invalid or expired (after one recovery attempt).
            EffectUnavailable: Vault could not be reached, is sealed, or is rate limiting.
        """
        return await self._lookup(self._authorized)

    async def renew_if_due(self, now: float | None = None) -> bool:
        """Renew the token when two thirds of its TTL have passed.

        Args:
            now: the current time on the adapter's monotonic clock (default: read it).

        Returns:
            True if renewed; False if not due, or the token never expires or is not renewable.

        Raises:
            UsageError: :meth:`start` was not called.
            AccessDenied: Vault refused the renewal (the token expired or was revoked) and
                the ``reauthenticate`` callback, if any, did not produce a working token.
            EffectUnavailable: a transient failure; the lease is unchanged, try again later.
        """
        lease = self._lease
        if lease is None:
            raise UsageError("vault: call start() before renew_if_due()")
        moment = self._clock.monotonic() if now is None else now
        if not lease.renewable or moment < lease.renew_at:
            return False
        denied: AccessDenied | None = None
        try:
            await self._renew(moment)
        except AccessDenied as exc:
            denied = exc
        if denied is not None and (self._reauthenticate is None or not await self._recover()):
            raise denied
        return True

    async def _renew(self, now: float) -> TokenLease:
        increment = self.settings.renew_increment
        body = await self._client.call(
            "token renew",
            "self",
            lambda client: client.auth.token.renew_self(increment=increment),
        )
        auth = body["auth"]
        self._lease = lease = _lease(auth.get("lease_duration"), auth, now)
        _log.info("vault: token renewed; ttl %g s", lease.ttl)
        return lease

    async def _lookup(self, call: Callable[..., Awaitable[Any]]) -> TokenLease:
        """``lookup-self`` through ``call``; its answer becomes the lease."""
        started = self._clock.monotonic()
        body = await call("token lookup", "self", lambda client: client.auth.token.lookup_self())
        data = body["data"]
        self._lease = lease = _lease(data.get("ttl"), data, started)
        return lease

    async def _authorized(self, operation: str, subject: str, fn: Callable[[Any], T]) -> T:
        """``fn`` through the client; on 401/403 one recovery, then one more try."""
        denied: AccessDenied | None = None
        try:
            return await self._client.call(operation, subject, fn)
        except AccessDenied as exc:
            denied = exc
        if not await self._recover():
            raise denied
        return await self._client.call(operation, subject, fn)

    async def _recover(self) -> bool:
        """One attempt to get a working token: re-authenticate, or renew. True if it worked."""
        async with self._recovery:
            if self._reauthenticate is not None:
                fresh = await self._reauthenticate()
                if not isinstance(fresh, Secret):
                    raise UsageError("vault: reauthenticate must return a Secret")
                _log.warning("vault: access denied; re-authenticating")
                self._client.client.token = fresh.reveal()
                try:
                    await self._lookup(self._client.call)
                except AccessDenied:
                    return False
                return True
            if self._lease is not None and not self._lease.renewable:
                return False
            _log.warning("vault: access denied; trying to renew the token")
            try:
                await self._renew(self._clock.monotonic())
            except AccessDenied:
                return False
            return True

    # ------------------------------------------------------------------ KV v2

    @overload
    async def read(
        self, path: str, key: None = None, *, mount: str | None = None, version: int | None = None
    ) -> Mapping[str, Secret]: ...

    @overload
    async def read(
        self, path: str, key: str, *, mount: str | None = None, version: int | None = None
    ) -> Secret: ...

    async def read(
        self,
        path: str,
        key: str | None = None,
        *,
        mount: str | None = None,
        version: int | None = None,
    ) -> Mapping[str, Secret] | Secret:
        """The secret at ``path`` (all keys), or one ``key`` of it.

        Args:
            version: a specific version; default the latest.

        Raises:
            UsageError: a malformed path, key or version.
            EffectRejected: no such path, key or version, or the version was deleted.
            AccessDenied, EffectUnavailable: see the module docstring.
        """
        values = await self._read(path, mount, version)
        if key is None:
            return values
        if key not in values:
            raise EffectRejected(
                f"vault: read {self._subject(path, mount)} failed: no key {key!r}",
                backend=_BACKEND,
            )
        return values[key]

    async def fetch(self, mount: str, path: str, keys: Sequence[str]) -> Mapping[str, Secret]:
        """The values of ``keys`` at ``path`` on ``mount``, from one read (one version).

        Raises:
            EffectRejected: a key is missing (named), or as for :meth:`read`.
        """
        values = await self._read(path, mount, None)
        missing = sorted(key for key in keys if key not in values)
        if missing:
            raise EffectRejected(
                f"vault: read {self._subject(path, mount)} failed: no key {missing[0]!r}",
                backend=_BACKEND,
            )
        return {key: values[key] for key in keys}

    async def _read(
        self, path: str, mount: str | None, version: int | None
    ) -> Mapping[str, Secret]:
        mount = self._mount(mount)
        _check_path(path, "vault path")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise UsageError("vault: version must be a positive integer")
        subject = self._subject(path, mount)

        def read(client: Any) -> Any:
            return client.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=mount, raise_on_deleted_version=False
            )

        body = await self._authorized("read", subject, read)
        data = body["data"]
        if data.get("data") is None:
            state = _deleted_state(body) or "deleted"
            raise EffectRejected(
                f"vault: read {subject} failed: the version was {state}", backend=_BACKEND
            )
        return MappingProxyType(
            {str(name): Secret(_as_text(value)) for name, value in data["data"].items()}
        )

    async def write(
        self,
        path: str,
        values: Mapping[str, str | Secret],
        cas: int | None = None,
        *,
        mount: str | None = None,
    ) -> int:
        """Write a new version of the secret at ``path``.

        Args:
            cas: check-and-set: the write happens only if the current version is ``cas``
                (0: only if the secret does not exist).

        Returns:
            The new version number.

        Raises:
            UsageError: a malformed path, key, value or ``cas``.
            WriteConflict: ``cas`` did not match; nothing was written.
            AccessDenied, EffectRejected, EffectUnavailable: see the module docstring. After
                an ``EffectUnavailable`` the write may or may not have been applied: retry
                with the same ``cas`` and a :class:`WriteConflict` tells you it was.
        """
        mount = self._mount(mount)
        _check_path(path, "vault path")
        if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int) or cas < 0):
            raise UsageError("vault: cas must be a non-negative integer")
        if not isinstance(values, Mapping) or not values:
            raise UsageError("vault: values must be a non-empty mapping")
        plain: dict[str, str] = {}
        for name, value in values.items():
            if not isinstance(name, str) or not _KEY.match(name):
                raise UsageError("vault: secret keys must be letters, digits, '-', '_' or '.'")
            secret = secret_text(f"vault: value of {name!r}", value)
            plain[name] = secret.reveal() if secret is not None else ""

        def write(client: Any) -> Any:
            return client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=plain, cas=cas, mount_point=mount
            )

        body = await self._authorized("write", self._subject(path, mount), write)
        return int(body["data"]["version"])

    async def versions(self, path: str, *, mount: str | None = None) -> SecretVersions:
        """The version history of the secret at ``path``.

        Raises:
            UsageError: a malformed path.
            EffectRejected: no such secret (404).
            AccessDenied, EffectUnavailable: see the module docstring.
        """
        mount = self._mount(mount)
        _check_path(path, "vault path")

        def metadata(client: Any) -> Any:
            return client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)

        body = await self._authorized("read metadata", self._subject(path, mount), metadata)
        data = body["data"]
        states = {
            int(number): VersionState(
                str(state.get("created_time", "")),
                str(state.get("deletion_time", "")),
                bool(state.get("destroyed", False)),
            )
            for number, state in (data.get("versions") or {}).items()
        }
        return SecretVersions(
            int(data.get("current_version") or 0),
            int(data.get("oldest_version") or 0),
            MappingProxyType(dict(sorted(states.items()))),
        )

    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for calls in flight, then release the pool and the
        connections. Safe to call twice."""
        if not self._client.closed:
            await self._client.close(timeout)

    def _mount(self, mount: str | None) -> str:
        return _check_path(self.settings.mount if mount is None else mount, "vault mount")

    def _subject(self, path: str, mount: str | None) -> str:
        return mask_path(f"{mount or self.settings.mount}/data/{path}")
