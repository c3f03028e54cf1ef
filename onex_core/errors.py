"""Errors, named by who is at fault.

ONEX has one root, :class:`OnexError`, and four families under it. Each family answers the
question an operator asks first — *whose mistake is this, and will trying again help?*

=====================  ==========================================  =====================
family                 at fault                                    retry?
=====================  ==========================================  =====================
:class:`ContractError` the author of a contract (bad YAML, a guard  never: fix the contract
                       that does not parse, an unreachable state)
:class:`ContentError`  the publisher of a message (undecodable,     never: dead-letter it
                       unroutable, a malformed topic or envelope)
:class:`UsageError`    the program calling ONEX (an output that     never: fix the code
                       breaks the node-kind law, a bad argument)
:class:`EffectError`   an external system an effect talks to        :class:`EffectUnavailable`
                                                                    yes; :class:`EffectRejected`
                                                                    no
=====================  ==========================================  =====================

Each family also subclasses the builtin it refines (``ValueError``, ``TypeError``), so code that
knows nothing of ONEX can still catch sensibly.

Messages never carry secret values. An error about a value names the field's path and the
constraint, not the value itself; adapters translate driver exceptions at their edge
(``raise EffectUnavailable(...) from exc``) and sanitize the text as they do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CircuitOpen",
    "ContentError",
    "ContractError",
    "EffectError",
    "EffectRejected",
    "EffectUnavailable",
    "GuardError",
    "Location",
    "MachineError",
    "OnexError",
    "OutputLawError",
    "Problem",
    "RouteConflict",
    "TopicError",
    "UsageError",
    "format_path",
]


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a contract something is: ``source:line:column`` and the field path.

    ``line`` and ``column`` are 1-based, as editors show them. ``path`` is the dotted and
    indexed field path (``state_machine.transitions[3].to_state``). Any part may be unknown.
    """

    source: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = self.source or "<contract>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            where += f": {self.path}"
        return where


class OnexError(Exception):
    """The root of every error ONEX raises on purpose."""


# --------------------------------------------------------------------------- contract authors


class ContractError(OnexError, ValueError):
    """A contract is wrong. The contract's author must fix it; nothing was loaded or run.

    Args:
        message: what is wrong, in one line a person can act on.
        location: where it is, when known.
    """

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location is not None else message)


class GuardError(ContractError):
    """A guard expression does not parse. Raised when the machine is built, never at run time."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a structure built from plain data.

    ``path`` points at the offending element of the input, for example
    ``("transitions", 3, "to_state")``, so a contract loader can map it back to a file, line and
    column.
    """

    message: str
    path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}" if self.path else self.message


def format_path(path: tuple[str | int, ...]) -> str:
    """``("transitions", 3, "to_state")`` → ``transitions[3].to_state``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class MachineError(ContractError):
    """A state machine is structurally wrong. ``problems`` lists every problem found, not just
    the first, so an author can fix them in one pass."""

    def __init__(self, machine: str, problems: Iterable[Problem]) -> None:
        self.machine = machine
        self.problems = tuple(problems)
        joined = "; ".join(str(p) for p in self.problems)
        super().__init__(f"state machine {machine!r}: {joined}")


class RouteConflict(ContractError):
    """Two route tables claim the same route id with different definitions."""


# --------------------------------------------------------------------------- message publishers


class ContentError(OnexError, ValueError):
    """A message is wrong: undecodable, unroutable, or inconsistent. Its publisher is at fault.

    Content errors are permanent. The runtime dead-letters the message at once and moves on.
    """


class TopicError(ContentError):
    """A topic or topic pattern is malformed. The message says which segment and why.

    Contracts catch this and re-raise it as a :class:`ContractError` with a location.
    """


# --------------------------------------------------------------------------- calling programs


class UsageError(OnexError, TypeError):
    """The calling program used ONEX wrongly. This is a bug in that program, not bad input."""


class OutputLawError(UsageError):
    """A node built an output its kind may not produce (for example a reducer emitting events)."""


# --------------------------------------------------------------------------- external systems


class EffectError(OnexError):
    """An external system failed while an effect ran.

    Args:
        message: sanitized text — no secrets, no echoed parameter values.
        backend: the kind of system (``postgres``, ``consul``, ``registry``), for logs and DLQ.
    """

    retryable: bool = False

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        self.backend = backend
        super().__init__(message)


class EffectUnavailable(EffectError):
    """A transient failure: connection lost, timeout, rate limit, server sealed or down.

    The runtime retries with backoff. ``retry_after`` (seconds) is a floor for the next delay
    when the system said how long to wait.
    """

    retryable = True

    def __init__(
        self, message: str, *, backend: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, backend=backend)
        self.retry_after = retry_after


class CircuitOpen(EffectUnavailable):
    """The circuit breaker for a backend is open: the call was not attempted."""


class EffectRejected(EffectError):
    """A permanent failure: authentication, permission, constraint, bad request, not found.

    Retrying will not help. The runtime dead-letters the intent at once, and the breaker does
    not count it (the backend is healthy; the request was wrong).
    """
