"""In-process HTTP fakes of the Consul agent and Vault, driven by the real py-consul and hvac
clients in the adapter tests. See :mod:`tests.adapters.fakes.base` for the fault script and the
request log, and each fake's docstring for what it models and what it does not."""
