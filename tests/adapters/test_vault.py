"""The Vault adapter, driven through the real hvac client.

Two lanes. The ``fake`` lane runs every test against the in-process Vault fake
(:mod:`tests.adapters.fakes.vault_fake`). The ``real`` lane runs the contract tests — the ones
taking the ``target`` fixture — against a real server when ``ONEX_TEST_VAULT_ADDR`` and
``ONEX_TEST_VAULT_TOKEN`` are set (KV v2 mount ``ONEX_TEST_VAULT_MOUNT``, default ``secret``),
under a unique path prefix whose secrets are deleted afterwards. No Vault can be installed on
this machine (DESIGN §7), so here the real lane skips with a one-line reason, also under
``CI=true``: the fake lane is the gate, and the contract tests keep the fake honest wherever a
real server exists.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests

from onex_adapters.secrets import Secret, SecretSource, resolve
from onex_adapters.vault import (
    AccessDenied,
    SecretVersions,
    VaultSecrets,
    VaultSettings,
    WriteConflict,
)
from onex_core.errors import EffectRejected, EffectUnavailable, UsageError
from tests.adapters.fakes.base import FakeClock, Fault
from tests.adapters.fakes.golden import load, shape_problems
from tests.adapters.fakes.vault_fake import VaultFake
from tests.adapters.http_kit import (
    assert_no_foreign_chain,
    closed_port,
    dead_proxies,
    edge_faults,
    failure,
    fault_id,
    run,
)
from tests.adapters.test_secrets import SecretSourceSuite

REAL_ADDR = os.environ.get("ONEX_TEST_VAULT_ADDR")
REAL_TOKEN = os.environ.get("ONEX_TEST_VAULT_TOKEN")
REAL_MOUNT = os.environ.get("ONEX_TEST_VAULT_MOUNT", "secret")
ROOT = f"vault-root-{uuid.uuid4().hex}"
DEADLINE = 0.2
ECHO = "body-canary-5c1e"


class ManualClock:
    """A Clock whose monotonic time the test sets."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t


@dataclass
class Target:
    url: str
    token: str
    mount: str
    prefix: str
    fake: VaultFake | None
    written: set[str] = field(default_factory=set)

    def path(self, name: str) -> str:
        full = f"{self.prefix}/{name}"
        self.written.add(full)
        return full

    def raw(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.url, token=token or self.token)


@pytest.fixture(params=["fake", "real"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "fake":
        with VaultFake(root_token=ROOT) as fake:
            yield Target(fake.url, ROOT, "secret", "onex-test", fake)
        return
    if not (REAL_ADDR and REAL_TOKEN):
        pytest.skip("no real Vault: set ONEX_TEST_VAULT_ADDR and ONEX_TEST_VAULT_TOKEN")
    found = Target(REAL_ADDR, REAL_TOKEN, REAL_MOUNT, f"onex-test-{uuid.uuid4().hex[:8]}", None)
    yield found
    client = found.raw()
    for path in found.written:
        client.secrets.kv.v2.delete_metadata_and_all_versions(path, mount_point=found.mount)


@pytest.fixture
def fake() -> Iterator[VaultFake]:
    with VaultFake(root_token=ROOT, clock=FakeClock()) as server:
        yield server


def vault_for(
    url: str,
    token: str | None = ROOT,
    *,
    clock: ManualClock | None = None,
    reauthenticate: Any = None,
    **extra: Any,
) -> VaultSecrets:
    config: dict[str, Any] = {"url": url, "timeout": DEADLINE, **extra}
    if token is not None:
        config["token"] = token
    return VaultSecrets(config, clock=clock, reauthenticate=reauthenticate)


@asynccontextmanager
async def opened(url: str, token: str | None = ROOT, **extra: Any) -> AsyncIterator[VaultSecrets]:
    vault = vault_for(url, token, **extra)
    try:
        yield vault
    finally:
        await vault.close(0.5)


# --------------------------------------------------------------------------- contract (both lanes)


def test_write_read_and_check_and_set(target: Target) -> None:
    path = target.path("onex/db")

    async def scenario() -> SecretVersions:
        async with opened(target.url, target.token, mount=target.mount) as vault:
            assert await vault.write(path, {"password": "one", "user": "app"}) == 1
            assert (await vault.read(path, "password")).reveal() == "one"
            assert await vault.write(path, {"password": "two"}, cas=1) == 2
            with pytest.raises(WriteConflict, match="check-and-set did not match"):
                await vault.write(path, {"password": "three"}, cas=1)
            assert (await vault.read(path, "password", version=1)).reveal() == "one"
            latest = await vault.read(path)
            assert {k: v.reveal() for k, v in latest.items()} == {"password": "two"}
            with pytest.raises(WriteConflict):
                await vault.write(path, {"password": "create-only"}, cas=0)
            return await vault.versions(path)

    versions = run(scenario())
    assert versions.current_version == 2
    assert sorted(versions.versions) == [1, 2]
    assert not any(state.destroyed for state in versions.versions.values())


def test_an_invalid_token_is_refused_permanently(target: Target) -> None:
    bogus = f"bogus-{uuid.uuid4().hex}"

    async def scenario() -> None:
        async with opened(target.url, bogus, mount=target.mount) as vault:
            await vault.start()

    error = failure(scenario())
    assert type(error) is AccessDenied
    assert str(error) == "vault: token lookup self failed: permission denied (HTTP 403)"
    assert bogus not in repr(error.args)


def test_a_deleted_latest_version_reads_as_deleted_and_a_missing_secret_as_not_found(
    target: Target,
) -> None:
    path = target.path("onex/deleted")

    async def scenario() -> list[BaseException]:
        errors: list[BaseException] = []
        async with opened(target.url, target.token, mount=target.mount) as vault:
            await vault.write(path, {"k": "v"})
            target.raw().secrets.kv.v2.delete_latest_version_of_secret(
                path, mount_point=target.mount
            )
            for call in (
                vault.read(path),
                vault.read(target.path("onex/never-written")),
                vault.versions(target.path("onex/never-written")),
            ):
                try:
                    await call
                except EffectRejected as exc:
                    errors.append(exc)
        return errors

    deleted, missing, no_metadata = run(scenario())
    assert "the version was deleted" in str(deleted)
    assert str(missing).endswith("not found (HTTP 404)")
    assert str(no_metadata).endswith("not found (HTTP 404)")


def test_answers_have_the_documented_shapes_and_error_bodies(target: Target) -> None:
    headers = {"X-Vault-Token": target.token}
    base = f"{target.url}/v1/{target.mount}"
    path = target.path("onex/shape")
    write = requests.post(
        f"{base}/data/{path}", json={"data": {"foo": "bar"}}, headers=headers, timeout=5
    )
    read = requests.get(f"{base}/data/{path}", headers=headers, timeout=5)
    metadata = requests.get(f"{base}/metadata/{path}", headers=headers, timeout=5)
    lookup = requests.get(f"{target.url}/v1/auth/token/lookup-self", headers=headers, timeout=5)
    for answer, name in (
        (write, "vault_kv2_write"),
        (read, "vault_kv2_read"),
        (metadata, "vault_kv2_metadata"),
        (lookup, "vault_token_lookup_self"),
    ):
        golden = load(name)
        assert answer.status_code == golden["status"], name
        assert shape_problems(answer.json(), golden["body"], golden["optional"]) == [], name
    errors = load("vault_errors")
    conflict = requests.post(
        f"{base}/data/{path}",
        json={"options": {"cas": 0}, "data": {"foo": "baz"}},
        headers=headers,
        timeout=5,
    )
    missing = requests.get(f"{base}/data/{target.prefix}/absent", headers=headers, timeout=5)
    denied = requests.get(
        f"{target.url}/v1/auth/token/lookup-self",
        headers={"X-Vault-Token": f"bogus-{uuid.uuid4().hex}"},
        timeout=5,
    )
    for answer, name in (
        (conflict, "cas_mismatch"),
        (missing, "not_found"),
        (denied, "permission_denied"),
    ):
        assert answer.status_code == errors[name]["status"], name
        assert answer.headers["Content-Type"] == "application/json", name
        assert answer.json()["errors"] == errors[name]["errors"], name


class TestVaultSecretSource(SecretSourceSuite):
    @pytest.fixture
    def source(self, target: Target) -> Iterator[SecretSource]:
        self.target = target
        self.mount = target.mount
        vault = vault_for(target.url, target.token, mount=target.mount)
        yield vault
        run(vault.close(0.5))

    def path(self, name: str) -> str:
        return self.target.path(name)

    def seed(self, path: str, values: Mapping[str, str]) -> None:
        self.target.raw().secrets.kv.v2.create_or_update_secret(
            path, secret=dict(values), mount_point=self.mount
        )


def test_configuration_references_resolve_through_vault(fake: VaultFake) -> None:
    fake.put("secret", "onex/db", {"user": "app-user", "password": "resolved-pw-3"})

    async def scenario() -> dict[str, Any]:
        async with opened(fake.url) as vault:
            return await resolve(
                {"db": {"password": "vault:secret/data/onex/db#password", "port": 5432}}, vault
            )

    resolved = run(scenario())
    assert resolved["db"]["password"].reveal() == "resolved-pw-3"
    assert resolved["db"]["port"] == 5432
    assert len(fake.requests.matching("GET", "/v1/secret/data/onex/db")) == 1


# --------------------------------------------------------------------------- hvac quirks (§0.8)


@pytest.mark.parametrize(
    ("status", "hvac_error"),
    [
        (400, hvac.exceptions.InvalidRequest),
        (403, hvac.exceptions.Forbidden),
        (404, hvac.exceptions.InvalidPath),
        (412, hvac.exceptions.UnexpectedError),
        (429, hvac.exceptions.RateLimitExceeded),
        (500, hvac.exceptions.InternalServerError),
        (502, hvac.exceptions.BadGateway),
        (503, hvac.exceptions.VaultDown),
    ],
)
def test_hvac_maps_statuses_to_exceptions_that_carry_the_secret_path(
    fake: VaultFake, status: int, hvac_error: type[Exception]
) -> None:
    fake.faults.add(method="GET", status=status, body={"errors": ["x"]})
    with pytest.raises(hvac_error) as caught:
        hvac.Client(url=fake.url, token=ROOT).secrets.kv.v2.read_secret_version(
            "onex/prod/db", raise_on_deleted_version=True
        )
    assert "/v1/secret/data/onex/prod/db" in str(caught.value)  # the leak the adapter avoids


@pytest.mark.parametrize(
    ("content_type", "parsed"),
    [("application/json", ["Vault is sealed"]), ("application/json; charset=utf-8", None)],
)
def test_hvac_parses_errors_only_for_the_exact_json_content_type_and_the_adapter_does_not_care(
    fake: VaultFake, content_type: str, parsed: list[str] | None
) -> None:
    for _ in range(2):
        fake.faults.add(
            method="GET",
            status=503,
            body=b'{"errors":["Vault is sealed"]}',
            headers={"Content-Type": content_type},
        )
    with pytest.raises(hvac.exceptions.VaultDown) as caught:
        hvac.Client(url=fake.url, token=ROOT).auth.token.lookup_self()
    assert caught.value.errors == parsed
    error = failure(_start(fake))
    assert type(error) is EffectUnavailable
    assert str(error) == "vault: token lookup self failed: Vault is sealed (HTTP 503)"


async def _start(fake: VaultFake, **extra: Any) -> Any:
    async with opened(fake.url, **extra) as vault:
        return await vault.start()


def test_a_sealed_vault_is_transient(fake: VaultFake) -> None:
    fake.seal()
    error = failure(_read(fake))
    assert type(error) is EffectUnavailable
    assert "Vault is sealed (HTTP 503)" in str(error)
    fake.unseal()
    fake.put("secret", "onex/prod/db", {"password": "pw"})
    assert run(_read(fake)).reveal() == "pw"


async def _read(fake: VaultFake, **extra: Any) -> Any:
    async with opened(fake.url, **extra) as vault:
        return await vault.read("onex/prod/db", "password")


# --------------------------------------------------------------------------- error classification


@pytest.mark.parametrize(
    ("fault", "kind", "text", "retry_after"),
    [
        (Fault(status=500, body={"errors": [ECHO]}), EffectUnavailable, "internal error", None),
        (Fault(status=501, body={"errors": [ECHO]}), EffectUnavailable, "not initialized", None),
        (
            Fault(status=503, body={"errors": [ECHO]}, headers={"Retry-After": "4"}),
            EffectUnavailable,
            "unavailable (HTTP 503)",
            4.0,
        ),
        (
            Fault(status=429, body={"errors": [ECHO]}, headers={"Retry-After": "9"}),
            EffectUnavailable,
            "rate limited (HTTP 429)",
            9.0,
        ),
        (Fault(status=429, body={"errors": [ECHO]}), EffectUnavailable, "rate limited", None),
        (Fault(status=400, body={"errors": [ECHO]}), EffectRejected, "bad request", None),
        (Fault(status=404, body={"errors": []}), EffectRejected, "not found (HTTP 404)", None),
        (Fault(status=412, body={"errors": [ECHO]}), EffectRejected, "precondition failed", None),
        (
            Fault(status=403, body={"errors": [ECHO]}, times=2),
            AccessDenied,
            "permission denied (HTTP 403)",
            None,
        ),
        *edge_faults(ECHO, DEADLINE),
    ],
    ids=fault_id,
)
def test_failures_are_classified_and_never_echo_the_answer_or_the_url(
    fake: VaultFake,
    fault: Fault,
    kind: type[Exception],
    text: str,
    retry_after: float | None,
) -> None:
    fake.add_token("renewable-token-1", ttl=600)
    fake.put("secret", "onex/prod/db", {"password": "pw"})
    fault.method, fault.path = "GET", "/v1/secret/data/"
    fake.faults.add(fault)
    error = failure(_read(fake, token="renewable-token-1"))
    assert type(error) is kind
    message = str(error)
    assert message.startswith("vault: read secret/…/db failed")
    assert text in message
    for leak in (ECHO, "onex/prod", fake.url, "renewable-token-1"):
        assert leak not in message
        assert leak not in repr(error.args)
    if isinstance(error, EffectUnavailable):
        assert error.retry_after == retry_after
    assert_no_foreign_chain(error)


def test_a_refused_connection_is_transient() -> None:
    error = failure(_read_url(f"http://127.0.0.1:{closed_port()}"))
    assert type(error) is EffectUnavailable
    assert str(error).endswith("connection refused")
    assert_no_foreign_chain(error)


async def _read_url(url: str) -> Any:
    async with opened(url) as vault:
        return await vault.read("onex/prod/db")


def test_an_unknown_mount_and_a_required_cas_are_permanent() -> None:
    with VaultFake(root_token=ROOT, cas_required=True) as server:

        async def scenario() -> list[BaseException]:
            found: list[BaseException] = []
            async with opened(server.url) as vault:
                for call in (
                    vault.read("onex/db", mount="nowhere"),
                    vault.write("onex/db", {"k": "v"}),
                ):
                    try:
                        await call
                    except EffectRejected as exc:
                        found.append(exc)
                assert await vault.write("onex/db", {"k": "v"}, cas=0) == 1
            return found

        unknown_mount, cas_required = run(scenario())
    assert str(unknown_mount) == "vault: read nowhere/…/db failed: not found (HTTP 404)"
    assert "requires check-and-set" in str(cas_required)


# --------------------------------------------------------------------------- our deadline


def test_a_hanging_vault_is_cut_off_at_our_deadline(fake: VaultFake) -> None:
    fake.put("secret", "onex/prod/db", {"password": "pw"})
    fake.faults.add(method="GET", path="/v1/secret/", hang=True)
    started = time.monotonic()
    error = failure(_read(fake))
    elapsed = time.monotonic() - started
    assert type(error) is EffectUnavailable
    assert DEADLINE <= elapsed < DEADLINE + 0.25


def test_a_zombie_write_is_applied_exactly_once(fake: VaultFake) -> None:
    fake.put("secret", "onex/leader", {"node": "a"})
    fake.faults.add(method="POST", path="/v1/secret/data/onex/leader", apply_then_hang=True)

    async def scenario() -> tuple[BaseException, BaseException]:
        async with opened(fake.url) as vault:
            first = second = None
            try:
                await vault.write("onex/leader", {"node": "b"}, cas=1)
            except EffectUnavailable as exc:
                first = exc
            try:
                await vault.write("onex/leader", {"node": "b"}, cas=1)
            except WriteConflict as exc:
                second = exc
            assert first is not None
            assert second is not None
            return first, second

    run(scenario())
    assert fake.current_version("secret", "onex/leader") == 2
    assert len(fake.requests.matching("POST")) == 2


# --------------------------------------------------------------------------- the token's life


def test_start_records_the_ttl_and_renewal_happens_at_two_thirds(fake: VaultFake) -> None:
    fake.add_token("short-lived-1", ttl=300)
    clock = ManualClock(100.0)

    async def scenario() -> list[Any]:
        async with opened(fake.url, "short-lived-1", clock=clock, renew_increment="1h") as vault:
            lease = await vault.start()
            early = await vault.renew_if_due(100.0 + 199.9)
            clock.t = 300.0
            due = await vault.renew_if_due()
            return [lease, early, due, vault.lease]

    lease, early, due, renewed = run(scenario())
    assert (lease.ttl, lease.renewable, lease.obtained_at) == (300.0, True, 100.0)
    assert lease.renew_at == pytest.approx(300.0)
    assert (early, due) == (False, True)
    assert (renewed.ttl, renewed.obtained_at) == (3600.0, 300.0)
    [renewal] = fake.requests.matching("POST", "/v1/auth/token/renew-self")
    assert renewal.json() == {"increment": "1h"}
    assert renewal.headers["x-vault-token"] == "short-lived-1"


def test_renew_self_answers_in_the_documented_shape(fake: VaultFake) -> None:
    fake.add_token("renewable-shape-1", ttl=600)
    answer = requests.post(
        f"{fake.url}/v1/auth/token/renew-self",
        json={"increment": "1h"},
        headers={"X-Vault-Token": "renewable-shape-1"},
        timeout=5,
    )
    golden = load("vault_token_renew_self")
    assert answer.status_code == golden["status"]
    assert shape_problems(answer.json(), golden["body"], golden["optional"]) == []
    fake.add_token("fixed-shape-1", ttl=600, renewable=False)
    refused = requests.post(
        f"{fake.url}/v1/auth/token/renew-self",
        json={},
        headers={"X-Vault-Token": "fixed-shape-1"},
        timeout=5,
    )
    assert (refused.status_code, refused.json()) == (400, {"errors": ["lease is not renewable"]})


def test_tokens_that_never_expire_or_cannot_be_renewed_are_left_alone(fake: VaultFake) -> None:
    fake.add_token("fixed-ttl-1", ttl=60, renewable=False)

    async def scenario() -> list[bool]:
        results = []
        for token in (ROOT, "fixed-ttl-1"):
            async with opened(fake.url, token, clock=ManualClock()) as vault:
                with pytest.raises(UsageError, match="start"):
                    await vault.renew_if_due(0)
                await vault.start()
                results.append(await vault.renew_if_due(1e9))
        return results

    assert run(scenario()) == [False, False]
    assert fake.requests.matching("POST", "/v1/auth/token/renew-self") == []


def test_a_403_after_expiry_gets_one_renewal_attempt_then_is_permanent(fake: VaultFake) -> None:
    fake.add_token("expiring-1", ttl=60)
    fake.put("secret", "onex/prod/db", {"password": "pw"})

    async def scenario() -> BaseException:
        async with opened(fake.url, "expiring-1", clock=ManualClock()) as vault:
            await vault.start()
            fake.clock.advance(61)
            try:
                await vault.read("onex/prod/db", "password")
            except AccessDenied as exc:
                return exc
        raise AssertionError("expected AccessDenied")

    error = run(scenario())
    assert str(error) == "vault: read secret/…/db failed: permission denied (HTTP 403)"
    calls = [(r.method, r.path) for r in fake.requests]
    assert calls == [
        ("GET", "/v1/auth/token/lookup-self"),
        ("GET", "/v1/secret/data/onex/prod/db"),
        ("POST", "/v1/auth/token/renew-self"),
    ]


def test_a_403_with_a_reauthentication_callback_recovers_with_a_fresh_token(
    fake: VaultFake,
) -> None:
    fake.add_token("old-token-1", ttl=60)
    fake.put("secret", "onex/prod/db", {"password": "pw-after-reauth"})
    fresh: list[str] = []

    async def reauthenticate() -> Secret:
        fresh.append("new-token-2")
        fake.add_token("new-token-2", ttl=600)
        return Secret("new-token-2")

    async def scenario() -> tuple[str, float]:
        async with opened(
            fake.url, "old-token-1", clock=ManualClock(), reauthenticate=reauthenticate
        ) as vault:
            fake.revoke("old-token-1")
            value = await vault.read("onex/prod/db", "password")
            assert vault.lease is not None
            return value.reveal(), vault.lease.ttl

    value, ttl = run(scenario())
    assert (value, ttl, fresh) == ("pw-after-reauth", 600.0, ["new-token-2"])
    calls = [(r.path.rsplit("/", 1)[-1], r.headers.get("x-vault-token")) for r in fake.requests]
    assert calls == [("db", "old-token-1"), ("lookup-self", "new-token-2"), ("db", "new-token-2")]


def test_a_refused_renewal_re_authenticates_when_it_can(fake: VaultFake) -> None:
    fake.add_token("renew-me-1", ttl=60)

    async def fresh_token() -> Secret:
        fake.add_token("renewed-by-login-2", ttl=900)
        return Secret("renewed-by-login-2")

    async def scenario(reauthenticate: Any) -> Any:
        async with opened(
            fake.url, "renew-me-1", clock=ManualClock(0.0), reauthenticate=reauthenticate
        ) as vault:
            await vault.start()
            fake.revoke("renew-me-1")
            renewed = await vault.renew_if_due(45.0)
            return renewed, vault.lease

    assert type(failure(scenario(None))) is AccessDenied
    fake.tokens["renew-me-1"].revoked = False
    renewed, lease = run(scenario(fresh_token))
    assert (renewed, lease.ttl) == (True, 900.0)


# --------------------------------------------------------------------------- credentials


def test_vault_token_and_the_token_file_are_never_read(
    fake: VaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".vault-token").write_text("file-token-must-not-be-used\n")
    fake.add_token("file-token-must-not-be-used")
    fake.add_token("env-token-must-not-be-used")
    assert hvac.Client(url=fake.url).token == "file-token-must-not-be-used"  # the hazard
    monkeypatch.setenv("VAULT_TOKEN", "env-token-must-not-be-used")
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{closed_port()}")
    assert hvac.Client(url=fake.url).token == "env-token-must-not-be-used"  # the hazard
    with pytest.raises(UsageError, match="token is required"):
        vault_for(fake.url, token=None)
    with pytest.raises(UsageError, match="url is required"):
        VaultSecrets({"token": ROOT})
    fake.put("secret", "onex/prod/db", {"password": "pw"})
    assert run(_read(fake)).reveal() == "pw"
    assert {r.headers.get("x-vault-token") for r in fake.requests} == {ROOT}
    assert all(r.headers.get("x-vault-request") == "true" for r in fake.requests)


def test_proxy_settings_in_the_environment_are_ignored(
    fake: VaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxies(monkeypatch)
    with pytest.raises(requests.exceptions.ProxyError):
        hvac.Client(url=fake.url, token=ROOT).auth.token.lookup_self()
    fake.put("secret", "onex/prod/db", {"password": "pw"})
    assert run(_read(fake)).reveal() == "pw"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"token": ROOT}, "url is required"),
        ({"url": "vault:8200", "token": ROOT}, "http"),
        ({"url": "http://u:p@vault", "token": ROOT}, "user-info"),
        ({"url": "http://vault/v1", "token": ROOT}, "path, query or fragment"),
        ({"url": "http://vault"}, "token is required"),
        ({"url": "http://vault", "token": ""}, "token is required"),
        ({"url": "https://vault", "token": ROOT, "verify": False}, "allow_insecure_tls"),
        ({"url": "http://vault", "token": ROOT, "mount": "../sys"}, "mount"),
        ({"url": "http://vault", "token": ROOT, "timeout": -1}, "timeout"),
        ({"url": "http://vault", "token": ROOT, "renew_increment": "1 hour"}, "Go duration"),
        ({"url": "http://vault", "token": ROOT, "role": "x"}, r"unknown keys \['role'\]"),
    ],
)
def test_settings_are_explicit_and_refuse_insecure_or_implicit_values(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        VaultSettings.from_config(config)
    assert ROOT not in str(caught.value)


def test_the_token_never_shows_in_settings_or_the_adapter(fake: VaultFake) -> None:
    vault = vault_for(fake.url)
    try:
        assert ROOT not in repr(vault)
        assert ROOT not in repr(vault.settings)
        assert "127.0.0.1" in repr(vault)
    finally:
        run(vault.close())


# --------------------------------------------------------------------------- values and usage


def test_values_are_secrets_and_non_strings_come_back_as_json(fake: VaultFake) -> None:
    fake.put("secret", "onex/mixed", {"n": 5, "flag": True, "nested": {"a": [1]}, "s": "text"})

    async def scenario() -> Mapping[str, Secret]:
        async with opened(fake.url) as vault:
            return await vault.read("onex/mixed")

    values = run(scenario())
    assert {k: v.reveal() for k, v in values.items()} == {
        "n": "5",
        "flag": "true",
        "nested": '{"a":[1]}',
        "s": "text",
    }
    assert "text" not in repr(values)


def test_malformed_arguments_are_refused_before_any_request(fake: VaultFake) -> None:
    async def scenario() -> None:
        async with opened(fake.url) as vault:
            for call, message in (
                (vault.read("../sys/seal"), "vault path"),
                (vault.read("onex//db"), "vault path"),
                (vault.read("onex/db", version=0), "version"),
                (vault.write("onex/db", {}), "non-empty"),
                (vault.write("onex/db", {"bad key": "v"}), "secret keys"),
                (vault.write("onex/db", {"k": 5}), "must be a string"),  # type: ignore[dict-item]
                (vault.write("onex/db", {"k": "v"}, cas=-1), "cas"),
                (vault.versions("onex/db", mount="a b"), "vault mount"),
            ):
                with pytest.raises(UsageError, match=message):
                    await call

    run(scenario())
    assert len(fake.requests) == 0


def test_a_missing_key_is_rejected_by_name(fake: VaultFake) -> None:
    fake.put("secret", "onex/prod/db", {"password": "hidden-pw-4"})
    error = failure(_read_key(fake, "user"))
    assert type(error) is EffectRejected
    assert str(error) == "vault: read secret/…/db failed: no key 'user'"


async def _read_key(fake: VaultFake, key: str) -> Any:
    async with opened(fake.url) as vault:
        return await vault.read("onex/prod/db", key)


def test_a_closed_adapter_refuses_calls_and_closes_twice(fake: VaultFake) -> None:
    async def scenario() -> None:
        vault = vault_for(fake.url)
        await vault.close()
        await vault.close()
        with pytest.raises(UsageError, match="closed"):
            await vault.read("onex/db")

    run(scenario())
