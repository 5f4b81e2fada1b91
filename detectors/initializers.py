"""Selectors recognised by name: the 4-byte selector of every function of a few names over the
argument types such functions commonly take, not a list of known incidents. Two families:

- **initialisers** (``init``, ``initialize``, ``initialise``): an initialiser sets up a contract
  (owner, tokens, parameters) once, meant to be called when the contract (or the proxy in front
  of it) is created. Called again later, by someone else, on a live contract, it hands that
  someone the contract: the "unprotected initialiser" flaw behind the Parity multisig
  (``initWallet``), DAO Maker, Sanshu, Punk Protocol, Furucombo and DODO exploits.
- **exposed internals** (``_mint``, ``_burn``, ``_transfer``, ``_approve``, ``_setOwner``, ...):
  a leading underscore is Solidity's convention for an internal function (OpenZeppelin's token,
  ownership, access-control and proxy internals). Such a function compiled public by mistake lets
  anyone mint, burn or move others' tokens, or take the contract (Sandbox LAND's ``_burn``, the
  default-visibility flaw). No ordinary dev transaction calls one.

A trace has selectors, not names, so the names are recognised by enumerating their signatures: up
to ``max_args`` arguments over ``types``, and longer lists of addresses and integers (the common
wide signatures) up to ``wide_max_args``. The selectors are stored sorted as 4-byte records in
``rules/<family>.bin`` (hashing them at every start would cost ~0.3 s), and read into a set at
import (~10 ms each). A struct argument (a tuple) is not enumerated: such a function stays
unknown. ``python -m detectors.initializers`` writes the files again; the tests check that they
are what this module generates.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Family:
    """Function names and the argument lists enumerated for them, and the file of their selectors."""

    file: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    max_args: int
    wide_types: tuple[str, ...] = ("address", "uint256")
    wide_max_args: int = 0


INITIALIZERS = Family(
    file="rules/initializers.bin",
    names=("init", "initialize", "initialise"),
    types=("address", "uint256", "bool", "bytes", "string", "bytes32", "uint8", "address[]", "uint256[]", "uint32"),
    max_args=4,
    wide_max_args=8,
)
EXPOSED_INTERNALS = Family(
    file="rules/internals.bin",
    names=("_mint", "_burn", "_transfer", "_approve", "_transferFrom", "_safeMint", "_safeTransfer",
           "_safeTransferFrom", "_burnFrom", "_spendAllowance", "_setOwner", "_transferOwnership",
           "_setApprovalForAll", "_update", "_beforeTokenTransfer", "_afterTokenTransfer", "_setBalance",
           "_grantRole", "_revokeRole", "_setupRole", "_setRoleAdmin", "_upgradeTo", "_upgradeToAndCall",
           "_setImplementation", "_changeAdmin", "_initialize", "_init", "_sendValue", "_mintTo", "_withdraw"),
    types=("address", "uint256", "bool", "bytes", "bytes32", "uint8", "string", "uint128", "address[]", "uint256[]"),
    max_args=3,
    wide_max_args=4,
)
FAMILIES = (INITIALIZERS, EXPOSED_INTERNALS)
FILE = INITIALIZERS.file


def signatures(family: Family = INITIALIZERS) -> Iterator[str]:
    """Every signature of ``family`` enumerated (see the module docstring); each at most once.

    >>> sigs = list(signatures())
    >>> "initialize(address)" in sigs and "init(uint256,uint256[],uint256[],address)" in sigs
    True
    >>> len(sigs) == len(set(sigs))
    True
    >>> "_burn(address,address,uint256)" in signatures(EXPOSED_INTERNALS)
    True
    """
    for name in family.names:
        for n in range(family.max_args + 1):
            for args in itertools.product(family.types, repeat=n):
                yield f"{name}({','.join(args)})"
        for n in range(family.max_args + 1, family.wide_max_args + 1):
            for args in itertools.product(family.wide_types, repeat=n):
                yield f"{name}({','.join(args)})"


def build(family: Family = INITIALIZERS) -> bytes:
    """The file's content: the selectors, sorted, 4 bytes each (keccak-256 of each signature)."""
    from eth_hash.auto import keccak

    return b"".join(sorted({keccak(sig.encode())[:4] for sig in signatures(family)}))


def load(family: Family = INITIALIZERS) -> frozenset[str]:
    """The selectors as the traces spell them (``0x`` and 8 lower-case hex digits)."""
    data = resources.files("detectors").joinpath(family.file).read_bytes()
    if len(data) % 4:
        raise ValueError(f"detectors/{family.file}: {len(data)} bytes is not a whole number of 4-byte selectors")
    return frozenset("0x" + data[i:i + 4].hex() for i in range(0, len(data), 4))


if __name__ == "__main__":  # pragma: no cover
    for fam in FAMILIES:
        target = resources.files("detectors").joinpath(fam.file)
        content = build(fam)
        with resources.as_file(target) as path:
            path.write_bytes(content)
        print(f"detectors/{fam.file}: {len(content) // 4} selectors")
