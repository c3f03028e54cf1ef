"""The registration service: open the adapters the configuration names, serve until a signal,
drain, close.

**Start** (:func:`open_service`). Vault first, when configured: its token is looked up (an
invalid token fails here). Then every secret reference of the configuration is resolved —
each resolved value is registered with the redactor before anything else sees it — and the
adapters are opened: the bus (on Kafka, the topics the registration contracts name are created
if missing), the stores (on PostgreSQL, migrated first when ``ONEX_POSTGRES_MIGRATE`` says so),
the service registry (Consul, or the embedded one), and the workflow is wired on them with
:func:`~onex_adapters.registration.build_registration`. Whatever fails, what was opened is
closed again.

**Serving** (:func:`serve`). The runtime host, the runtime tick source and — with Vault — the
token renewal run side by side until the stop event is set (SIGTERM or SIGINT) or one of them
fails.

**Stop.** The tick source and the renewal are cancelled, then ``host.stop()`` drains: it polls
no more, finishes and commits the batch in hand within the drain timeout, shuts the effect
handlers down and closes the bus. Then the stores and Vault are closed. A second signal while
draining changes nothing: the drain is bounded by its timeout anyway, and a batch abandoned
uncommitted is redelivered to whoever owns its partitions next.

**Logging.** Every line goes through a :class:`~onex_adapters.redaction.RedactingFilter` on
the handler, so a registered secret never reaches the log, whoever logged it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TextIO

from examples.registration_service.config import ServiceConfig, read_config
from examples.registration_service.fleet import Fleet
from onex_adapters.clock import Clock, LoopClock, SystemClock
from onex_adapters.memory import InMemoryServiceRegistry
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.redaction import REDACTOR, RedactingFilter
from onex_adapters.registration import Backends, Registration, build_registration, open_backends
from onex_adapters.registration.demo_loop import run_on_demo_loop
from onex_adapters.runtime import IdSource, RandomIds, RuntimeConfig, SeededIds
from onex_adapters.secrets import Secret, keep_renewed, resolve
from onex_contracts import REGISTRATION_CONTRACTS
from onex_core.errors import UsageError
from onex_core.ports import EffectHandler, EventBus
from onex_core.registration import RegistrationConfig

if TYPE_CHECKING:
    from onex_adapters.vault import VaultSecrets

__all__ = ["Service", "configure_logging", "main", "open_service", "serve"]

log = logging.getLogger("examples.registration_service")

CONFIG_ERROR: Final = 2
"""The exit code of a configuration that cannot work (nothing was started)."""
FAILED: Final = 1
"""The exit code of a start or a run that failed (what was started was stopped)."""
_KAFKA_SECRETS: Final = ("ONEX_KAFKA_SASL_PASSWORD", "ONEX_KAFKA_SSL_KEY_PASSWORD")


@dataclass
class Service:
    """An opened service: the wired workflow and what :meth:`close` releases.

    Attributes:
        config: what it was opened from.
        registration: the workflow (``host``, ``ticks``, …).
        backends: the stores.
        make_bus: more buses on the same broker or cluster (``group=``, ``member_id=``).
        registry: the Consul service registry, or None.
        vault: the Vault client, or None.
    """

    config: ServiceConfig
    registration: Registration
    backends: Backends
    make_bus: Callable[..., EventBus]
    registry: EffectHandler | None = None
    vault: VaultSecrets | None = None

    async def close(self) -> None:
        """Release the registry, the stores and Vault (after :func:`serve`, which stops the
        host and shuts its effect handlers down already). Safe to call twice."""
        try:
            if self.registry is not None:
                await self.registry.shutdown(1.0)
            await self.backends.close()
        finally:
            if self.vault is not None:
                await self.vault.close()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Log to ``stream`` (default: standard error) through a redacting filter.

    Returns:
        The handler installed on the root logger (remove it to undo).

    Raises:
        UsageError: ``level`` is not a logging level name.
    """
    if level.upper() not in logging.getLevelNamesMapping():
        raise UsageError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


async def open_service(
    config: ServiceConfig,
    *,
    environ: Mapping[str, str],
    clock: Clock,
    ids: IdSource,
    workflow: RegistrationConfig | None = None,
    poll_timeout: float = 0.5,
) -> Service:
    """Open the adapters ``config`` names and wire the registration workflow on them.

    Args:
        config: from :func:`~examples.registration_service.config.read_config`.
        environ: where ``env:`` references and the ``ONEX_KAFKA_*`` variables are read.
        clock: the runtime's clock.
        ids: ids for the messages the runtime originates (ticks).
        workflow: the workflow's timing (default: DESIGN §4's).
        poll_timeout: seconds a poll of the host waits for records.

    Returns:
        The :class:`Service`; nothing runs yet.

    Raises:
        UsageError: a setting is invalid (named, never shown).
        AccessDenied, EffectRejected, EffectUnavailable: Vault, Kafka, PostgreSQL or a secret
            could not be used. Whatever was opened is closed again.
    """
    vault: VaultSecrets | None = None
    backends: Backends | None = None
    registry: EffectHandler | None = None
    try:
        if config.vault is not None:
            from onex_adapters.vault import VaultSecrets

            vault = VaultSecrets(config.vault)
            await vault.start()
        secrets = {k: v for k, v in config.secrets.items() if isinstance(v, Secret)}
        if config.references():
            secrets.update(await resolve(config.references(), vault, environ=environ))
        make_bus = await _buses(config, environ, secrets)
        settings = config.postgres
        if settings is not None and "ONEX_POSTGRES_PASSWORD" in secrets:
            settings = replace(settings, password=secrets["ONEX_POSTGRES_PASSWORD"].reveal())
        backends = await open_backends({}, clock=clock, settings=settings, migrate=config.migrate)
        service_registry: InMemoryServiceRegistry | EffectHandler = InMemoryServiceRegistry()
        if config.consul is not None:
            from onex_adapters.consul import ConsulServiceRegistry

            registry = ConsulServiceRegistry()
            consul: dict[str, object] = {"url": config.consul.url, "verify": config.consul.verify}
            if "ONEX_CONSUL_TOKEN" in secrets:
                consul["token"] = secrets["ONEX_CONSUL_TOKEN"]
            await registry.initialize(consul)
            service_registry = registry
        registration = build_registration(
            make_bus(group="registration", member_id="registration"),
            backends.projections,
            backends.idempotency,
            service_registry,
            backends.storage,
            clock,
            ids,
            workflow,
            runtime=RuntimeConfig(
                name="registration", poll_timeout=poll_timeout, drain_timeout=config.drain_timeout
            ),
        )
    except BaseException:
        if registry is not None:
            await registry.shutdown(1.0)
        if backends is not None:
            await backends.close()
        if vault is not None:
            await vault.close()
        raise
    return Service(config, registration, backends, make_bus, registry, vault)


async def _buses(
    config: ServiceConfig, environ: Mapping[str, str], secrets: Mapping[str, Secret]
) -> Callable[..., EventBus]:
    """A factory of buses on Kafka (topics provisioned) or on a new in-memory broker."""
    if config.kafka_bootstrap is None:
        return partial(InMemoryBus, InMemoryBroker(partitions=4))
    from onex_adapters.kafka.wiring import KafkaBuses

    env = dict(environ)
    env.update({name: secrets[name].reveal() for name in _KAFKA_SECRETS if name in secrets})
    buses = KafkaBuses.from_env(env)
    assert buses is not None  # ONEX_KAFKA_BOOTSTRAP is set
    await buses.provision_contracts(REGISTRATION_CONTRACTS)
    return buses.bus


async def serve(service: Service, stop: asyncio.Event) -> None:
    """Run the host, the tick source and (with Vault) the token renewal until ``stop`` is set
    or one of them ends; then drain and stop the host.

    Raises:
        Whatever ended a task early (the host's loop, the tick source, a renewal refused for
        good), after the host was stopped.
    """
    registration = service.registration
    host = registration.host
    helpers: dict[asyncio.Future[None], str] = {
        asyncio.ensure_future(registration.ticks.run()): "the tick source"
    }
    if service.vault is not None:
        renewal = keep_renewed(service.vault, interval=30.0)
        helpers[asyncio.ensure_future(renewal)] = "the Vault token renewal"
    running = {host.start_background(): "the runtime host", **helpers}
    waiting: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiting, *running], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    failure: BaseException | None = None
    for task, name in running.items():
        if not task.done() or task.cancelled():
            continue
        error = task.exception() or RuntimeError(f"{name} ended by itself")
        log.error("%s failed: %s; stopping", name, REDACTOR.redact_error(error))
        failure = failure or error
    log.info("draining (at most %g s)", host.config.drain_timeout)
    for task in helpers:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await host.stop()
    stats = host.stats
    log.info(
        "stopped: %d handled, %d dead-lettered, %d effects done, %d events published",
        stats.handled,
        stats.dead_lettered,
        stats.effects_done,
        stats.events_published,
    )
    if failure is not None:
        raise failure


def _on_signal(stop: asyncio.Event, number: int) -> None:
    name = signal.Signals(number).name
    if stop.is_set():
        log.warning("%s again: already draining", name)
    else:
        log.info("%s received: stopping", name)
        stop.set()


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, _on_signal, stop, number)
    try:
        yield
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)


async def _serve_until_signalled(config: ServiceConfig, environ: Mapping[str, str]) -> None:
    stop = asyncio.Event()
    with _signals(stop):
        service = await open_service(config, environ=environ, clock=SystemClock(), ids=RandomIds())
        try:
            log.info("serving; stop with SIGTERM or SIGINT")
            await serve(service, stop)
        finally:
            await service.close()


async def _simulate(
    config: ServiceConfig, environ: Mapping[str, str], nodes: int, duration: float, out: TextIO
) -> int:
    clock = LoopClock()
    clock.now()  # the simulated timeline starts now
    workflow = RegistrationConfig()
    stop = asyncio.Event()
    with _signals(stop):
        service = await open_service(
            config, environ=environ, clock=clock, ids=SeededIds(7), poll_timeout=0.25
        )
        fleet = Fleet(
            service.make_bus, clock, nodes, heartbeat_interval=workflow.heartbeat_interval
        )
        try:
            nodes_task = asyncio.ensure_future(fleet.run())

            async def end_of_simulation() -> None:
                await asyncio.sleep(duration)
                log.info("simulation over after %g s: stopping as on SIGTERM", duration)
                stop.set()

            timer = asyncio.ensure_future(end_of_simulation())
            try:
                await serve(service, stop)
            finally:
                timer.cancel()
                nodes_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await nodes_task
                await fleet.close()
            return await _report(service, fleet, duration, out)
        finally:
            await service.close()


async def _report(service: Service, fleet: Fleet, duration: float, out: TextIO) -> int:
    domain = service.registration.config.domain
    rows = [("NODE", "STATE", "HEARTBEATS")]
    active = 0
    for node in fleet.names:
        projection = await service.backends.projections.get(node, domain)
        state = projection.state if projection is not None else "-"
        active += state == "active"
        rows.append((node, state, str(fleet.heartbeats.get(node, 0))))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    stats = service.registration.host.stats
    lines = [f"{len(fleet.names)} simulated node(s), {duration:g} s", ""]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines += [
        "",
        f"{active} of {len(fleet.names)} active; {stats.dead_lettered} dead letter(s); "
        f"{stats.effects_done} effects done; {stats.events_published} events published",
    ]
    out.write("\n".join(lines) + "\n")
    return 0 if active == len(fleet.names) else FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.registration_service",
        description="Run the node-registration workflow as a service, with the adapters the "
        "ONEX_* environment variables name (default: the embedded ones), until SIGTERM or "
        "SIGINT.",
    )
    parser.add_argument(
        "--simulate",
        type=int,
        metavar="N",
        help="simulate N nodes for --duration seconds, stop as on SIGTERM, print a report and "
        "exit 0 if every node ended active (virtual time, unless on Kafka)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to simulate (default 60)",
    )
    parser.add_argument("--log-level", default="INFO", metavar="LEVEL", help="default INFO")
    return parser


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the service (see the module docstring) and return its exit code: 0 after a clean
    stop, 1 when the start or the run failed, 2 for a configuration that cannot work."""
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    root = logging.getLogger()
    level = root.level
    try:
        handler = configure_logging(args.log_level)
    except UsageError as exc:
        sys.stderr.write(f"registration service: {exc}\n")
        return CONFIG_ERROR
    try:
        return _run(args, env, out or sys.stdout)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _run(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    try:
        if args.simulate is not None and not (1 <= args.simulate <= 99 and args.duration > 0):
            raise UsageError("--simulate takes 1 to 99 nodes and --duration a positive number")
        config = read_config(env)
        for line in config.describe():
            log.info("%s", line)
    except UsageError as exc:
        log.error("configuration: %s", exc)
        return CONFIG_ERROR
    try:
        if args.simulate is None:
            asyncio.run(_serve_until_signalled(config, env))
            return 0
        run: Callable[[Coroutine[Any, Any, int]], int] = run_on_demo_loop
        if config.kafka_bootstrap is not None:  # threads and a broker: real time
            run = asyncio.run
        return run(_simulate(config, env, args.simulate, args.duration, out))
    except UsageError as exc:
        log.error("configuration: %s", exc)
        return CONFIG_ERROR
    except Exception as exc:
        log.error("registration service failed: %s", REDACTOR.redact_error(exc))
        return FAILED
