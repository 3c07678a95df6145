"""Exceptions raised by the compiled core.

They live in plain Python (as picows does) so callers can catch them without importing
compiled modules, and so their messages are easy to read and to test.
"""


class CoreError(ValueError):
    """Base class for every error the compiled core raises on bad input."""


class FixedPointError(CoreError):
    """Decimal text that cannot be represented exactly on an instrument's grid."""


class BookError(CoreError):
    """An order-book operation with invalid arguments (negative size, zero price...)."""


class SpreadError(CoreError):
    """A spread-calculator configuration or call that makes no sense."""
