"""``python -m benchmarks [name ...]``: run the benchmarks and print rates and ratios."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys

import benchmarks
from benchmarks._harness import Figure, report


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = sorted(
        m.name
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_") and (not wanted or m.name.removeprefix("bench_") in wanted)
    )
    print(f"ONEX benchmarks — Python {platform.python_version()} on {platform.machine()}")
    figures: list[Figure] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n== {name.removeprefix('bench_')}")
        found = module.run()
        print(report(found), flush=True)
        figures.extend(found)
    missed = [f.name for f in figures if not f.met]
    print(f"\n{len(figures) - len(missed)} of {len(figures)} figures met their targets")
    for name in missed:
        print(f"  missed: {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
