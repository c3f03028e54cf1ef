"""Choosing and provisioning Kafka from the outside: settings from the environment, the topics
contracts name, ``onex topics create``, named buses, and the accelerated loop for demos."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from onex_adapters.cli import main
from onex_adapters.kafka import DEFAULT_RETENTION_MS, KafkaSettings
from onex_adapters.kafka.broker import free_port
from onex_adapters.kafka.wiring import (
    INTERACTIVE,
    AcceleratedLoop,
    KafkaBuses,
    contract_topics,
    run_accelerated,
    settings_from_env,
)
from onex_adapters.registration.app import load_registration_contracts
from onex_contracts import REGISTRATION_CONTRACTS, ContractInvalid
from onex_core.errors import EffectUnavailable, UsageError
from onex_core.registration import model
from onex_core.topics import parse_topic

Settings = Callable[..., KafkaSettings]

# --------------------------------------------------------------------------- the environment


def test_no_bootstrap_means_no_kafka() -> None:
    assert settings_from_env({}) is None
    assert settings_from_env({"ONEX_KAFKA_GROUP": "g"}) is None
    assert KafkaBuses.from_env({"ONEX_KAFKA_BOOTSTRAP": "  "}) is None


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("GROUP", "billing", "group_id", "billing"),
        ("CLIENT_ID", "billing-7", "client_id", "billing-7"),
        ("AUTO_OFFSET_RESET", "error", "auto_offset_reset", "error"),
        ("SECURITY_PROTOCOL", "ssl", "security_protocol", "ssl"),
        ("SSL_CA_LOCATION", "/etc/ca.pem", "ssl_ca_location", "/etc/ca.pem"),
        ("SSL_CERTIFICATE_LOCATION", "/etc/c.pem", "ssl_certificate_location", "/etc/c.pem"),
        ("SSL_KEY_LOCATION", "/etc/k.pem", "ssl_key_location", "/etc/k.pem"),
    ],
)
def test_each_variable_sets_its_field(variable: str, value: str, field: str, expected: str) -> None:
    settings = settings_from_env(
        {"ONEX_KAFKA_BOOTSTRAP": "k1:9092,k2:9092", f"ONEX_KAFKA_{variable}": value}
    )
    assert settings is not None
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert getattr(settings, field) == expected


def test_an_argument_names_the_cluster_and_the_default_group() -> None:
    settings = settings_from_env({}, bootstrap="b:1", group_id="registration")
    assert settings is not None
    assert (settings.bootstrap_servers, settings.group_id) == ("b:1", "registration")
    overridden = settings_from_env({"ONEX_KAFKA_GROUP": "mine"}, bootstrap="b:1", group_id="x")
    assert overridden is not None
    assert overridden.group_id == "mine"


def test_the_sasl_password_comes_from_a_file_and_never_shows(tmp_path: Path) -> None:
    password = "canary-7f3a9c"
    secret = tmp_path / "sasl"
    secret.write_text(password + "\n")
    base = {
        "ONEX_KAFKA_BOOTSTRAP": "b:1",
        "ONEX_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "ONEX_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ONEX_KAFKA_SASL_USERNAME": "svc",
    }
    settings = settings_from_env({**base, "ONEX_KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert settings is not None
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == password
    assert password not in repr(settings)
    with pytest.raises(UsageError, match="not both") as both:
        settings_from_env(
            {
                **base,
                "ONEX_KAFKA_SASL_PASSWORD": password,
                "ONEX_KAFKA_SASL_PASSWORD_FILE": str(secret),
            }
        )
    assert password not in str(both.value)
    with pytest.raises(UsageError, match="cannot read"):
        settings_from_env({**base, "ONEX_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "none")})


def test_librdkafka_settings_override_the_defaults_and_are_checked() -> None:
    env = {
        "ONEX_KAFKA_BOOTSTRAP": "b:1",
        "ONEX_KAFKA_CONSUMER_CONFIG": "session.timeout.ms=2000, max.poll.interval.ms=9000",
        "ONEX_KAFKA_PRODUCER_CONFIG": "linger.ms=20",
    }
    settings = settings_from_env(env, consumer_defaults=INTERACTIVE)
    assert settings is not None
    assert settings.consumer_extra["session.timeout.ms"] == "2000"
    assert settings.consumer_extra["max.poll.interval.ms"] == "9000"
    assert settings.consumer_extra["fetch.wait.max.ms"] == INTERACTIVE["fetch.wait.max.ms"]
    assert dict(settings.producer_extra) == {"linger.ms": "20"}
    plain = settings_from_env({"ONEX_KAFKA_BOOTSTRAP": "b:1"})
    assert plain is not None
    assert dict(plain.consumer_extra) == {}  # librdkafka's defaults unless asked
    for bad, message in [
        ("enable.auto.commit=true", "fixed by the adapter"),
        ("group.id=other", "use the field 'group_id'"),
        ("session.timeout.ms", "without '='"),
    ]:
        with pytest.raises(UsageError, match=message):
            settings_from_env({**env, "ONEX_KAFKA_CONSUMER_CONFIG": bad})


def test_buses_are_named_by_group_under_the_deployments_prefix() -> None:
    buses = KafkaBuses.from_env({"ONEX_KAFKA_BOOTSTRAP": "b:1", "ONEX_KAFKA_GROUP": "run-7"})
    assert buses is not None
    monitor = buses.bus(group="monitor", member_id="monitor-1")
    assert monitor.settings.group_id == "run-7.monitor"
    assert monitor.settings.client_id == "monitor-1"
    assert monitor.settings.bootstrap_servers == "b:1"
    assert buses.bus(group="host").settings.client_id == "onex"


# --------------------------------------------------------------------------- the contracts' topics


def write_contracts(root: Path, label: str) -> dict[str, str]:
    """Two compute nodes: one subscribes to a command and publishes an event and a dead
    letter; the other subscribes to that event and publishes a snapshot."""
    topics = {
        "command": f"onex.cmd.kafka-test.{label}-entry.v1",
        "event": f"onex.evt.kafka-test.{label}-applied.v1",
        "snapshot": f"onex.snapshot.kafka-test.{label}-state.v1",
        "dlq": f"onex.dlq.kafka-test.{label}.v1",
    }
    nodes = {
        "ledger": (
            [topics["command"]],
            [topics["event"]],
            [topics["dlq"]],
            [topics["command"]],
        ),
        "projector": ([topics["event"]], [topics["snapshot"]], [], []),
    }
    for name, (subscribe, publish, dlq, external) in nodes.items():
        (root / name).mkdir(parents=True)
        lines = [
            f"name: {name}",
            "node_type: COMPUTE_GENERIC",
            "contract_version: {major: 1, minor: 0, patch: 0}",
            'node_version: "1.0.0"',
            f"description: The {name} of the wiring tests.",
            "event_bus:",
        ]
        for key, values in [
            ("subscribe_topics", subscribe),
            ("publish_topics", publish),
            ("dlq_topics", dlq),
            ("external_topics", external),
        ]:
            if values:
                lines.append(f"  {key}: [{', '.join(values)}]")
        (root / name / "contract.yaml").write_text("\n".join(lines) + "\n")
    return topics


def test_contract_topics_are_every_subscribed_published_and_dead_letter_topic(
    tmp_path: Path,
) -> None:
    t = write_contracts(tmp_path, "wiring")
    found = contract_topics(tmp_path)
    assert found.subscribe == tuple(sorted([t["command"], t["event"]]))
    assert found.publish == tuple(sorted([t["event"], t["snapshot"]]))
    assert found.dlq == (t["dlq"],)
    assert found.all == tuple(sorted(t.values()))
    one = contract_topics(tmp_path / "projector" / "contract.yaml")
    assert one.all == tuple(sorted([t["event"], t["snapshot"]]))


def test_the_registration_contracts_name_every_topic_the_registration_host_uses() -> None:
    provisioned = set(contract_topics(REGISTRATION_CONTRACTS).all)
    compiled = load_registration_contracts()
    subscribed = {r.pattern for r in compiled.routes.routes if r.topic_pattern.is_exact}
    outcomes = {topic for _, topic in compiled.operations.values() if topic is not None}
    assert subscribed <= provisioned
    assert outcomes <= provisioned
    assert compiled.routes.dlq_topic in provisioned
    declared = {
        value
        for name, value in vars(model).items()
        if name.isupper() and isinstance(value, str) and value.startswith("onex.")
    }
    assert declared
    assert declared <= provisioned


def test_missing_empty_or_invalid_contracts_name_no_topics(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        contract_topics(tmp_path / "missing")
    with pytest.raises(UsageError, match="no contract files"):
        contract_topics(tmp_path)
    write_contracts(tmp_path, "bad")
    contract = tmp_path / "ledger" / "contract.yaml"
    contract.write_text(contract.read_text().replace("node_version", "node_versoin"))
    with pytest.raises(ContractInvalid, match="node_versoin"):
        contract_topics(tmp_path)


# --------------------------------------------------------------------------- onex topics create


def onex(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_dry_run_plans_every_topic_with_the_retention_of_its_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_contracts(tmp_path, "plan")
    code, out, err = onex(
        capsys, "topics", "create", str(tmp_path), "--dry-run", "--json", "--partitions", "5"
    )
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["dry_run"] is True
    assert [t["name"] for t in report["topics"]] == list(contract_topics(tmp_path).all)
    for planned in report["topics"]:
        kind = parse_topic(planned["name"]).kind
        assert planned["status"] == "planned"
        assert planned["partitions"] == 5
        assert planned["retention_ms"] == DEFAULT_RETENTION_MS[kind]
        assert ("compact" in planned["cleanup_policy"]) == (kind.value == "snapshot")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{missing}"], 2, "no such file or directory"),
        (["{dir}"], 2, "name the cluster with --bootstrap or ONEX_KAFKA_BOOTSTRAP"),
        (["{dir}", "--dry-run", "--partitions", "0"], 2, "partitions must be an integer >= 1"),
        (["{invalid}", "--dry-run"], 1, "node_versoin"),
    ],
)
def test_usage_errors_and_invalid_contracts(
    args: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ONEX_KAFKA_BOOTSTRAP", raising=False)
    write_contracts(tmp_path / "good", "usage")
    write_contracts(tmp_path / "invalid", "usage")
    contract = tmp_path / "invalid" / "ledger" / "contract.yaml"
    contract.write_text(contract.read_text().replace("node_version", "node_versoin"))
    paths = {
        "{missing}": str(tmp_path / "missing"),
        "{dir}": str(tmp_path / "good"),
        "{invalid}": str(tmp_path / "invalid"),
    }
    result, out, err = onex(capsys, "topics", "create", *(paths.get(a, a) for a in args))
    assert result == code
    assert message in err
    assert out == ""


def test_a_cluster_that_does_not_answer_fails_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_contracts(tmp_path, "down")
    nobody = f"127.0.0.1:{free_port()}"
    code, out, err = onex(
        capsys, "topics", "create", str(tmp_path), "--bootstrap", nobody, "--timeout", "1"
    )
    assert code == 1
    assert "did not answer" in err
    assert out == ""


@pytest.mark.kafka
def test_topics_are_created_on_the_broker_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kafka_bootstrap: str, unique: str
) -> None:
    topics = write_contracts(tmp_path, f"cli-{unique}")
    argv = ["topics", "create", str(tmp_path), "--bootstrap", kafka_bootstrap, "--partitions", "2"]
    code, out, err = onex(capsys, *argv)
    assert (code, err) == (0, "")
    assert out.count("created ") == len(topics)
    assert "4 created, 0 already existed" in out

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(timeout=10)
    for name in topics.values():
        assert len(metadata.topics[name].partitions) == 2
    resources = [ConfigResource("topic", name) for name in topics.values()]
    configs = {
        res.name: fut.result(timeout=10) for res, fut in admin.describe_configs(resources).items()
    }
    for name in topics.values():
        expected = DEFAULT_RETENTION_MS[parse_topic(name).kind]
        assert configs[name]["retention.ms"].value == str(expected)

    code, out, err = onex(capsys, *argv, "--json")
    assert (code, err) == (0, "")
    assert {t["status"] for t in json.loads(out)["topics"]} == {"exists"}


# --------------------------------------------------------------------------- accelerated time


def test_the_accelerated_loop_runs_faster_and_stands_still_when_paused() -> None:
    measured: dict[str, Any] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, AcceleratedLoop)
        started, wall = loop.time(), time.monotonic()
        await asyncio.sleep(2.0)
        measured["loop"] = loop.time() - started
        measured["wall"] = time.monotonic() - wall
        with loop.paused():
            frozen = loop.time()
            sleeper = asyncio.ensure_future(asyncio.sleep(0.01))
            # Real time passes in a thread (20 loop-seconds' worth at this speed)...
            await asyncio.to_thread(threading.Event().wait, 0.1)
            # ... but not on the loop's clock, and no timer came due.
            measured["frozen"] = loop.time() - frozen
            measured["sleeper_done"] = sleeper.done()
        await sleeper

    run_accelerated(scenario(), speed=200)
    assert measured["loop"] >= 2.0
    assert measured["wall"] < 1.0  # 2 loop-seconds are 10 ms at this speed
    assert measured["frozen"] == 0.0
    assert measured["sleeper_done"] is False


def test_the_accelerated_loop_refuses_to_slow_down() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        AcceleratedLoop(0.5)


@pytest.mark.kafka
def test_buses_provision_the_contracts_and_get_ready_while_the_loops_clock_stands_still(
    tmp_path: Path, kafka_bootstrap: str, unique: str
) -> None:
    topics = write_contracts(tmp_path, f"ready-{unique}")
    buses = KafkaBuses.from_env(
        {"ONEX_KAFKA_BOOTSTRAP": kafka_bootstrap, "ONEX_KAFKA_GROUP": f"ready-{unique}"},
        consumer_defaults=INTERACTIVE,
    )
    assert buses is not None
    measured: dict[str, Any] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, AcceleratedLoop)
        done = await buses.provision_contracts(tmp_path, partitions=2)
        assert sorted(done.created) == sorted(topics.values())
        consumer = buses.bus(group="consumer")
        producer = buses.bus(group="producer")
        idle = buses.bus(group="idle")  # subscribed, but nobody polls it
        await consumer.subscribe([topics["command"]])
        await idle.subscribe([topics["event"]])
        records: list[Any] = []

        async def poll() -> None:
            while True:
                records.extend(await consumer.poll(10, 0.05))

        polling = asyncio.ensure_future(poll())
        try:
            started, wall = loop.time(), time.monotonic()
            await buses.ready(consumer, producer)
            measured["loop"], measured["wall"] = loop.time() - started, time.monotonic() - wall
            measured["assigned"] = len(consumer.assignment)
            await producer.publish(topics["command"], b"hello", key=b"k")
            deadline = time.monotonic() + 10
            while not records:
                assert time.monotonic() < deadline, "the record never arrived"
                await asyncio.sleep(0.01)
            with pytest.raises(EffectUnavailable, match=f"ready-{unique}.idle"):
                await buses.ready(consumer, idle, timeout=0.5)
        finally:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
            for bus in (consumer, producer, idle):
                await bus.close()

    run_accelerated(scenario(), speed=100)
    assert measured["assigned"] == 2
    # The join took real time (the group's first member waits for the broker), and the
    # loop's clock did not move meanwhile — at speed 100 it would have run for minutes.
    assert measured["wall"] >= 0.5
    assert measured["loop"] < 1.0
