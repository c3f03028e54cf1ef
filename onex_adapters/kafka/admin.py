"""Topic provisioning: create ONEX topics with their partitions and retention, idempotently.

Brokers commonly create a topic the first time someone produces to it, with default
partitions and retention, and say nothing; the test broker does exactly that, and it rejects a
malformed name only later, asynchronously. So :func:`create_topics` checks every name — against
the ONEX grammar (:func:`onex_core.topics.parse_topic`) and Kafka's own rules — and every number
*before* it opens a connection, and refuses the whole request if anything is wrong: a typo
never becomes a topic.

Retention follows the topic kind unless a spec says otherwise (the original taxonomy):

========  =========  ======================
kind      retention  cleanup.policy
========  =========  ======================
evt       30 days    delete
cmd       7 days     delete
intent    1 day      delete
snapshot  7 days     compact,delete
dlq       7 days     delete
========  =========  ======================

Creating a topic that already exists is not an error: it is reported in
:attr:`Provisioned.existing`, unchanged (its partitions and retention are not altered).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.redaction import REDACTOR
from onex_core.errors import EffectRejected, EffectUnavailable, TopicError, UsageError
from onex_core.topics import MAX_TOPIC_LENGTH, Kind, parse_topic

__all__ = [
    "DEFAULT_RETENTION_MS",
    "Provisioned",
    "TopicSpec",
    "check_kafka_topic",
    "create_topics",
]

_DAY_MS = 24 * 60 * 60 * 1000

DEFAULT_RETENTION_MS: dict[Kind, int] = {
    Kind.EVT: 30 * _DAY_MS,
    Kind.CMD: 7 * _DAY_MS,
    Kind.INTENT: 1 * _DAY_MS,
    Kind.SNAPSHOT: 7 * _DAY_MS,
    Kind.DLQ: 7 * _DAY_MS,
}
"""Retention in milliseconds by topic kind, when a :class:`TopicSpec` does not say."""

_CLEANUP_POLICY: dict[Kind, str] = {Kind.SNAPSHOT: "compact,delete"}
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_BACKEND = "kafka"


@lru_cache(maxsize=4096)
def _kafka_topic_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"is longer than {MAX_TOPIC_LENGTH} characters"
    if name in (".", ".."):
        return "may not be '.' or '..'"
    if not _KAFKA_NAME.match(name):
        return "may contain only ASCII letters, digits, '.', '_' and '-'"
    return None


def check_kafka_topic(name: str) -> str:
    """Check ``name`` against Kafka's topic-name rules (not the ONEX grammar).

    Returns:
        ``name``, unchanged.

    Raises:
        TopicError: naming the rule broken; the name is shown escaped and cut.
    """
    if not isinstance(name, str):
        raise TopicError(f"a topic must be a string, not {type(name).__name__}")
    problem = _kafka_topic_problem(name)
    if problem is not None:
        shown = name if len(name) <= 60 else name[:60] + "…"
        raise TopicError(f"topic {shown!r} {problem} (Kafka's rules)")
    return name


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic to create.

    Args:
        name: an ONEX topic name (``onex.<kind>.<producer>.<event-name>.v<N>``).
        partitions: how many partitions (at least 1). Records of one key share a partition,
            so this bounds how many hosts of a group consume the topic in parallel.
        replication_factor: copies of each partition (at least 1; the brokers must number at
            least this many).
        retention_ms: how long records are kept, in milliseconds; ``-1`` keeps them forever;
            ``None`` takes the default for the topic's kind (:data:`DEFAULT_RETENTION_MS`).

    Raises:
        TopicError: ``name`` is not a valid ONEX topic.
        UsageError: a number is out of range.
    """

    name: str
    partitions: int = 3
    replication_factor: int = 1
    retention_ms: int | None = None

    def __post_init__(self) -> None:
        parse_topic(self.name)
        check_kafka_topic(self.name)
        for field_name, low in (("partitions", 1), ("replication_factor", 1)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UsageError(f"topic {self.name!r}: {field_name} must be an integer >= {low}")
        retention = self.retention_ms
        if retention is not None and (
            isinstance(retention, bool) or not isinstance(retention, int) or retention < -1
        ):
            raise UsageError(
                f"topic {self.name!r}: retention_ms must be -1 (forever) or a number of "
                "milliseconds >= 0"
            )

    @property
    def kind(self) -> Kind:
        return parse_topic(self.name).kind

    @property
    def config(self) -> dict[str, str]:
        """The topic-level configuration sent to the broker."""
        kind = self.kind
        retention = DEFAULT_RETENTION_MS[kind] if self.retention_ms is None else self.retention_ms
        return {
            "retention.ms": str(retention),
            "cleanup.policy": _CLEANUP_POLICY.get(kind, "delete"),
        }


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What :func:`create_topics` did: the names it created and those that already existed."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


_PERMANENT = frozenset(
    {
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_CONFIG,
        KafkaError.INVALID_REQUEST,
        KafkaError.POLICY_VIOLATION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)


async def create_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec], *, timeout: float = 30.0
) -> Provisioned:
    """Create the topics in ``specs``; those that already exist are left as they are.

    Every spec is validated before any connection is made (a :class:`TopicSpec` validates
    itself when built; duplicates are refused here), so a bad request creates nothing.

    Args:
        settings: how to reach the cluster (its TLS and SASL settings apply).
        specs: the topics.
        timeout: seconds to wait for the brokers, in total.

    Returns:
        The names created and the names that already existed, each in the order given.

    Raises:
        UsageError: a spec is not a :class:`TopicSpec`, or a name appears twice.
        EffectRejected: the brokers refused a topic (authorization, an invalid replication
            factor for the cluster, a policy); topics of the same call may have been created.
        EffectUnavailable: the brokers did not answer within ``timeout``; topics may or may not
            have been created (calling again is safe).
    """
    wanted = list(specs)
    seen: set[str] = set()
    for spec in wanted:
        if not isinstance(spec, TopicSpec):
            raise UsageError(f"create_topics takes TopicSpec values, not {type(spec).__name__}")
        if spec.name in seen:
            raise UsageError(f"create_topics: topic {spec.name!r} is listed twice")
        seen.add(spec.name)
    if not wanted:
        return Provisioned((), ())

    try:
        admin = AdminClient(settings.admin_config())
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        raise UsageError(f"librdkafka refused the admin settings: {_describe(error)}") from None
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config=spec.config,
        )
        for spec in wanted
    ]
    futures = admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout)
    created: list[str] = []
    existing: list[str] = []
    rejected: list[str] = []
    unavailable: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            for spec in wanted:
                try:
                    await asyncio.wrap_future(futures[spec.name])
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    code = error.code() if isinstance(error, KafkaError) else None
                    if code == KafkaError.TOPIC_ALREADY_EXISTS:
                        existing.append(spec.name)
                    elif code in _PERMANENT:
                        rejected.append(f"{spec.name} ({_describe(error)})")
                    else:
                        unavailable.append(f"{spec.name} ({_describe(error)})")
                else:
                    created.append(spec.name)
    except TimeoutError as exc:
        raise EffectUnavailable(
            f"creating topics: the brokers did not answer within {timeout:g} s",
            backend=_BACKEND,
        ) from exc
    if rejected:
        raise EffectRejected(
            "the brokers refused to create: " + "; ".join(rejected), backend=_BACKEND
        )
    if unavailable:
        raise EffectUnavailable(
            "creating topics failed, try again: " + "; ".join(unavailable), backend=_BACKEND
        )
    return Provisioned(tuple(created), tuple(existing))


def _describe(error: object) -> str:
    if isinstance(error, KafkaError):
        return f"{error.name()}: {REDACTOR.redact(error.str(), limit=200)}"
    return "unknown error"
