"""Consul: service registration with a TTL health check, and configuration in the KV store.

:class:`ConsulServiceRegistry` is the effect handler for the ``consul.*`` intents. It talks to
the local Consul agent through py-consul, which is synchronous (``requests``). Each call runs in
a small private thread pool — bounded, so a hung agent cannot make threads pile up — under the
adapter's own deadline (``asyncio.timeout``); the event loop never blocks. The client's own
socket timeout is set a little longer than that deadline, only so abandoned threads come back
(the edge it shares with the Vault adapter, :mod:`onex_adapters._http_edge`).

**Credentials come from configuration only.** py-consul does
``self.token = os.getenv("CONSUL_HTTP_TOKEN", token)``, so the environment silently overrides an
explicit token, and it reads ``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_SSL`` and
``CONSUL_HTTP_SSL_VERIFY`` when arguments are missing. The adapter passes host, port, scheme and
verification explicitly, then *sets the client's token attribute itself* after construction
(None when no token is configured), and turns off ``requests``' own environment lookups
(``trust_env``: proxies, ``.netrc``, CA bundles). A ``CONSUL_HTTP_TOKEN`` in the environment is
therefore ignored, with one warning that does not show it.

**A heartbeat to a check the agent lost is not a success.** ``agent.check.ttl_pass`` returns
False, without raising, when the agent answers 404 ``Unknown check ID`` — after an agent
restart, or once Consul reaped a service that stayed critical too long. ``consul.pass_check``
checks that answer. When the intent carries the registration (service name, address, port), the
adapter re-registers the service from it and passes the check again; when it does not, the
heartbeat fails *transiently*, because the usual cause is a restart racing with the node's own
re-registration, which a retry after backoff will find done. A second False after
re-registration is transient too.

**Errors are translated in one place** (the edge's transport reading, then
:meth:`_Agent.translate`): connection failures, the client's timeout and our deadline, 429
(with ``Retry-After`` as ``retry_after``) and 5xx are ``EffectUnavailable``; other 4xx, a
failed TLS verification and invalid payloads are ``EffectRejected``. py-consul's exception
texts embed response bodies and headers, so they are never used: messages are built from the
operation, the service id or a masked KV key, and the HTTP status, and no driver exception is
chained (``__cause__`` and ``__context__`` are empty).

Intents (payload fields; ``check_ttl_seconds`` defaults to 30):

- ``consul.register`` — ``service_id``, ``service_name``, ``address``, ``port``, ``tags``,
  ``check_ttl_seconds``: registers the service with one TTL check ``service:<service_id>``
  (critical until the first pass), replacing any earlier registration of the same id.
- ``consul.deregister`` — ``service_id``: removes the service and its check; an id the agent
  does not know (404) counts as done.
- ``consul.pass_check`` — ``service_id`` and optionally the registration fields: marks the check
  passing, re-registering first if needed (see above). The registration workflow's shape is
  accepted too: ``check_id`` naming the service and the registration under ``registration``.
- ``consul.kv_get`` — ``key``: the value (as text) and its ``ModifyIndex``. The KV store holds
  configuration, not secrets — secrets live in Vault — and any registered secret value that
  turns up in it anyway is replaced by ``***`` in the result.
- ``consul.kv_put`` — ``key``, ``value``, optional ``cas``: a check-and-set write. When the CAS
  fails but the key already holds exactly the value asked for — typically our own earlier
  attempt that timed out after the agent applied it — the write counts as done.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import consul
from consul import Check

from onex_adapters._http_edge import (
    CLIENT_MARGIN,
    STATUS_TEXT,
    Edge,
    check_transport,
    check_url,
    config_values,
    status_error,
)
from onex_adapters.memory import RegisteredService
from onex_adapters.redaction import REDACTOR
from onex_adapters.secrets import Secret, mask_path
from onex_core.errors import EffectError, EffectRejected, EffectUnavailable, UsageError
from onex_core.intents import Intent
from onex_core.ports import EffectResult, HandlerDescription

__all__ = [
    "INTENT_TYPES",
    "ConsulKV",
    "ConsulServiceRegistry",
    "ConsulSettings",
    "KVEntry",
    "service_from_payload",
]

_BACKEND = "consul"
_WHAT = "consul settings"
_NO_ENVIRONMENT = "nothing is read from CONSUL_*"
_log = logging.getLogger(__name__)

INTENT_TYPES = (
    "consul.register",
    "consul.deregister",
    "consul.pass_check",
    "consul.kv_get",
    "consul.kv_put",
)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")
_ADDRESS = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,253}\Z")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+\Z")
_STATUS_TEXT = {**STATUS_TEXT, 409: "conflict"}
_CONFIG_KEYS = frozenset(
    {
        "url",
        "token",
        "verify",
        "cert",
        "datacenter",
        "timeout",
        "deregister_critical_after",
        "max_workers",
        "allow_insecure_tls",
    }
)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class ConsulSettings:
    """How to reach the Consul agent. Every field is explicit; nothing comes from the
    environment.

    Args:
        url: ``http://host:port`` or ``https://host:port`` (default ports 8500 and 8501); no
            path, query or user-info.
        token: the ACL token, or None for none. ``repr`` shows ``***``.
        verify: True, or the path of a CA bundle. False only with ``allow_insecure_tls``.
        cert: the client certificate and key paths, for mutual TLS.
        datacenter: the datacenter for KV operations (default: the agent's).
        timeout: our deadline for one call to the agent, in seconds.
        deregister_critical_after: Consul's ``DeregisterCriticalServiceAfter`` for the TTL
            check, as a Go duration (Consul's minimum is one minute).
        max_workers: the size of the thread pool the blocking client runs in.

    Raises:
        UsageError: a field is missing, malformed or insecure; the message names the field.
    """

    url: str
    token: Secret | None = None
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    datacenter: str | None = None
    timeout: float = 5.0
    deregister_critical_after: str = "1m"
    max_workers: int = 4
    allow_insecure_tls: bool = False

    def __post_init__(self) -> None:
        self.address()  # validates the URL
        if self.token is not None and not isinstance(self.token, Secret):
            raise UsageError("consul settings: token must be a Secret")
        check_transport(
            _WHAT,
            verify=self.verify,
            allow_insecure_tls=self.allow_insecure_tls,
            cert=self.cert,
            timeout=self.timeout,
            max_workers=self.max_workers,
        )
        if not _DURATION.match(self.deregister_critical_after or ""):
            raise UsageError(
                "consul settings: deregister_critical_after must be a Go duration like '1m'"
            )

    def address(self) -> tuple[str, str, int]:
        """``(scheme, host, port)`` from ``url``.

        Raises:
            UsageError: the URL is not ``http(s)://host[:port]``.
        """
        scheme, host, port = check_url(self.url, _WHAT, _NO_ENVIRONMENT)
        return scheme, host, port or (8501 if scheme == "https" else 8500)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ConsulSettings:
        """Settings from a configuration mapping with the field names above. ``token`` may be
        a string, a :class:`~onex_adapters.secrets.Secret` or a pydantic ``SecretStr``.

        Raises:
            UsageError: an unknown key, or an invalid value (the message names the key).
        """
        return cls(**config_values(config, _WHAT, _CONFIG_KEYS, _NO_ENVIRONMENT))


# --------------------------------------------------------------------------- the blocking edge


class _Agent(Edge):
    """py-consul on the shared edge."""

    backend = _BACKEND
    closed_text = "consul handler is shut down"

    def translate(
        self, exc: Exception, status: int | None, retry_after: str | None, where: str
    ) -> EffectError | None:
        """py-consul's part of the translation (the edge reads the transport first)."""
        if status is not None and status >= 400:
            return status_error(where, status, retry_after, _BACKEND, _STATUS_TEXT)
        if isinstance(exc, consul.ConsulException | ValueError):
            # A 2xx answer py-consul could not use: no X-Consul-Index, or a body not JSON.
            return EffectUnavailable(f"{where}: malformed answer from the agent", backend=_BACKEND)
        return None


def _open_agent(settings: ConsulSettings) -> _Agent:
    """The py-consul client on the edge, its token set by us after construction (py-consul
    prefers ``CONSUL_HTTP_TOKEN`` over the token argument)."""
    scheme, host, port = settings.address()
    if os.environ.get("CONSUL_HTTP_TOKEN") is not None:
        _log.warning("consul: CONSUL_HTTP_TOKEN is set in the environment and is ignored")
    client = consul.Consul(
        host=host,
        port=port,
        scheme=scheme,
        verify=settings.verify,
        cert=settings.cert,
        dc=settings.datacenter,
        token=None,
        connections_timeout=settings.timeout + CLIENT_MARGIN,
    )
    client.token = settings.token.reveal() if settings.token is not None else None
    return _Agent(
        client, client.http.session, timeout=settings.timeout, max_workers=settings.max_workers
    )


# --------------------------------------------------------------------------- payloads


def _reject(intent_type: str, problem: str) -> EffectRejected:
    return EffectRejected(f"{intent_type}: {problem}", backend=_BACKEND)


def _id_field(payload: Mapping[str, Any], name: str, intent_type: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not _ID.match(value):
        raise _reject(
            intent_type,
            f"payload field {name!r} must be 1-128 letters, digits, '_', '.', ':' or '-'",
        )
    return value


def service_from_payload(
    payload: Mapping[str, Any], intent_type: str = "consul.register"
) -> RegisteredService:
    """The service a ``consul.register`` payload describes.

    Raises:
        EffectRejected: a field is missing or malformed (named, never echoed).
    """
    if not isinstance(payload, Mapping):
        raise _reject(intent_type, "payload must be a mapping")
    service_id = _id_field(payload, "service_id", intent_type)
    name = _id_field(payload, "service_name", intent_type)
    address = payload.get("address")
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise _reject(intent_type, "payload field 'address' must be a host name or IP address")
    port = payload.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _reject(intent_type, "payload field 'port' must be an integer from 1 to 65535")
    tags = payload.get("tags", ())
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise _reject(intent_type, "payload field 'tags' must be a list of strings")
    if not all(isinstance(tag, str) and 0 < len(tag) <= 255 for tag in tags):
        raise _reject(intent_type, "payload field 'tags' must hold non-empty strings")
    ttl = payload.get("check_ttl_seconds", 30)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= 86400:
        raise _reject(intent_type, "payload field 'check_ttl_seconds' must be from 1 to 86400")
    return RegisteredService(service_id, name, address, port, tuple(tags), float(ttl))


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "a KV key must be a non-empty string"
    if key.startswith("/"):
        return "a KV key must not start with '/'"
    if len(key) > 512 or any(ord(ch) < 0x20 or ch == "\x7f" for ch in key):
        return "a KV key must be at most 512 printable characters"
    return None


# --------------------------------------------------------------------------- KV


class KVEntry(NamedTuple):
    """A KV value and the ``ModifyIndex`` to pass as ``cas`` to change it."""

    value: bytes
    modify_index: int


class ConsulKV:
    """Consul's KV store: reads with their ``ModifyIndex``, check-and-set writes."""

    def __init__(self, agent: Callable[[], _Agent]) -> None:
        self._agent = agent

    async def get(self, key: str) -> KVEntry | None:
        """The value at ``key`` and its ``ModifyIndex``, or None when the key does not exist.

        Raises:
            UsageError: ``key`` is malformed (empty, leading ``/``, control characters).
            EffectUnavailable, EffectRejected: as for every call (see the module docstring);
                an answer without ``X-Consul-Index`` is ``EffectUnavailable``.
        """
        _check_key(key)

        def read(client: Any) -> KVEntry | None:
            _, data = client.kv.get(key)
            if data is None:
                return None
            return KVEntry(data.get("Value") or b"", int(data["ModifyIndex"]))

        return await self._agent().call("kv get", mask_path(key), read)

    async def put(self, key: str, value: str | bytes, *, cas: int | None = None) -> bool:
        """Write ``value`` at ``key``. With ``cas``, only if the key's ``ModifyIndex`` is
        ``cas`` — or, for ``cas=0``, only if the key does not exist.

        Returns:
            True when written; False when the check-and-set failed (nothing changed).

        Raises:
            UsageError: a malformed key, value or ``cas``.
            EffectUnavailable, EffectRejected: as for every call. After an
                ``EffectUnavailable`` the write may or may not have been applied; retry with
                the same ``cas`` to find out.
        """
        _check_key(key)
        if not isinstance(value, str | bytes):
            raise UsageError("a KV value must be str or bytes")
        if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int) or cas < 0):
            raise UsageError("cas must be a non-negative integer")
        written = await self._agent().call(
            "kv put", mask_path(key), lambda client: client.kv.put(key, value, cas=cas)
        )
        return written is True

    async def delete(self, key: str, *, recurse: bool = False) -> None:
        """Delete ``key`` (or every key under the prefix ``key`` with ``recurse``).

        Raises:
            UsageError, EffectUnavailable, EffectRejected: as for :meth:`put`.
        """
        _check_key(key)
        await self._agent().call(
            "kv delete", mask_path(key), lambda client: client.kv.delete(key, recurse=recurse)
        )


def _check_key(key: object) -> None:
    problem = _key_problem(key)
    if problem is not None:
        raise UsageError(problem)


# --------------------------------------------------------------------------- the handler


class ConsulServiceRegistry:
    """The effect handler for the ``consul.*`` intents (see the module docstring).

    ``initialize`` takes a configuration mapping (see :meth:`ConsulSettings.from_config`).
    The methods :meth:`register`, :meth:`deregister` and :meth:`pass_check` are the registry
    operations behind the intents, usable directly; :attr:`kv` is the KV store.
    """

    handler_type = _BACKEND

    def __init__(self) -> None:
        self._agent: _Agent | None = None
        self._settings: ConsulSettings | None = None
        self.kv = ConsulKV(self._connected)

    # ------------------------------------------------------------------ lifecycle

    async def initialize(self, config: Mapping[str, Any]) -> None:
        """Build the client from ``config``. Does not contact the agent.

        An empty ``config`` on a handler already initialized is a no-op, so a runtime host
        that initializes every handler it runs (with ``{}`` unless configured) can run one
        its caller built ready.

        Raises:
            UsageError: the configuration is invalid, or a non-empty ``config`` came for a
                handler already initialized (the live client is kept).
        """
        if self._agent is not None:
            if not config:
                return
            raise UsageError("consul handler is already initialized")
        settings = (
            config if isinstance(config, ConsulSettings) else ConsulSettings.from_config(config)
        )
        self._settings = settings
        self._agent = _open_agent(settings)

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for calls in flight, then release the pool and the
        connections. Calls still running are abandoned. Safe to call twice."""
        if self._agent is not None and not self._agent.closed:
            await self._agent.close(timeout)

    def describe(self) -> HandlerDescription:
        """The handler's type, intents and capabilities — never the token or the address."""
        return HandlerDescription(
            self.handler_type,
            INTENT_TYPES,
            ("registration.discovery", "configuration.store"),
            "1",
        )

    def _connected(self) -> _Agent:
        if self._agent is None:
            raise UsageError("consul handler is not initialized")
        return self._agent

    # ------------------------------------------------------------------ registry

    async def register(self, service: RegisteredService) -> str:
        """Register ``service`` with one TTL check (critical until first passed), replacing
        any registration with the same id.

        Returns:
            The check id, ``service:<service_id>``.

        Raises:
            EffectUnavailable, EffectRejected: see the module docstring; on failure the agent
                may or may not have the registration (registering again is safe).
        """
        agent = self._connected()
        assert self._settings is not None
        check = dict(Check.ttl(f"{service.check_ttl_seconds:g}s"))
        check["DeregisterCriticalServiceAfter"] = self._settings.deregister_critical_after

        def register(client: Any) -> bool:
            answer: bool = client.agent.service.register(
                service.name,
                service_id=service.service_id,
                address=service.address,
                port=service.port,
                tags=list(service.tags) or None,
                check=check,
                replace_existing_checks=True,
            )
            return answer

        if not await agent.call("register service", service.service_id, register):
            raise EffectRejected(
                f"consul: register service {service.service_id} failed: not found (HTTP 404)",
                backend=_BACKEND,
            )
        return _check_id(service.service_id)

    async def deregister(self, service_id: str) -> bool:
        """Remove the service and its checks.

        Returns:
            True if the agent had it; False if it did not (404), which is not an error.
        """
        agent = self._connected()
        answer = await agent.call(
            "deregister service",
            service_id,
            lambda client: client.agent.service.deregister(service_id),
        )
        return answer is True

    async def pass_check(self, service_id: str, note: str | None = None) -> bool:
        """Mark the service's TTL check passing.

        Returns:
            True if passed; False if the agent does not know the check (404) — it lost the
            registration, and the caller must register again. This is py-consul's answer,
            passed on unchanged.
        """
        agent = self._connected()
        check_id = _check_id(service_id)
        answer = await agent.call(
            "pass check",
            check_id,
            lambda client: client.agent.check.ttl_pass(check_id, notes=note),
        )
        return answer is True

    # ------------------------------------------------------------------ intents

    async def execute(self, intent: Intent) -> EffectResult:
        """Carry out one ``consul.*`` intent (see the module docstring).

        Raises:
            EffectRejected: an unknown intent type, an invalid payload, or a permanent failure.
            EffectUnavailable: a transient failure; the runtime retries.
            UsageError: the handler is not initialized or already shut down.
        """
        self._connected()
        kind = intent.intent_type
        payload = intent.payload
        if not isinstance(payload, Mapping):
            raise _reject(kind, "payload must be a mapping")
        if kind == "consul.register":
            service = service_from_payload(payload, kind)
            check_id = await self.register(service)
            detail: dict[str, Any] = {"service_id": service.service_id, "check_id": check_id}
        elif kind == "consul.deregister":
            service_id = _id_field(payload, "service_id", kind)
            existed = await self.deregister(service_id)
            detail = {"service_id": service_id, "existed": existed}
        elif kind == "consul.pass_check":
            detail = await self._pass_or_restore(intent)
        elif kind == "consul.kv_get":
            key = _payload_key(payload, kind)
            entry = await self.kv.get(key)
            detail = {"key": key, "found": entry is not None}
            if entry is not None:
                detail["modify_index"] = entry.modify_index
                # Configuration, not secrets; but a registered secret never rides on a result.
                detail["value"] = REDACTOR.scrub(entry.value.decode("utf-8", errors="replace"))
        elif kind == "consul.kv_put":
            detail = await self._put(payload, kind)
        else:
            raise _reject(kind, "not an intent the consul handler executes")
        return EffectResult(intent.intent_id, detail)

    async def _pass_or_restore(self, intent: Intent) -> dict[str, Any]:
        kind = intent.intent_type
        service_id, fields = _pass_target(intent.payload, kind)
        check_id = _check_id(service_id)
        if await self.pass_check(service_id):
            return {"service_id": service_id, "check_id": check_id, "reregistered": False}
        if not {"service_name", "address", "port"} <= fields.keys():
            raise EffectUnavailable(
                f"consul: pass check {check_id} failed: the agent does not know the check "
                "and the intent carries no registration to restore it",
                backend=_BACKEND,
            )
        service = service_from_payload({**fields, "service_id": service_id}, kind)
        _log.warning(
            "consul: the agent lost check %s; re-registering service %s (correlation %s)",
            check_id,
            service_id,
            intent.correlation_id,
        )
        await self.register(service)
        if not await self.pass_check(service_id):
            raise EffectUnavailable(
                f"consul: pass check {check_id} failed: still unknown after re-registration",
                backend=_BACKEND,
            )
        return {"service_id": service_id, "check_id": check_id, "reregistered": True}

    async def _put(self, payload: Mapping[str, Any], kind: str) -> dict[str, Any]:
        key = _payload_key(payload, kind)
        value = payload.get("value")
        if not isinstance(value, str):
            raise _reject(kind, "payload field 'value' must be a string")
        cas = payload.get("cas")
        if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int) or cas < 0):
            raise _reject(kind, "payload field 'cas' must be a non-negative integer")
        if await self.kv.put(key, value, cas=cas):
            return {"key": key, "written": True, "already_applied": False}
        current = await self.kv.get(key)
        if current is not None and current.value == value.encode():
            # An earlier attempt (or another writer) already left exactly this value.
            return {"key": key, "written": True, "already_applied": True}
        raise EffectRejected(
            f"consul: kv put {mask_path(key)} failed: check-and-set index {cas} is stale",
            backend=_BACKEND,
        )


def _check_id(service_id: str) -> str:
    return f"service:{service_id}"


def _pass_target(payload: Mapping[str, Any], kind: str) -> tuple[str, Mapping[str, Any]]:
    """The service id and registration fields of a ``consul.pass_check`` payload: flat
    (``service_id`` beside the fields), or as the registration workflow builds it (``check_id``
    naming the service, with or without the ``service:`` prefix, and the fields under
    ``registration``)."""
    nested = payload.get("registration")
    fields: Mapping[str, Any] = nested if isinstance(nested, Mapping) else payload
    if "service_id" in payload or "check_id" not in payload:
        return _id_field(payload, "service_id", kind), fields
    check_id = _id_field(payload, "check_id", kind)
    return check_id.removeprefix("service:"), fields


def _payload_key(payload: Mapping[str, Any], kind: str) -> str:
    key = payload.get("key")
    problem = _key_problem(key)
    if problem is not None:
        raise _reject(kind, f"payload field 'key': {problem}")
    assert isinstance(key, str)
    return key
