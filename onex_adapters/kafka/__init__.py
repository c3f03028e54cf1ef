"""The Kafka adapter: the event bus on confluent-kafka, topic provisioning, record headers.

Needs the ``kafka`` extra (``pip install onex-workflows[kafka]``).
"""

from onex_adapters.kafka.admin import (
    DEFAULT_RETENTION_MS,
    Provisioned,
    TopicSpec,
    check_kafka_topic,
    create_topics,
)
from onex_adapters.kafka.bus import KafkaBus
from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.kafka.consumer import Partition, RevokeHook
from onex_adapters.kafka.headers import envelope_headers, partition_key
from onex_adapters.kafka.producer import Outgoing

__all__ = [
    "DEFAULT_RETENTION_MS",
    "KafkaBus",
    "KafkaSettings",
    "Outgoing",
    "Partition",
    "Provisioned",
    "RevokeHook",
    "TopicSpec",
    "check_kafka_topic",
    "create_topics",
    "envelope_headers",
    "partition_key",
]
