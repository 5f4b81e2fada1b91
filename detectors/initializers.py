"""Initialiser selectors: the 4-byte selector of every ``init``, ``initialize`` or ``initialise``
function over the argument types initialisers commonly take, not a list of known incidents.

An initialiser sets up a contract (owner, tokens, parameters) once, meant to be called when the
contract (or the proxy in front of it) is created. Called again later, by someone else, on a live
contract, it hands that someone the contract: the "unprotected initialiser" flaw behind the Parity
multisig (``initWallet``), DAO Maker, Sanshu, Punk Protocol, Furucombo and DODO exploits. A trace
has selectors, not names, so the names are recognised by enumerating their signatures: up to
:data:`MAX_ARGS` arguments over :data:`TYPES`, and longer lists of addresses and integers (the
common wide initialisers) up to :data:`WIDE_MAX_ARGS`. 34,773 selectors, stored sorted as 4-byte
records in ``rules/initializers.bin`` (136 KB; hashing them at every start would cost ~0.3 s), and
read into a set at import (~10 ms). A struct argument (a tuple) is not enumerated: such an
initialiser stays unknown. ``python -m detectors.initializers`` writes the file again;
the tests check that it is what this module generates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from importlib import resources

NAMES: tuple[str, ...] = ("init", "initialize", "initialise")
TYPES: tuple[str, ...] = ("address", "uint256", "bool", "bytes", "string", "bytes32", "uint8", "address[]",
                          "uint256[]", "uint32")
MAX_ARGS = 4
WIDE_TYPES: tuple[str, ...] = ("address", "uint256")
WIDE_MAX_ARGS = 8
FILE = "rules/initializers.bin"


def signatures() -> Iterator[str]:
    """Every signature enumerated (see the module docstring); each at most once.

    >>> sigs = list(signatures())
    >>> "initialize(address)" in sigs and "init(uint256,uint256[],uint256[],address)" in sigs
    True
    >>> len(sigs) == len(set(sigs))
    True
    """
    for name in NAMES:
        for n in range(MAX_ARGS + 1):
            for args in itertools.product(TYPES, repeat=n):
                yield f"{name}({','.join(args)})"
        for n in range(MAX_ARGS + 1, WIDE_MAX_ARGS + 1):
            for args in itertools.product(WIDE_TYPES, repeat=n):
                yield f"{name}({','.join(args)})"


def build() -> bytes:
    """The file's content: the selectors, sorted, 4 bytes each (keccak-256 of each signature)."""
    from eth_hash.auto import keccak

    return b"".join(sorted({keccak(sig.encode())[:4] for sig in signatures()}))


def load() -> frozenset[str]:
    """The selectors as the traces spell them (``0x`` and 8 lower-case hex digits)."""
    data = resources.files("detectors").joinpath(FILE).read_bytes()
    if len(data) % 4:
        raise ValueError(f"detectors/{FILE}: {len(data)} bytes is not a whole number of 4-byte selectors")
    return frozenset("0x" + data[i:i + 4].hex() for i in range(0, len(data), 4))


if __name__ == "__main__":  # pragma: no cover
    target = resources.files("detectors").joinpath(FILE)
    content = build()
    with resources.as_file(target) as path:
        path.write_bytes(content)
    print(f"detectors/{FILE}: {len(content) // 4} selectors")
