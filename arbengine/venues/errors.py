"""Errors raised by venue adapters, in plain Python so callers need no compiled import."""


class VenueError(Exception):
    """Base class for venue adapter errors."""


class FrameError(VenueError, ValueError):
    """A frame or REST body that does not have the shape the venue documents."""
