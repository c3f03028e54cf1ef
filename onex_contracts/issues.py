"""Contract issues: one located, actionable line per problem.

Every problem the contract layer finds — a YAML tag, a duplicate key, a wrong type, an unknown
state, an intent nobody executes — becomes a :class:`ContractIssue`: where it is
(``source:line:column``), which field (``state_machine.transitions[3].to_state``), what is wrong,
and a stable short ``code`` (``duplicate-key``, ``unknown-field``, ``unknown-state``, …) that tools
and tests can select on. ``str(issue)`` is the one line a person reads::

    contracts/x/contract.yaml:12:7: state_machine.transitions[3].to_state: unknown state 'actve'
    (did you mean 'active'?)

A file that has any issue raises :class:`ContractInvalid` carrying *all* of its issues, sorted by
position, so an author fixes them in one pass. Messages never echo secret values: the helpers
here quote user text only after :func:`is_secret_like` said no, and cut it at 60 characters.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from onex_core.errors import ContractError, Location

__all__ = [
    "ContractInvalid",
    "ContractIssue",
    "is_secret_key",
    "is_secret_like",
    "quote",
    "suggest",
]


@dataclass(frozen=True, slots=True)
class ContractIssue:
    """One problem in one contract file.

    ``line`` and ``column`` are 1-based (as editors show them); ``0`` means unknown (a problem of
    a whole directory, say). ``path`` is the dotted, indexed field path, empty for the document.
    """

    source: str
    line: int
    column: int
    path: str
    message: str
    code: str

    def __str__(self) -> str:
        where = self.source
        if self.line:
            where += f":{self.line}:{self.column}"
        if self.path:
            where += f": {self.path}"
        return f"{where}: {self.message}"

    @property
    def location(self) -> Location:
        """The same place as an :class:`onex_core.errors.Location`."""
        return Location(self.source, self.line or None, self.column or None, self.path or None)

    def as_dict(self) -> dict[str, str | int]:
        """A JSON-ready mapping (for ``onex validate --json``)."""
        return {
            "source": self.source,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "code": self.code,
            "message": self.message,
        }


class ContractInvalid(ContractError):
    """A contract file is invalid. Nothing was loaded.

    Args:
        issues: every problem found, in any order; they are kept sorted by position.

    Attributes:
        errors: the issues, sorted by line and column.
    """

    def __init__(self, issues: Iterable[ContractIssue]) -> None:
        self.errors: tuple[ContractIssue, ...] = tuple(
            sorted(set(issues), key=lambda i: (i.source, i.line, i.column, i.path, i.code))
        )
        if not self.errors:
            raise ValueError("ContractInvalid needs at least one issue")
        first = self.errors[0]
        count = len(self.errors)
        head = f"{count} problem{'s' if count != 1 else ''} in {first.source}"
        super().__init__("\n".join([head, *(str(i) for i in self.errors)]), first.location)

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------- helpers

_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "secret", "token", "dsn", "apikey", "credential", "credentials"}
)
_SECRET_KEYS = frozenset({"api_key", "private_key", "access_key", "secret_key"})
# Every alternative starts with a literal, so a search costs time linear in the text (a leading
# `[a-z]+://` would make it quadratic on a long run of letters).
_SECRET_VALUE = re.compile(
    r"://[^/\s:@]*:[^/\s@]+@"  # scheme://user:password@host
    r"|\bhv[sbr]\.[A-Za-z0-9_-]{16}"  # Vault service / batch / recovery tokens
    r"|-----BEGIN"  # PEM keys and certificates
    r"|\bAKIA[0-9A-Z]{16}"  # AWS access key ids
)


def is_secret_key(key: str) -> bool:
    """True for field names that hold credentials: ``password``, ``vault_token``, ``dsn``.

    The last ``_``/``-`` separated word decides, so ``vault_token`` and ``db_password`` count and
    ``secret_path`` or ``max_tokens`` do not.
    """
    lowered = key.lower()
    if lowered in _SECRET_KEYS:
        return True
    words = re.split(r"[_\-.]", lowered)
    return words[-1] in _SECRET_WORDS


def is_secret_like(text: str) -> bool:
    """True when ``text`` looks like a credential: a URL with a password, a Vault token, a PEM
    block or an AWS key id."""
    return _SECRET_VALUE.search(text) is not None


def quote(text: str, limit: int = 60) -> str:
    """Quote user text for a message: ``repr`` of it, cut at ``limit`` characters, and never a
    value that looks like a secret."""
    if is_secret_like(text):
        return "<redacted>"
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or the empty string."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
