"""Contract ABIs for monitors: loaded from JSON (a file's list, or a compiler artifact's ``abi``),
or built in (:data:`BUILTIN`), indexed by selector and event topic, and decoded with eth-abi.

A function or event is named in a monitor by its name (``pause``) or its signature
(``withdraw(uint256)``, needed when a name is overloaded). Decoded values are plain JSON-like
values the expression language reads: integers, lower-case ``0x`` addresses, ``0x`` hex for bytes,
booleans, strings, and lists for arrays and tuples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak

ABI_DIR = Path(__file__).resolve().parent / "abis"
BUILTIN = tuple(sorted(p.stem for p in ABI_DIR.glob("*.json")))


class AbiError(ValueError):
    """An ABI that cannot be read, or a name it does not have."""


def _type(item: dict[str, Any]) -> str:
    t = str(item["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in item.get("components", ())) + ")" + t[len("tuple"):]
    return t


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    signature: str  # name(type,...)
    selector: str  # 0x + 8 hex
    names: tuple[str, ...]
    types: tuple[str, ...]

    def decode(self, calldata: str) -> dict[str, Any]:
        """The arguments of ``calldata`` (0x, selector first); raises :class:`AbiError`."""
        return _decode(self.names, self.types, calldata[10:], self.signature)


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    signature: str
    topic: str  # 0x + 64 hex
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...]

    def decode(self, topics: tuple[str, ...], data: str) -> dict[str, Any]:
        """The arguments of a log; an indexed dynamic value is its 32-byte hash, as the chain keeps it."""
        out: dict[str, Any] = {}
        plain = [(n, t) for n, t, ix in zip(self.names, self.types, self.indexed, strict=True) if not ix]
        out.update(_decode(tuple(n for n, _ in plain), tuple(t for _, t in plain), data[2:], self.signature))
        rest = list(topics[1:])
        for n, t, ix in zip(self.names, self.types, self.indexed, strict=True):
            if not ix:
                continue
            if not rest:
                raise AbiError(f"{self.signature}: fewer topics than indexed arguments")
            topic = rest.pop(0)
            dynamic = t in ("string", "bytes") or t.endswith("]") or t.startswith("(")
            out[n] = topic.lower() if dynamic else _decode((n,), (t,), topic[2:], self.signature)[n]
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return value.lower()
    return value


def _decode(names: tuple[str, ...], types: tuple[str, ...], hexdata: str, signature: str) -> dict[str, Any]:
    try:
        values = decode(list(types), bytes.fromhex(hexdata))
    except (DecodingError, ValueError, OverflowError) as err:
        raise AbiError(f"{signature}: cannot decode: {err}") from None
    return {n or f"arg{i}": _plain(v) for i, (n, v) in enumerate(zip(names, values, strict=True))}


class Abi:
    """The functions and events of one or more ABIs."""

    def __init__(self, items: Iterable[dict[str, Any]] = ()) -> None:
        self.functions: dict[str, Function] = {}  # selector -> function
        self.events: dict[str, Event] = {}  # topic -> event
        for item in items:
            self.add(item)

    def add(self, item: dict[str, Any]) -> None:
        kind = item.get("type", "function")
        if kind not in ("function", "event"):
            return
        try:
            inputs = item.get("inputs") or []
            types = tuple(_type(i) for i in inputs)
            names = tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs))
            name = str(item["name"])
        except (KeyError, TypeError, AttributeError) as err:
            raise AbiError(f"an ABI entry without a name or input type: {item!r:.120} ({err})") from None
        signature = f"{name}({','.join(types)})"
        digest = keccak(signature.encode())
        if kind == "function":
            self.functions["0x" + digest[:4].hex()] = Function(name, signature, "0x" + digest[:4].hex(), names, types)
        elif not item.get("anonymous"):
            indexed = tuple(bool(i.get("indexed")) for i in inputs)
            self.events["0x" + digest.hex()] = Event(name, signature, "0x" + digest.hex(), names, types, indexed)

    def merge(self, other: Abi) -> Abi:
        merged = Abi()
        merged.functions = {**self.functions, **other.functions}
        merged.events = {**self.events, **other.events}
        return merged

    def function(self, ref: str) -> Function:
        found: Function = _find(ref, list(self.functions.values()), "function")
        return found

    def event(self, ref: str) -> Event:
        found: Event = _find(ref, list(self.events.values()), "event")
        return found


def _find(ref: str, items: list[Any], kind: str) -> Any:
    ref = ref.replace(" ", "")
    hits = [i for i in items if ref in (i.signature, i.name)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = ", ".join(sorted({i.signature for i in items})) or "none"
        raise AbiError(f"no {kind} {ref!r} in the monitor's ABIs (known: {known})")
    raise AbiError(f"{kind} name {ref!r} is overloaded: give the signature, one of "
                   f"{', '.join(sorted(i.signature for i in hits))}")


def load_abi(ref: str, base: Path | None = None) -> Abi:
    """A built-in ABI by name (:data:`BUILTIN`) or a JSON file (a list of entries, or an object
    with ``abi``), relative to ``base``; raises :class:`AbiError` with the file named."""
    if ref in BUILTIN:
        path = ABI_DIR / f"{ref}.json"
    else:
        path = Path(ref).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.exists():
            raise AbiError(f"ABI {ref!r}: no such file, and not a built-in ({', '.join(BUILTIN)})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AbiError(f"ABI {path}: not readable JSON: {err}") from None
    items = data.get("abi") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise AbiError(f"ABI {path}: expected a list of ABI entries (or an object with 'abi')")
    try:
        return Abi(items)
    except AbiError as err:
        raise AbiError(f"ABI {path}: {err}") from None
