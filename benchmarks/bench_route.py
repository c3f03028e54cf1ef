"""Routing: ``route(table, envelope)`` over 20 pattern routes.

Figure 1 measures the steady state of a consumer: a few dozen topics that repeat, so nearly
every call is a memo hit. Its floor is the cheapest routing there is, a plain dict of exact
topics. Figure 2 measures cold routing — every topic new to the table and to the topic parser —
against the obvious alternative, trying each pattern's regex in order.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from uuid import UUID

from benchmarks._harness import Figure, compare
from onex_core.dispatch import Route, RouteTable, route
from onex_core.messages import Envelope
from onex_core.topics import Category

__all__ = ["run"]

_ROUTES = (
    Route.to("registration", "onex.evt.platform.node-introspection.v1"),
    Route.to("registration", "*.evt.*.node-heartbeat.*"),
    Route.to("registration", "*.cmd.*.node-registration-acked.*"),
    Route.to("registration", "*.intent.*.runtime-tick.*"),
    Route.to("catalog", "*.cmd.*.topic-catalog-query.*"),
    Route.to("introspection", "*.cmd.*.request-introspection.*"),
    Route.to("audit", "onex.evt.**"),
    Route.to("audit", "onex.cmd.**"),
    Route.to("billing", "onex.evt.billing.*.v1", message_types={"billing.invoice-issued"}),
    Route.to("billing", "onex.evt.billing.*.v2", message_types={"billing.invoice-paid"}),
    Route.to("orders", "onex.evt.orders.*.*"),
    Route.to("orders", "onex.cmd.orders.place-order.v1"),
    Route.to("shipping", "onex.evt.orders.order-placed.v1"),
    Route.to("shipping", "onex.evt.shipping.**"),
    Route.to("effects", "onex.intent.**"),
    Route.to("consul", "onex.intent.*.consul-register.*", message_types={"infra.consul-register"}),
    Route.to("postgres", "onex.intent.infra.postgres-upsert.v1"),
    Route.to("metrics", "onex.*.metrics.**", category=Category.EVENT),
    Route.to("search", "onex.evt.catalog.*.v1"),
    Route.to("search", "onex.evt.catalog.*.v2"),
)

_NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _envelope(index: int, topic: str) -> Envelope:
    _, _, producer, event_name, _ = topic.split(".")
    return Envelope(
        envelope_id=UUID(int=index + 1),
        topic=topic,
        event_type=f"{producer}.{event_name}",
        payload={},
        correlation_id=UUID(int=1),
        entity_id="node-1",
        emitted_at=_NOW,
    )


def _warm_topics() -> list[str]:
    kinds = ("evt", "cmd", "intent")
    producers = ("platform", "billing", "orders", "shipping", "infra", "metrics", "catalog")
    names = (
        "node-introspection",
        "node-heartbeat",
        "node-registration-acked",
        "runtime-tick",
        "invoice-issued",
        "invoice-paid",
        "order-placed",
        "consul-register",
    )
    rng = random.Random(7)
    topics: set[str] = set()
    while len(topics) < 50:
        version = rng.choice((1, 1, 1, 2))
        topics.add(
            f"onex.{rng.choice(kinds)}.{rng.choice(producers)}.{rng.choice(names)}.v{version}"
        )
    return sorted(topics)


def _hits() -> Figure:
    table = RouteTable(_ROUTES)
    topics = _warm_topics()
    rng = random.Random(11)
    pool = [_envelope(i, rng.choice(topics)) for i in range(1000)]
    exact = dict.fromkeys(topics, ("handler",))

    def subject(n: int) -> None:
        r, t = route, table
        for _ in range(n // len(pool)):
            for env in pool:
                r(t, env)

    def floor(n: int) -> None:
        d = exact
        for _ in range(n // len(pool)):
            for env in pool:
                d[env.topic]

    rate, floor_rate = compare(subject, floor, 2_000_000)
    return Figure(
        "route() over 20 pattern routes (memo hits)",
        rate,
        "exact[env.topic], a plain dict of exact topics",
        floor_rate,
        min_rate=5_000_000,
    )


def _cold() -> Figure:
    # 20,000 distinct topics: more than the memo and the topic parser's cache hold, and each
    # call to subject() builds a fresh table, so every route() call is a miss.
    producers = ("platform", "billing", "orders", "shipping", "infra", "metrics", "catalog")
    topics = [
        f"onex.{('evt', 'cmd', 'intent')[i % 3]}.{producers[i % 7]}.name-{i}.v{1 + i % 2}"
        for i in range(20_000)
    ]
    envelopes = [_envelope(i, topic) for i, topic in enumerate(topics)]
    regexes = [(_naive_regex(r.pattern), r.handler_id) for r in _ROUTES]

    def subject(n: int) -> None:
        r, t = route, RouteTable(_ROUTES)
        for env in envelopes[:n]:
            r(t, env)

    def floor(n: int) -> None:
        for env in envelopes[:n]:
            topic = env.topic
            handlers = []
            for regex, handler_id in regexes:
                if regex.fullmatch(topic) is not None:
                    handlers.append(handler_id)

    rate, floor_rate = compare(subject, floor, len(envelopes))
    return Figure(
        "route() over 20 pattern routes, cold (every call a memo miss)",
        rate,
        "patterns tried in order as regexes",
        floor_rate,
    )


def _naive_regex(pattern: str) -> re.Pattern[str]:
    pieces = {"*": r"[^.]+", "**": r"[^.]+(?:\.[^.]+)*"}
    return re.compile(r"\.".join(pieces.get(s, re.escape(s)) for s in pattern.split(".")))


def run() -> list[Figure]:
    return [_hits(), _cold()]
