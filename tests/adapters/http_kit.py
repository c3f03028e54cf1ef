"""What the tests of the HTTP adapters (Consul, Vault) share.

Running a scenario to its end or to its failure, the check that a translated error carries no
driver exception, a port nobody listens on, proxy variables that lead nowhere, the failures the
shared edge (``onex_adapters._http_edge``) classifies alike for every adapter, and readable ids
for :class:`~tests.adapters.fakes.base.Fault` parameters.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from onex_core.errors import EffectRejected, EffectUnavailable
from tests.adapters.fakes.base import Fault

__all__ = [
    "assert_no_foreign_chain",
    "closed_port",
    "dead_proxies",
    "edge_faults",
    "failure",
    "fault_id",
    "run",
]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def failure(coro: Any) -> BaseException:
    """What running ``coro`` raises; an AssertionError when it does not."""
    try:
        run(coro)
    except BaseException as exc:
        return exc
    raise AssertionError("expected a failure")


def assert_no_foreign_chain(error: BaseException) -> None:
    assert error.__cause__ is None
    assert error.__context__ is None


def closed_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def dead_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every proxy variable ``requests`` reads at a closed port, with no exceptions."""
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


def edge_faults(echo: str, deadline: float) -> list[tuple[Fault, type[Exception], str, None]]:
    """Failures every adapter on the edge classifies alike, as ``(fault, error type, text in
    the message, retry_after)``; ``echo`` is what the fake's answer carries (and the message
    must not), ``deadline`` the adapter's timeout."""
    return [
        (Fault(status=502, body=echo), EffectUnavailable, "bad gateway (HTTP 502)", None),
        (Fault(status=413, body=echo), EffectRejected, "request too large (HTTP 413)", None),
        (Fault(status=418, body=echo), EffectRejected, "error (HTTP 418)", None),
        (Fault(reset=True), EffectUnavailable, "connection", None),
        (Fault(hang=True), EffectUnavailable, f"no answer within {deadline:g} s", None),
    ]


def fault_id(value: object) -> str:
    """``503``, ``429-retry-after``, ``reset``, ``hang`` for a Fault; empty for the rest."""
    if not isinstance(value, Fault):
        return ""
    name = str(value.status or ("reset" if value.reset else "hang"))
    return name + ("-retry-after" if value.headers else "")
