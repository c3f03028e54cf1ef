"""Which adapters the service picks for which variables, and that no secret is ever shown."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest

from examples.registration_service.config import read_config
from examples.registration_service.service import CONFIG_ERROR, FAILED, main
from onex_adapters.redaction import REDACTOR
from onex_adapters.secrets import EnvRef, Secret, VaultRef
from onex_core.errors import UsageError

CANARY = f"canary-{secrets.token_hex(8)}"
DSN = "postgresql://onex@db.internal:5432/onex"
MEMORY = {"bus": "memory", "state": "memory", "registry": "memory", "secrets": "none"}


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "vault-token"
    path.write_text(f"{CANARY}-vault\n")
    return path


@pytest.mark.parametrize(
    ("environ", "changed"),
    [
        ({}, {}),
        ({"PATH": "/bin", "KAFKA_BOOTSTRAP": "elsewhere:9092"}, {}),  # only ONEX_* count
        ({"ONEX_KAFKA_BOOTSTRAP": "k1:9092,k2:9092"}, {"bus": "kafka"}),
        ({"ONEX_POSTGRES_DSN": DSN}, {"state": "postgres"}),
        ({"ONEX_CONSUL_URL": "https://consul.internal:8501"}, {"registry": "consul"}),
        (
            {
                "ONEX_KAFKA_BOOTSTRAP": "k1:9092",
                "ONEX_POSTGRES_DSN": DSN,
                "ONEX_CONSUL_URL": "http://127.0.0.1:8500",
                "ONEX_VAULT_ADDR": "https://vault.internal:8200",
                "ONEX_VAULT_TOKEN": "hvs.x",
            },
            {"bus": "kafka", "state": "postgres", "registry": "consul", "secrets": "vault"},
        ),
    ],
)
def test_each_backend_is_chosen_by_naming_it(
    environ: dict[str, str], changed: dict[str, str]
) -> None:
    assert read_config(environ).adapters == {**MEMORY, **changed}


def test_postgres_settings_come_from_the_dsn_and_its_companions() -> None:
    config = read_config(
        {
            "ONEX_POSTGRES_DSN": DSN,
            "ONEX_POSTGRES_SCHEMA": "registration",
            "ONEX_POSTGRES_MIGRATE": "yes",
            "ONEX_DRAIN_TIMEOUT": "12.5",
        }
    )
    assert config.postgres is not None
    assert (config.postgres.host, config.postgres.schema) == ("db.internal", "registration")
    assert config.migrate is True
    assert config.drain_timeout == 12.5
    assert not read_config({"ONEX_POSTGRES_DSN": DSN}).migrate


def test_secrets_are_references_to_resolve_or_values_wrapped_at_once(token_file: Path) -> None:
    config = read_config(
        {
            "ONEX_POSTGRES_DSN": DSN,
            "ONEX_POSTGRES_PASSWORD": "vault:secret/data/onex/db#password",
            "ONEX_CONSUL_URL": "http://127.0.0.1:8500",
            "ONEX_CONSUL_TOKEN": f"{CANARY}-consul",
            "ONEX_KAFKA_BOOTSTRAP": "k1:9092",
            "ONEX_KAFKA_SASL_PASSWORD": "env:KAFKA_PASSWORD",
            "ONEX_KAFKA_SSL_KEY_PASSWORD": "literal:vault:not-a-reference",
            "ONEX_VAULT_ADDR": "https://vault.internal:8200",
            "ONEX_VAULT_TOKEN_FILE": str(token_file),
        }
    )
    found = config.secrets
    assert found["ONEX_POSTGRES_PASSWORD"] == VaultRef("secret", "onex/db", "password")
    assert found["ONEX_KAFKA_SASL_PASSWORD"] == EnvRef("KAFKA_PASSWORD")
    assert found["ONEX_CONSUL_TOKEN"] == Secret(f"{CANARY}-consul")
    assert found["ONEX_KAFKA_SSL_KEY_PASSWORD"] == Secret("vault:not-a-reference")
    assert config.references() == {
        "ONEX_POSTGRES_PASSWORD": "vault:secret/data/onex/db#password",
        "ONEX_KAFKA_SASL_PASSWORD": "env:KAFKA_PASSWORD",
    }
    assert config.vault is not None
    assert config.vault.token == Secret(f"{CANARY}-vault")  # read from the file, stripped
    # Plain values are registered with the redactor the moment they are read.
    assert REDACTOR.redact(f"token {CANARY}-consul, {CANARY}-vault") == "token ***, ***"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ONEX_CONSUL_TOKEN": CANARY}, "ONEX_CONSUL_TOKEN is set but ONEX_CONSUL_URL is not"),
        ({"ONEX_POSTGRES_PASSWORD": CANARY}, "ONEX_POSTGRES_DSN is not"),
        ({"ONEX_KAFKA_SASL_PASSWORD": CANARY}, "ONEX_KAFKA_BOOTSTRAP is not"),
        ({"ONEX_VAULT_TOKEN": CANARY}, "ONEX_VAULT_ADDR is not"),
        (
            {"ONEX_POSTGRES_DSN": DSN, "ONEX_POSTGRES_PASSWORD": "vault:secret/data/db#pw"},
            "ONEX_POSTGRES_PASSWORD is a vault: reference but ONEX_VAULT_ADDR is not set",
        ),
        (
            {"ONEX_POSTGRES_DSN": DSN, "ONEX_POSTGRES_PASSWORD": f"vault:{CANARY}"},
            "ONEX_POSTGRES_PASSWORD: malformed vault: reference",
        ),
        ({"ONEX_VAULT_ADDR": "https://vault:8200"}, "set ONEX_VAULT_TOKEN_FILE"),
        (
            {
                "ONEX_VAULT_ADDR": "https://v:8200",
                "ONEX_VAULT_TOKEN": "a",
                "ONEX_VAULT_TOKEN_FILE": "b",
            },
            "not both",
        ),
        (
            {"ONEX_VAULT_ADDR": "https://v:8200", "ONEX_VAULT_TOKEN": "vault:secret/data/t#t"},
            "ONEX_VAULT_TOKEN cannot be a reference",
        ),
        (
            {
                "ONEX_VAULT_ADDR": "https://v:8200",
                "ONEX_VAULT_TOKEN_FILE": f"/nonexistent/{CANARY}",
            },
            "ONEX_VAULT_TOKEN_FILE: cannot read the file",
        ),
        ({"ONEX_POSTGRES_DSN": f"host='{CANARY}"}, "does not parse"),
        ({"ONEX_POSTGRES_DSN": DSN, "ONEX_POSTGRES_MIGRATE": "perhaps"}, "true or false"),
        ({"ONEX_DRAIN_TIMEOUT": "0"}, "ONEX_DRAIN_TIMEOUT must be"),
        ({"ONEX_DRAIN_TIMEOUT": "soon"}, "ONEX_DRAIN_TIMEOUT must be"),
        ({"ONEX_CONSUL_URL": f"https://user:{CANARY}@consul:8501"}, "consul settings"),
        ({"ONEX_VAULT_ADDR": "ftp://vault", "ONEX_VAULT_TOKEN": CANARY}, "vault settings"),
    ],
)
def test_a_configuration_that_cannot_work_is_refused_naming_the_variable_never_the_value(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(UsageError) as caught:
        read_config(environ)
    assert named in str(caught.value)
    assert CANARY not in str(caught.value)


def test_what_the_service_prints_and_logs_holds_no_secret(
    token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {
        "ONEX_POSTGRES_DSN": f"postgresql://onex:{CANARY}-dsn@127.0.0.1:1/onex",
        "ONEX_POSTGRES_PASSWORD": f"{CANARY}-pg",
        "ONEX_CONSUL_URL": "http://127.0.0.1:1",
        "ONEX_CONSUL_TOKEN": f"{CANARY}-consul",
        "ONEX_VAULT_ADDR": "http://127.0.0.1:1",  # nothing listens: the start fails
        "ONEX_VAULT_TOKEN_FILE": str(token_file),
    }
    config = read_config(environ)
    shown = [repr(config), str(config), *config.describe()]
    out = io.StringIO()
    assert main(["--simulate", "1"], environ=environ, out=out) == FAILED
    logged = capsys.readouterr().err
    assert "registration service failed: EffectUnavailable" in logged
    assert "ONEX_CONSUL_TOKEN: given directly" in logged
    for text in (*shown, logged, out.getvalue()):
        assert CANARY not in text


def test_a_bad_configuration_exits_2_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([], environ={"ONEX_CONSUL_TOKEN": CANARY}) == CONFIG_ERROR
    logged = capsys.readouterr().err
    assert "configuration: ONEX_CONSUL_TOKEN is set but ONEX_CONSUL_URL is not" in logged
    assert CANARY not in logged
