"""Build the Cython core.

Release builds turn bounds and wraparound checks off. For debugging set
``ARBENGINE_DEBUG=1`` before building (``ARBENGINE_DEBUG=1 pip install -e .``): checks come
back on, assertions stay in, C asserts are enabled and the code is built with -O0 -g.
``ARBENGINE_ANNOTATE=1`` also writes Cython's HTML annotation next to each .pyx.
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ARBENGINE_DEBUG", "") not in ("", "0")
ANNOTATE = os.environ.get("ARBENGINE_ANNOTATE", "") not in ("", "0")

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "freethreading_compatible": False,
}

cflags = ["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O3", "-DNDEBUG"]

# Modules that link a system library: the order wire signs with OpenSSL's libcrypto (the
# one Python's hashlib and ssl use; building needs its headers, Debian's libssl-dev).
LIBRARIES = {"arbengine.gateways._wire": ["crypto"]}

# Every .pyx under arbengine/ is one extension module named after its path.
extensions = [
    Extension(
        name,
        [str(pyx)],
        extra_compile_args=cflags,
        libraries=LIBRARIES.get(name, []),
    )
    for pyx in sorted(Path("arbengine").rglob("*.pyx"))
    for name in [".".join(pyx.with_suffix("").parts)]
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        force=DEBUG,
    ),
)
