"""The checked-in contract reference is exactly what the schema generates."""

from __future__ import annotations

from pathlib import Path

from onex_contracts.reference import render_reference
from onex_contracts.schema import NodeContract
from onex_contracts.schema_handler import HandlerContract

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "contracts.md"


def test_the_checked_in_reference_is_current() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        "docs/reference/contracts.md is stale: run "
        "`python -m onex_contracts.reference > docs/reference/contracts.md`"
    )


def test_every_key_of_both_contracts_is_documented() -> None:
    text = render_reference()
    for model in (NodeContract, HandlerContract):
        for name in model.model_fields:
            assert f"| `{name}` |" in text
