"""Build hook: the hot modules of detection and replay compiled with Cython, from the same sources.

The ``.py`` files stay the one source of truth and run as they are when not compiled: set
``CHAINSENTRY_NO_EXTENSIONS=1`` to install without a C compiler. Compiled or not, the scores
are byte-identical (tested). Everything else lives in ``pyproject.toml``.
"""

from __future__ import annotations

import os

from setuptools import setup

# modules on the per-transaction path of `replay` and `run` (see benchmarks/README.md)
COMPILED = [
    "detectors/engine.py",
    "detectors/features.py",
    "detectors/fusion.py",
    "detectors/online.py",
    "detectors/rules.py",
    "detectors/wallets.py",
    "ingest/mappers.py",
    "ingest/replay.py",
    "chainsentry/scoring.py",
]


def extensions() -> list:
    if os.environ.get("CHAINSENTRY_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    return cythonize(
        COMPILED,
        language_level=3,
        quiet=True,
        # Python semantics kept: annotations are not C types (a float stays a Python float)
        compiler_directives={"annotation_typing": False, "binding": True, "autotestdict": False},
    )


setup(ext_modules=extensions())
