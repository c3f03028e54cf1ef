"""The service's configuration: which adapters, read from environment variables.

Every adapter has an embedded default, and a real backend is chosen by naming it:

==============================  ===========================================================
variable set                    adapter
==============================  ===========================================================
(none)                          the in-memory bus, stores and service registry
``ONEX_KAFKA_BOOTSTRAP``        Kafka for the bus (the other ``ONEX_KAFKA_*`` variables of
                                :mod:`onex_adapters.kafka.wiring`)
``ONEX_POSTGRES_DSN``           PostgreSQL for projections, idempotency marks and the
                                registration table
``ONEX_CONSUL_URL``             Consul for the service registry
``ONEX_VAULT_ADDR``             Vault, where ``vault:`` secret references are read
==============================  ===========================================================

**Secrets.** The variables in :data:`SECRET_VARIABLES` may hold a reference instead of the
secret — ``vault:secret/data/onex/db#password``, ``env:NAME`` — or the value itself
(``literal:`` for a value that looks like a reference). :func:`read_config` checks the grammar
and wraps every plain value in a :class:`~onex_adapters.secrets.Secret` at once, which registers
it with the redactor; references are resolved when the service opens
(:func:`examples.registration_service.service.open_service`). The one credential that cannot be
a reference is Vault's own token, ``ONEX_VAULT_TOKEN`` or, better, ``ONEX_VAULT_TOKEN_FILE``.

Reading the configuration does no I/O and contacts nothing: every mistake it can see — a
variable without the one it needs, a malformed reference or URL, a ``vault:`` reference without
``ONEX_VAULT_ADDR`` — is a :class:`~onex_core.errors.UsageError` naming the variable, never its
value. :meth:`ServiceConfig.describe` is what the service logs on start, and holds no secret.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from onex_adapters.secrets import Secret, SecretRef, VaultRef, parse_reference
from onex_core.errors import UsageError

if TYPE_CHECKING:  # each backend's client library is an optional extra: imported when chosen
    from onex_adapters.consul import ConsulSettings
    from onex_adapters.postgres import PostgresSettings
    from onex_adapters.vault import VaultSettings

__all__ = ["SECRET_VARIABLES", "ServiceConfig", "read_config"]

SECRET_VARIABLES: Final = (
    "ONEX_POSTGRES_PASSWORD",
    "ONEX_KAFKA_SASL_PASSWORD",
    "ONEX_KAFKA_SSL_KEY_PASSWORD",
    "ONEX_CONSUL_TOKEN",
)
"""The variables that may hold a secret reference (or a secret)."""

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
_NEEDS: Final = {
    "ONEX_POSTGRES_PASSWORD": "ONEX_POSTGRES_DSN",
    "ONEX_POSTGRES_SCHEMA": "ONEX_POSTGRES_DSN",
    "ONEX_POSTGRES_MIGRATE": "ONEX_POSTGRES_DSN",
    "ONEX_KAFKA_SASL_PASSWORD": "ONEX_KAFKA_BOOTSTRAP",
    "ONEX_KAFKA_SSL_KEY_PASSWORD": "ONEX_KAFKA_BOOTSTRAP",
    "ONEX_CONSUL_TOKEN": "ONEX_CONSUL_URL",
    "ONEX_CONSUL_CA_FILE": "ONEX_CONSUL_URL",
    "ONEX_VAULT_TOKEN": "ONEX_VAULT_ADDR",
    "ONEX_VAULT_TOKEN_FILE": "ONEX_VAULT_ADDR",
    "ONEX_VAULT_CA_FILE": "ONEX_VAULT_ADDR",
}


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """What :func:`read_config` read. Safe to print: secrets are ``***``, references are
    names of secrets, not secrets.

    Attributes:
        kafka_bootstrap: the brokers, or None for the in-memory bus.
        postgres: the PostgreSQL settings, or None for the in-memory stores. A password in
            the DSN is in them; ``ONEX_POSTGRES_PASSWORD`` is in ``secrets``.
        migrate: apply the PostgreSQL migrations on start.
        consul: the Consul settings, or None for the in-memory service registry; the token
            is in ``secrets``.
        vault: the Vault settings, or None.
        secrets: each variable of :data:`SECRET_VARIABLES` that is set: its
            :class:`~onex_adapters.secrets.Secret`, or the reference to resolve.
        drain_timeout: seconds a stop waits for the batch in hand (``ONEX_DRAIN_TIMEOUT``).
    """

    kafka_bootstrap: str | None = None
    postgres: PostgresSettings | None = None
    migrate: bool = False
    consul: ConsulSettings | None = None
    vault: VaultSettings | None = None
    secrets: Mapping[str, Secret | SecretRef] = field(default_factory=dict)
    drain_timeout: float = 30.0

    @property
    def adapters(self) -> dict[str, str]:
        """Which adapter serves each role: ``{"bus": "memory" or "kafka", "state": "memory"
        or "postgres", "registry": "memory" or "consul", "secrets": "none" or "vault"}``."""
        return {
            "bus": "memory" if self.kafka_bootstrap is None else "kafka",
            "state": "memory" if self.postgres is None else "postgres",
            "registry": "memory" if self.consul is None else "consul",
            "secrets": "none" if self.vault is None else "vault",
        }

    def references(self) -> dict[str, str]:
        """``{variable: reference}`` for the secrets still to resolve."""
        return {name: str(v) for name, v in self.secrets.items() if not isinstance(v, Secret)}

    def describe(self) -> tuple[str, ...]:
        """One line per adapter, for the start-up log: where, never a secret."""
        bus = "in memory" if self.kafka_bootstrap is None else f"kafka at {self.kafka_bootstrap}"
        state = "in memory"
        if self.postgres is not None:
            schema = self.postgres.schema or "the server's search_path"
            state = f"{self.postgres.describe()} (schema {schema})"
        registry = "in memory"
        if self.consul is not None:
            scheme, host, port = self.consul.address()
            registry = f"consul at {scheme}://{host}:{port}"
        lines = [f"bus: {bus}", f"state: {state}", f"service registry: {registry}"]
        if self.vault is not None:
            lines.append(f"secrets: vault at {self.vault.url}")
        for name, value in sorted(self.secrets.items()):
            where = "given directly" if isinstance(value, Secret) else _masked(value)
            lines.append(f"{name}: {where}")
        return tuple(lines)


def _masked(reference: SecretRef) -> str:
    return reference.masked() if isinstance(reference, VaultRef) else str(reference)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false")


def _secret(name: str, text: str) -> Secret | SecretRef:
    if text.startswith("literal:"):
        return Secret(text.removeprefix("literal:"))
    try:
        reference = parse_reference(text)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None
    return Secret(text) if reference is None else reference


def _vault_token(environ: Mapping[str, str]) -> Secret:
    value = environ.get("ONEX_VAULT_TOKEN", "")
    path = environ.get("ONEX_VAULT_TOKEN_FILE", "")
    if value and path:
        raise UsageError("set ONEX_VAULT_TOKEN or ONEX_VAULT_TOKEN_FILE, not both")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"ONEX_VAULT_TOKEN_FILE: cannot read the file ({exc.strerror})"
            ) from None
    if not value:
        raise UsageError("ONEX_VAULT_ADDR is set: set ONEX_VAULT_TOKEN_FILE (or ONEX_VAULT_TOKEN)")
    if parse_reference(value) is not None:
        raise UsageError(
            "ONEX_VAULT_TOKEN cannot be a reference: it is what references are read with"
        )
    return Secret(value)


def _drain_timeout(environ: Mapping[str, str]) -> float:
    text = environ.get("ONEX_DRAIN_TIMEOUT", "").strip()
    if not text:
        return 30.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 1.0 <= seconds <= 300.0:
        raise UsageError("ONEX_DRAIN_TIMEOUT must be a number of seconds from 1 to 300")
    return seconds


def read_config(environ: Mapping[str, str]) -> ServiceConfig:
    """The service's configuration from ``environ`` (see the module docstring). No I/O but
    reading ``ONEX_VAULT_TOKEN_FILE``.

    Raises:
        UsageError: a variable is malformed, or set without the one it needs; the message
            names the variable, never its value. Plain secrets met before the error are
            registered with the redactor all the same.
    """
    env = {name: value for name, value in environ.items() if name.startswith("ONEX_")}
    for name, needed in _NEEDS.items():
        if env.get(name) and not env.get(needed):
            raise UsageError(f"{name} is set but {needed} is not")
    secrets = {name: _secret(name, env[name]) for name in SECRET_VARIABLES if env.get(name)}
    if not env.get("ONEX_VAULT_ADDR"):
        for name, value in secrets.items():
            if isinstance(value, VaultRef):
                raise UsageError(f"{name} is a vault: reference but ONEX_VAULT_ADDR is not set")
    vault = None
    if env.get("ONEX_VAULT_ADDR"):
        from onex_adapters.vault import VaultSettings

        vault = VaultSettings(
            url=env["ONEX_VAULT_ADDR"],
            token=_vault_token(env),
            verify=env.get("ONEX_VAULT_CA_FILE") or True,
        )
    postgres = None
    if env.get("ONEX_POSTGRES_DSN"):
        from onex_adapters.postgres import PostgresSettings

        postgres = PostgresSettings.from_dsn(
            env["ONEX_POSTGRES_DSN"], schema=env.get("ONEX_POSTGRES_SCHEMA") or None
        )
    consul = None
    if env.get("ONEX_CONSUL_URL"):
        from onex_adapters.consul import ConsulSettings

        consul = ConsulSettings(
            url=env["ONEX_CONSUL_URL"], verify=env.get("ONEX_CONSUL_CA_FILE") or True
        )
    return ServiceConfig(
        kafka_bootstrap=env.get("ONEX_KAFKA_BOOTSTRAP", "").strip() or None,
        postgres=postgres,
        migrate=_flag(env, "ONEX_POSTGRES_MIGRATE"),
        consul=consul,
        vault=vault,
        secrets=secrets,
        drain_timeout=_drain_timeout(env),
    )
