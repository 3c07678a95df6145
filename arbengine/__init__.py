"""arbengine: a low-latency cross-venue arbitrage engine with a compiled hot path."""

__version__ = "0.1.0"
