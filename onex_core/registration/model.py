"""The registration domain's vocabulary: topics, intent types, timing, and what a node says.

Topics and intent types are the ones the shipped contracts declare
(``onex_contracts/contracts/registration``); a test holds the two together, so a renamed topic
cannot drift between the YAML and the code.

:class:`RegistrationConfig` holds the timing of the workflow (DESIGN §4): an ACK timeout of
30 s, a liveness window of 30 s, heartbeats every 10 s, ticks every second, three ACK requests
and three backend retries. Every deadline is ``now + window`` where ``now`` is the *runtime's*
authority time, never a timestamp a node put in its own message: a node with a skewed clock can
neither expire early nor extend its own deadline (reliability bar §2.10).

:func:`parse_introspection` validates what a node says about itself into a frozen
:class:`NodeInfo`. Input comes from the network, so every problem is a
:class:`~onex_core.errors.ContentError` naming the field and the rule — never echoing the value,
which may be long, hostile or secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from onex_core.errors import ContentError, UsageError

__all__ = [
    "ACCEPTED",
    "ACKED",
    "ACK_RECEIVED",
    "ACK_TIMED_OUT",
    "BECAME_ACTIVE",
    "DEADLINE_CHECK",
    "DEREGISTER_SERVICE",
    "DLQ",
    "DOMAIN",
    "FAILED",
    "HEARTBEAT",
    "INITIATED",
    "INTROSPECTION",
    "LIVENESS_EXPIRED",
    "NODE_TYPES",
    "PASS_CHECK",
    "REGISTER_SERVICE",
    "REJECTED",
    "RUNTIME_TICK",
    "SERVICE_OUTCOME",
    "STORAGE_OUTCOME",
    "STORE_REGISTRATION",
    "UPDATE_REGISTRATION",
    "NodeInfo",
    "RegistrationConfig",
    "parse_introspection",
    "service_id_of",
    "service_name_of",
]

DOMAIN: Final = "registration"
"""The projection domain of registration state."""

# --------------------------------------------------------------------------- topics

INTROSPECTION: Final = "onex.evt.platform.node-introspection.v1"
ACKED: Final = "onex.cmd.platform.node-registration-acked.v1"
HEARTBEAT: Final = "onex.evt.platform.node-heartbeat.v1"
RUNTIME_TICK: Final = "onex.intent.platform.runtime-tick.v1"
DEADLINE_CHECK: Final = "onex.cmd.platform.node-deadline-check.v1"
SERVICE_OUTCOME: Final = "onex.evt.platform.service-registry-outcome.v1"
STORAGE_OUTCOME: Final = "onex.evt.platform.registration-storage-outcome.v1"

INITIATED: Final = "onex.evt.platform.node-registration-initiated.v1"
ACCEPTED: Final = "onex.evt.platform.node-registration-accepted.v1"
REJECTED: Final = "onex.evt.platform.node-registration-rejected.v1"
ACK_RECEIVED: Final = "onex.evt.platform.node-registration-ack-received.v1"
ACK_TIMED_OUT: Final = "onex.evt.platform.node-registration-ack-timed-out.v1"
FAILED: Final = "onex.evt.platform.node-registration-failed.v1"
BECAME_ACTIVE: Final = "onex.evt.platform.node-became-active.v1"
LIVENESS_EXPIRED: Final = "onex.evt.platform.node-liveness-expired.v1"

DLQ: Final = "onex.dlq.platform.node-registration.v1"

# --------------------------------------------------------------------------- intent types

REGISTER_SERVICE: Final = "consul.register"
DEREGISTER_SERVICE: Final = "consul.deregister"
PASS_CHECK: Final = "consul.pass_check"
STORE_REGISTRATION: Final = "postgres.upsert_registration"
UPDATE_REGISTRATION: Final = "postgres.update_registration"

NODE_TYPES: Final = ("effect", "compute", "reducer", "orchestrator")


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """The workflow's timing and limits (DESIGN §4 defaults).

    Args:
        ack_timeout: seconds a node has to ACK once accepted.
        liveness_window: seconds a node stays live after its ACK or its latest heartbeat.
        heartbeat_interval: seconds between a node's heartbeats (nodes are told; the
            orchestrator only enforces the liveness window).
        tick_interval: seconds between runtime ticks (deadline checks).
        max_ack_timeouts: ACK timeouts that fail the registration (the last one fails it).
        max_backend_retries: retries of a failed backend before the registration fails.
        domain: the projection domain.
        overdue_limit: at most this many overdue nodes per deadline kind per tick.

    Raises:
        UsageError: a duration is not positive, a limit is below 1, or the domain is empty.
    """

    ack_timeout: float = 30.0
    liveness_window: float = 30.0
    heartbeat_interval: float = 10.0
    tick_interval: float = 1.0
    max_ack_timeouts: int = 3
    max_backend_retries: int = 3
    domain: str = DOMAIN
    overdue_limit: int = 1000

    def __post_init__(self) -> None:
        for name in ("ack_timeout", "liveness_window", "heartbeat_interval", "tick_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise UsageError(f"registration config {name} must be a positive number")
        for name in ("max_ack_timeouts", "max_backend_retries", "overdue_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"registration config {name} must be an integer of at least 1")
        if not self.domain:
            raise UsageError("registration config domain must not be empty")

    @property
    def ack_delta(self) -> timedelta:
        return timedelta(seconds=self.ack_timeout)

    @property
    def liveness_delta(self) -> timedelta:
        return timedelta(seconds=self.liveness_window)


# --------------------------------------------------------------------------- node info

_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,31}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
_CAPABILITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}\Z")
_MAX_ENDPOINTS = 16
_MAX_CAPABILITIES = 64
_MAX_URL = 2048
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_PREFERRED_ENDPOINTS: Final = ("api", "http", "grpc", "health")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node said about itself in its introspection, validated.

    ``endpoints`` is a sorted tuple of ``(name, url)`` pairs; ``address`` and ``port`` are the
    host and port of the endpoint the service registry advertises (``api`` first, then
    ``http``, ``grpc``, ``health``, then the first by name); empty and ``0`` without endpoints.
    """

    node_id: str
    node_type: str
    node_version: str = "1.0.0"
    endpoints: tuple[tuple[str, str], ...] = ()
    capabilities: tuple[str, ...] = ()
    address: str = ""
    port: int = 0

    def as_data(self) -> dict[str, Any]:
        """The node as JSON-like data (for state, projections and intent payloads)."""
        return {
            "node_id": self.node_id,
            "node_type": self.node_type,
            "node_version": self.node_version,
            "endpoints": dict(self.endpoints),
            "capabilities": list(self.capabilities),
            "address": self.address,
            "port": self.port,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> NodeInfo:
        """Rebuild a node from :meth:`as_data` output (trusted: it was validated before)."""
        return cls(
            node_id=data["node_id"],
            node_type=data["node_type"],
            node_version=data.get("node_version", "1.0.0"),
            endpoints=tuple(sorted(dict(data.get("endpoints", {})).items())),
            capabilities=tuple(data.get("capabilities", ())),
            address=data.get("address", ""),
            port=int(data.get("port", 0)),
        )


def service_id_of(node_type: str, node_id: str) -> str:
    """The service-registry id of a node: ``onex-{node_type}-{node_id}``."""
    return f"onex-{node_type}-{node_id}"


def service_name_of(node_type: str) -> str:
    """The service-registry name of a node kind: ``onex-{node_type}``."""
    return f"onex-{node_type}"


def _fail(field: str, rule: str) -> ContentError:
    return ContentError(f"introspection field {field!r}: {rule}")


def _text(payload: Mapping[str, Any], field: str, pattern: re.Pattern[str], rule: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str):
        raise _fail(field, "must be a string" if field in payload else "is required")
    if not pattern.match(value):
        raise _fail(field, rule)
    return value


def parse_introspection(payload: object, *, entity_id: str | None = None) -> NodeInfo:
    """Validate an introspection payload.

    Args:
        payload: the envelope payload (untrusted).
        entity_id: the envelope's partition key; when given, ``node_id`` must equal it (a
            message about one node cannot be filed under another).

    Returns:
        The frozen :class:`NodeInfo`. Capabilities are de-duplicated and sorted.

    Raises:
        ContentError: the first problem found, naming the field and the rule, never the value.
    """
    if not isinstance(payload, Mapping):
        raise ContentError("introspection payload must be a JSON object")
    node_id = _text(
        payload, "node_id", _NODE_ID, "must be 1 to 128 letters, digits, '.', '_' or '-'"
    )
    if entity_id is not None and node_id != entity_id:
        raise _fail("node_id", "must equal the envelope's entity_id")
    node_type = payload.get("node_type")
    if not isinstance(node_type, str) or node_type not in NODE_TYPES:
        rule = (
            "is required"
            if "node_type" not in payload
            else "must be one of " + ", ".join(NODE_TYPES)
        )
        raise _fail("node_type", rule)
    version = "1.0.0"
    if payload.get("node_version") is not None:
        version = _text(payload, "node_version", _VERSION, "must be a version like 1.2.3")
    endpoints = _endpoints(payload.get("endpoints"))
    capabilities = _capabilities(payload.get("capabilities"))
    address, port = _advertised(endpoints)
    return NodeInfo(node_id, node_type, version, endpoints, capabilities, address, port)


def _endpoints(raw: object) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _fail("endpoints", "must be an object of name → URL")
    if len(raw) > _MAX_ENDPOINTS:
        raise _fail("endpoints", f"must have at most {_MAX_ENDPOINTS} entries")
    pairs: list[tuple[str, str]] = []
    for name, url in raw.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail("endpoints", "names must be 1 to 64 letters, digits, '.', '_', ':' or '-'")
        if not isinstance(url, str) or not 0 < len(url) <= _MAX_URL:
            raise _fail(f"endpoints.{name}", f"must be a URL of at most {_MAX_URL} characters")
        _host_port(name, url)
        pairs.append((name, url))
    return tuple(sorted(pairs))


def _host_port(name: str, url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _fail(f"endpoints.{name}", "must be a URL like http://host:port") from None
    host = parts.hostname
    if not parts.scheme or not host:
        raise _fail(f"endpoints.{name}", "must be a URL like http://host:port")
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is None or not 0 < port < 65536:
        raise _fail(f"endpoints.{name}", "must name a port (or use http or https)")
    return host, port


def _advertised(endpoints: tuple[tuple[str, str], ...]) -> tuple[str, int]:
    if not endpoints:
        return "", 0
    by_name = dict(endpoints)
    for name in _PREFERRED_ENDPOINTS:
        if name in by_name:
            return _host_port(name, by_name[name])
    name, url = endpoints[0]
    return _host_port(name, url)


def _capabilities(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
        raise _fail("capabilities", "must be a list of names")
    if len(raw) > _MAX_CAPABILITIES:
        raise _fail("capabilities", f"must have at most {_MAX_CAPABILITIES} entries")
    for item in raw:
        if not isinstance(item, str) or not _CAPABILITY.match(item):
            rule = "entries must be 1 to 128 letters, digits or '.', '_', ':', '/', '-'"
            raise _fail("capabilities", rule)
    return tuple(sorted(set(raw)))
