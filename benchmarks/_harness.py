"""A tiny harness: time a subject and its floor alternately, keep the best of several rounds.

Rates on a shared 2-core machine are noisy, so each figure is the best of ``rounds`` rounds,
and the subject and its floor are measured turn about, so a slow spell hurts both alike. Every
benchmark reports its rate, its floor's rate and their ratio; targets are checked and printed,
never asserted — speed belongs here, not in the test suite.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure.

    ``rate`` and ``floor_rate`` are operations per second. ``min_rate`` and ``min_ratio`` are the
    targets (``None`` when there is none).
    """

    name: str
    rate: float
    floor_name: str
    floor_rate: float
    min_rate: float | None = None
    min_ratio: float | None = None

    @property
    def ratio(self) -> float:
        return self.rate / self.floor_rate if self.floor_rate else float("inf")

    @property
    def met(self) -> bool:
        ok = True
        if self.min_rate is not None:
            ok = ok and self.rate >= self.min_rate
        if self.min_ratio is not None:
            ok = ok and self.ratio >= self.min_ratio
        return ok


def best_rate(run: Callable[[int], None], n: int, rounds: int = 5) -> float:
    """Operations per second of ``run(n)`` (which performs ``n`` operations), best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - start)
    return n / best


def compare(
    subject: Callable[[int], None],
    floor: Callable[[int], None],
    n: int,
    rounds: int = 5,
) -> tuple[float, float]:
    """Rates of ``subject`` and ``floor``, measured turn about, best of ``rounds`` each."""
    subject(min(n, 1000))  # warm caches and memo tables
    floor(min(n, 1000))
    best_s = best_f = float("inf")
    for _ in range(rounds):
        for which in (0, 1):
            gc.collect()
            start = time.perf_counter()
            (subject if which == 0 else floor)(n)
            elapsed = time.perf_counter() - start
            if which == 0:
                best_s = min(best_s, elapsed)
            else:
                best_f = min(best_f, elapsed)
    return n / best_s, n / best_f


def _fmt_rate(rate: float) -> str:
    return f"{rate:>14,.0f}/s"


def report(figures: list[Figure]) -> str:
    lines = []
    for f in figures:
        targets = []
        if f.min_rate is not None:
            targets.append(f">= {f.min_rate:,.0f}/s")
        if f.min_ratio is not None:
            targets.append(f">= {f.min_ratio:g}x floor")
        verdict = ("met" if f.met else "MISSED") if targets else ""
        lines.append(f"{f.name}")
        lines.append(f"    onex   {_fmt_rate(f.rate)}")
        lines.append(f"    floor  {_fmt_rate(f.floor_rate)}   ({f.floor_name})")
        lines.append(
            f"    ratio  {f.ratio:>14.2f}x    target {' and '.join(targets) or '-'}  {verdict}"
        )
    return "\n".join(lines)
