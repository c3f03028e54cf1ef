"""Running the runtime host on Kafka: settings from the environment, the contracts' topics,
buses for a composition root, and a loop for demos on real time.

**Choosing Kafka.** :func:`settings_from_env` reads ``ONEX_KAFKA_*`` variables and returns
``None`` when ``ONEX_KAFKA_BOOTSTRAP`` is unset, so a composition root picks the embedded
default unless a broker is named::

    buses = KafkaBuses.from_env()              # None → use the in-memory bus
    if buses is not None:
        await buses.provision_contracts(REGISTRATION_CONTRACTS)
        bus = buses.bus(group="registration")

Variables (all optional but the first): ``ONEX_KAFKA_BOOTSTRAP``, ``ONEX_KAFKA_GROUP`` (the
group id, or the prefix of :class:`KafkaBuses`' groups; default ``onex``),
``ONEX_KAFKA_CLIENT_ID``, ``ONEX_KAFKA_AUTO_OFFSET_RESET``, ``ONEX_KAFKA_SECURITY_PROTOCOL``,
``ONEX_KAFKA_SASL_MECHANISM``, ``ONEX_KAFKA_SASL_USERNAME``, ``ONEX_KAFKA_SASL_PASSWORD`` (or
``…_FILE``, a file holding it), ``ONEX_KAFKA_SSL_CA_LOCATION``,
``ONEX_KAFKA_SSL_CERTIFICATE_LOCATION``, ``ONEX_KAFKA_SSL_KEY_LOCATION``,
``ONEX_KAFKA_SSL_KEY_PASSWORD`` (or ``…_FILE``), and ``ONEX_KAFKA_CONSUMER_CONFIG`` /
``ONEX_KAFKA_PRODUCER_CONFIG`` — further librdkafka settings as ``key=value,key=value``. Every
value goes through :class:`~onex_adapters.kafka.config.KafkaSettings`, which refuses unsafe or
guarantee-breaking settings and registers the secrets with the redactor.

**Topics.** A broker may create a topic the first time it is produced to, with whatever
defaults it has (the test broker does, silently). :func:`contract_topics` lists every topic a
directory of contracts names — subscribed, published and dead-letter — and
:meth:`KafkaBuses.provision` (or ``onex topics create PATH``) creates them up front with
partitions and retention by kind (:mod:`onex_adapters.kafka.admin`).

What the runtime host does on Kafka
-----------------------------------

The host (:mod:`onex_adapters.runtime.host`) polls a batch, handles it — one key's records in
order, keys concurrently — applies every outcome (projections, then effects, then events) and
commits the batch's offsets before it polls again. On Kafka that means:

- **Success.** Events and dead letters are published with ``acks=all`` on an idempotent
  producer, and a publish returns only once the broker confirmed it. Only then is the batch
  committed — synchronously, per partition "highest offset + 1".
- **An error in one record.** Undecodable or unroutable records are dead-lettered at once; a
  handler's transient failure is retried with backoff, then dead-lettered with its attempt
  history; an effect's failure is retried under its policy, then dead-lettered. The dead letter
  must be confirmed by the broker before the record counts as done; while the broker cannot
  take it, the host keeps retrying and commits nothing past that record — the partition
  pauses, it never skips. Later records of the same partition flow once it is written.
- **A crash** (SIGKILL, power loss) loses at most the batch in hand: it was not committed, so
  the next owner of its partitions gets it again. Its effects that had finished are skipped by
  the idempotency store (intent ids are derived from the message, so a redelivery asks for the
  same ids); an effect that finished without its done-mark being written runs again, so an
  effect outside the idempotency store's database must tolerate a repeat, and one inside it
  should claim its intent id in its own transaction
  (:mod:`onex_adapters.postgres.idempotency`) — then nothing is applied twice. Events are
  published again with the same envelope ids, so what they cause downstream has the same
  intent ids too, and reducers ignore a duplicate: at-least-once, effectively once.
- **A graceful stop** (SIGTERM → ``RuntimeHost.stop``) polls no more, finishes the batch in
  hand within ``drain_timeout``, commits it, and leaves the group at once, so the other members
  take over without waiting for the session timeout.
- **Rebalance.** The group uses the cooperative-sticky assignor: a member joining or leaving
  moves only the partitions that must move. Rebalance callbacks run inside the consumer's poll,
  and the host polls only between batches, so a partition changes hands while its previous
  owner holds none of its work; the new owner starts at the committed offset. A member that
  vanishes (killed, partitioned away) keeps its partitions until its session times out; its
  uncommitted batch is then redelivered as after a crash. A member that lost partitions while
  it was still working — a batch longer than ``max.poll.interval.ms``, a session that timed
  out — has its commits for them refused (``EffectUnavailable``; counted in
  ``RuntimeStats.commit_failures``): the new owner redoes that work, and the idempotency store
  makes the repeat harmless.
- **Broker quirks** are not the runtime's: it never computes lag or "the end" from the high
  watermark, and it subscribes only to topics its contracts name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from onex_adapters.clock import DelegatingSelector
from onex_adapters.kafka.admin import Provisioned, TopicSpec, create_topics
from onex_adapters.kafka.bus import KafkaBus
from onex_adapters.kafka.config import ConfigValue, KafkaSettings
from onex_contracts.issues import ContractInvalid
from onex_contracts.lint import load_directory
from onex_contracts.loader import load_located
from onex_contracts.schema import NodeContract
from onex_core.errors import EffectUnavailable, UsageError
from onex_core.ports import EventBus

__all__ = [
    "ENV_PREFIX",
    "INTERACTIVE",
    "AcceleratedLoop",
    "ContractTopics",
    "KafkaBuses",
    "contract_topics",
    "run_accelerated",
    "settings_from_env",
    "topic_specs",
]

T = TypeVar("T")

ENV_PREFIX = "ONEX_KAFKA_"

INTERACTIVE: Mapping[str, ConfigValue] = MappingProxyType(
    {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "fetch.wait.max.ms": 10,
        "fetch.queue.backoff.ms": 10,
    }
)
"""Consumer settings for a group that should start in seconds and hand records on in
milliseconds (demos, tests): a short session (some brokers take half of it to let a member
join), and no long waits inside fetches."""

_FIELDS = {
    "CLIENT_ID": "client_id",
    "AUTO_OFFSET_RESET": "auto_offset_reset",
    "SECURITY_PROTOCOL": "security_protocol",
    "SASL_MECHANISM": "sasl_mechanism",
    "SASL_USERNAME": "sasl_username",
    "SSL_CA_LOCATION": "ssl_ca_location",
    "SSL_CERTIFICATE_LOCATION": "ssl_certificate_location",
    "SSL_KEY_LOCATION": "ssl_key_location",
}
_NONE: Mapping[str, ConfigValue] = MappingProxyType({})
_PRODUCER_START = 1.0  # seconds a new idempotent producer takes before it can send
_SECRETS = {"SASL_PASSWORD": "sasl_password", "SSL_KEY_PASSWORD": "ssl_key_password"}


def _librdkafka_pairs(name: str, text: str) -> dict[str, ConfigValue]:
    pairs: dict[str, ConfigValue] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{name}: expected key=value[,key=value…], got an entry without '='")
        pairs[key.strip()] = value.strip()
    return pairs


def _secret(env: Mapping[str, str], suffix: str) -> str | None:
    name = ENV_PREFIX + suffix
    value = env.get(name)
    path = env.get(name + "_FILE")
    if value and path:
        raise UsageError(f"set {name} or {name}_FILE, not both")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise UsageError(f"{name}_FILE: cannot read the file ({exc.strerror})") from None
    return value or None


def settings_from_env(
    env: Mapping[str, str] | None = None,
    *,
    bootstrap: str | None = None,
    group_id: str | None = None,
    consumer_defaults: Mapping[str, ConfigValue] = _NONE,
) -> KafkaSettings | None:
    """Kafka settings from ``ONEX_KAFKA_*`` variables (see the module docstring).

    Args:
        env: the environment (default: the process's).
        bootstrap: overrides ``ONEX_KAFKA_BOOTSTRAP``.
        group_id: the group id when ``ONEX_KAFKA_GROUP`` is unset (default ``onex``).
        consumer_defaults: consumer settings that ``ONEX_KAFKA_CONSUMER_CONFIG`` may override
            (default: none — librdkafka's own; :data:`INTERACTIVE` for demos and tests).

    Returns:
        The settings, or None when no bootstrap address is given anywhere.

    Raises:
        UsageError: a value is malformed or unsafe (named, never shown if secret).
    """
    env = os.environ if env is None else env
    servers = bootstrap or env.get(ENV_PREFIX + "BOOTSTRAP", "").strip()
    if not servers:
        return None
    fields: dict[str, Any] = {
        "group_id": env.get(ENV_PREFIX + "GROUP") or group_id or "onex",
    }
    for suffix, field_name in _FIELDS.items():
        value = env.get(ENV_PREFIX + suffix)
        if value:
            fields[field_name] = value
    for suffix, field_name in _SECRETS.items():
        secret = _secret(env, suffix)
        if secret is not None:
            fields[field_name] = secret
    consumer = dict(consumer_defaults)
    consumer.update(
        _librdkafka_pairs(
            ENV_PREFIX + "CONSUMER_CONFIG", env.get(ENV_PREFIX + "CONSUMER_CONFIG", "")
        )
    )
    producer = _librdkafka_pairs(
        ENV_PREFIX + "PRODUCER_CONFIG", env.get(ENV_PREFIX + "PRODUCER_CONFIG", "")
    )
    return KafkaSettings(servers, consumer_extra=consumer, producer_extra=producer, **fields)


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class ContractTopics:
    """The topics a set of contracts names, each tuple sorted and without repeats."""

    subscribe: tuple[str, ...]
    publish: tuple[str, ...]
    dlq: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic named, sorted."""
        return tuple(sorted({*self.subscribe, *self.publish, *self.dlq}))


def contract_topics(path: str | os.PathLike[str]) -> ContractTopics:
    """The topics named by the node contracts at ``path`` (a contract file, or a directory
    searched recursively): every ``event_bus`` subscribe, publish and dead-letter topic.

    Raises:
        UsageError: ``path`` does not exist, or holds no contract.
        ContractInvalid: a contract is invalid (every problem, located); nothing is returned.
    """
    where = Path(path)
    if where.is_dir():
        loaded, issues = load_directory(where)
        if issues:
            raise ContractInvalid(issues)
        if not loaded:
            raise UsageError(f"no contract files under {where}")
    elif where.is_file():
        loaded = [load_located(where)]
    else:
        raise UsageError(f"no such file or directory: {where}")
    subscribe: set[str] = set()
    publish: set[str] = set()
    dlq: set[str] = set()
    for item in loaded:
        contract = item.contract
        if isinstance(contract, NodeContract) and contract.event_bus is not None:
            subscribe.update(contract.event_bus.subscribe_topics)
            publish.update(contract.event_bus.publish_topics)
            dlq.update(contract.event_bus.dlq_topics)
    return ContractTopics(tuple(sorted(subscribe)), tuple(sorted(publish)), tuple(sorted(dlq)))


def topic_specs(
    topics: Iterable[str], *, partitions: int = 3, replication_factor: int = 1
) -> tuple[TopicSpec, ...]:
    """One :class:`TopicSpec` per distinct topic (sorted), retention by kind.

    Raises:
        TopicError: a name is not a valid ONEX topic.
        UsageError: a number is out of range.
    """
    return tuple(
        TopicSpec(name, partitions=partitions, replication_factor=replication_factor)
        for name in sorted(set(topics))
    )


# --------------------------------------------------------------------------- buses


class KafkaBuses:
    """Buses on one cluster for one application, named the way the in-memory bus is.

    ``bus(group="monitor")`` is a :class:`KafkaBus` in the group ``<prefix>.monitor``, where
    the prefix is the settings' ``group_id`` — so two deployments (or two demo runs that should
    not share offsets) differ by ``ONEX_KAFKA_GROUP`` alone.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        consumer_defaults: Mapping[str, ConfigValue] = _NONE,
    ) -> KafkaBuses | None:
        """Buses for the cluster ``ONEX_KAFKA_BOOTSTRAP`` names, or None when it is unset.
        ``consumer_defaults`` as for :func:`settings_from_env` (a demo passes
        :data:`INTERACTIVE`).

        Raises:
            UsageError: as :func:`settings_from_env`.
        """
        settings = settings_from_env(env, consumer_defaults=consumer_defaults)
        return None if settings is None else cls(settings)

    def bus(self, *, group: str, member_id: str | None = None) -> KafkaBus:
        """A new bus in group ``<prefix>.<group>``; ``member_id`` becomes the client id."""
        return KafkaBus(
            replace(
                self.settings,
                group_id=f"{self.settings.group_id}.{group}",
                client_id=member_id or self.settings.client_id,
            )
        )

    async def provision(
        self,
        topics: Iterable[str],
        *,
        partitions: int = 4,
        replication_factor: int = 1,
        timeout: float = 30.0,
    ) -> Provisioned:
        """Create ``topics`` that do not exist yet (see :func:`create_topics`).

        Raises:
            TopicError, UsageError: a name or number is invalid; nothing was created.
            EffectRejected, EffectUnavailable: as :func:`create_topics`.
        """
        specs = topic_specs(topics, partitions=partitions, replication_factor=replication_factor)
        return await create_topics(self.settings, specs, timeout=timeout)

    async def provision_contracts(
        self, path: str | os.PathLike[str], *, partitions: int = 4, replication_factor: int = 1
    ) -> Provisioned:
        """Create every topic the contracts at ``path`` name (:func:`contract_topics`) that
        does not exist yet.

        Raises:
            ContractInvalid, UsageError: as :func:`contract_topics`; nothing was created.
            EffectRejected, EffectUnavailable: as :func:`create_topics`.
        """
        topics = contract_topics(path).all
        return await self.provision(
            topics, partitions=partitions, replication_factor=replication_factor
        )

    @staticmethod
    async def ready(*buses: EventBus, timeout: float = 60.0) -> None:
        """Make the Kafka buses among ``buses`` ready to run a scenario: start each one's
        producer (a new idempotent producer needs about a second before its first record goes
        out), and wait until each one that subscribed owns partitions (its owner must be
        polling meanwhile). Other buses are ready at once.

        Group joins take real time, so the wait is measured on the wall clock; on an
        :class:`AcceleratedLoop` the loop's clock stands still while it lasts, so a simulated
        timeline starts when every member is in, however long the joins took.

        Raises:
            EffectUnavailable: a bus owned nothing after ``timeout`` wall-clock seconds.
        """
        kafka = tuple(bus for bus in buses if isinstance(bus, KafkaBus))
        started = time.monotonic()
        for bus in kafka:
            # Package-internal: the producer is otherwise started by the first publish.
            if bus._publisher._producer is None:
                bus._publisher._start()
        subscribed = tuple(bus for bus in kafka if bus._consumer._worker is not None)
        loop = asyncio.get_running_loop()
        hold = loop.paused() if isinstance(loop, AcceleratedLoop) else contextlib.nullcontext()
        with hold:
            waiting = await asyncio.to_thread(
                _wait_ready, subscribed, started + _PRODUCER_START, timeout
            )
        if waiting:
            raise EffectUnavailable(
                f"no partitions assigned to {', '.join(waiting)} within {timeout:g} s",
                backend="kafka",
            )


def _wait_ready(buses: tuple[KafkaBus, ...], warm_at: float, timeout: float) -> list[str]:
    """In a thread: wait until every bus owns partitions and the clock passed ``warm_at``
    (producers started then are warm: nothing reports it); the groups still waiting, if any."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = [bus.settings.group_id for bus in buses if not bus.assignment]
        now = time.monotonic()
        if (not waiting and now >= warm_at) or now > deadline:
            return waiting
        time.sleep(0.02)


# --------------------------------------------------------------------------- accelerated time


class _ScaledSelector(DelegatingSelector):
    """Wraps a real selector; waits ``speed`` times shorter than the loop asks."""

    def __init__(self, speed: float) -> None:
        super().__init__()
        self._speed = speed

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self._real.select(None if timeout is None else timeout / self._speed)


class AcceleratedLoop(asyncio.SelectorEventLoop):
    """An ordinary asyncio loop whose clock runs ``speed`` times faster than the wall clock.

    Unlike :class:`~onex_adapters.clock.VirtualTimeLoop`, time passes for real — threads (the
    Kafka clients' among them) and sockets see a normal loop — only faster: with ``speed=10``
    ``asyncio.sleep(10)`` takes one second, and a 30-second deadline on the loop's clock
    (:class:`~onex_adapters.clock.LoopClock`) passes in three. Network and thread latencies
    are *not* scaled, so they weigh ``speed`` times more in loop time: keep ``speed`` such that
    a round trip to the broker stays small against the shortest interval of the scenario.
    Time-outs handed to other threads (librdkafka's) are in real seconds.

    Args:
        speed: loop seconds per wall-clock second (at least 1).

    Raises:
        UsageError: ``speed`` is below 1.
    """

    def __new__(cls, speed: float = 10.0) -> AcceleratedLoop:
        # Checked before an instance exists: a half-built loop complains when collected.
        if not speed >= 1.0:
            raise UsageError("AcceleratedLoop speed must be at least 1")
        return super().__new__(cls)

    def __init__(self, speed: float = 10.0) -> None:
        self._speed = float(speed)
        self._origin = time.monotonic()
        self._paused_at: float | None = None
        self._paused_for = 0.0
        super().__init__(_ScaledSelector(self._speed))

    @property
    def speed(self) -> float:
        return self._speed

    def time(self) -> float:
        wall = time.monotonic() if self._paused_at is None else self._paused_at
        return self._origin + (wall - self._origin - self._paused_for) * self._speed

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The loop's clock stands still inside the block (timers wait; threads, sockets and
        callbacks from threads run as usual). Nested use is allowed."""
        if self._paused_at is not None:
            yield
            return
        self._paused_at = time.monotonic()
        try:
            yield
        finally:
            self._paused_for += time.monotonic() - self._paused_at
            self._paused_at = None


def run_accelerated(main: Coroutine[Any, Any, T], speed: float = 10.0) -> T:
    """Run ``main`` to completion on a fresh :class:`AcceleratedLoop` and return its result."""
    with asyncio.Runner(loop_factory=lambda: AcceleratedLoop(speed)) as runner:
        return runner.run(main)
