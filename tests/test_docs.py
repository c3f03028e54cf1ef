"""Every Python block in the README and in docs/ runs; blocks marked as output are skipped.

A block whose first line is ``# output`` (or whose fence says ``text``) is shown, not run.
Blocks of one file run in order, sharing a namespace, as a reader would type them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return [
        block
        for block in FENCE.findall(path.read_text(encoding="utf-8"))
        if not block.lstrip().startswith("# output")
    ]


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_python_blocks_run(path: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"doc:{path.name}"}
    for index, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path.relative_to(ROOT)} block {index + 1}", "exec")
        exec(code, namespace)


def test_the_readme_has_runnable_examples() -> None:
    assert python_blocks(ROOT / "README.md")
