"""Redaction: secrets never reach a log line, an error text or a dead-letter record.

Keyword matching alone fails both ways. The original implementation blanked any message that
*mentioned* ``auth`` or ``token`` (so "authentication failed" became useless) and let through
a PostgreSQL error that *echoed* a password as a bad parameter value, because the value itself
contains no keyword. ONEX redacts by value first: every secret the process resolves (a Vault
read, a configured password) is registered with the :class:`Redactor`, together with its
URL-encoded and base64 forms, and every occurrence is replaced by ``***``. Patterns then catch
the secret-shaped things that were never registered: the user-info of a URL
(``postgres://user:pass@host``), ``Bearer …`` credentials, Vault tokens (``hvs.…``) and
``X-Vault-Token``/``X-Consul-Token`` headers. Text is also cut to a length and stripped of
control characters, so a log line cannot be forged with an embedded newline.

One process-wide redactor (:data:`REDACTOR`) is what the runtime, the logging filter and the
DLQ writer use; tests make their own.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = [
    "REDACTOR",
    "RedactingFilter",
    "Redactor",
]

_MIN_SECRET_LENGTH = 4
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host → scheme://***@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@"), r"\1***@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"\b(?:hvs|hvb|hvr)\.[A-Za-z0-9_-]{8,}"), "***"),
    (re.compile(r"(?i)(x-(?:vault|consul)-token\s*[:=]\s*)\S+"), r"\1***"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*=\s*[^\s&;,]+"), r"\1=***"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Redactor:
    """Replaces registered secret values and secret-shaped patterns in text.

    Thread-safe: adapters that call clients in threads may register values from there.
    """

    def __init__(self, max_length: int = 500) -> None:
        self.max_length = max_length
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, secret: str) -> None:
        """Remember ``secret`` (and its encoded forms) so it is redacted from now on.

        Values shorter than four characters are not registered: redacting every "ab" in every
        message would do more harm than good, and such values are not secrets worth the name.
        """
        if not isinstance(secret, str) or len(secret) < _MIN_SECRET_LENGTH:
            return
        forms = {
            secret,
            quote(secret, safe=""),
            quote_plus(secret),
            base64.b64encode(secret.encode()).decode(),
            base64.urlsafe_b64encode(secret.encode()).decode(),
        }
        with self._lock:
            before = len(self._values)
            self._values.update(f for f in forms if len(f) >= _MIN_SECRET_LENGTH)
            if len(self._values) != before:
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text in self._values

    def redact(self, text: str, *, limit: int | None = None) -> str:
        """``text`` with secrets replaced by ``***``, control characters escaped, and cut to
        ``limit`` (default ``max_length``) characters."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub("***", text)
        for regex, replacement in _PATTERNS:
            text = regex.sub(replacement, text)
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
        text = text.replace("\n", "\\n")
        cap = self.max_length if limit is None else limit
        if len(text) > cap:
            text = text[:cap] + "… [truncated]"
        return text

    def scrub(self, text: str) -> str:
        """``text`` with registered secret values replaced by ``***`` and nothing else changed.

        For payloads kept for replay (a DLQ record's original value), where patterns and
        escaping would alter legitimate content.
        """
        pattern = self._pattern
        return text if pattern is None else pattern.sub("***", text)

    def redact_error(self, error: BaseException) -> str:
        """``"<ErrorType>: <redacted message>"`` — the form DLQ records and logs use."""
        return f"{type(error).__name__}: {self.redact(str(error))}"


REDACTOR = Redactor()
"""The process-wide redactor."""


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and exception text) of a record.

    Install it on handlers: ``handler.addFilter(RedactingFilter())``.
    """

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message} ({self.redactor.redact_error(record.exc_info[1])})"
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redactor.redact(message, limit=4000)
        record.args = None
        return True
