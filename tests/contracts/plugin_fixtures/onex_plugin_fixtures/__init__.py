"""Canary plugin package for the plugin-loader tests. Importing it has no effect."""
