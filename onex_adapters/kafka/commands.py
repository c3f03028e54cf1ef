"""``onex topics create PATH``: provision the topics a set of contracts names.

Reads every node contract under ``PATH`` (a directory, searched recursively, or one file),
collects its ``event_bus`` subscribe, publish and dead-letter topics, and creates those that do
not exist yet, with ``--partitions`` partitions, ``--replication-factor`` copies and the
retention of their kind (:data:`~onex_adapters.kafka.admin.DEFAULT_RETENTION_MS`). Topics that
exist are reported and left unchanged. ``--dry-run`` prints the plan without connecting.

The cluster is ``--bootstrap``, else ``ONEX_KAFKA_BOOTSTRAP``; TLS and SASL settings come from
the ``ONEX_KAFKA_*`` variables (:mod:`onex_adapters.kafka.wiring`), never from the command line.

Exit codes as for every ``onex`` command: 0 done; 1 the contracts are invalid or the cluster
refused or did not answer; 2 the command line is wrong (no cluster named, a bad number, a path
that does not exist).

The command's arguments are declared in :mod:`onex_adapters.cli`, which imports this module only
when the command runs: the contract commands must work without the ``kafka`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any, TextIO

from onex_adapters.kafka.admin import Provisioned, TopicSpec, create_topics
from onex_adapters.kafka.wiring import ENV_PREFIX, contract_topics, settings_from_env, topic_specs
from onex_contracts.issues import ContractInvalid
from onex_core.errors import ContentError, ContractError, EffectError, UsageError

__all__ = ["run_topics"]

_INVALID = 1
_USAGE = 2
_DAY_MS = 24 * 60 * 60 * 1000


def run_topics(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``onex topics create``; returns the exit code."""
    if not os.path.exists(args.path):
        err.write(f"onex topics create: no such file or directory: {args.path}\n")
        return _USAGE
    try:
        names = contract_topics(args.path).all
        specs = topic_specs(
            names, partitions=args.partitions, replication_factor=args.replication_factor
        )
    except ContractInvalid as exc:
        for issue in exc.errors:
            err.write(f"{issue}\n")
        return _INVALID
    except UsageError as exc:
        err.write(f"onex topics create: {exc}\n")
        return _USAGE
    except (ContractError, ContentError) as exc:  # e.g. a topic name Kafka would refuse
        err.write(f"{exc}\n")
        return _INVALID
    if not specs:
        err.write(f"onex topics create: the contracts under {args.path} name no topics\n")
        return _INVALID

    if args.dry_run:
        return _report(args, out, specs, None, bootstrap=args.bootstrap)
    try:
        settings = settings_from_env(bootstrap=args.bootstrap)
    except UsageError as exc:
        err.write(f"onex topics create: {exc}\n")
        return _USAGE
    if settings is None:
        err.write(
            f"onex topics create: name the cluster with --bootstrap or {ENV_PREFIX}BOOTSTRAP\n"
        )
        return _USAGE
    try:
        done = asyncio.run(create_topics(settings, specs, timeout=args.timeout))
    except EffectError as exc:
        err.write(f"onex topics create: {exc}\n")
        return _INVALID
    return _report(args, out, specs, done, bootstrap=settings.bootstrap_servers)


def _report(
    args: argparse.Namespace,
    out: TextIO,
    specs: tuple[TopicSpec, ...],
    done: Provisioned | None,
    *,
    bootstrap: str | None,
) -> int:
    existing = set(done.existing) if done is not None else set()
    if args.json:
        document: dict[str, Any] = {
            "ok": True,
            "dry_run": done is None,
            "bootstrap": bootstrap,
            "topics": [
                {
                    "name": spec.name,
                    "status": _status(spec, done, existing),
                    "partitions": spec.partitions,
                    "replication_factor": spec.replication_factor,
                    "retention_ms": int(spec.config["retention.ms"]),
                    "cleanup_policy": spec.config["cleanup.policy"],
                }
                for spec in specs
            ],
        }
        json.dump(document, out, indent=2)
        out.write("\n")
        return 0
    width = max(len(spec.name) for spec in specs)
    for spec in specs:
        status = _status(spec, done, existing)
        detail = (
            "(unchanged)"
            if status == "exists"
            else f"{spec.partitions} partitions, replication {spec.replication_factor}, "
            f"retention {_retention(spec)}"
        )
        out.write(f"{status:<10} {spec.name:<{width}}  {detail}\n")
    if done is not None:
        out.write(f"{len(done.created)} created, {len(done.existing)} already existed\n")
    return 0


def _status(spec: TopicSpec, done: Provisioned | None, existing: set[str]) -> str:
    if done is None:
        return "planned"
    return "exists" if spec.name in existing else "created"


def _retention(spec: TopicSpec) -> str:
    retention = int(spec.config["retention.ms"])
    if retention < 0:
        return "forever"
    if retention % _DAY_MS == 0:
        return f"{retention // _DAY_MS} d"
    return f"{retention} ms"
