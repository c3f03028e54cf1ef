"""The handler contract (``handler_contract.yaml``): an effect handler's identity and descriptor.

The shape is upstream's v2 handler contract, closed: ``handler_id``, ``name``,
``contract_version``, ``description``, ``descriptor`` (archetype, purity, idempotency, timeout,
retry, circuit breaker, concurrency), ``capability_outputs``, ``handler_class``, the
``intent_types`` the handler executes, and ``metadata``. Upstream silently dropped unknown keys
(and ``descriptor.retry_policy.backoff_ms``); here they are errors.

``handler_id`` has at least two dotted segments; its first segment is the archetype
(``effect.service_registry.handler``) — or ``node``/``handler``, which fit any archetype — and
must agree with ``descriptor.node_archetype``. Only effects execute intents, so only an effect
handler may list ``intent_types``.

Two upstream values are refused because the core cannot honour them, and a contract must not
promise what the runtime will not do: ``backoff_strategy: linear`` (the core's delays grow by a
constant factor) and ``half_open_requests`` other than 1 (a half-open breaker lets exactly one
probe through).

``handler_class`` is checked as *text* only (``package.module:Class``). Loading it — the module
allow-list, the class checks — is :mod:`onex_contracts.plugins`' job, and happens after the whole
contract validated; nothing here imports anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Final, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from onex_contracts._fields import (
    CapabilityName,
    ClassPath,
    ContractVersion,
    Description,
    Finding,
    IntentType,
    Metadata,
    Model,
    Name,
    PathT,
    secret_findings,
)
from onex_contracts.schema import DEFER_CHECKS

__all__ = [
    "Archetype",
    "Descriptor",
    "DescriptorBreaker",
    "DescriptorRetry",
    "HandlerContract",
    "handler_findings",
]

Archetype = Literal["effect", "compute", "reducer", "orchestrator"]

_HANDLER_ID: Final = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")
_ANY_ARCHETYPE: Final = frozenset({"node", "handler"})


def _handler_id(value: str) -> str:
    if _HANDLER_ID.fullmatch(value) is None:
        raise PydanticCustomError(
            "handler-id",
            "must be two or more dotted snake_case segments, like 'effect.service_registry'",
        )
    return value


HandlerId = Annotated[str, Field(min_length=3, max_length=200), AfterValidator(_handler_id)]


class DescriptorRetry(Model):
    """Retries of transient failures. ``max_retries`` counts retries, not attempts."""

    enabled: bool = True
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_strategy: Literal["fixed", "exponential"] = "exponential"
    base_delay_ms: int = Field(default=1_000, ge=100, le=60_000)
    max_delay_ms: int = Field(default=30_000, ge=100, le=300_000)
    jitter_factor: float = Field(default=0.1, ge=0.0, le=0.5)


class DescriptorBreaker(Model):
    """The handler's circuit breaker. ``timeout_ms`` is how long it stays open."""

    enabled: bool = False
    failure_threshold: int = Field(default=5, ge=1, le=100)
    success_threshold: int = Field(default=2, ge=1, le=10)
    timeout_ms: int = Field(default=60_000, ge=1_000, le=600_000)
    half_open_requests: int = Field(default=1, ge=1, le=10)


class Descriptor(Model):
    """How the runtime must treat the handler."""

    node_archetype: Archetype
    purity: Literal["pure", "side_effecting"] = "side_effecting"
    idempotent: bool = False
    timeout_ms: int | None = Field(default=None, ge=1, le=600_000)
    retry_policy: DescriptorRetry = Field(default_factory=DescriptorRetry)
    circuit_breaker: DescriptorBreaker = Field(default_factory=DescriptorBreaker)
    concurrency_policy: Literal["parallel_ok", "serialized", "singleflight"] = "serialized"


class HandlerContract(Model):
    """A handler's ``handler_contract.yaml``. See the module docstring.

    Raises:
        pydantic.ValidationError: on construction, for a wrong shape or any cross-field problem
            (:func:`handler_findings`).
    """

    handler_id: HandlerId
    name: Name
    contract_version: ContractVersion
    description: Description
    descriptor: Descriptor
    capability_outputs: tuple[CapabilityName, ...] = ()
    handler_class: ClassPath | None = None
    intent_types: tuple[IntentType, ...] = ()
    metadata: Metadata = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The handler's archetype: ``effect``, ``compute``, ``reducer`` or ``orchestrator``."""
        return self.descriptor.node_archetype

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, dict) and info.context.get(DEFER_CHECKS):
            return self
        problems = handler_findings(self, secrets=True)
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self


def handler_findings(contract: HandlerContract, *, secrets: bool = False) -> list[Finding]:
    """Every cross-field problem of a handler contract, each with its field path.

    Args:
        contract: the contract, already valid field by field.
        secrets: also scan every value for secrets (the loader scans the raw file instead).
    """
    found: list[Finding] = []
    prefix = contract.handler_id.split(".", 1)[0]
    archetype = contract.descriptor.node_archetype
    if prefix not in _ANY_ARCHETYPE and prefix != archetype:
        archetypes = ("effect", "compute", "reducer", "orchestrator")
        if prefix in archetypes:
            message = (
                f"handler_id starts with {prefix!r} but descriptor.node_archetype is {archetype!r}"
            )
        else:
            message = (
                f"handler_id must start with its archetype ({archetype!r}), or 'node' or "
                f"'handler', not {prefix!r}"
            )
        found.append(Finding(("handler_id",), "handler-id", message))
    retry = contract.descriptor.retry_policy
    if retry.max_delay_ms < retry.base_delay_ms:
        found.append(
            Finding(
                ("descriptor", "retry_policy", "max_delay_ms"),
                "range",
                f"max_delay_ms ({retry.max_delay_ms}) must be at least "
                f"base_delay_ms ({retry.base_delay_ms})",
            )
        )
    breaker = contract.descriptor.circuit_breaker
    if breaker.half_open_requests != 1:
        found.append(
            Finding(
                ("descriptor", "circuit_breaker", "half_open_requests"),
                "range",
                "must be 1: a half-open breaker lets exactly one probe through at a time",
            )
        )
    if contract.intent_types and archetype != "effect":
        found.append(
            Finding(
                ("intent_types",),
                "section",
                f"only effect handlers execute intents; this one is a {archetype}",
                at_key=True,
            )
        )
    found.extend(_duplicates(("intent_types",), contract.intent_types))
    found.extend(_duplicates(("capability_outputs",), contract.capability_outputs))
    if secrets:
        found.extend(secret_findings(contract.model_dump(mode="json", exclude_unset=True)))
    return found


def _duplicates(base: PathT, names: Iterable[str]) -> Iterable[Finding]:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            yield Finding(
                (*base, index),
                "duplicate",
                f"{name!r} is already listed at {base[-1]}[{seen[name]}]",
            )
        seen.setdefault(name, index)
