"""Kafka client settings: one frozen value, secrets that never print, TLS that stays verified.

:class:`KafkaSettings` is everything the Kafka adapter needs to reach a cluster. The TLS and
SASL settings are passed to librdkafka unchanged, under librdkafka's own names
(``security.protocol``, ``sasl.mechanism``, ``sasl.username``, ``sasl.password``,
``ssl.ca.location``, ``ssl.certificate.location``, ``ssl.key.location``, ``ssl.key.password``,
``ssl.endpoint.identification.algorithm``), so the librdkafka documentation is the reference for
what each one means.

Three rules are enforced when the value is built, not when a client first connects:

- **Secrets never print.** ``sasl_password`` and ``ssl_key_password`` are held as
  :class:`pydantic.SecretStr` and registered with the process-wide redactor
  (:data:`onex_adapters.redaction.REDACTOR`) the moment the settings exist, so they are
  scrubbed from log lines and error texts too. ``repr`` and ``str`` show ``***``. Extra
  settings whose names mark them as secret (``…password``, ``…secret``, ``ssl.key.pem``,
  ``sasl.oauthbearer.config``) are treated the same way. The plain values appear only in the
  dictionaries built for a client constructor (:meth:`KafkaSettings.consumer_config` and its
  siblings), which are handed straight to librdkafka and never kept.
- **Certificate checks stay on.** ``ssl.endpoint.identification.algorithm=none`` and
  ``enable.ssl.certificate.verification=false`` are refused unless ``allow_insecure_tls=True``
  says, in code, that this deployment accepts a man in the middle.
- **The delivery guarantees are not configurable away.** The adapter always runs an idempotent
  producer with ``acks=all`` and a consumer that commits only what the runtime tells it to
  (``enable.auto.commit=false``, ``enable.auto.offset.store=false``) under the
  ``cooperative-sticky`` assignor. Extra settings that would change any of that, or that
  duplicate a typed field, are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr

from onex_adapters.redaction import REDACTOR
from onex_core.errors import UsageError

__all__ = [
    "ConfigValue",
    "KafkaSettings",
]

ConfigValue = str | int | float | bool
"""A librdkafka configuration value."""

_EMPTY: Mapping[str, ConfigValue] = MappingProxyType({})

_SECURITY_PROTOCOLS = frozenset({"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"})
_OFFSET_RESETS = frozenset({"earliest", "latest", "error"})
_ENDPOINT_ALGORITHMS = frozenset({"https", "none"})

# Settings the adapter owns: given through typed fields, or fixed because the delivery
# guarantees depend on them.
_RESERVED = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",
    "group.id": "group_id",
    "client.id": "client_id",
    "auto.offset.reset": "auto_offset_reset",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
    "ssl.endpoint.identification.algorithm": "ssl_endpoint_identification_algorithm",
}
_FIXED = frozenset(
    {
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "partition.assignment.strategy",
        "group.protocol",
        "logger",
        "error_cb",
        "on_commit",
        "on_delivery",
        "delivery.report.only.error",
    }
)
_SENSITIVE_MARKERS = ("password", "secret", "ssl.key.pem", "sasl.oauthbearer.config")


def _is_sensitive(key: str) -> bool:
    return any(marker in key for marker in _SENSITIVE_MARKERS)


def _secret(name: str, value: object) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        return SecretStr(value)
    raise UsageError(f"Kafka settings: {name} must be a string or SecretStr")


_LOG = logging.getLogger("onex.kafka")


@dataclass(frozen=True, slots=True, repr=False)
class KafkaSettings:
    """How to reach a Kafka cluster, and how the clients behave.

    Args:
        bootstrap_servers: ``host:port[,host:port…]``.
        group_id: the consumer group (every runtime host of one service shares it).
        client_id: the client name the brokers log.
        auto_offset_reset: where a group with no committed offset starts: ``earliest`` (the
            default: a new service processes what is already on its topics), ``latest``, or
            ``error`` (fail instead; for deployments where a missing offset means the broker
            lost its state).
        security_protocol: ``plaintext``, ``ssl``, ``sasl_plaintext`` or ``sasl_ssl``.
        sasl_mechanism: e.g. ``PLAIN``, ``SCRAM-SHA-512``.
        sasl_username: the SASL user.
        sasl_password: the SASL password (a string or :class:`~pydantic.SecretStr`).
        ssl_ca_location: the CA bundle that verifies the brokers.
        ssl_certificate_location: the client certificate (mutual TLS).
        ssl_key_location: the client key.
        ssl_key_password: the client key's passphrase.
        ssl_endpoint_identification_algorithm: ``https`` (librdkafka's default) or ``none``;
            ``none`` requires ``allow_insecure_tls``.
        allow_insecure_tls: permit the settings that switch certificate checks off.
        extra: further librdkafka settings for every client.
        consumer_extra: further settings for the consumer only (e.g. ``session.timeout.ms``).
        producer_extra: further settings for the producer only (e.g. ``linger.ms``).
        rebalance_timeout: seconds a partition revocation waits for the runtime's revoke hook
            to finish or abandon in-flight work of the revoked partitions.
        close_timeout: seconds ``close`` waits for unconfirmed records to be delivered.

    Raises:
        UsageError: a value is malformed or unsafe; the message names the field, never a
            secret value. Nothing is registered with the redactor in that case.
    """

    bootstrap_servers: str
    group_id: str = "onex"
    client_id: str = "onex"
    auto_offset_reset: str = "earliest"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification_algorithm: str | None = None
    allow_insecure_tls: bool = False
    extra: Mapping[str, ConfigValue] = field(default_factory=lambda: _EMPTY)
    consumer_extra: Mapping[str, ConfigValue] = field(default_factory=lambda: _EMPTY)
    producer_extra: Mapping[str, ConfigValue] = field(default_factory=lambda: _EMPTY)
    rebalance_timeout: float = 10.0
    close_timeout: float = 10.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sasl_password", _secret("sasl_password", self.sasl_password))
        set_(self, "ssl_key_password", _secret("ssl_key_password", self.ssl_key_password))
        for name in ("extra", "consumer_extra", "producer_extra"):
            set_(self, name, self._checked_extra(name, getattr(self, name)))
        self._check()
        for secret in (self.sasl_password, self.ssl_key_password):
            if secret is not None:
                REDACTOR.register(secret.get_secret_value())
        for mapping in (self.extra, self.consumer_extra, self.producer_extra):
            for key, value in mapping.items():
                if _is_sensitive(key) and isinstance(value, str):
                    REDACTOR.register(value)

    # ------------------------------------------------------------------ validation

    def _checked_extra(
        self, name: str, value: Mapping[str, ConfigValue]
    ) -> Mapping[str, ConfigValue]:
        if not isinstance(value, Mapping):
            raise UsageError(f"Kafka settings: {name} must be a mapping of librdkafka settings")
        checked: dict[str, ConfigValue] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise UsageError(f"Kafka settings: {name} has a key that is not a string")
            if key in _RESERVED:
                raise UsageError(
                    f"Kafka settings: {name}[{key!r}] is not allowed; use the field "
                    f"{_RESERVED[key]!r} instead"
                )
            if key in _FIXED:
                raise UsageError(
                    f"Kafka settings: {name}[{key!r}] is fixed by the adapter (its delivery "
                    "guarantees depend on it)"
                )
            if not isinstance(item, str | int | float | bool):
                raise UsageError(
                    f"Kafka settings: {name}[{key!r}] must be a string, number or boolean"
                )
            if (
                key == "enable.ssl.certificate.verification"
                and str(item).lower() in ("false", "0")
                and not self.allow_insecure_tls
            ):
                raise UsageError(
                    f"Kafka settings: {name}[{key!r}] switches certificate verification off; "
                    "set allow_insecure_tls=True if that is really intended"
                )
            checked[key] = item
        return MappingProxyType(checked)

    def _check(self) -> None:
        if not isinstance(self.bootstrap_servers, str) or not self.bootstrap_servers.strip():
            raise UsageError("Kafka settings: bootstrap_servers must not be empty")
        for name in ("group_id", "client_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or not value.isprintable():
                raise UsageError(f"Kafka settings: {name} must be a non-empty printable string")
        if self.auto_offset_reset not in _OFFSET_RESETS:
            raise UsageError(
                "Kafka settings: auto_offset_reset must be one of "
                f"{', '.join(sorted(_OFFSET_RESETS))}"
            )
        protocol = self.security_protocol
        if protocol is not None and protocol.lower() not in _SECURITY_PROTOCOLS:
            raise UsageError(
                "Kafka settings: security_protocol must be one of "
                f"{', '.join(sorted(_SECURITY_PROTOCOLS))}"
            )
        uses_sasl = protocol is not None and protocol.lower().startswith("sasl_")
        sasl_given = [
            n for n in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, n)
        ]
        if sasl_given and not uses_sasl:
            raise UsageError(
                f"Kafka settings: {sasl_given[0]} is set but security_protocol is "
                f"{protocol!r}; use sasl_plaintext or sasl_ssl"
            )
        if self.sasl_password is not None and not self.sasl_username:
            raise UsageError("Kafka settings: sasl_password is set without sasl_username")
        algorithm = self.ssl_endpoint_identification_algorithm
        if algorithm is not None:
            if algorithm.lower() not in _ENDPOINT_ALGORITHMS:
                raise UsageError(
                    "Kafka settings: ssl_endpoint_identification_algorithm must be 'https' "
                    "or 'none'"
                )
            if algorithm.lower() == "none" and not self.allow_insecure_tls:
                raise UsageError(
                    "Kafka settings: ssl_endpoint_identification_algorithm='none' switches "
                    "broker hostname verification off; set allow_insecure_tls=True if that "
                    "is really intended"
                )
        for name in ("rebalance_timeout", "close_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise UsageError(f"Kafka settings: {name} must be a positive number of seconds")

    # ------------------------------------------------------------------ client configurations

    def _common(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "logger": _LOG,
        }
        passthrough = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.endpoint.identification.algorithm": self.ssl_endpoint_identification_algorithm,
        }
        config.update({k: v for k, v in passthrough.items() if v is not None})
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_key_password is not None:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        config.update(self.extra)
        return config

    def producer_config(self) -> dict[str, Any]:
        """The producer's librdkafka configuration: idempotent, ``acks=all``.

        The result holds secrets in plain text: hand it straight to the client, never log it.
        """
        config = self._common()
        config.update(self.producer_extra)
        config["enable.idempotence"] = True
        config["acks"] = "all"
        return config

    def consumer_config(self) -> dict[str, Any]:
        """The consumer's librdkafka configuration: manual commits only, cooperative-sticky,
        no topic auto-creation, ``auto.offset.reset`` as configured.

        The result holds secrets in plain text: hand it straight to the client, never log it.
        """
        config = self._common()
        config["allow.auto.create.topics"] = False
        config.update(self.consumer_extra)
        config["group.id"] = self.group_id
        config["auto.offset.reset"] = self.auto_offset_reset
        config["enable.auto.commit"] = False
        config["enable.auto.offset.store"] = False
        config["partition.assignment.strategy"] = "cooperative-sticky"
        return config

    def admin_config(self) -> dict[str, Any]:
        """The admin client's librdkafka configuration (connection and security only).

        The result holds secrets in plain text: hand it straight to the client, never log it.
        """
        return self._common()

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, SecretStr):
                shown = "***"
            elif isinstance(value, Mapping):
                shown = repr({k: ("***" if _is_sensitive(k) else v) for k, v in value.items()})
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"KafkaSettings({', '.join(parts)})"
