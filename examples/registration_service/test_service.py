"""The service runs, stops on a signal with a drain, stops when a part of it fails, and keeps
its state in PostgreSQL when told to."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from examples.registration_service.config import read_config
from examples.registration_service.service import FAILED, main, open_service, serve
from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.runtime import SeededIds
from tests.adapters.fakes.consul_fake import ConsulFake
from tests.adapters.fakes.vault_fake import VaultFake
from tests.adapters.postgres._server import Found
from tests.adapters.postgres.fixtures import postgres_server

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_simulation_on_the_embedded_default_ends_with_every_node_active(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    assert main(["--simulate", "4", "--duration", "45"], environ={}, out=out) == 0
    report = out.getvalue()
    assert "4 of 4 active; 0 dead letter(s)" in report
    for node in ("sim-node-01", "sim-node-04"):
        assert f"{node}  active" in report
    logged = capsys.readouterr().err
    for line in ("bus: in memory", "simulation over after 45 s", "draining", "stopped: "):
        assert line in logged


def test_sigterm_drains_and_exits_0() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.registration_service"],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    try:
        for line in process.stderr:  # until the service says it serves
            lines.append(line)
            if "serving; stop with SIGTERM or SIGINT" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    logged = "".join(lines) + rest
    assert process.returncode == 0, logged
    order = ["serving", "SIGTERM received: stopping", "draining", "stopped: "]
    positions = [logged.index(text) for text in order]
    assert positions == sorted(positions)


class BrokenTicks:
    """A tick source that fails after a while."""

    async def run(self) -> None:
        await asyncio.sleep(5.0)
        raise RuntimeError("the tick source lost its bus")


def test_when_a_part_fails_the_host_is_drained_and_the_failure_comes_out() -> None:
    async def scenario() -> None:
        clock = LoopClock()
        service = await open_service(
            read_config({}), environ={}, clock=clock, ids=SeededIds(1), poll_timeout=0.25
        )
        registration = dataclasses.replace(service.registration, ticks=BrokenTicks())  # type: ignore[arg-type]
        service = dataclasses.replace(service, registration=registration)
        try:
            with pytest.raises(RuntimeError, match="lost its bus"):
                await serve(service, asyncio.Event())
        finally:
            await service.close()
        assert registration.host.is_draining
        assert registration.host.stats.handled == 0

    run_virtual(scenario())


def test_a_store_that_cannot_be_reached_fails_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"ONEX_POSTGRES_DSN": "postgresql://onex:pw-canary-1@127.0.0.1:1/onex"}
    assert main(["--simulate", "1"], environ=environ) == FAILED
    logged = capsys.readouterr().err
    assert "registration service failed: PostgresUnavailable" in logged
    assert "pw-canary-1" not in logged


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Found]:
    with postgres_server(tmp_path_factory.mktemp("home")) as found:
        yield found


@pytest.mark.postgres
def test_on_postgresql_the_nodes_state_outlives_the_service(pg_server: Found) -> None:
    schema = f"onex_example_{uuid.uuid4().hex[:12]}"
    environ = {
        "ONEX_POSTGRES_DSN": pg_server.settings.conninfo(),
        "ONEX_POSTGRES_SCHEMA": schema,
        "ONEX_POSTGRES_MIGRATE": "true",
    }
    out = io.StringIO()
    try:
        assert main(["--simulate", "3", "--duration", "30"], environ=environ, out=out) == 0
        assert "3 of 3 active" in out.getvalue()
        with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            rows = conn.execute(
                "SELECT entity_id, current_state FROM registration_projections ORDER BY 1"
            ).fetchall()
            projections = conn.execute(
                "SELECT count(*) FROM onex_projections WHERE state = 'active'"
            ).fetchone()
        assert rows == [(f"sim-node-0{i}", "active") for i in (1, 2, 3)]
        assert projections == (3,)
    finally:
        with psycopg.connect(pg_server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --------------------------------------------------------------------------- Consul and Vault


def test_consul_with_its_token_read_from_vault_serves_the_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):  # the clients read credentials nobody asked for
        if name.startswith(("VAULT_", "CONSUL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    consul_token, vault_token = f"consul-{uuid.uuid4().hex}", f"vault-{uuid.uuid4().hex}"
    token_file = tmp_path / "vault-token"
    token_file.write_text(vault_token)
    with VaultFake() as vault, ConsulFake(tokens={consul_token}) as consul:
        vault.add_token(vault_token)
        vault.put("secret", "onex/consul", {"token": consul_token})
        environ = {
            "ONEX_CONSUL_URL": consul.url,
            "ONEX_CONSUL_TOKEN": "vault:secret/data/onex/consul#token",
            "ONEX_VAULT_ADDR": vault.url,
            "ONEX_VAULT_TOKEN_FILE": str(token_file),
        }
        out = io.StringIO()
        assert main(["--simulate", "2", "--duration", "30"], environ=environ, out=out) == 0
        assert "2 of 2 active" in out.getvalue()
        for service_id in ("onex-effect-sim-node-01", "onex-compute-sim-node-02"):
            assert consul.has_service(service_id)
            assert consul.check_status(f"service:{service_id}") == "passing"
    logged = capsys.readouterr().err
    assert "service registry: consul at http://127.0.0.1:" in logged
    assert "ONEX_CONSUL_TOKEN: vault:secret/…/consul#token" in logged
    for token in (consul_token, vault_token):
        assert token not in logged
        assert token not in out.getvalue()
