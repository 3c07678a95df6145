"""Venue adapters: wire formats, book checksums and recording readers of each exchange.

This package knows nothing of the engine: it turns venue bytes into core types (``Book``,
``Grid``) and checks venue invariants on them, and nothing in ``arbengine._core`` imports it.
"""
