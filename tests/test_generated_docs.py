"""Diagrams in the docs are what `onex diagram` generates from the shipped contracts today."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from onex_contracts.diagram import directory_diagram, machine_diagram
from onex_contracts.loader import load

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- generated: onex diagram (\S+) -->\n```mermaid\n(.*?)```", re.S)


def generated_blocks() -> list[tuple[str, str, str]]:
    found = []
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        for path, body in MARKER.findall(doc.read_text(encoding="utf-8")):
            found.append((str(doc.relative_to(ROOT)), path, body))
    return found


@pytest.mark.parametrize(("doc", "path", "body"), generated_blocks())
def test_generated_diagrams_are_current(doc: str, path: str, body: str) -> None:
    target = ROOT / path
    expected = directory_diagram(target) if target.is_dir() else machine_diagram(load(target))
    assert body.strip() == expected.strip(), (
        f"{doc}: the diagram of {path} is stale; regenerate it with `onex diagram {path}`"
    )


def test_the_registration_page_has_its_diagrams() -> None:
    assert len([b for b in generated_blocks() if b[0] == "docs/registration.md"]) == 2
