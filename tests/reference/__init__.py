"""Pure-Python reference implementations: the oracles the compiled core is tested against.

Nothing in ``arbengine`` imports from here; tests and benchmarks do.
"""
