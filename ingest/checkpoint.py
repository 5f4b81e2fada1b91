"""The canonical-chain tracker and its checkpoint.

``ChainTracker`` remembers the last blocks emitted (number, hash, parent hash, transaction hashes)
so the follower can tell a reorg (a parent hash that is not ours, or our tip's hash gone from the
node) and say exactly which blocks to retract. ``JsonCheckpoint`` persists the tracker's recent
entries atomically (temporary file, fsync, rename, fsync of the directory), so a restart, even
after ``kill -9``, resumes after the last block whose processing was committed.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from .errors import UserError

CHECKPOINT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TrackedBlock:
    number: int
    hash: str
    parent_hash: str | None
    tx_hashes: tuple[str, ...] = ()


class ChainTracker:
    """The recent canonical chain as emitted; bounded to ``depth`` blocks.

    >>> t = ChainTracker(depth=2)
    >>> for n in range(3): t.push(TrackedBlock(n, f"h{n}", f"h{n-1}"))
    >>> [b.number for b in t.blocks()], t.last.hash
    ([1, 2], 'h2')
    >>> t.extends(TrackedBlock(3, "h3", "h2")), t.extends(TrackedBlock(3, "x3", "x2"))
    (True, False)
    """

    def __init__(self, depth: int = 128, blocks: Iterable[TrackedBlock] = ()) -> None:
        self.depth = depth
        self._blocks: deque[TrackedBlock] = deque(blocks, maxlen=depth)

    @property
    def last(self) -> TrackedBlock | None:
        return self._blocks[-1] if self._blocks else None

    def extends(self, block: TrackedBlock) -> bool:
        last = self.last
        if last is None:
            return True
        if block.parent_hash is None:
            return block.number == last.number + 1
        return block.parent_hash == last.hash

    def get(self, number: int) -> TrackedBlock | None:
        """The tracked block at ``number``, if it is still within the tracked window."""
        if not self._blocks:
            return None
        i = number - self._blocks[0].number
        if 0 <= i < len(self._blocks) and self._blocks[i].number == number:
            return self._blocks[i]
        return next((b for b in self._blocks if b.number == number), None)

    def push(self, block: TrackedBlock) -> None:
        self._blocks.append(block)

    def pop(self) -> TrackedBlock:
        return self._blocks.pop()

    def blocks(self) -> list[TrackedBlock]:
        return list(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)


class Checkpoint(Protocol):
    """Where the follower keeps its place."""

    def load(self) -> list[TrackedBlock]: ...

    def save(self, blocks: Sequence[TrackedBlock]) -> None: ...


class CheckpointError(UserError):
    """A checkpoint file that cannot be used (corrupt, another version, another chain)."""


class JsonCheckpoint:
    """A checkpoint in a small JSON file, written atomically.

    Keeps the last ``keep`` tracked blocks (numbers and hashes; transaction hashes are not
    persisted, to keep each write small).
    """

    def __init__(self, path: str | os.PathLike[str], *, chain_id: int | None = None, keep: int = 64) -> None:
        self.path = Path(path)
        self.chain_id = chain_id
        self.keep = keep

    def load(self) -> list[TrackedBlock]:
        """The saved blocks, oldest first; [] if there is no checkpoint. A checkpoint that exists
        but cannot say where to resume raises :class:`CheckpointError`: starting afresh would skip
        (or repeat) blocks, so that is left to the operator."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise CheckpointError(f"checkpoint {self.path} cannot be read: {err.strerror}") from None
        try:
            doc = orjson.loads(raw)
            version = doc["version"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            raise self._unusable(f"is unreadable ({err})") from None
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {self.path} has version {version}, this build reads {CHECKPOINT_VERSION}"
            )
        if self.chain_id is not None and doc.get("chain_id") not in (None, self.chain_id):
            raise CheckpointError(
                f"checkpoint {self.path} belongs to chain {doc.get('chain_id')}, the node is chain {self.chain_id}"
            )
        blocks = doc.get("blocks")
        if not isinstance(blocks, list) or not blocks:
            raise self._unusable("holds no blocks, so it cannot say where to resume")
        try:
            out = [_tracked(b) for b in blocks]
        except (KeyError, TypeError, ValueError) as err:
            raise self._unusable(f"holds a malformed block ({err})") from None
        if any(b.number != a.number + 1 for a, b in itertools.pairwise(out)):
            raise self._unusable("holds blocks out of sequence")
        return out

    def _unusable(self, why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.path} {why}; move it away to start from --start-block "
                               "(or the head), knowing blocks since it was written may be skipped")

    def save(self, blocks: Sequence[TrackedBlock]) -> None:
        doc = {
            "version": CHECKPOINT_VERSION,
            "chain_id": self.chain_id,
            "blocks": [
                {"number": b.number, "hash": b.hash, "parent_hash": b.parent_hash} for b in blocks[-self.keep :]
            ],
        }
        atomic_write(self.path, orjson.dumps(doc))


def _tracked(raw: object) -> TrackedBlock:
    if not isinstance(raw, dict):
        raise TypeError(f"{raw!r:.40} is not an object")
    number, block_hash, parent = raw["number"], raw["hash"], raw.get("parent_hash")
    if type(number) is not int or not 0 <= number < 2**63:
        raise ValueError(f"block number {number!r:.40}")
    for value in (block_hash, parent):
        if value is not None and not (isinstance(value, str) and len(value) == 66 and value.startswith("0x")):
            raise ValueError(f"block hash {value!r:.70}")
    return TrackedBlock(number, block_hash, parent)


def atomic_write(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so a crash leaves either the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old file, and no half-written temporary one
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class MemoryCheckpoint:
    """A checkpoint kept in memory (replays, tests, a run without a data directory)."""

    def __init__(self) -> None:
        self.blocks: list[TrackedBlock] = []

    def load(self) -> list[TrackedBlock]:
        return list(self.blocks)

    def save(self, blocks: Sequence[TrackedBlock]) -> None:
        self.blocks = list(blocks)
