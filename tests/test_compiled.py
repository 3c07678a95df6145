"""The hot path must really be compiled: a silent pure-Python fallback would be 10-100x
slower and still pass every behaviour test, so this checks how each module was loaded."""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import types

import pytest

COMPILED = [
    ("arbengine._core.fixed", "Grid"),
    ("arbengine._core.book", "Book"),
    ("arbengine._core.spread", "SpreadCalculator"),
    ("arbengine._core.gates", "GateCore"),
    ("arbengine._core.ledger", "Ledger"),
    ("arbengine._core.instrument", "Instrument"),
    ("arbengine.venues._depth", "LevelBuffer"),
    ("arbengine.venues._sync", "BookSync"),
    ("arbengine.venues._clock", "ClockOffset"),
    ("arbengine.venues._frames", "DepthPipeline"),
    ("arbengine.venues._router", "FeedRouter"),
    ("arbengine.gateways._wire", "OrderWire"),
]

# Compiled modules without a cdef class: checked through one of their def functions.
COMPILED_FUNCTIONS = [
    ("arbengine.venues.checksum", "kraken_book_checksum"),
]


@pytest.mark.parametrize(("module_name", "class_name"), COMPILED + COMPILED_FUNCTIONS)
def test_module_is_a_compiled_extension(module_name: str, class_name: str) -> None:
    module = importlib.import_module(module_name)
    path = module.__file__
    assert path is not None, f"{module_name} has no __file__"
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    assert path.endswith(suffixes), f"{module_name} loaded from {path}, not an extension"
    spec = module.__spec__
    assert spec is not None
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader), spec.loader
    assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader)


@pytest.mark.parametrize(("module_name", "class_name"), COMPILED)
def test_cdef_class_is_not_python_defined(module_name: str, class_name: str) -> None:
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    assert isinstance(cls, type)
    assert cls.__module__ == module_name
    # A class statement in a .py file always produces a heap type holding plain Python
    # functions with source code; a cdef class holds C-level descriptors instead.
    python_functions = [
        name for name, value in vars(cls).items() if isinstance(value, types.FunctionType)
    ]
    assert python_functions == [], f"{class_name} has Python-defined methods {python_functions}"
    with pytest.raises((OSError, TypeError)):  # no .py source behind it
        inspect.getsource(cls)
    # cdef classes have a fixed C layout: no per-instance __dict__.
    assert "__dict__" not in vars(cls)


@pytest.mark.parametrize(("module_name", "function_name"), COMPILED_FUNCTIONS)
def test_def_function_is_not_python_defined(module_name: str, function_name: str) -> None:
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    assert callable(function)
    # A def in a .py file is a types.FunctionType; a Cython def is a C-level function object
    # (its __code__ is only a stub for introspection).
    assert not isinstance(function, types.FunctionType)
    assert type(function).__name__ == "cython_function_or_method"
    with pytest.raises((OSError, TypeError)):  # no .py source behind it
        inspect.getsource(function)


def test_errors_module_is_plain_python() -> None:
    # Exceptions stay in plain Python by design: callers catch them without importing a
    # compiled module, and they pickle and subclass like any other exception.
    errors = importlib.import_module("arbengine._core.errors")
    assert errors.__file__ is not None
    assert errors.__file__.endswith(".py")
    assert isinstance(errors.__loader__, importlib.machinery.SourceFileLoader)
    for name in ("CoreError", "FixedPointError", "BookError", "SpreadError"):
        cls = getattr(errors, name)
        assert issubclass(cls, ValueError)
        assert inspect.getsourcefile(cls) == errors.__file__
