"""The node-registration workflow on the runtime host: handlers, effects and the composition root.

- :mod:`~onex_adapters.registration.handlers` — the orchestrator handler (every message about a
  node) and the tick handler (deadline scans).
- :mod:`~onex_adapters.registration.effects` — the service-registry and registration-storage
  effect handlers of the embedded default.
- :mod:`~onex_adapters.registration.app` — :func:`build_registration`, which wires them from the
  shipped contracts onto the adapters it is given, and :func:`open_backends` /
  :func:`build_registration_from_env`, which choose the adapters from configuration.
- :mod:`~onex_adapters.registration.demo` — ``onex demo registration``.
"""

from onex_adapters.registration.app import (
    Backends,
    Contracts,
    Registration,
    build_registration,
    build_registration_from_env,
    load_registration_contracts,
    open_backends,
)
from onex_adapters.registration.effects import (
    InMemoryRegistrationTable,
    RegistrationRow,
    RegistrationStorageEffect,
    ServiceRegistryEffect,
)
from onex_adapters.registration.handlers import RegistrationOrchestrator, RegistrationTicks

__all__ = [
    "Backends",
    "Contracts",
    "InMemoryRegistrationTable",
    "Registration",
    "RegistrationOrchestrator",
    "RegistrationRow",
    "RegistrationStorageEffect",
    "RegistrationTicks",
    "ServiceRegistryEffect",
    "build_registration",
    "build_registration_from_env",
    "load_registration_contracts",
    "open_backends",
]
