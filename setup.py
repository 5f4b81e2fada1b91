"""Build hook: the hot modules of detection and replay compiled with Cython, from the same sources.

The ``.py`` files stay the one source of truth and run as they are when not compiled: set
``CHAINSENTRY_NO_EXTENSIONS=1`` to install without a C compiler. Compiled or not, the scores
are byte-identical (tested). Everything else lives in ``pyproject.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup

# the modules on the per-transaction path of `replay` and `run` (chainsentry/compiled.py: the one list)
_listed: dict[str, tuple[str, ...]] = {}
exec(Path(__file__).with_name("chainsentry").joinpath("compiled.py").read_text(), _listed)
COMPILED = [m.replace(".", "/") + ".py" for m in _listed["COMPILED_MODULES"]]


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


if __name__ == "__main__":  # (the tests import this file for its list)
    setup(ext_modules=extensions())
