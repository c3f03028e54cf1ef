"""Kafka settings: pass-through under librdkafka's names, unsafe TLS refused, the delivery
guarantees fixed, and a secret that never shows — in repr, str, logs or errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import SecretStr

from onex_adapters.kafka import KafkaBus, KafkaSettings, TopicSpec, create_topics
from onex_adapters.kafka.broker import free_port
from onex_adapters.redaction import REDACTOR
from onex_core.errors import EffectUnavailable, UsageError

CANARY = "canary-Sa5L-pw-7f3e91"
KEY_CANARY = "canary-keypass-c0ffee"


def tls_settings(**overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": "broker-1:9093,broker-2:9093",
        "group_id": "registration",
        "client_id": "onex-host-1",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "onex",
        "sasl_password": CANARY,
        "ssl_ca_location": "ca.pem",
        "ssl_certificate_location": "client.pem",
        "ssl_key_location": "client.key",
        "ssl_key_password": KEY_CANARY,
        "ssl_endpoint_identification_algorithm": "https",
    }
    values.update(overrides)
    return KafkaSettings(**values)


def test_tls_and_sasl_pass_through_unchanged_under_librdkafka_names() -> None:
    config = tls_settings().consumer_config()
    assert {k: config[k] for k in config if k.startswith(("security.", "sasl.", "ssl."))} == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "onex",
        "sasl.password": CANARY,
        "ssl.ca.location": "ca.pem",
        "ssl.certificate.location": "client.pem",
        "ssl.key.location": "client.key",
        "ssl.key.password": KEY_CANARY,
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert config["bootstrap.servers"] == "broker-1:9093,broker-2:9093"
    assert config["group.id"] == "registration"
    assert config["client.id"] == "onex-host-1"


def test_unset_security_settings_are_left_to_librdkafka() -> None:
    config = KafkaSettings("localhost:9092").producer_config()
    assert not [k for k in config if k.startswith(("security.", "sasl.", "ssl."))]


def test_the_delivery_guarantees_are_fixed() -> None:
    settings = KafkaSettings(
        "localhost:9092",
        auto_offset_reset="error",
        extra={"socket.keepalive.enable": True},
        consumer_extra={"session.timeout.ms": 6000},
        producer_extra={"linger.ms": 20},
    )
    producer, consumer = settings.producer_config(), settings.consumer_config()
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    assert producer["linger.ms"] == 20
    assert "session.timeout.ms" not in producer
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert consumer["auto.offset.reset"] == "error"
    assert consumer["session.timeout.ms"] == 6000
    assert "linger.ms" not in consumer
    assert producer["socket.keepalive.enable"] is consumer["socket.keepalive.enable"] is True
    assert "group.id" not in settings.admin_config()


@pytest.mark.parametrize(
    ("where", "key", "value", "message"),
    [
        ("extra", "enable.auto.commit", True, "fixed by the adapter"),
        ("consumer_extra", "enable.auto.offset.store", True, "fixed by the adapter"),
        ("producer_extra", "enable.idempotence", False, "fixed by the adapter"),
        ("producer_extra", "acks", 1, "fixed by the adapter"),
        ("consumer_extra", "partition.assignment.strategy", "range", "fixed by the adapter"),
        ("extra", "sasl.password", CANARY, "use the field 'sasl_password'"),
        ("extra", "group.id", "other", "use the field 'group_id'"),
        ("extra", "ssl.endpoint.identification.algorithm", "none", "use the field"),
        ("extra", "enable.ssl.certificate.verification", "false", "allow_insecure_tls"),
        ("extra", "socket.timeout.ms", [1], "string, number or boolean"),
    ],
)
def test_settings_the_adapter_owns_are_refused_in_extras(
    where: str, key: str, value: Any, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        KafkaSettings("localhost:9092", **{where: {key: value}})
    assert CANARY not in str(caught.value)


def test_hostname_verification_stays_on_unless_insecure_tls_is_allowed() -> None:
    with pytest.raises(UsageError, match="allow_insecure_tls"):
        tls_settings(ssl_endpoint_identification_algorithm="none")
    allowed = tls_settings(ssl_endpoint_identification_algorithm="none", allow_insecure_tls=True)
    assert allowed.producer_config()["ssl.endpoint.identification.algorithm"] == "none"
    relaxed = KafkaSettings(
        "localhost:9092",
        allow_insecure_tls=True,
        extra={"enable.ssl.certificate.verification": False},
    )
    assert relaxed.consumer_config()["enable.ssl.certificate.verification"] is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bootstrap_servers": " "}, "bootstrap_servers"),
        ({"group_id": ""}, "group_id"),
        ({"auto_offset_reset": "smallest"}, "auto_offset_reset"),
        ({"security_protocol": "tls"}, "security_protocol"),
        ({"security_protocol": "ssl"}, "sasl_mechanism is set"),
        ({"sasl_username": None}, "without sasl_username"),
        ({"ssl_endpoint_identification_algorithm": "strict"}, "'https' or 'none'"),
        ({"rebalance_timeout": 0}, "rebalance_timeout"),
        ({"close_timeout": -1.0}, "close_timeout"),
        ({"sasl_password": 12345}, "sasl_password must be a string"),
    ],
)
def test_malformed_settings_are_refused_naming_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        tls_settings(**overrides)
    assert CANARY not in str(caught.value)
    assert KEY_CANARY not in str(caught.value)


def test_a_secret_str_is_accepted_as_is() -> None:
    settings = tls_settings(sasl_password=SecretStr(CANARY))
    assert settings.sasl_password == SecretStr(CANARY)
    assert settings.producer_config()["sasl.password"] == CANARY


def test_secrets_never_show_in_repr_str_or_through_the_redactor() -> None:
    settings = tls_settings(extra={"sasl.oauthbearer.client.secret": "canary-oauth-9d8c"})
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert CANARY not in text
        assert KEY_CANARY not in text
        assert "canary-oauth-9d8c" not in text
        assert "sasl_password=***" in text
        assert "'sasl.oauthbearer.client.secret': '***'" in text
    assert "sasl_username='onex'" in repr(settings)
    for secret in (CANARY, KEY_CANARY, "canary-oauth-9d8c"):
        assert REDACTOR.redact(f"failed: {secret}!") == "failed: ***!"
    assert CANARY not in repr(KafkaBus(settings))


def test_a_canary_password_never_reaches_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A SASL client against a port where nothing listens, with librdkafka's own
    # configuration and security debugging on: every error path logs and raises.
    settings = KafkaSettings(
        f"127.0.0.1:{free_port()}",
        security_protocol="sasl_plaintext",
        sasl_mechanism="PLAIN",
        sasl_username="onex",
        sasl_password=CANARY,
        extra={"debug": "conf,security,broker", "reconnect.backoff.max.ms": 100},
        producer_extra={"message.timeout.ms": 300},
    )

    async def scenario() -> list[str]:
        errors: list[str] = []
        bus = KafkaBus(settings)
        try:
            with pytest.raises(EffectUnavailable) as caught:
                await bus.publish("onex.evt.kafka-test.secret.v1", b"x")
            errors.append(str(caught.value))
            errors.append(repr(caught.value))
            await bus.subscribe(["onex.evt.kafka-test.secret.v1"])
            await bus.poll(10, 0.3)
        finally:
            await bus.close()
        return errors

    with caplog.at_level(logging.DEBUG, logger="onex.kafka"):
        errors = asyncio.run(scenario())
    assert caplog.records, "librdkafka's logs should reach the onex.kafka logger"
    assert "sasl.password" in caplog.text  # the configuration dump was logged...
    assert CANARY not in caplog.text  # ...without the password
    for text in errors:
        assert CANARY not in text


def test_settings_librdkafka_refuses_surface_as_usage_errors_naming_the_property() -> None:
    settings = KafkaSettings("127.0.0.1:1", extra={"no.such.property": "canary-value-42"})

    async def scenario() -> None:
        bus = KafkaBus(settings)
        try:
            with pytest.raises(UsageError, match=r"producer settings.*no\.such\.property"):
                await bus.publish("onex.evt.a.b.v1", b"x")
            with pytest.raises(UsageError, match=r"consumer settings.*no\.such\.property"):
                await bus.subscribe(["onex.evt.a.b.v1"])
            with pytest.raises(UsageError, match=r"admin settings.*no\.such\.property"):
                await create_topics(settings, [TopicSpec("onex.evt.a.b.v1")])
        finally:
            await bus.close()

    asyncio.run(scenario())
