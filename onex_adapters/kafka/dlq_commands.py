"""``onex dlq show TOPIC`` and ``onex dlq replay TOPIC``: a dead-letter topic, for operators.

Both read the dead-letter topic from the beginning of every partition to its end, without a
consumer group and without committing anything (:func:`~onex_adapters.kafka.reader.read_topic`),
so they never disturb a running host.

- ``show`` prints a summary (counts by failure class, error type and original topic; oldest
  and newest failure) and one line per record; ``--json`` prints every field instead.
- ``replay`` plans with :func:`~onex_adapters.dlq_tools.plan_replay` — filters ``--class``,
  ``--topic``, ``--since``, ``--until``, ``--correlation-id`` — and sends each planned record's
  original key and value back to its original topic, one at a time, each confirmed by the
  broker (:func:`~onex_adapters.dlq_tools.replay`). ``--dry-run`` prints the plan only.

Records on the topic that are not dead-letter records are reported on stderr and skipped.

The cluster is ``--bootstrap``, else ``ONEX_KAFKA_BOOTSTRAP``; TLS and SASL settings come from
the ``ONEX_KAFKA_*`` variables. Exit codes as for every ``onex`` command: 0 done; 1 the cluster
refused or did not answer, the end of the topic was not reached within ``--timeout``, a record
was refused, or a replay was not confirmed; 2 the command line is wrong.

The arguments are declared in :mod:`onex_adapters.cli`, which imports this module only when the
command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from onex_adapters.dlq_tools import (
    DeadLetterView,
    NotADeadLetter,
    ReplayFilter,
    ReplayPlan,
    ReplayReport,
    parse_dead_letter,
    parse_time,
    plan_replay,
    replay,
    summarise,
)
from onex_adapters.kafka.admin import check_kafka_topic
from onex_adapters.kafka.bus import KafkaBus
from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.kafka.reader import TopicContents, read_topic
from onex_adapters.kafka.wiring import ENV_PREFIX, settings_from_env
from onex_adapters.redaction import REDACTOR
from onex_core.errors import EffectError, TopicError, UsageError
from onex_core.topics import Kind, parse_topic

__all__ = ["run_dlq"]

_INVALID = 1
_USAGE = 2


class _Usage(Exception):
    """A command-line mistake (exit code 2)."""


def run_dlq(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``onex dlq show`` or ``onex dlq replay``; returns the exit code."""
    command = f"onex dlq {args.action}"
    try:
        settings, where = _prepare(args)
    except (_Usage, UsageError, TopicError) as exc:
        err.write(f"{command}: {exc}\n")
        return _USAGE
    try:
        contents = asyncio.run(
            read_topic(settings, args.topic, limit=args.limit, timeout=args.timeout)
        )
    except EffectError as exc:
        err.write(f"{command}: {REDACTOR.redact(str(exc))}\n")
        return _INVALID
    views, invalid = _parse(contents)
    for problem in invalid:
        err.write(f"warning: {REDACTOR.redact(problem)}\n")
    if args.action == "show":
        return _show(args, out, err, contents, views, invalid)
    assert where is not None
    return _replay(args, out, err, settings, contents, views, invalid, where)


def _prepare(args: argparse.Namespace) -> tuple[KafkaSettings, ReplayFilter | None]:
    """Check the command line; the settings and, for replay, the filter."""
    check_kafka_topic(args.topic)
    try:
        kind = parse_topic(args.topic).kind
    except TopicError:
        kind = None  # a custom dead-letter topic (RuntimeConfig.dlq_topic); Kafka's rules apply
    if kind is not None and kind is not Kind.DLQ:
        raise _Usage(f"{args.topic} is not a dead-letter topic (its kind is {kind.value})")
    if args.limit is not None and args.limit < 1:
        raise _Usage("--limit must be at least 1")
    if not args.timeout > 0:
        raise _Usage("--timeout must be positive")
    where = None
    if args.action == "replay":
        now = datetime.now(UTC)
        ids = set()
        for text in args.correlation_ids or ():
            try:
                ids.add(uuid.UUID(text))
            except ValueError:
                raise _Usage(f"--correlation-id: not a UUID: {text!r}") from None
        where = ReplayFilter(
            failure_classes=frozenset(args.failure_classes or ()),
            original_topics=tuple(args.original_topics or ()),
            correlation_ids=frozenset(ids),
            since=None if args.since is None else parse_time(args.since, now=now),
            until=None if args.until is None else parse_time(args.until, now=now),
        )
    settings = settings_from_env(bootstrap=args.bootstrap)
    if settings is None:
        raise _Usage(f"name the cluster with --bootstrap or {ENV_PREFIX}BOOTSTRAP")
    return settings, where


def _parse(contents: TopicContents) -> tuple[list[DeadLetterView], list[str]]:
    views: list[DeadLetterView] = []
    invalid: list[str] = []
    for record in contents.records:
        try:
            views.append(parse_dead_letter(record))
        except NotADeadLetter as exc:
            invalid.append(str(exc))
    return views, invalid


def _stopped(contents: TopicContents, args: argparse.Namespace) -> str | None:
    """Why the read did not reach the end, as a sentence; None when it did."""
    if contents.stopped == "limit":
        return f"stopped after --limit {args.limit} records; there may be more"
    if contents.stopped == "timeout":
        return (
            f"the end of {contents.topic} was not reached within --timeout {args.timeout:g} s "
            f"({len(contents.records)} records read)"
        )
    return None


# --------------------------------------------------------------------------- show


def _show(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    contents: TopicContents,
    views: list[DeadLetterView],
    invalid: list[str],
) -> int:
    summary = summarise(views)
    note = _stopped(contents, args)
    code = _INVALID if contents.stopped == "timeout" else 0
    if args.json:
        document = {
            "ok": code == 0,
            "topic": contents.topic,
            "stopped": contents.stopped,
            "summary": summary.as_json(),
            "records": [view.as_json() for view in views],
            "invalid": invalid,
        }
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        span = ""
        if summary.oldest is not None and summary.newest is not None:
            span = f", {summary.oldest.isoformat()} to {summary.newest.isoformat()}"
        out.write(
            f"{contents.topic}: {summary.records} dead letters "
            f"({summary.messages} messages){span}\n"
        )
        for label, counts in (
            ("failure_class", summary.by_failure_class),
            ("error_type", summary.by_error_type),
            ("original_topic", summary.by_original_topic),
        ):
            if counts:
                shown = ", ".join(f"{name} {count}" for name, count in counts)
                out.write(f"  {label:<15} {_clean(shown, 400)}\n")
        for view in views:
            out.write(_line(view) + "\n")
    if note is not None:
        err.write(f"onex dlq show: {note}\n")
    return code


def _line(view: DeadLetterView) -> str:
    origin = f"{view.original_topic}[{view.original_partition}]@{view.original_offset}"
    key = "-" if view.key is None else _clean(view.key.decode("utf-8", "replace"), 60)
    flags = " truncated" if view.truncated else ""
    flags += " base64" if view.value_encoding == "base64" else ""
    return (
        f"[{view.dlq_partition}]@{view.dlq_offset}  {view.failure_timestamp.isoformat()}  "
        f"{view.failure_class or 'unclassified'}  {_clean(view.error_type, 60)}  {origin}  "
        f"key={key}  {view.value_size} bytes{flags}  {_clean(view.failure_reason, 200)}"
    )


def _clean(text: str, limit: int) -> str:
    """Safe for a terminal: secrets, control characters and length handled."""
    return REDACTOR.redact(text, limit=limit)


# --------------------------------------------------------------------------- replay


def _replay(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    settings: KafkaSettings,
    contents: TopicContents,
    views: list[DeadLetterView],
    invalid: list[str],
    where: ReplayFilter,
) -> int:
    note = _stopped(contents, args)
    if contents.stopped == "timeout":
        # Replay acts on the whole topic as read to its end, or not at all.
        err.write(f"onex dlq replay: {note}; nothing was replayed\n")
        return _INVALID
    plan = plan_replay(
        views, where, allow_base64=args.allow_base64, allow_redacted=args.allow_redacted
    )
    report: ReplayReport | None = None
    if not args.dry_run and plan.replays:
        report = asyncio.run(_send(settings, plan))
    ok = not plan.refused and (report is None or report.ok)
    if args.json:
        json.dump(_replay_json(args, contents, plan, report, invalid, ok), out, indent=2)
        out.write("\n")
    else:
        _replay_text(args, out, plan, report)
    for refusal in plan.refused:
        err.write(f"refused {refusal.view.where}: {refusal.reason}\n")
    if report is not None and report.failed is not None:
        err.write(
            f"onex dlq replay: publishing to {report.failed.topic} failed "
            f"({REDACTOR.redact(str(report.error))}); {len(report.sent)} sent before it, "
            f"{len(plan.replays) - len(report.sent)} not sent; a replay may be run again\n"
        )
    if note is not None:
        err.write(f"onex dlq replay: {note}\n")
    return 0 if ok else _INVALID


async def _send(settings: KafkaSettings, plan: ReplayPlan) -> ReplayReport:
    bus = KafkaBus(settings)  # publishes only: it never joins a group
    try:
        return await replay(plan, bus)
    finally:
        await bus.close()


def _status(index: int, args: argparse.Namespace, report: ReplayReport | None) -> str:
    if args.dry_run or report is None:
        return "planned"
    if index < len(report.sent):
        return "sent"
    return "failed" if index == len(report.sent) else "not_sent"


def _replay_text(
    args: argparse.Namespace, out: TextIO, plan: ReplayPlan, report: ReplayReport | None
) -> None:
    verb = {
        "planned": "would replay",
        "sent": "replayed",
        "failed": "FAILED",
        "not_sent": "not sent",
    }
    for index, item in enumerate(plan.replays):
        key = "-" if item.key is None else _clean(item.key.decode("utf-8", "replace"), 60)
        out.write(
            f"{verb[_status(index, args, report)]:<13} {item.topic}  key={key}  "
            f"{len(item.value)} bytes  (from {item.view.where}, "
            f"{item.view.failure_class or 'unclassified'})\n"
        )
    if args.dry_run:
        done = f"{len(plan.replays)} would be replayed"
    else:
        done = f"{0 if report is None else len(report.sent)} replayed"
    out.write(
        f"{done}, {len(plan.refused)} refused, {plan.filtered} filtered out, "
        f"{plan.duplicates} duplicates{' (dry run)' if args.dry_run else ''}\n"
    )


def _replay_json(
    args: argparse.Namespace,
    contents: TopicContents,
    plan: ReplayPlan,
    report: ReplayReport | None,
    invalid: Sequence[str],
    ok: bool,
) -> dict[str, Any]:
    return {
        "ok": ok,
        "dry_run": bool(args.dry_run),
        "topic": contents.topic,
        "stopped": contents.stopped,
        "replays": [
            {
                "status": _status(index, args, report),
                "topic": item.topic,
                "key": None if item.key is None else item.key.decode("utf-8", "replace"),
                "bytes": len(item.value),
                "from": item.view.where,
                "message_id": None if item.view.message_id is None else str(item.view.message_id),
                "failure_class": item.view.failure_class,
            }
            for index, item in enumerate(plan.replays)
        ],
        "refused": [{"from": r.view.where, "reason": r.reason} for r in plan.refused],
        "filtered": plan.filtered,
        "duplicates": plan.duplicates,
        "invalid": list(invalid),
        "error": None
        if report is None or report.error is None
        else REDACTOR.redact(str(report.error)),
    }
