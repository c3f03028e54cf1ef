"""Runnable ONEX examples; each is a package with its own README and tests."""
