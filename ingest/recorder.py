"""The recorder: what ingest sees, written as block JSONL that replays to the same events.

The output file is its own checkpoint. Each block is one line, written with ``block_to_rpc`` and
flushed (and fsync'ed unless told otherwise) before the next is fetched; on start the recorder
reads the file's tail, cuts off a partial last line (a ``kill -9`` mid-write), and resumes after
the last complete block, so a restart neither skips nor repeats a block. A reorg truncates the
file back to before the retracted blocks, so the file holds exactly the canonical chain.

Pending transactions go to a separate JSONL file: ``{"first_seen": unix seconds, "tx": {...}}``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import orjson

from .checkpoint import TrackedBlock
from .errors import UserError
from .events import Block, PendingTx
from .wire import block_to_rpc, tx_to_rpc

log = logging.getLogger(__name__)


class RecorderError(UserError):
    """The output file cannot be used (compressed output for --follow, another range...)."""


class BlockRecorder:
    """Appends blocks to a block-JSONL file; also the follower's checkpoint (see module doc)."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, keep: int = 256) -> None:
        self.path = Path(path)
        if self.path.name.endswith(".gz"):
            raise RecorderError(f"{self.path}: the recorder writes plain .jsonl (compress it afterwards)")
        self.fsync = fsync
        self.keep = keep
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._offsets: list[tuple[TrackedBlock, int]] = []  # (block, file offset of its line)
        self._recover()
        self._fh: IO[bytes] | None = None  # opened at the first write: no empty file for a failed start
        self.written = 0

    def _file(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        return self._fh

    def _recover(self) -> None:
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        tail_start = 0
        with open(self.path, "rb") as fh:
            # read the last ~keep lines: scan back in chunks until enough newlines
            chunk = 1 << 20
            pos = size
            data = b""
            while pos > 0 and data.count(b"\n") <= self.keep:
                step = min(chunk, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
            tail_start = pos
        complete_end = data.rfind(b"\n") + 1
        if tail_start + complete_end < size:
            log.warning(
                "%s: cutting a partial last line (%d bytes) left by an interrupted write",
                self.path, size - tail_start - complete_end,
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(tail_start + complete_end)
        lines = data[:complete_end].split(b"\n")
        offset = tail_start
        if tail_start > 0:  # the first line of the window may be partial: skip it
            first_nl = data.find(b"\n")
            offset += first_nl + 1
            lines = data[first_nl + 1 : complete_end].split(b"\n")
        for line in lines:
            if not line:
                continue
            try:
                doc = orjson.loads(line)
                tb = TrackedBlock(
                    int(doc["number"], 16),
                    doc.get("hash") or "",
                    doc.get("parentHash"),
                    tuple(t["hash"] for t in doc.get("transactions", ())),
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise RecorderError(f"{self.path}: a line near byte {offset} is not a block ({err})") from None
            self._offsets.append((tb, offset))
            offset += len(line) + 1
        self._offsets = self._offsets[-self.keep :]

    # -- Checkpoint protocol ---------------------------------------------------------------

    def load(self) -> list[TrackedBlock]:
        return [tb for tb, _ in self._offsets]

    def save(self, blocks: Sequence[TrackedBlock]) -> None:
        """Nothing to do: each block is durable once written."""

    # -- writing ---------------------------------------------------------------------------

    @property
    def last(self) -> TrackedBlock | None:
        return self._offsets[-1][0] if self._offsets else None

    def write(self, block: Block) -> None:
        fh = self._file()
        offset = fh.tell()
        fh.write(orjson.dumps(block_to_rpc(block)) + b"\n")
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())
        tb = TrackedBlock(block.number, block.hash or "", block.parent_hash, tuple(t.hash for t in block.transactions))
        self._offsets.append((tb, offset))
        if len(self._offsets) > 2 * self.keep:
            self._offsets = self._offsets[-self.keep :]
        self.written += 1

    def retract(self, number: int, block_hash: str) -> None:
        """Remove the block ``number`` (and anything after it) from the file."""
        for i in range(len(self._offsets) - 1, -1, -1):
            tb, offset = self._offsets[i]
            if tb.number == number and tb.hash == block_hash:
                fh = self._file()
                fh.flush()
                fh.truncate(offset)
                fh.seek(offset)
                if self.fsync:
                    os.fsync(fh.fileno())
                del self._offsets[i:]
                return
        log.error("cannot retract block %d (%s): not among the last recorded blocks", number, block_hash)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


class PendingRecorder:
    """Appends pending transactions with their first-seen time to a JSONL file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] | None = None  # opened at the first write
        self.written = 0

    def write(self, ptx: PendingTx) -> None:
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._fh.write(orjson.dumps({"first_seen": ptx.first_seen, "tx": tx_to_rpc(ptx.tx)}) + b"\n")
        self._fh.flush()
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
