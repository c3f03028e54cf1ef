"""Secrets: a value that never prints, references to secrets in configuration, and resolution.

Configuration never holds a secret itself; it holds a *reference* to one, resolved when the
process starts (and again whenever a credential is renewed). A reference is a string in one
of three forms:

==============================  ==============================================================
``vault:<mount>/data/<path>#<key>``  key ``<key>`` of the KV v2 secret ``<path>`` on mount
                                ``<mount>`` — the path exactly as Vault's HTTP API spells it,
                                e.g. ``vault:secret/data/onex/db#password``. The mount is
                                everything before the first ``/data/`` segment, so a mount
                                may span segments (``kv/prod/data/db#password``) but may not
                                itself contain a segment named ``data``.
``env:<NAME>``                  the environment variable ``NAME``. Reading the environment is
                                explicit opt-in: nothing else here (nor in the Consul and Vault
                                adapters) ever reads a credential from the environment.
``literal:<text>``              ``<text>`` verbatim, for the rare plain value that would
                                otherwise look like a reference.
==============================  ==============================================================

Segments and keys are made of letters, digits, ``-``, ``_`` and ``.`` (never ``.`` or ``..``
alone); an environment name is ``[A-Za-z_][A-Za-z0-9_]*``. A string that starts with
``vault:`` or ``env:`` but does not follow the grammar is an error at start-up — a typo never
silently becomes a literal password. Every other string is a plain value.

:func:`resolve` walks a configuration mapping, fetches every reference (all keys of one Vault
path in one read, so a user name and password rotated together are never mixed across
versions) and returns a new mapping in which each reference is replaced by a :class:`Secret`.
A :class:`Secret` registers its value with the process-wide redactor the moment it exists, so
the value is scrubbed from every log line and dead-letter record from then on; its ``repr`` and
``str`` are ``***`` and it refuses to be pickled. The plain text comes out only through
:meth:`Secret.reveal`, which adapters call at a client constructor and nowhere else.

:class:`SecretSource` is the port resolution reads through: :class:`InMemorySecretSource`
(over :class:`~onex_adapters.memory.InMemorySecretStore`, the embedded default) and
:class:`onex_adapters.vault.VaultSecrets` implement it. :func:`mask_path` is how adapters name a
secret path in an error: the first and last segments only.

A credential with a lease — the Vault token — must be renewed while the process runs.
:func:`keep_renewed` is that loop, for a composition root to run beside its workflow: it asks a
:class:`Renewable` (``VaultSecrets``) to renew whenever it is due, and calls back after each
renewal (for instance to :func:`resolve` the configuration again and pick up rotated values).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, runtime_checkable

from onex_adapters.memory import InMemorySecretStore
from onex_adapters.redaction import REDACTOR, Redactor
from onex_core.errors import EffectError, EffectUnavailable, OnexError, UsageError

__all__ = [
    "EnvRef",
    "InMemorySecretSource",
    "Renewable",
    "Secret",
    "SecretRef",
    "SecretSource",
    "VaultRef",
    "keep_renewed",
    "mask_path",
    "parse_reference",
    "resolve",
    "secret_text",
]

_SEGMENT = r"(?!\.{1,2}(?:/|#|$))[A-Za-z0-9._-]+"
_VAULT = re.compile(
    rf"vault:(?P<mount>{_SEGMENT}(?:/{_SEGMENT})*?)"
    rf"/data/(?P<path>{_SEGMENT}(?:/{_SEGMENT})*)"
    r"#(?P<key>[A-Za-z0-9._-]+)\Z"
)
_log = logging.getLogger(__name__)
_ENV = re.compile(r"env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)\Z")
_LITERAL = "literal:"


class Secret:
    """A secret string: ``***`` when printed, compared in constant time, never pickled.

    Creating one registers the value (and its encoded forms) with the process-wide
    :data:`~onex_adapters.redaction.REDACTOR`.

    Raises:
        UsageError: ``value`` is not a string.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise UsageError(f"a Secret holds a string, not {type(value).__name__}")
        REDACTOR.register(value)
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The plain text. Call it where the value is handed to a client, and nowhere else."""
        value: str = object.__getattribute__(self, "_value")
        return value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def secret_text(name: str, value: object) -> Secret | None:
    """``value`` as a :class:`Secret`: a string, a Secret, or anything with
    ``get_secret_value()`` (pydantic's ``SecretStr``). None and ``""`` give None.

    Raises:
        UsageError: ``value`` is of another type (the message names ``name``, not the value).
    """
    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value) if value else None
    getter = getattr(value, "get_secret_value", None)
    if callable(getter):
        plain = getter()
        if isinstance(plain, str):
            return Secret(plain) if plain else None
    raise UsageError(f"{name} must be a string or a Secret, not {type(value).__name__}")


def mask_path(path: str) -> str:
    """``path`` with its middle segments masked: ``secret/data/onex/prod/db`` →
    ``secret/…/db``. Paths of one or two segments are returned as they are."""
    parts = [part for part in str(path).split("/") if part]
    if len(parts) <= 2:
        return "/".join(parts)
    return f"{parts[0]}/…/{parts[-1]}"


# --------------------------------------------------------------------------- references


@dataclass(frozen=True, slots=True)
class VaultRef:
    """``vault:<mount>/data/<path>#<key>``: one key of a KV v2 secret."""

    mount: str
    path: str
    key: str

    def __str__(self) -> str:
        return f"vault:{self.mount}/data/{self.path}#{self.key}"

    def masked(self) -> str:
        """The reference with the secret path masked, for error messages."""
        return f"vault:{mask_path(f'{self.mount}/data/{self.path}')}#{self.key}"


@dataclass(frozen=True, slots=True)
class EnvRef:
    """``env:<NAME>``: an environment variable, read only because configuration asked."""

    name: str

    def __str__(self) -> str:
        return f"env:{self.name}"


SecretRef = VaultRef | EnvRef


def parse_reference(text: str) -> SecretRef | None:
    """The reference ``text`` spells, or None when it is a plain value (see the module
    docstring for the grammar). ``literal:`` values are plain: use :func:`resolve` to strip
    the prefix.

    Raises:
        UsageError: ``text`` starts with ``vault:`` or ``env:`` but is malformed. The message
            quotes the scheme and what is expected, never the text (a mistyped reference may
            be a pasted secret).
    """
    if text.startswith("vault:"):
        match = _VAULT.match(text)
        if match is None:
            raise UsageError(
                "malformed vault: reference; expected vault:<mount>/data/<path>#<key> "
                "with segments of letters, digits, '-', '_' and '.'"
            )
        return VaultRef(match["mount"], match["path"], match["key"])
    if text.startswith("env:"):
        match = _ENV.match(text)
        if match is None:
            raise UsageError(
                "malformed env: reference; expected env:<NAME> with NAME [A-Za-z_]\\w*"
            )
        return EnvRef(match["name"])
    return None


@runtime_checkable
class SecretSource(Protocol):
    """Where ``vault:`` references are read from."""

    async def fetch(self, mount: str, path: str, keys: Sequence[str]) -> Mapping[str, Secret]:
        """The values of ``keys`` at ``path`` on ``mount``, all from one version.

        Raises:
            EffectRejected: the path or a key does not exist, or access is denied.
            EffectUnavailable: the source could not be reached; try again later.
        """
        ...


class InMemorySecretSource:
    """A :class:`SecretSource` over an :class:`InMemorySecretStore`, whose paths are the full
    API form ``<mount>/data/<path>`` — the embedded default."""

    def __init__(self, store: InMemorySecretStore) -> None:
        self.store = store

    async def fetch(self, mount: str, path: str, keys: Sequence[str]) -> Mapping[str, Secret]:
        full = f"{mount}/data/{path}"
        return {key: Secret(self.store.read(full, key)) for key in keys}


# --------------------------------------------------------------------------- resolution


async def resolve(
    config: Mapping[str, Any],
    source: SecretSource | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    redactor: Redactor = REDACTOR,
) -> dict[str, Any]:
    """A copy of ``config`` with every reference replaced by a :class:`Secret`.

    Nested mappings and lists are walked; other values are copied as they are; ``literal:``
    strings lose their prefix. Each Vault path is read once, with all the keys wanted from it.
    Every resolved value is registered with ``redactor`` (and with the process-wide redactor)
    before this returns. Call it again to pick up rotated values.

    Args:
        source: where ``vault:`` references are read; may be None when there are none.
        environ: where ``env:`` references are read; defaults to ``os.environ``.

    Returns:
        A new mapping; ``config`` is not modified.

    Raises:
        UsageError: a reference is malformed, names an unset environment variable, or is a
            ``vault:`` reference with no ``source`` (the message names the field's path).
        EffectRejected, EffectUnavailable: from ``source``, prefixed with the field's path.
    """
    found: list[tuple[str, SecretRef]] = []
    skeleton = _walk(config, "", found)
    env = os.environ if environ is None else environ
    values: dict[SecretRef, Secret] = {}
    wanted: dict[tuple[str, str], list[tuple[str, VaultRef]]] = {}
    for where, ref in found:
        if isinstance(ref, EnvRef):
            if ref.name not in env:
                raise UsageError(f"config {where}: environment variable {ref.name} is not set")
            values[ref] = Secret(env[ref.name])
        elif source is None:
            raise UsageError(f"config {where}: {ref.masked()} needs a secret source")
        else:
            wanted.setdefault((ref.mount, ref.path), []).append((where, ref))
    for (mount, path), refs in wanted.items():
        keys = sorted({ref.key for _, ref in refs})
        assert source is not None
        failure: Exception | None = None
        try:
            fetched = await source.fetch(mount, path, keys)
        except Exception as exc:
            failure = _with_field(exc, refs[0][0])
        if failure is not None:
            # Raised outside the except block, so no foreign exception rides along as context.
            raise failure
        for where, ref in refs:
            if ref.key not in fetched:
                raise UsageError(f"config {where}: {ref.masked()} was not returned by the source")
            values[ref] = fetched[ref.key]
    for secret in values.values():
        redactor.register(secret.reveal())
    resolved: dict[str, Any] = _fill(skeleton, values)
    return resolved


class _Ref:
    """A placeholder for a reference in the copied configuration."""

    __slots__ = ("ref",)

    def __init__(self, ref: SecretRef) -> None:
        self.ref = ref


def _walk(value: Any, where: str, found: list[tuple[str, SecretRef]]) -> Any:
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[key] = _walk(item, f"{where}.{key}" if where else str(key), found)
        return out
    if isinstance(value, list | tuple):
        items = [_walk(item, f"{where}[{index}]", found) for index, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, str):
        if value.startswith(_LITERAL):
            return value[len(_LITERAL) :]
        try:
            ref = parse_reference(value)
        except UsageError as exc:
            raise UsageError(f"config {where or '<root>'}: {exc}") from None
        if ref is not None:
            found.append((where, ref))
            return _Ref(ref)
    return value


def _fill(value: Any, values: Mapping[SecretRef, Secret]) -> Any:
    if isinstance(value, _Ref):
        return values[value.ref]
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, tuple):
        return tuple(_fill(item, values) for item in value)
    return value


def _with_field(exc: Exception, where: str) -> Exception:
    """A source's error with the config field in front. ONEX effect errors keep their (already
    sanitized) text; anything else is reduced to its type name."""
    if isinstance(exc, EffectUnavailable):
        return EffectUnavailable(
            f"config {where}: {exc}", backend=exc.backend, retry_after=exc.retry_after
        )
    if isinstance(exc, EffectError):
        return type(exc)(f"config {where}: {exc}", backend=exc.backend)
    if isinstance(exc, OnexError):
        return exc
    return UsageError(f"config {where}: the secret source failed with {type(exc).__name__}")


# --------------------------------------------------------------------------- renewal


@runtime_checkable
class Renewable(Protocol):
    """A credential that renews its own lease when due (``VaultSecrets``)."""

    async def renew_if_due(self, now: float | None = None) -> bool:
        """Renew if due. True if renewed.

        Raises:
            EffectUnavailable: a transient failure; the lease is unchanged.
            EffectRejected: the renewal was refused for good.
        """
        ...


async def keep_renewed(
    credential: Renewable,
    *,
    interval: float,
    on_renewed: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Renew ``credential`` whenever it is due, asking at once and then every ``interval``
    seconds, until cancelled. Run it as a task beside the workflow and cancel it on shutdown.

    Args:
        interval: seconds between checks — a small fraction of the shortest lease expected.
        on_renewed: awaited after each renewal, e.g. to resolve the configuration again.

    Raises:
        UsageError: ``interval`` is not a positive number, or the credential was not started.
        EffectRejected: the renewal was refused for good (``AccessDenied``: the token expired
            or was revoked); the loop ends, the credential is unusable. Transient failures
            (``EffectUnavailable``) are logged, without secrets, and tried again at the next
            check; an error raised by ``on_renewed`` ends the loop too.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise UsageError("keep_renewed: interval must be a positive number of seconds")
    while True:
        renewed = False
        try:
            renewed = await credential.renew_if_due()
        except EffectUnavailable as exc:
            _log.warning("credential renewal failed; retrying: %s", REDACTOR.redact_error(exc))
        if renewed and on_renewed is not None:
            await on_renewed()
        await asyncio.sleep(interval)
