"""The ``onex`` command.

Subcommands are rows of one table, :data:`COMMANDS`: a name, a one-line help, a function that
adds the subcommand's arguments, and a function that runs it and returns the exit code. Adding a
subcommand (``demo``, ``db``, ``topics``) is adding a row.

Exit codes, for every subcommand:

- ``0`` — success;
- ``1`` — the input is wrong (an invalid contract, lint errors, lint warnings under
  ``--strict``), or a database refused or could not be reached;
- ``2`` — the command line is wrong (unknown subcommand, missing argument, a path that does not
  exist).

Problems go to stderr, one line each, ``file:line:column: field: message``; results go to stdout.
``--json`` puts a machine-readable report on stdout instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from onex_contracts.diagram import directory_diagram, machine_diagram
from onex_contracts.issues import ContractInvalid, ContractIssue
from onex_contracts.lint import contract_files, lint
from onex_contracts.loader import Loaded, load_located
from onex_contracts.schema import NodeContract
from onex_core.errors import ContractError, EffectError, UsageError

__all__ = ["COMMANDS", "Command", "main"]

USAGE_ERROR = 2
INVALID = 1


@dataclass(frozen=True, slots=True)
class Command:
    """One ``onex`` subcommand."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, TextIO, TextIO], int]


class _Usage(Exception):
    """A command-line mistake found after parsing (a path that does not exist)."""


def _existing(paths: Sequence[str], command: str) -> None:
    for path in paths:
        if not os.path.exists(path):
            raise _Usage(f"onex {command}: no such file or directory: {path}")


# --------------------------------------------------------------------------- validate


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="contract files or directories")
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _existing(args.paths, "validate")
    files: list[dict[str, Any]] = []
    for path in args.paths:
        if os.path.isdir(path):
            found, problems = contract_files(path)
            for issue in problems:
                files.append(_file_report(issue.source, None, [issue]))
            if not found and not problems:
                empty = ContractIssue(path, 0, 0, "", "no contract files found", "no-contracts")
                files.append(_file_report(path, None, [empty]))
        else:
            found = [path]
        for file in found:
            try:
                files.append(_file_report(file, load_located(file), []))
            except ContractInvalid as exc:
                files.append(_file_report(file, None, list(exc.errors)))
    ok = all(f["ok"] for f in files)
    if args.json:
        errors = sum(len(f["errors"]) for f in files)
        json.dump({"ok": ok, "error_count": errors, "files": files}, out, indent=2)
        out.write("\n")
    else:
        for f in files:
            if f["ok"]:
                out.write(f"{f['source']}: ok ({f['kind']} {f['name']})\n")
            for issue in f["errors"]:
                err.write(_line(issue) + "\n")
    return 0 if ok else INVALID


def _file_report(source: str, loaded: Loaded | None, issues: list[ContractIssue]) -> dict[str, Any]:
    contract = loaded.contract if loaded is not None else None
    kind = None
    if contract is not None:
        kind = "node" if isinstance(contract, NodeContract) else "handler"
    name = None
    if contract is not None:
        name = contract.name if isinstance(contract, NodeContract) else contract.handler_id
    return {
        "source": source,
        "ok": not issues,
        "kind": kind,
        "name": name,
        "errors": [i.as_dict() for i in issues],
    }


def _line(issue: dict[str, Any]) -> str:
    where = issue["source"]
    if issue["line"]:
        where += f":{issue['line']}:{issue['column']}"
    if issue["path"]:
        where += f": {issue['path']}"
    return f"{where}: {issue['message']}"


# --------------------------------------------------------------------------- lint


def _configure_lint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="a directory of contracts")
    parser.add_argument("--strict", action="store_true", help="warnings fail too")
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def _lint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _existing([args.directory], "lint")
    if not os.path.isdir(args.directory):
        raise _Usage(f"onex lint: not a directory: {args.directory}")
    report = lint(args.directory)
    ok = report.ok and not (args.strict and report.warnings)
    if args.json:
        document = {
            "ok": ok,
            "contracts": len(report.contracts),
            "errors": [i.as_dict() for i in report.errors],
            "warnings": [i.as_dict() for i in report.warnings],
        }
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        for issue in report.errors:
            err.write(f"{issue}\n")
        for issue in report.warnings:
            err.write(f"warning: {issue}\n")
        out.write(
            f"{len(report.contracts)} contracts, {len(report.errors)} errors, "
            f"{len(report.warnings)} warnings\n"
        )
    return 0 if ok else INVALID


# --------------------------------------------------------------------------- diagram


def _configure_diagram(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a reducer contract (state diagram) or a directory (message-flow chart)",
    )


def _diagram(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _existing([args.path], "diagram")
    try:
        if os.path.isdir(args.path):
            text = directory_diagram(args.path)
        else:
            contract = load_located(args.path).contract
            if not isinstance(contract, NodeContract) or contract.state_machine is None:
                err.write(f"{args.path}: has no state machine to draw\n")
                return INVALID
            text = machine_diagram(contract)
    except ContractInvalid as exc:
        for issue in exc.errors:
            err.write(f"{issue}\n")
        return INVALID
    except ContractError as exc:
        err.write(f"{exc}\n")
        return INVALID
    out.write(text)
    return 0


# --------------------------------------------------------------------------- demo

DEMOS = ("registration",)


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", choices=DEMOS, help="the workflow to run")


def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Imported here: the runtime is not needed by the contract commands.
    from onex_adapters.redaction import REDACTOR
    from onex_adapters.registration import demo

    try:
        return demo.main([], out)
    except UsageError as exc:  # ONEX_POSTGRES_DSN does not parse (never echoed)
        raise _Usage(f"onex demo: {exc}") from None
    except EffectError as exc:  # PostgreSQL refused, or could not be reached
        err.write(f"onex demo: {REDACTOR.redact(str(exc))}\n")
        return INVALID


# --------------------------------------------------------------------------- db


def _configure_db(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate",
        help="apply the PostgreSQL migrations the database lacks",
        description="Apply the PostgreSQL migrations the database lacks (idempotent).",
    )
    migrate.add_argument(
        "--dsn",
        help="libpq connection string (default: ONEX_POSTGRES_DSN); a password given here is "
        "visible to other local users: prefer the variable or a passfile",
    )
    migrate.add_argument(
        "--schema",
        help="the schema to migrate (default: ONEX_POSTGRES_SCHEMA, else the search_path)",
    )


def _db(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Imported here: PostgreSQL is an optional extra, not needed by the other commands.
    import asyncio

    from onex_adapters.postgres import PostgresSettings, migrate
    from onex_adapters.redaction import REDACTOR

    dsn = args.dsn or os.environ.get("ONEX_POSTGRES_DSN")
    if not dsn:
        raise _Usage("onex db migrate: no database: pass --dsn or set ONEX_POSTGRES_DSN")
    schema = args.schema or os.environ.get("ONEX_POSTGRES_SCHEMA") or None
    try:
        settings = PostgresSettings.from_dsn(dsn, schema=schema, min_size=1, max_size=1)
    except UsageError as exc:  # the message never contains the DSN
        raise _Usage(f"onex db {args.action}: {exc}") from None
    where = settings.describe() + (f" (schema {schema})" if schema else "")
    try:
        applied = asyncio.run(migrate(settings))
    except EffectError as exc:  # translated at the adapter's edge; redacted once more here
        err.write(f"onex db migrate: {where}: {REDACTOR.redact(str(exc))}\n")
        return INVALID
    if applied:
        out.write(f"{where}: applied migrations {', '.join(map(str, applied))}\n")
    else:
        out.write(f"{where}: already current\n")
    return 0


# --------------------------------------------------------------------------- topics


def _configure_topics(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create every subscribe, publish and dead-letter topic the contracts name",
        description="Create every subscribe, publish and dead-letter topic the contracts under "
        "PATH name, with retention by kind; existing topics are left as they are. TLS and SASL "
        "settings come from the ONEX_KAFKA_* variables.",
    )
    create.add_argument("path", metavar="PATH", help="a directory of contracts, or one file")
    create.add_argument("--bootstrap", metavar="HOST:PORT", help="default: $ONEX_KAFKA_BOOTSTRAP")
    create.add_argument("--partitions", type=int, default=3, metavar="N", help="default: 3")
    create.add_argument("--replication-factor", type=int, default=1, metavar="N", help="default: 1")
    create.add_argument("--timeout", type=float, default=30.0, metavar="S", help="default: 30")
    create.add_argument("--dry-run", action="store_true", help="print the plan, create nothing")
    create.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def _topics(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from onex_adapters.kafka.commands import run_topics  # imported here: the kafka extra

    return run_topics(args, out, err)


# --------------------------------------------------------------------------- dlq


def _configure_dlq(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="summarise and list the records of a dead-letter topic",
        description="Read a dead-letter topic from the beginning to its end, without a consumer "
        "group and without committing, and print a summary and one line per record. TLS and "
        "SASL settings come from the ONEX_KAFKA_* variables.",
    )
    replay = actions.add_parser(
        "replay",
        help="send dead-lettered messages back to their original topics",
        description="Read a dead-letter topic to its end and send the original key and value of "
        "each selected record back to its original topic, each confirmed by the broker. "
        "Truncated values, dead-letter targets, non-UTF-8 and possibly redacted values are "
        "refused. Replayed envelopes keep their ids: effects already done are skipped.",
    )
    for sub in (show, replay):
        sub.add_argument("topic", metavar="TOPIC", help="the dead-letter topic")
        sub.add_argument("--bootstrap", metavar="HOST:PORT", help="default: $ONEX_KAFKA_BOOTSTRAP")
        sub.add_argument(
            "--timeout", type=float, default=60.0, metavar="S", help="for the read; default: 60"
        )
        sub.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    show.add_argument("--limit", type=int, default=10_000, metavar="N", help="default: 10000")
    replay.set_defaults(limit=None)
    replay.add_argument(
        "--class",
        dest="failure_classes",
        action="append",
        metavar="CLASS",
        help="only this failure class (repeatable)",
    )
    replay.add_argument(
        "--topic",
        dest="original_topics",
        action="append",
        metavar="PATTERN",
        help="only this original topic or pattern, e.g. 'onex.cmd.**' (repeatable)",
    )
    replay.add_argument("--since", metavar="TIME", help="failed at or after: ISO-8601 or 2h, 7d")
    replay.add_argument("--until", metavar="TIME", help="failed before: ISO-8601 or 2h, 7d")
    replay.add_argument(
        "--correlation-id",
        dest="correlation_ids",
        action="append",
        metavar="UUID",
        help="only this conversation (repeatable)",
    )
    replay.add_argument("--allow-base64", action="store_true", help="send non-UTF-8 values too")
    replay.add_argument(
        "--allow-redacted", action="store_true", help="send values that contain '***' too"
    )
    replay.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")


def _dlq(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from onex_adapters.kafka.dlq_commands import run_dlq  # imported here: the kafka extra

    return run_dlq(args, out, err)


# --------------------------------------------------------------------------- the table

COMMANDS: tuple[Command, ...] = (
    Command("validate", "check contract files or directories", _configure_validate, _validate),
    Command("lint", "check a directory of contracts as a whole", _configure_lint, _lint),
    Command(
        "diagram", "draw a state machine or a directory as Mermaid", _configure_diagram, _diagram
    ),
    Command(
        "demo",
        "run a workflow in virtual time (in memory; in PostgreSQL with ONEX_POSTGRES_DSN)",
        _configure_demo,
        _demo,
    ),
    Command("db", "manage the PostgreSQL schema (migrate)", _configure_db, _db),
    Command("topics", "create the Kafka topics contracts name", _configure_topics, _topics),
    Command("dlq", "inspect and replay a dead-letter topic (show, replay)", _configure_dlq, _dlq),
)
"""Every ``onex`` subcommand, in the order ``onex --help`` lists them."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onex", description="ONEX: contract-driven, event-driven workflows."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``onex`` with ``argv`` (default: the process arguments) and return the exit code."""
    out, err = sys.stdout, sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors (2) and --help (0) this way
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    if args.command is None:
        parser.print_usage(err)
        err.write("onex: a command is required\n")
        return USAGE_ERROR
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        return command.run(args, out, err)
    except _Usage as exc:
        err.write(f"{exc}\n")
        return USAGE_ERROR
    except BrokenPipeError:  # the reader went away (``onex ... | head``): stop quietly
        _silence_stdout()
        return INVALID


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
