"""Golden responses from the official API docs, and a shape comparison.

Each ``golden/*.json`` file names the doc section it comes from (``source``), the status, the
headers that must be present, the keys that may be absent (``optional``), and the sample body.
:func:`shape_problems` compares a response body with the sample by shape — the same keys and
JSON types, recursively — not by value, so the fake and (in the opt-in lane) a real server are
held to the documentation in the same way.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

__all__ = ["load", "shape_problems"]

_DIR = Path(__file__).parent / "golden"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((_DIR / f"{name}.json").read_text())
    return document


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def shape_problems(
    actual: Any, golden: Any, optional: Collection[str] = (), where: str = "$"
) -> list[str]:
    """Where ``actual`` differs in shape from ``golden``. A ``null`` in the sample accepts
    anything (the docs show an object where servers often send null); keys named in
    ``optional`` may be missing at any depth; extra keys are allowed."""
    if golden is None:
        return []
    if _kind(actual) != _kind(golden):
        return [f"{where}: {_kind(actual)}, the docs show {_kind(golden)}"]
    problems: list[str] = []
    if isinstance(golden, dict):
        for key, sample in golden.items():
            if key not in actual:
                if key not in optional:
                    problems.append(f"{where}.{key}: missing")
                continue
            problems.extend(shape_problems(actual[key], sample, optional, f"{where}.{key}"))
    elif isinstance(golden, list) and golden and actual:
        problems.extend(shape_problems(actual[0], golden[0], optional, f"{where}[0]"))
    return problems
