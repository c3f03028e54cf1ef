"""The in-process HTTP server the Consul and Vault fakes are built on.

A :class:`FakeServer` is a stdlib ``ThreadingHTTPServer`` on ``127.0.0.1:0`` that hands every
request to an *app* — a function from :class:`Request` to :class:`Reply` that owns the fake's
state — after consulting a :class:`FaultScript`. A :class:`Fault` can delay a request
(``latency``), reset the connection (``reset``), never answer (``hang``), answer with a scripted
status, body and headers, or apply the request to the state and *then* never answer
(``apply_then_hang``, the zombie write). Every request is kept in a :class:`RequestLog` for
assertions. Hangs end when the server stops, so no thread outlives a test by long.

Time in the fakes comes from a :class:`FakeClock` the test advances; nothing here sleeps except
a fault's ``latency``.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "FakeClock",
    "FakeServer",
    "Fault",
    "FaultScript",
    "Reply",
    "Request",
    "RequestLog",
]

HANG_LIMIT = 10.0  # seconds a hang lasts at most, should a test forget to stop the server


class FakeClock:
    """Seconds since the fake started; advanced only by the test."""

    EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def wall(self) -> datetime:
        return self.EPOCH + timedelta(seconds=self())


@dataclass(frozen=True)
class Request:
    """One request as the fake saw it. Header names are lower-cased."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any, headers: Mapping[str, str] | None = None) -> Reply:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(document).encode(), merged)

    @classmethod
    def text(cls, status: int, text: str, headers: Mapping[str, str] | None = None) -> Reply:
        merged = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        return cls(status, text.encode(), merged)


@dataclass
class Fault:
    """What to do instead of (or around) answering a matching request.

    ``method`` and ``path`` (a prefix of the URL path) select requests; None matches all.
    ``times`` is how many matching requests it applies to.
    """

    method: str | None = None
    path: str | None = None
    status: int | None = None
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    latency: float = 0.0
    reset: bool = False
    hang: bool = False
    apply_then_hang: bool = False
    times: int = 1

    def matches(self, request: Request) -> bool:
        if self.method is not None and self.method != request.method:
            return False
        return self.path is None or request.path.startswith(self.path)

    def reply(self) -> Reply:
        if isinstance(self.body, dict | list):
            return Reply.json(self.status or 500, self.body, self.headers)
        body = self.body.encode() if isinstance(self.body, str) else bytes(self.body)
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.headers}
        return Reply(self.status or 500, body, headers)


class FaultScript:
    """Faults, consumed in order by the requests they match."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault | None = None, **fields: Any) -> Fault:
        fault = fault or Fault(**fields)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)


class RequestLog:
    """Every request the server received, in arrival order."""

    def __init__(self) -> None:
        self._entries: list[Request] = []
        self._lock = threading.Lock()

    def append(self, request: Request) -> None:
        with self._lock:
            self._entries.append(request)

    def __iter__(self) -> Iterator[Request]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def matching(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [
            r
            for r in self
            if (method is None or r.method == method) and (path is None or r.path.startswith(path))
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


App = Callable[[Request], Reply]


class FakeServer:
    """A loopback HTTP server around ``app``, with a fault script and a request log."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.faults = FaultScript()
        self.requests = RequestLog()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait(self, seconds: float) -> None:
        self._release.wait(seconds)


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "onex-fake"
        sys_version = ""

        def version_string(self) -> str:
            return self.server_version

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the fakes never write request lines anywhere."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                unquote(parts.path),
                parse_qs(parts.query, keep_blank_values=True),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            fake.requests.append(request)
            fault = fake.faults.take(request)
            if fault is not None and fault.latency:
                fake._wait(fault.latency)
            if fault is not None and fault.reset:
                self._reset()
                return
            if fault is not None and fault.hang:
                fake._wait(HANG_LIMIT)
                self.close_connection = True
                return
            if fault is not None and fault.status is not None:
                self._send(fault.reply())
                return
            reply = fake.app(request)
            if fault is not None and fault.apply_then_hang:
                fake._wait(HANG_LIMIT)
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.body and self.command != "HEAD":
                self.wfile.write(reply.body)

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_LIST = do_PATCH = do_HEAD = _serve

    return Handler
