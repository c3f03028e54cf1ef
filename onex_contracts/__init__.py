"""ONEX contracts: strict YAML → strict models → the core's compiled tables.

- :func:`parse` / :func:`load` read one ``contract.yaml`` or ``handler_contract.yaml`` and return a
  :class:`NodeContract` or :class:`HandlerContract`, or raise :class:`ContractInvalid` listing
  every problem with its file, line, column and field path.
- :func:`compile_machine`, :func:`compile_routes`, :func:`compile_operations` and
  :func:`compile_effect_policy` turn a valid contract into :mod:`onex_core` values.
- :func:`lint` checks a directory of contracts as a whole; :func:`machine_diagram` and
  :func:`directory_diagram` draw them as Mermaid.

Nothing here imports or runs anything a contract names; handler classes are loaded separately,
by :mod:`onex_contracts.plugins`, under an allow-list. The registration node family ships in
``onex_contracts/contracts/registration`` (see :data:`REGISTRATION_CONTRACTS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from onex_contracts.compile import (
    EffectPolicy,
    compile_effect_policy,
    compile_machine,
    compile_operations,
    compile_routes,
)
from onex_contracts.diagram import directory_diagram, machine_diagram
from onex_contracts.issues import ContractInvalid, ContractIssue
from onex_contracts.lint import LintReport, lint, load_directory
from onex_contracts.loader import (
    Contract,
    Loaded,
    dump,
    load,
    load_located,
    parse,
    parse_handler,
    parse_located,
    parse_node,
)
from onex_contracts.schema import NodeContract, StateMachine
from onex_contracts.schema_handler import HandlerContract

__all__ = [
    "REGISTRATION_CONTRACTS",
    "Contract",
    "ContractInvalid",
    "ContractIssue",
    "EffectPolicy",
    "HandlerContract",
    "LintReport",
    "Loaded",
    "NodeContract",
    "StateMachine",
    "compile_effect_policy",
    "compile_machine",
    "compile_operations",
    "compile_routes",
    "directory_diagram",
    "dump",
    "lint",
    "load",
    "load_directory",
    "load_located",
    "machine_diagram",
    "parse",
    "parse_handler",
    "parse_located",
    "parse_node",
]

REGISTRATION_CONTRACTS: Final = Path(__file__).parent / "contracts" / "registration"
"""The directory of the shipped registration node family."""
