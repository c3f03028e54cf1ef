"""Envelope headers for Kafka records: see :mod:`onex_adapters.headers` (bus-agnostic)."""

from onex_adapters.headers import (
    CAUSATION_ID,
    CONTENT_TYPE,
    CORRELATION_ID,
    EVENT_TYPE,
    JSON,
    MESSAGE_ID,
    SCHEMA_VERSION,
    STANDARD_HEADERS,
    envelope_headers,
    header,
    header_map,
    partition_key,
)

__all__ = [
    "CAUSATION_ID",
    "CONTENT_TYPE",
    "CORRELATION_ID",
    "EVENT_TYPE",
    "JSON",
    "MESSAGE_ID",
    "SCHEMA_VERSION",
    "STANDARD_HEADERS",
    "envelope_headers",
    "header",
    "header_map",
    "partition_key",
]
