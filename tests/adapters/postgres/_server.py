"""Finding a PostgreSQL server for the tests and the benchmark, or starting a throwaway one.

Discovery, in order: ``ONEX_TEST_POSTGRES_DSN`` if set (it must answer); else a server on
127.0.0.1:5432 (user ``postgres``, database ``test``) if one answers; else a throwaway cluster
made with ``initdb`` and ``pg_ctl`` when they are installed; else nothing, with a one-line
reason. ``initdb`` refuses to run as root, so as root the binaries run as the ``postgres`` user
through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from onex_adapters.postgres import Pool, PostgresSettings, open_pool

__all__ = ["Cluster", "Found", "discover", "find_bindir", "pooled"]


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster on a free loopback port, in a temporary directory.

    With a ``password``, TCP connections need it (scram-sha-256); the Unix socket in the
    directory stays trusted, for administration.
    """

    bindir: Path
    root: Path
    port: int
    password: str | None = None
    _as_postgres: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, bindir: Path, *, password: str | None = None) -> Cluster:
        root = Path(tempfile.mkdtemp(prefix="onex-pg-"))
        prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres")
            prefix = ["runuser", "-u", "postgres", "--"]
        cluster = cls(bindir, root, _free_port(), password, prefix)
        args = ["-D", str(cluster.data), "-U", "postgres", "--no-sync", "-E", "UTF8"]
        if password is not None:
            pwfile = root / "pw"
            pwfile.write_text(password)
            if prefix:
                shutil.chown(pwfile, user="postgres")
            args += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args += ["-A", "trust"]
        try:
            cluster._run("initdb", *args)
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_postgres, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    def _ctl(self, action: str, *args: str) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            *args,
            action,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=off -c max_connections=40"
        )
        self._ctl("start", "-o", options)

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: like a crash) and start it again; returns once it
        accepts connections (``pg_ctl -w`` polls for that)."""
        self._ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def settings(self, **overrides: Any) -> PostgresSettings:
        """Settings for TCP connections to this cluster."""
        base = PostgresSettings(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            password=self.password,
            min_size=1,
            max_size=4,
        )
        return replace(base, **overrides)

    def admin_conninfo(self) -> str:
        """Trusted Unix-socket access as the superuser."""
        return f"host={self.root} port={self.port} user=postgres dbname=postgres"


@dataclass
class Found:
    """Where the tests' server is. ``cluster`` is set when the tests started it."""

    settings: PostgresSettings
    origin: str
    cluster: Cluster | None = None

    def admin_conninfo(self) -> str:
        if self.cluster is not None:
            return self.cluster.admin_conninfo()
        return self.settings.conninfo()


def _answers(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def discover(*, allow_cluster: bool = True) -> Found | str:
    """The server to test against, or a one-line reason why there is none.

    Raises:
        RuntimeError: ``ONEX_TEST_POSTGRES_DSN`` is set but does not answer (a configured
            server that is down is an error, never a reason to skip).
    """
    dsn = os.environ.get("ONEX_TEST_POSTGRES_DSN")
    if dsn:
        settings = PostgresSettings.from_dsn(dsn, min_size=1, max_size=4)
        if not _answers(settings.conninfo()):
            raise RuntimeError("ONEX_TEST_POSTGRES_DSN is set but the server does not answer")
        return Found(settings, "ONEX_TEST_POSTGRES_DSN")
    local = PostgresSettings(
        host="127.0.0.1", port=5432, user="postgres", dbname="test", min_size=1, max_size=4
    )
    if _answers(local.conninfo()):
        return Found(local, "127.0.0.1:5432")
    bindir = find_bindir() if allow_cluster else None
    if bindir is None:
        return "no PostgreSQL: ONEX_TEST_POSTGRES_DSN unset, nothing on 127.0.0.1:5432, no initdb"
    started = time.monotonic()
    cluster = Cluster.create(bindir)
    found = Found(cluster.settings(), f"throwaway cluster ({time.monotonic() - started:.1f} s)")
    found.cluster = cluster
    return found


@asynccontextmanager
async def pooled(settings: PostgresSettings) -> AsyncIterator[Pool]:
    """An open pool for the block, closed after it (in the same event loop)."""
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()
