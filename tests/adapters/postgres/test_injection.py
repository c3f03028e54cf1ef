"""SQL injection stays inert: values are always bound parameters, identifiers always quoted.

Values: an injection string as entity id, domain, state, partition, data key and value,
deadline field, idempotency domain and key, and every text column of a registration row — it
is stored and read back verbatim, and every table survives. Identifiers: the only identifier
ever taken from configuration is the schema name, quoted with ``psycopg.sql.Identifier``; a
schema named like an injection is just an oddly named schema. And a static check: no query in
the adapter is built from a value at the call site.
"""

from __future__ import annotations

import ast
import asyncio
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import onex_adapters.postgres
from onex_adapters.postgres import (
    PostgresIdempotencyStore,
    PostgresProjectionStore,
    PostgresSettings,
    RegistrationRow,
    RegistrationStorage,
    migrate,
)
from onex_core.outputs import Projection
from tests.adapters.port_suites import T0
from tests.adapters.postgres._server import Found, pooled

Admin = psycopg.Connection[tuple[Any, ...]]

ATTACKS = [
    "x'); DROP TABLE onex_projections;--",
    'x"; DROP TABLE onex_idempotency;--',
    "'; DELETE FROM registration_projections; SELECT '",
    "$1) OR 1=1 --",
    "%s %(x)s {}",
    "\\'; TRUNCATE onex_projection_deadlines; --",
]
TABLES = (
    "onex_projections",
    "onex_projection_deadlines",
    "onex_idempotency",
    "registration_projections",
    "onex_schema_migrations",
)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def surviving_tables(admin: Admin) -> set[str]:
    rows = admin.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    return {row[0] for row in rows} & set(TABLES)


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_in_values_is_stored_verbatim(
    settings: PostgresSettings, admin: Admin, attack: str
) -> None:
    async def scenario() -> None:
        async with pooled(settings) as pool:
            projections = PostgresProjectionStore(pool)
            written = Projection(
                entity_id=attack,
                domain=attack,
                state=attack,
                data={attack: attack, "nested": {attack: [attack]}, "deadline": T0},
                sequence=1,
                event_id=uuid.uuid4(),
                partition=attack,
                offset=1,
            )
            assert await projections.put(written)
            assert await projections.get(attack, attack) == written
            assert await projections.overdue(attack, attack, T0, 10) == []
            due = await projections.overdue(attack, "deadline", T0.replace(year=2030), 10)
            assert due == [written]

            idempotency = PostgresIdempotencyStore(pool)
            await idempotency.record(attack, attack)
            assert await idempotency.seen(attack, attack)
            assert not await idempotency.seen(attack, attack + "'")

            registrations = RegistrationStorage(pool)
            row = RegistrationRow(
                node_id=attack,
                node_type="effect",
                state="active",
                sequence=1,
                event_id=uuid.uuid4(),
                registered_at=T0,
                updated_at=T0,
                node_version=attack,
                capabilities={attack: attack},
                endpoints={"health": attack},
                partition=attack,
                domain=attack,
            )
            assert await registrations.upsert_registrations([row]) == (True,)
            assert await registrations.get(attack, attack) == row

    run(scenario())
    assert surviving_tables(admin) == set(TABLES)
    assert admin.execute("SELECT count(*) FROM onex_projections").fetchone() == (1,)


def test_a_schema_named_like_an_injection_is_just_a_schema(pg_server: Found, admin: Admin) -> None:
    name = 'onex_x"; DROP TABLE onex_projections; --'
    home = admin.execute("SELECT current_schema()").fetchone()
    assert home is not None
    run(migrate(pg_server.settings.with_schema(home[0])))
    try:
        odd = pg_server.settings.with_schema(name)
        run(migrate(odd))

        async def scenario() -> None:
            async with pooled(odd) as pool:
                store = PostgresIdempotencyStore(pool)
                await store.record("d", "k")
                assert await store.seen("d", "k")

        run(scenario())
        inside = admin.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [name]
        ).fetchone()
        assert inside == (len(TABLES),)
        assert surviving_tables(admin) == set(TABLES)  # the test's own schema is untouched
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# --------------------------------------------------------------------------- static check

PACKAGE = Path(onex_adapters.postgres.__file__).parent
QUERY_METHODS = {"execute", "executemany", "copy"}


def _query_argument_problems(tree: ast.AST) -> list[str]:
    """Every query handed to psycopg must be a literal, a name (a module constant or a
    parameter) or a
    ``psycopg.sql`` composition — never an f-string, a ``%``/``+`` expression or
    ``str.format`` at the call site. ``sql.SQL`` only ever wraps a literal."""
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "SQL" and not (node.args and isinstance(node.args[0], ast.Constant)):
            problems.append(f"line {node.lineno}: sql.SQL of a non-literal")
        if node.func.attr not in QUERY_METHODS or not node.args:
            continue
        query = node.args[0]
        if isinstance(query, ast.Name | ast.Attribute | ast.Constant):
            continue
        if (
            isinstance(query, ast.Call)
            and isinstance(query.func, ast.Attribute)
            and query.func.attr == "format"
            and isinstance(query.func.value, ast.Call)
            and isinstance(query.func.value.func, ast.Attribute)
            and query.func.value.func.attr == "SQL"
        ):
            continue
        problems.append(f"line {node.lineno}: {ast.unparse(query)[:60]}")
    return problems


def test_no_query_is_built_from_a_value_at_the_call_site() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert {"projections.py", "idempotency.py", "registrations.py"} <= {p.name for p in sources}
    problems = {
        path.name: found
        for path in sources
        if (found := _query_argument_problems(ast.parse(path.read_text())))
    }
    assert problems == {}


def test_the_static_check_catches_what_it_forbids() -> None:
    bad = ast.parse(
        "async def f(conn, v):\n"
        "    await conn.execute(f'SELECT {v}')\n"
        "    await conn.execute('SELECT ' + v)\n"
        "    await conn.execute('SELECT %s' % v)\n"
        "    await conn.execute('SELECT {}'.format(v))\n"
        "    await conn.execute(sql.SQL(v))\n"
    )
    flagged = {
        int(problem.split(":")[0].removeprefix("line "))
        for problem in _query_argument_problems(bad)
    }
    assert flagged == {2, 3, 4, 5, 6}
