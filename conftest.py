"""Root of the test session: checks that apply to every test and doctest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The hot modules may be compiled in place (setup.py): the doctests of detectors/*.py then run
# against the extension module of the same name, which pytest would otherwise refuse as a mismatch.
os.environ.setdefault("PY_IGNORE_IMPORTMISMATCH", "1")

ROOT = Path(__file__).resolve().parent


def stale_extensions(root: Path = ROOT) -> list[str]:
    """Compiled modules older than their source or a .pxd of their package (a module can cimport
    any of them): they would be imported instead of the change."""
    stale = []
    for so in sorted(root.glob("*/*.cpython-*.so")):
        sources = [so.with_name(so.name.split(".", 1)[0] + ".py"), *sorted(so.parent.glob("*.pxd"))]
        for src in sources:
            if src.exists() and src.stat().st_mtime > so.stat().st_mtime:
                stale.append(str(src.relative_to(root)))
    return sorted(set(stale))


def pytest_configure(config: pytest.Config) -> None:
    stale = stale_extensions()
    if stale:
        raise pytest.UsageError(
            f"{', '.join(stale)} changed after being compiled: run `make compiled` (or `make test`), "
            "or set CHAINSENTRY_NO_EXTENSIONS=1 with `make compiled` to run from the sources")
