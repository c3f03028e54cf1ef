"""Id sources: where the runtime gets ids for messages it originates.

Derived messages get deterministic ids (``uuid5`` of their parent) from the core; only messages
with no parent — a runtime tick, a message a test or a demo injects — need a fresh id. In
production that is a random UUID; in tests and the demo a seeded source makes every run
identical.
"""

from __future__ import annotations

import random
import uuid
from typing import Protocol, runtime_checkable

__all__ = ["IdSource", "RandomIds", "SeededIds"]


@runtime_checkable
class IdSource(Protocol):
    def new_id(self) -> uuid.UUID: ...


class RandomIds:
    """Random (version 4) UUIDs."""

    def new_id(self) -> uuid.UUID:
        return uuid.uuid4()


class SeededIds:
    """Reproducible version-4-shaped UUIDs from a seed."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self._random.getrandbits(128), version=4)
