"""A Consul agent fake: exactly the endpoints ONEX uses, answering as Consul does.

Endpoints (``hashicorp/consul:website/content/api-docs``, and the agent source for error texts):

- ``PUT /v1/agent/service/register[?replace-existing-checks=true]`` (``agent/service.mdx``,
  Register Service): keys are case-insensitive; TTL checks only; one check is
  ``service:<id>``, several are ``service:<id>:<n>``; new checks start ``critical``;
  ``DeregisterCriticalServiceAfter`` is raised to Consul's one-minute minimum; 400
  ``Missing service name``.
- ``PUT /v1/agent/service/deregister/<id>``: removes the service and its checks; an unknown id is
  404 ``Unknown service ID "<id>". Ensure that the service ID is passed, not the service name.``
  (``agent/acl.go::vetServiceUpdateWithAuthorizer``).
- ``PUT /v1/agent/check/pass/<check_id>[?note=…]`` (``agent/check.mdx``, TTL Check Pass): an
  unknown id is 404 ``Unknown check ID "<id>". Ensure that the check ID is passed, not the check
  name.`` (``agent/acl.go::vetCheckUpdateWithAuthorizer``).
- ``GET /v1/health/service/<name>[?passing=1]`` (``health.mdx``): entries with a passing
  ``serfHealth`` node check; ``X-Consul-Index`` always.
- ``GET|PUT|DELETE /v1/kv/<key>`` (``kv.mdx``): base64 values, ``CreateIndex``/``ModifyIndex``,
  ``X-Consul-Index`` also on 404, ``cas`` (0 = create only; otherwise must equal
  ``ModifyIndex``) answered ``true``/``false``, ``recurse``, 413 above 512 KiB.

State: services and TTL checks on the injected clock (a passing check whose TTL lapses turns
``critical`` with output ``TTL expired``; a service critical for longer than its
``DeregisterCriticalServiceAfter`` is reaped at the next request), the KV store, and one raft
index bumped by every write. ACLs: with ``tokens`` given, a request without a token is denied as
the anonymous token and an unknown token gets 403 ``ACL not found``; any known token may do
anything. Errors are ``text/plain``; JSON is ``application/json``.

Not modelled: Raft and anti-entropy delays, blocking queries (``index``/``wait``), the ACL policy
language, sessions and locks, namespaces and partitions, non-TTL checks, check status kept
across re-registration, the 30 s reaper cadence (reaping happens lazily).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.adapters.fakes.base import FakeClock, FakeServer, Reply, Request

__all__ = ["ConsulFake"]

KV_MAX_VALUE = 512 * 1024
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
ANONYMOUS = "00000000-0000-0000-0000-000000000002"


def parse_duration(text: str) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    parts = _DURATION.findall(text)
    if "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class Service:
    service_id: str
    name: str
    address: str
    port: int
    tags: list[str]
    meta: dict[str, str]


@dataclass
class TTLCheck:
    check_id: str
    name: str
    service_id: str
    ttl: float
    status: str
    changed_at: float
    deregister_after: float | None
    output: str = ""
    passed_at: float | None = None


@dataclass
class Entry:
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int


@dataclass
class ConsulState:
    services: dict[str, Service] = field(default_factory=dict)
    checks: dict[str, TTLCheck] = field(default_factory=dict)
    kv: dict[str, Entry] = field(default_factory=dict)
    index: int = 1


class ConsulFake(FakeServer):
    """See the module docstring. ``tokens`` enables ACLs; ``clock`` drives TTLs."""

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        clock: FakeClock | None = None,
        node: str = "onex-fake",
        datacenter: str = "dc1",
    ) -> None:
        super().__init__(self._route)
        self.tokens = tokens
        self.clock = clock or FakeClock()
        self.node = node
        self.datacenter = datacenter
        self.state = ConsulState()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ test helpers

    def forget_services(self) -> None:
        """What an agent restart with a fresh data directory does: services and checks gone."""
        with self._lock:
            self.state.services.clear()
            self.state.checks.clear()
            self.state.index += 1

    def check_status(self, check_id: str) -> str | None:
        with self._lock:
            self._evaluate()
            check = self.state.checks.get(check_id)
            return None if check is None else check.status

    def has_service(self, service_id: str) -> bool:
        with self._lock:
            self._evaluate()
            return service_id in self.state.services

    # ------------------------------------------------------------------ routing

    def _route(self, request: Request) -> Reply:
        with self._lock:
            self._evaluate()
            path = request.path
            routes = (
                ("PUT", "/v1/agent/service/register", self._register, "service:write"),
                ("PUT", "/v1/agent/service/deregister/", self._deregister, "service:write"),
                ("PUT", "/v1/agent/check/pass/", self._pass, "service:write"),
                ("GET", "/v1/health/service/", self._health, "service:read"),
                ("GET", "/v1/kv/", self._kv_get, "key:read"),
                ("PUT", "/v1/kv/", self._kv_put, "key:write"),
                ("DELETE", "/v1/kv/", self._kv_delete, "key:write"),
            )
            path_known = False
            for method, prefix, handler, permission in routes:
                if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                    path_known = True
                    if request.method == method:
                        denied = self._acl(request, permission, path[len(prefix) :] or prefix)
                        return denied or handler(request, path[len(prefix) :])
            if path_known:
                return Reply.text(405, f"method {request.method} not allowed")
            return Reply.text(404, "404 page not found")

    def _acl(self, request: Request, permission: str, resource: str) -> Reply | None:
        if self.tokens is None:
            return None
        token = request.headers.get("x-consul-token")
        if token is None or token == "":
            return Reply.text(
                403,
                f"Permission denied: token with AccessorID '{ANONYMOUS}' lacks permission "
                f"'{permission}' on \"{resource}\"",
            )
        if token not in self.tokens:
            return Reply.text(403, "ACL not found")
        return None

    def _json(self, document: Any, *, index: bool = False) -> Reply:
        headers = {}
        if index:
            headers = {
                "X-Consul-Index": str(self.state.index),
                "X-Consul-Knownleader": "true",
                "X-Consul-Lastcontact": "0",
            }
        return Reply.json(200, document, headers)

    # ------------------------------------------------------------------ agent

    def _register(self, request: Request, _: str) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return Reply.text(400, "Request decode failed: invalid character")
        if not isinstance(body, dict):
            return Reply.text(400, "Request decode failed: not an object")
        fields = {str(k).lower(): v for k, v in body.items()}
        name = fields.get("name")
        if not isinstance(name, str) or not name:
            return Reply.text(400, "Missing service name")
        service_id = fields.get("id") or name
        port = fields.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool):
            return Reply.text(400, "Request decode failed: port must be a number")
        raw_checks = list(fields.get("checks") or [])
        if fields.get("check"):
            raw_checks.insert(0, fields["check"])
        checks: list[tuple[float, float | None]] = []
        for raw in raw_checks:
            lowered = {str(k).lower(): v for k, v in raw.items()}
            ttl = parse_duration(lowered.get("ttl", ""))
            if ttl is None:
                return Reply.text(400, "Invalid check: only TTL checks are modelled by this fake")
            after = lowered.get("deregistercriticalserviceafter")
            deregister = parse_duration(after) if after else None
            checks.append((ttl, None if deregister is None else max(deregister, 60.0)))
        now = self.clock()
        replace = request.param("replace-existing-checks") in ("", "true")
        if replace:
            for check_id in [
                c for c, check in self.state.checks.items() if check.service_id == service_id
            ]:
                del self.state.checks[check_id]
        self.state.services[service_id] = Service(
            service_id,
            name,
            str(fields.get("address") or ""),
            port,
            list(fields.get("tags") or []),
            dict(fields.get("meta") or {}),
        )
        for number, (ttl, deregister) in enumerate(checks, start=1):
            check_id = (
                f"service:{service_id}" if len(checks) == 1 else f"service:{service_id}:{number}"
            )
            self.state.checks[check_id] = TTLCheck(
                check_id, f"Service '{name}' check", service_id, ttl, "critical", now, deregister
            )
        self.state.index += 1
        return Reply(200)

    def _deregister(self, request: Request, service_id: str) -> Reply:
        if service_id not in self.state.services:
            return Reply.text(
                404,
                f'Unknown service ID "{service_id}". '
                "Ensure that the service ID is passed, not the service name.",
            )
        self._remove_service(service_id)
        return Reply(200)

    def _remove_service(self, service_id: str) -> None:
        self.state.services.pop(service_id, None)
        for check_id in [c for c, ch in self.state.checks.items() if ch.service_id == service_id]:
            del self.state.checks[check_id]
        self.state.index += 1

    def _pass(self, request: Request, check_id: str) -> Reply:
        check = self.state.checks.get(check_id)
        if check is None:
            return Reply.text(
                404,
                f'Unknown check ID "{check_id}". '
                "Ensure that the check ID is passed, not the check name.",
            )
        now = self.clock()
        if check.status != "passing":
            check.changed_at = now
            self.state.index += 1
        check.status = "passing"
        check.output = request.param("note") or ""
        check.passed_at = now
        return Reply(200)

    def _evaluate(self) -> None:
        """Expire TTLs and reap services critical for too long, as of the clock's now."""
        now = self.clock()
        for check in self.state.checks.values():
            if check.status == "passing" and check.passed_at is not None:
                expiry = check.passed_at + check.ttl
                if now > expiry:
                    check.status = "critical"
                    check.output = "TTL expired"
                    check.changed_at = expiry
                    self.state.index += 1
        for check in list(self.state.checks.values()):
            if (
                check.status == "critical"
                and check.deregister_after is not None
                and now - check.changed_at > check.deregister_after
                and check.service_id in self.state.services
            ):
                self._remove_service(check.service_id)

    # ------------------------------------------------------------------ health

    def _health(self, request: Request, name: str) -> Reply:
        passing_only = request.param("passing") not in (None, "0", "false")
        entries = []
        for service in self.state.services.values():
            if service.name != name:
                continue
            checks = [self._serf_check()] + [
                self._check_json(check, service)
                for check in self.state.checks.values()
                if check.service_id == service.service_id
            ]
            if passing_only and any(c["Status"] != "passing" for c in checks):
                continue
            entries.append(
                {
                    "Node": {
                        "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
                        "Node": self.node,
                        "Address": "127.0.0.1",
                        "Datacenter": self.datacenter,
                        "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
                        "Meta": {"consul-network-segment": ""},
                    },
                    "Service": {
                        "ID": service.service_id,
                        "Service": service.name,
                        "Tags": list(service.tags),
                        "Address": service.address,
                        "TaggedAddresses": {},
                        "Meta": dict(service.meta),
                        "Port": service.port,
                        "Weights": {"Passing": 1, "Warning": 1},
                        "Namespace": "default",
                    },
                    "Checks": checks,
                }
            )
        return self._json(entries, index=True)

    def _serf_check(self) -> dict[str, Any]:
        return {
            "Node": self.node,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "passing",
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Namespace": "default",
        }

    def _check_json(self, check: TTLCheck, service: Service) -> dict[str, Any]:
        return {
            "Node": self.node,
            "CheckID": check.check_id,
            "Name": check.name,
            "Status": check.status,
            "Notes": "",
            "Output": check.output,
            "ServiceID": service.service_id,
            "ServiceName": service.name,
            "ServiceTags": list(service.tags),
            "Namespace": "default",
        }

    # ------------------------------------------------------------------ kv

    def _entry_json(self, key: str, entry: Entry) -> dict[str, Any]:
        value = None if entry.value is None else base64.b64encode(entry.value).decode()
        return {
            "LockIndex": 0,
            "Key": key,
            "Flags": entry.flags,
            "Value": value,
            "CreateIndex": entry.create_index,
            "ModifyIndex": entry.modify_index,
        }

    def _kv_get(self, request: Request, key: str) -> Reply:
        headers = {"X-Consul-Index": str(self.state.index), "X-Consul-Knownleader": "true"}
        if request.param("recurse") is not None:
            found = sorted(k for k in self.state.kv if k.startswith(key))
            if not found:
                return Reply(404, b"", headers)
            return Reply.json(200, [self._entry_json(k, self.state.kv[k]) for k in found], headers)
        entry = self.state.kv.get(key)
        if entry is None:
            return Reply(404, b"", headers)
        return Reply.json(200, [self._entry_json(key, entry)], headers)

    def _kv_put(self, request: Request, key: str) -> Reply:
        if len(request.body) > KV_MAX_VALUE:
            return Reply.text(
                413,
                f"Request body({len(request.body)} bytes) too large, max size: {KV_MAX_VALUE} "
                "bytes. See https://developer.hashicorp.com/consul/docs/agent/config/"
                "config-files#kv_max_value_size.",
            )
        cas_text = request.param("cas")
        entry = self.state.kv.get(key)
        if cas_text is not None:
            try:
                cas = int(cas_text)
            except ValueError:
                return Reply.text(400, "Request decode failed: invalid cas index")
            if (cas == 0 and entry is not None) or (
                cas != 0 and (entry is None or entry.modify_index != cas)
            ):
                return Reply.json(200, False)
        flags_text = request.param("flags")
        flags = int(flags_text) if flags_text else (entry.flags if entry else 0)
        self.state.index += 1
        created = entry.create_index if entry is not None else self.state.index
        self.state.kv[key] = Entry(request.body, flags, created, self.state.index)
        return Reply.json(200, True)

    def _kv_delete(self, request: Request, key: str) -> Reply:
        if request.param("recurse") is not None:
            doomed = [k for k in self.state.kv if k.startswith(key)]
        else:
            doomed = [key] if key in self.state.kv else []
        for k in doomed:
            del self.state.kv[k]
        if doomed:
            self.state.index += 1
        return Reply.json(200, True)


def decode_entries(body: bytes) -> list[dict[str, Any]]:
    """The entries of a KV read body, values base64-decoded (a helper for tests)."""
    entries: list[dict[str, Any]] = json.loads(body)
    for entry in entries:
        if entry.get("Value") is not None:
            entry["Value"] = base64.b64decode(entry["Value"])
    return entries
