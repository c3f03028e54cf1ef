"""A Vault fake: the KV v2 and token endpoints ONEX uses, answering as Vault does.

Endpoints (``hashicorp/vault:website/content/api-docs``; error strings from the server source):

- ``GET /v1/<mount>/data/<path>[?version=N]`` (``secret/kv/kv-v2.mdx``, Read Secret Version):
  the response envelope (``request_id``, ``lease_id``, ``renewable``, ``lease_duration``,
  ``data``, ``wrap_info``, ``warnings``, ``auth``, ``mount_type``); a missing secret or version
  is 404 ``{"errors":[]}``; a soft-deleted or destroyed version is 404 whose body carries
  ``data.data = null`` and the version's metadata (``vault-plugin-secrets-kv:path_data.go``).
- ``POST /v1/<mount>/data/<path>`` (Create/Update Secret): ``{"options":{"cas":N},"data":{…}}``;
  a CAS mismatch is 400 ``check-and-set parameter did not match the current version``; with
  ``cas_required`` and no ``cas``, 400 ``check-and-set parameter required for this call``;
  ``cas=0`` means create-only; versions beyond ``max_versions`` (10) are pruned.
- ``DELETE /v1/<mount>/data/<path>`` soft-deletes the latest version (204).
- ``GET|DELETE /v1/<mount>/metadata/<path>`` (Read Secret Metadata; Delete Metadata and All
  Versions): 404 ``{"errors":[]}`` when absent.
- ``GET /v1/auth/token/lookup-self`` and ``POST /v1/auth/token/renew-self``
  (``auth/token.mdx``): token data with the remaining ``ttl``; renewal resets the TTL (to the
  requested increment, capped by ``max_ttl``); a non-renewable token is 400
  ``lease is not renewable``.

Every error is ``{"errors": [...]}`` with ``Content-Type: application/json`` exactly
(``api-docs/index.mdx``). A missing, unknown, expired or revoked token — or a path the test
forbade — is 403 ``permission denied``; a sealed Vault answers everything with 503
``Vault is sealed`` (sdk ``helper/consts.ErrSealed``); an unknown mount is 404
``no handler for route``. Token TTLs run on the injected clock.

Not modelled: policies (a known token may do anything not forbidden), leases of dynamic
secrets, namespaces, replication and ``X-Vault-Index`` consistency (412), response wrapping,
``LIST``, custom metadata, ``delete_version_after``, undelete and destroy.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.adapters.fakes.base import FakeClock, FakeServer, Reply, Request
from tests.adapters.fakes.consul_fake import parse_duration

__all__ = ["VaultFake"]

SEALED = "Vault is sealed"
PERMISSION_DENIED = "permission denied"
CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required for this call"
NOT_RENEWABLE = "lease is not renewable"


@dataclass
class Token:
    ttl: float
    issued_at: float
    created_at: float
    renewable: bool
    policies: list[str]
    max_ttl: float
    accessor: str = field(default_factory=lambda: str(uuid.uuid4()))
    revoked: bool = False

    def remaining(self, now: float) -> float:
        return float("inf") if self.ttl == 0 else self.issued_at + self.ttl - now


@dataclass
class Version:
    data: dict[str, Any]
    created: str
    deletion_time: str = ""
    destroyed: bool = False


@dataclass
class KVSecret:
    versions: dict[int, Version] = field(default_factory=dict)
    current: int = 0
    oldest: int = 0
    created: str = ""
    updated: str = ""


class VaultFake(FakeServer):
    """See the module docstring."""

    def __init__(
        self,
        *,
        root_token: str | None = None,
        clock: FakeClock | None = None,
        mounts: tuple[str, ...] = ("secret",),
        cas_required: bool = False,
        max_versions: int = 10,
    ) -> None:
        super().__init__(self._route)
        self.clock = clock or FakeClock()
        self.mounts = mounts
        self.cas_required = cas_required
        self.max_versions = max_versions
        self.tokens: dict[str, Token] = {}
        self.secrets: dict[tuple[str, str], KVSecret] = {}
        self.forbidden: list[str] = []
        self.sealed = False
        self._lock = threading.RLock()
        if root_token is not None:
            self.add_token(root_token, ttl=0, renewable=False, policies=["root"])

    # ------------------------------------------------------------------ test helpers

    def add_token(
        self,
        token: str,
        *,
        ttl: float = 3600,
        renewable: bool = True,
        policies: list[str] | None = None,
        max_ttl: float = 86400,
    ) -> None:
        now = self.clock()
        with self._lock:
            self.tokens[token] = Token(ttl, now, now, renewable, policies or ["default"], max_ttl)

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens[token].revoked = True

    def forbid(self, path_prefix: str) -> None:
        """Answer 403 for every request whose path (after ``/v1/``) starts with this."""
        with self._lock:
            self.forbidden.append(path_prefix)

    def seal(self) -> None:
        self.sealed = True

    def unseal(self) -> None:
        self.sealed = False

    def put(self, mount: str, path: str, data: dict[str, Any]) -> int:
        """Write a version directly (test setup)."""
        with self._lock:
            return self._new_version(mount, path, data)

    def current_version(self, mount: str, path: str) -> int:
        with self._lock:
            secret = self.secrets.get((mount, path))
            return 0 if secret is None else secret.current

    # ------------------------------------------------------------------ plumbing

    def _wall(self) -> str:
        return self.clock.wall().isoformat().replace("+00:00", "Z")

    def _envelope(self, data: Any = None, auth: Any = None) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": auth,
        }

    @staticmethod
    def _error(status: int, *errors: str) -> Reply:
        return Reply.json(status, {"errors": list(errors)}, {"Cache-Control": "no-store"})

    def _ok(self, document: Any) -> Reply:
        return Reply.json(200, document, {"Cache-Control": "no-store"})

    def _route(self, request: Request) -> Reply:
        with self._lock:
            if self.sealed:
                return self._error(503, SEALED)
            if not request.path.startswith("/v1/"):
                return self._error(404)
            path = request.path[len("/v1/") :]
            token = self._token(request)
            if token is None or any(path.startswith(p) for p in self.forbidden):
                return self._error(403, PERMISSION_DENIED)
            if path == "auth/token/lookup-self" and request.method == "GET":
                return self._lookup_self(request, token)
            if path == "auth/token/renew-self" and request.method in ("POST", "PUT"):
                return self._renew_self(request, token)
            for mount in sorted(self.mounts, key=len, reverse=True):
                if path.startswith(mount + "/"):
                    return self._kv(request, mount, path[len(mount) + 1 :])
            return self._error(404, f'no handler for route "{path}". route entry not found.')

    def _token(self, request: Request) -> tuple[str, Token] | None:
        value = request.headers.get("x-vault-token")
        token = self.tokens.get(value or "")
        if value is None or token is None or token.revoked:
            return None
        if token.remaining(self.clock()) <= 0:
            return None
        return value, token

    # ------------------------------------------------------------------ tokens

    def _token_data(self, value: str, token: Token) -> dict[str, Any]:
        now = self.clock()
        remaining = token.remaining(now)
        expire = None if token.ttl == 0 else self.clock.wall().timestamp() + remaining
        return {
            "accessor": token.accessor,
            "creation_time": int(FakeClock.EPOCH.timestamp() + token.created_at),
            "creation_ttl": int(token.ttl),
            "display_name": "token",
            "entity_id": "",
            "expire_time": None if expire is None else _iso(expire),
            "explicit_max_ttl": 0,
            "id": value,
            "issue_time": _iso(FakeClock.EPOCH.timestamp() + token.created_at),
            "meta": None,
            "num_uses": 0,
            "orphan": True,
            "path": "auth/token/create",
            "policies": list(token.policies),
            "renewable": token.renewable,
            "ttl": 0 if token.ttl == 0 else int(remaining),
            "type": "service",
        }

    def _lookup_self(self, request: Request, found: tuple[str, Token]) -> Reply:
        return self._ok(self._envelope(self._token_data(*found)))

    def _renew_self(self, request: Request, found: tuple[str, Token]) -> Reply:
        value, token = found
        if not token.renewable:
            return self._error(400, NOT_RENEWABLE)
        body = request.json() if request.body else {}
        increment = token.ttl
        if isinstance(body, dict) and body.get("increment"):
            parsed = parse_duration(str(body["increment"]))
            if parsed is None:
                return self._error(400, "invalid increment")
            increment = parsed
        now = self.clock()
        increment = min(increment, token.max_ttl - (now - token.created_at))
        token.ttl = increment
        token.issued_at = now
        auth = {
            "client_token": value,
            "accessor": token.accessor,
            "policies": list(token.policies),
            "token_policies": list(token.policies),
            "metadata": None,
            "lease_duration": int(increment),
            "renewable": True,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
        }
        return self._ok(self._envelope(None, auth))

    # ------------------------------------------------------------------ kv v2

    def _kv(self, request: Request, mount: str, rest: str) -> Reply:
        kind, _, path = rest.partition("/")
        if not path:
            return self._error(404)
        if kind == "data":
            if request.method == "GET":
                return self._read(request, mount, path)
            if request.method in ("POST", "PUT"):
                return self._write(request, mount, path)
            if request.method == "DELETE":
                return self._soft_delete(mount, path)
        if kind == "metadata":
            if request.method == "GET":
                return self._metadata(mount, path)
            if request.method == "DELETE":
                self.secrets.pop((mount, path), None)
                return Reply(204)
        return self._error(405, "unsupported operation")

    def _version_metadata(self, number: int, version: Version) -> dict[str, Any]:
        return {
            "created_time": version.created,
            "custom_metadata": None,
            "deletion_time": version.deletion_time,
            "destroyed": version.destroyed,
            "version": number,
        }

    def _read(self, request: Request, mount: str, path: str) -> Reply:
        secret = self.secrets.get((mount, path))
        if secret is None:
            return self._error(404)
        wanted = request.param("version")
        number = int(wanted) if wanted and wanted != "0" else secret.current
        version = secret.versions.get(number)
        if version is None:
            return self._error(404)
        metadata = self._version_metadata(number, version)
        if version.deletion_time or version.destroyed:
            document = self._envelope({"data": None, "metadata": metadata})
            document["mount_type"] = "kv"
            return Reply.json(404, document, {"Cache-Control": "no-store"})
        document = self._envelope({"data": dict(version.data), "metadata": metadata})
        document["mount_type"] = "kv"
        return self._ok(document)

    def _write(self, request: Request, mount: str, path: str) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return self._error(400, "failed to parse JSON input")
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            return self._error(400, "no data provided")
        options = body.get("options") or {}
        cas = options.get("cas") if isinstance(options, dict) else None
        secret = self.secrets.get((mount, path))
        current = secret.current if secret is not None else 0
        if cas is None and self.cas_required:
            return self._error(400, CAS_REQUIRED)
        if cas is not None and int(cas) != current:
            return self._error(400, CAS_MISMATCH)
        number = self._new_version(mount, path, body["data"])
        version = self.secrets[(mount, path)].versions[number]
        document = self._envelope(self._version_metadata(number, version))
        document["mount_type"] = "kv"
        return self._ok(document)

    def _new_version(self, mount: str, path: str, data: dict[str, Any]) -> int:
        now = self._wall()
        secret = self.secrets.setdefault((mount, path), KVSecret(created=now))
        secret.current += 1
        secret.updated = now
        secret.versions[secret.current] = Version(dict(data), now)
        while len(secret.versions) > self.max_versions:
            del secret.versions[min(secret.versions)]
        secret.oldest = min(secret.versions)
        return secret.current

    def _soft_delete(self, mount: str, path: str) -> Reply:
        secret = self.secrets.get((mount, path))
        if secret is not None and secret.current in secret.versions:
            secret.versions[secret.current].deletion_time = self._wall()
        return Reply(204)

    def _metadata(self, mount: str, path: str) -> Reply:
        secret = self.secrets.get((mount, path))
        if secret is None:
            return self._error(404)
        data = {
            "cas_required": self.cas_required,
            "created_time": secret.created,
            "current_version": secret.current,
            "custom_metadata": None,
            "delete_version_after": "0s",
            "max_versions": 0,
            "oldest_version": secret.oldest,
            "updated_time": secret.updated,
            "versions": {
                str(n): {
                    "created_time": v.created,
                    "deletion_time": v.deletion_time,
                    "destroyed": v.destroyed,
                }
                for n, v in sorted(secret.versions.items())
            },
        }
        return self._ok(self._envelope(data))


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")
