"""Secrets: the value that never prints, the reference grammar, and resolution at start-up.

``SecretSourceSuite`` is the behavioural suite of the ``SecretSource`` port; the in-memory
source runs it here and the Vault adapter runs it in ``test_vault.py``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from onex_adapters.clock import run_virtual
from onex_adapters.memory import InMemorySecretStore
from onex_adapters.redaction import REDACTOR, Redactor
from onex_adapters.secrets import (
    EnvRef,
    InMemorySecretSource,
    Renewable,
    Secret,
    SecretSource,
    VaultRef,
    keep_renewed,
    mask_path,
    parse_reference,
    resolve,
    secret_text,
)
from onex_core.errors import EffectRejected, EffectUnavailable, UsageError


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- Secret


def test_a_secret_never_prints_and_is_unwrapped_explicitly() -> None:
    secret = Secret("s3cr3t-value-1")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}"]
    assert all("s3cr3t" not in text for text in shown)
    assert str(secret) == "***"
    assert secret.reveal() == "s3cr3t-value-1"
    assert "s3cr3t" not in repr({"token": secret, "list": [secret]})


def test_a_secret_is_registered_with_the_process_redactor_when_made() -> None:
    Secret("registered-on-creation-42")
    assert REDACTOR.redact("error: registered-on-creation-42 rejected") == "error: *** rejected"


def test_secrets_compare_by_value_cannot_be_pickled_and_copy_as_themselves() -> None:
    a, b = Secret("same-value-x"), Secret("same-value-x")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Secret("other-value-x")
    assert (a == "same-value-x") is False
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(a)
    assert copy.deepcopy({"k": a})["k"] is a
    with pytest.raises(AttributeError):
        a._value = "changed"  # type: ignore[misc]


def test_secret_text_accepts_strings_secrets_and_pydantic_secretstr() -> None:
    assert secret_text("t", "abc-123").reveal() == "abc-123"  # type: ignore[union-attr]
    already = Secret("abc-456")
    assert secret_text("t", already) is already
    assert secret_text("t", SecretStr("abc-789")).reveal() == "abc-789"  # type: ignore[union-attr]
    assert secret_text("t", None) is None
    assert secret_text("t", "") is None
    with pytest.raises(UsageError, match="consul token must be a string") as caught:
        secret_text("consul token", 12345)
    assert "12345" not in str(caught.value)
    with pytest.raises(UsageError):
        Secret(b"bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vault:secret/data/onex/db#password", VaultRef("secret", "onex/db", "password")),
        ("vault:kv/prod/data/db#user", VaultRef("kv/prod", "db", "user")),
        ("vault:secret/data/a/data/b#k", VaultRef("secret", "a/data/b", "k")),
        ("vault:s/data/x.y/z_1#key-2.v", VaultRef("s", "x.y/z_1", "key-2.v")),
        ("env:ONEX_DB_PASSWORD", EnvRef("ONEX_DB_PASSWORD")),
        ("env:_x1", EnvRef("_x1")),
        ("plain value", None),
        ("postgres://db:5432/app", None),
        ("literal:vault:not-a-reference", None),
        ("", None),
    ],
)
def test_references_parse_by_the_grammar(text: str, expected: object) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "vault:secret/onex/db#password",  # no /data/
        "vault:secret/data/onex/db",  # no key
        "vault:secret/data/onex/db#",  # empty key
        "vault:/data/onex#k",  # no mount
        "vault:secret/data/#k",  # no path
        "vault:secret/data/../sys#k",  # dot segment
        "vault:secret/data/a//b#k",  # empty segment
        "vault:secret/data/a b#k",  # space
        "vault:secret/data/onex/db#pass word",
        "env:",
        "env:1ABC",
        "env:NAME-WITH-DASH",
        "env:HUNTER2 hunter2",
    ],
)
def test_malformed_references_are_errors_that_do_not_echo_the_text(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_reference(text)
    rest = text.partition(":")[2]
    assert not rest or rest not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_vault_references_print_canonically_and_mask_their_path() -> None:
    ref = VaultRef("secret", "onex/prod/db", "password")
    assert str(ref) == "vault:secret/data/onex/prod/db#password"
    assert parse_reference(str(ref)) == ref
    assert ref.masked() == "vault:secret/…/db#password"


@pytest.mark.parametrize(
    ("path", "masked"),
    [
        ("secret/data/onex/prod/db", "secret/…/db"),
        ("secret/data/db", "secret/…/db"),
        ("secret/db", "secret/db"),
        ("db", "db"),
        ("/a/b/c/", "a/…/c"),
        ("", ""),
    ],
)
def test_mask_path_keeps_the_first_and_last_segments(path: str, masked: str) -> None:
    assert mask_path(path) == masked


_segment = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(_segment, min_size=3, max_size=8))
def test_masked_paths_never_show_a_middle_segment(segments: list[str]) -> None:
    middle = segments[1:-1]
    masked = mask_path("/".join(segments)).split("/")
    assert masked == [segments[0], "…", segments[-1]]
    assert not set(middle) & set(masked[1:-1])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_segment, min_size=1, max_size=3).filter(lambda s: "data" not in s),
    st.lists(_segment, min_size=1, max_size=4),
    _segment,
)
def test_vault_references_round_trip(mount: list[str], path: list[str], key: str) -> None:
    ref = VaultRef("/".join(mount), "/".join(path), key)
    assert parse_reference(str(ref)) == ref


# --------------------------------------------------------------------------- resolution


class CountingSource:
    """A SecretSource that counts fetches and can fail."""

    def __init__(self, values: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self.values = values
        self.fetches: list[tuple[str, str, tuple[str, ...]]] = []
        self.error: Exception | None = None

    async def fetch(self, mount: str, path: str, keys: Sequence[str]) -> Mapping[str, Secret]:
        self.fetches.append((mount, path, tuple(keys)))
        if self.error is not None:
            raise self.error
        found = self.values[(mount, path)]
        return {k: Secret(found[k]) for k in keys if k in found}


def test_resolve_replaces_references_in_nested_config_and_leaves_the_rest() -> None:
    store = InMemorySecretStore(
        {"secret/data/onex/db": {"user": "app-user-1", "password": "pw-resolved-9"}}
    )
    config = {
        "db": {
            "user": "vault:secret/data/onex/db#user",
            "password": "vault:secret/data/onex/db#password",
            "port": 5432,
            "hosts": ["a", "literal:env:NOT_A_REF"],
        },
        "consul": {"token": "env:ONEX_CONSUL_TOKEN", "url": "http://127.0.0.1:8500"},
        "pair": ("x", "env:ONEX_CONSUL_TOKEN"),
    }
    original = copy.deepcopy(config)
    resolved = run(
        resolve(
            config,
            InMemorySecretSource(store),
            environ={"ONEX_CONSUL_TOKEN": "env-token-value"},
        )
    )
    assert config == original
    assert isinstance(resolved["db"]["password"], Secret)
    assert resolved["db"]["password"].reveal() == "pw-resolved-9"
    assert resolved["db"]["user"].reveal() == "app-user-1"
    assert resolved["db"]["port"] == 5432
    assert resolved["db"]["hosts"] == ["a", "env:NOT_A_REF"]
    assert resolved["consul"]["token"].reveal() == "env-token-value"
    assert resolved["consul"]["url"] == "http://127.0.0.1:8500"
    assert resolved["pair"][0] == "x"
    assert resolved["pair"][1].reveal() == "env-token-value"
    assert "pw-resolved-9" not in repr(resolved)


def test_resolve_reads_each_vault_path_once_and_registers_every_value() -> None:
    source = CountingSource({("secret", "onex/db"): {"user": "u-value-1", "password": "p-value-1"}})
    redactor = Redactor()
    config = {
        "a": "vault:secret/data/onex/db#user",
        "b": "vault:secret/data/onex/db#password",
        "c": "vault:secret/data/onex/db#user",
        "d": "env:HOME_TOKEN",
    }
    run(resolve(config, source, environ={"HOME_TOKEN": "e-value-1"}, redactor=redactor))
    assert source.fetches == [("secret", "onex/db", ("password", "user"))]
    assert redactor.redact("u-value-1 p-value-1 e-value-1") == "*** *** ***"


def test_resolving_again_picks_up_rotated_values() -> None:
    store = InMemorySecretStore({"secret/data/onex/db": {"password": "first-value"}})
    config = {"password": "vault:secret/data/onex/db#password"}
    first = run(resolve(config, InMemorySecretSource(store)))
    store.write("secret/data/onex/db", {"password": "second-value"})
    second = run(resolve(config, InMemorySecretSource(store)))
    assert (first["password"].reveal(), second["password"].reveal()) == (
        "first-value",
        "second-value",
    )


def test_resolution_errors_name_the_field_never_the_value() -> None:
    with pytest.raises(UsageError, match=r"config consul\.token: environment variable NOPE"):
        run(resolve({"consul": {"token": "env:NOPE"}}, environ={}))
    with pytest.raises(UsageError, match=r"config db\.password: vault:secret/…/db#password"):
        run(resolve({"db": {"password": "vault:secret/data/onex/x/db#password"}}))
    with pytest.raises(UsageError, match=r"config items\[1\]: malformed vault"):
        run(resolve({"items": ["ok", "vault:hunter2-typo"]}))
    store = InMemorySecretStore({"secret/data/onex/db": {"password": "hunter2-value"}})
    with pytest.raises(EffectRejected, match=r"config db\.user: no secret 'user'") as caught:
        run(
            resolve({"db": {"user": "vault:secret/data/onex/db#user"}}, InMemorySecretSource(store))
        )
    assert "hunter2" not in str(caught.value)


def test_source_failures_keep_their_kind_and_carry_no_foreign_context() -> None:
    source = CountingSource({})
    config = {"db": {"password": "vault:secret/data/onex/db#password"}}
    source.error = EffectUnavailable(
        "vault: read secret/…/db failed", backend="vault", retry_after=3
    )
    with pytest.raises(EffectUnavailable) as transient:
        run(resolve(config, source))
    assert transient.value.retry_after == 3
    assert str(transient.value).startswith("config db.password: vault: read")
    source.error = RuntimeError("leaky text with hunter2-secret")
    with pytest.raises(UsageError) as caught:
        run(resolve(config, source))
    assert "hunter2" not in str(caught.value)
    assert "RuntimeError" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.one_of(
            st.integers(),
            st.booleans(),
            st.none(),
            st.from_regex(r"[a-uw-z ]{0,12}", fullmatch=True),
        ),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_configuration_without_references_resolves_to_itself(value: object) -> None:
    config = {"root": value}
    assert run(resolve(config)) == config


# --------------------------------------------------------------------------- renewal


class ScriptedCredential:
    """Answers ``renew_if_due`` from a script: a bool, or an exception to raise."""

    def __init__(self, script: list[bool | Exception]) -> None:
        self.script = script
        self.asked_at: list[float] = []

    async def renew_if_due(self, now: float | None = None) -> bool:
        self.asked_at.append(asyncio.get_running_loop().time())
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_keep_renewed_renews_when_due_and_rides_out_transient_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Secret("renewal-canary-77")
    transient = EffectUnavailable("vault: token renew renewal-canary-77 failed")
    refused = EffectRejected("vault: token renew self failed: permission denied (HTTP 403)")
    credential = ScriptedCredential([False, transient, True, False, refused])
    assert isinstance(credential, Renewable)
    renewals: list[float] = []

    async def scenario() -> BaseException:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def renewed() -> None:
            renewals.append(loop.time() - start)

        with pytest.raises(EffectRejected) as caught:
            await keep_renewed(credential, interval=5.0, on_renewed=renewed)
        credential.asked_at = [t - start for t in credential.asked_at]
        return caught.value

    with caplog.at_level(logging.WARNING, logger="onex_adapters.secrets"):
        error = run_virtual(scenario())
    assert error is refused  # a refusal ends the loop, unchanged
    assert credential.asked_at == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert renewals == [10.0]
    [warning] = caplog.records
    assert "retrying: EffectUnavailable: vault: token renew *** failed" in warning.getMessage()


@pytest.mark.parametrize("interval", [0, -1.0, True, "1"])
def test_keep_renewed_needs_a_positive_interval(interval: Any) -> None:
    with pytest.raises(UsageError, match="interval"):
        run(keep_renewed(ScriptedCredential([]), interval=interval))


# --------------------------------------------------------------------------- the port suite


class SecretSourceSuite:
    """The SecretSource promises. Subclasses provide ``source`` (a fixture yielding a
    SecretSource) and ``seed(mount, path, values)``; paths are relative to ``mount``."""

    mount = "secret"

    def seed(self, path: str, values: Mapping[str, str]) -> None:
        raise NotImplementedError

    def path(self, name: str) -> str:
        return name

    def test_conforms_to_the_port(self, source: SecretSource) -> None:
        assert isinstance(source, SecretSource)

    def test_fetch_returns_the_keys_asked_for_as_registered_secrets(
        self, source: SecretSource
    ) -> None:
        self.seed(self.path("onex/db"), {"user": "suite-user-1", "password": "suite-pw-77"})
        got = run(source.fetch(self.mount, self.path("onex/db"), ["password"]))
        assert set(got) == {"password"}
        assert isinstance(got["password"], Secret)
        assert got["password"].reveal() == "suite-pw-77"
        assert REDACTOR.redact("x suite-pw-77 y") == "x *** y"

    def test_a_missing_key_is_rejected_by_name_without_values(self, source: SecretSource) -> None:
        self.seed(self.path("onex/api"), {"token": "suite-token-55"})
        with pytest.raises(EffectRejected) as caught:
            run(source.fetch(self.mount, self.path("onex/api"), ["token", "nope"]))
        assert "'nope'" in str(caught.value)
        assert "suite-token-55" not in str(caught.value)

    def test_a_missing_path_is_rejected(self, source: SecretSource) -> None:
        with pytest.raises(EffectRejected):
            run(source.fetch(self.mount, self.path("onex/never-written"), ["k"]))

    def test_the_latest_write_wins(self, source: SecretSource) -> None:
        self.seed(self.path("onex/rotating"), {"k": "old-value-1"})
        self.seed(self.path("onex/rotating"), {"k": "new-value-2"})
        got = run(source.fetch(self.mount, self.path("onex/rotating"), ["k"]))
        assert got["k"].reveal() == "new-value-2"


class TestInMemorySecretSource(SecretSourceSuite):
    @pytest.fixture
    def source(self) -> SecretSource:
        self.store = InMemorySecretStore()
        return InMemorySecretSource(self.store)

    def seed(self, path: str, values: Mapping[str, str]) -> None:
        self.store.write(f"{self.mount}/data/{path}", values)
