"""onex_core depends on the standard library only, and importing it pulls in nothing else."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import onex_core

CORE = Path(onex_core.__file__).resolve().parent
ALLOWED_ROOTS = frozenset(sys.stdlib_module_names) | {"__future__", "onex_core"}
FORBIDDEN_ROOTS = ("pydantic", "yaml", "onex_contracts", "onex_adapters")


def absolute_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def core_sources() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_walk_sees_the_core() -> None:
    names = {path.name for path in core_sources()}
    assert {"__init__.py", "errors.py", "outputs.py", "ports.py", "resilience.py"} <= names


def test_imports_in_the_walk_are_found() -> None:
    tree = ast.parse(
        "import os, yaml.x\nfrom pydantic import BaseModel\nfrom . import sibling\n"
        "def f():\n    import requests\n"
    )
    assert absolute_imports(tree) == [(1, "os"), (1, "yaml.x"), (2, "pydantic"), (5, "requests")]


def test_onex_core_imports_only_the_standard_library() -> None:
    bad = []
    for path in core_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in absolute_imports(tree):
            if module.partition(".")[0] not in ALLOWED_ROOTS:
                bad.append(f"{path.relative_to(CORE.parent)}:{line}: {module}")
    assert bad == [], "onex_core must import only the standard library:\n" + "\n".join(bad)


PROBE = """
import importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import onex_core
names = sorted(m.name for m in pkgutil.walk_packages(onex_core.__path__, "onex_core."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"file": onex_core.__file__, "imported": names, "modules": sorted(sys.modules)}))
"""


def test_importing_onex_core_loads_no_third_party_module() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(CORE.parent)],
        capture_output=True,
        text=True,
        check=False,
        cwd=CORE.parent,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert Path(report["file"]).resolve().parent == CORE
    assert {"onex_core.outputs", "onex_core.ports", "onex_core.resilience"} <= set(
        report["imported"]
    )
    loaded = [name for name in report["modules"] if name.partition(".")[0] in FORBIDDEN_ROOTS]
    assert loaded == []
