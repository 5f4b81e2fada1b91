"""Hex string helpers of the mappers' fast path, as plain Python.

When ``ingest/mappers.py`` is compiled, these names resolve to C implementations declared in
``ingest/_hex.pxd`` (as ``math.log1p`` resolves to C's beside ``from libc cimport math``), which
give the same results: a hex quantity's ``int``, a lower-cased string, and whether a string starts
with ``0x``. This module is what the
uncompiled mappers call, and what the C versions are tested against (tests/test_compiled.py).
"""

from __future__ import annotations


def hexint(v: str) -> int:
    """``int(v, 16)``.

    >>> hexint("0x1f"), hexint("0xFF")
    (31, 255)
    """
    return int(v, 16)


def lower(s: str) -> str:
    """``s.lower()``.

    >>> lower("0xAbC")
    '0xabc'
    """
    return s.lower()


def has0x(v: str) -> bool:
    """``v[:2] == "0x"``.

    >>> has0x("0x1f"), has0x("0X1f"), has0x("0"), has0x("")
    (True, False, False, False)
    """
    return v[:2] == "0x"
