"""Replay sources: block-JSONL files (plain or gzip, files or directories) and RPC ranges, each a
:class:`BlockSource`, the one seam every replay loop reads.

Order is deterministic: files in the order given (a directory's ``*.jsonl`` / ``*.jsonl.gz`` files
sorted by name), lines in file order, so the same input always yields the same events. A line
that is not JSON or not a block is reported with its file and line number and skipped; the rest
of the file is read.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import orjson

from .errors import UserError
from .events import Block
from .fetch import BlockFetcher
from .mappers import MappingError, map_block, map_block_line

log = logging.getLogger(__name__)

BLOCK_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".json")


class SourceError(UserError):
    """A replay source that cannot be read at all (missing file, empty directory)."""


def is_block_file(path: Path) -> bool:
    return path.name.endswith(BLOCK_FILE_SUFFIXES)


def expand_sources(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files to read, in order: each file as given, each directory's block files sorted."""
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and is_block_file(f))
            if not found:
                raise SourceError(f"{p}: no .jsonl or .jsonl.gz files in this directory")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise SourceError(f"{p}: no such file or directory")
    return files


class BlockSource(Protocol):
    """Blocks in chain order, from anywhere (files, an RPC range, a Kafka topic): what a replay
    reads. ``position`` is (done, total) in the source's own unit (bytes of a file, blocks of a
    range; total None when unknown), for a progress bar."""

    def blocks(self) -> AsyncIterator[Block]: ...

    def position(self) -> tuple[float, float | None]: ...


@dataclass(slots=True)
class ReadStats:
    blocks: int = 0
    transactions: int = 0
    bad_lines: int = 0
    malformed_fields: int = 0
    skipped_blocks: int = 0


class FileBlockSource:
    """Blocks from block-JSONL files: a plain iterator of blocks, and a :class:`BlockSource`.

    ``done_bytes`` is the number of (compressed) bytes consumed so far (updated every 8 lines);
    ``total_bytes`` the sum of the files' sizes.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        first: int | None = None,
        last: int | None = None,
        on_error: Callable[[MappingError], None] | None = None,
    ) -> None:
        self.files = expand_sources(paths)
        self.first = first
        self.last = last
        self.stats = ReadStats()
        self._on_error = on_error
        self.total_bytes = sum(f.stat().st_size for f in self.files)
        self.done_bytes = 0

    async def blocks(self) -> AsyncIterator[Block]:
        for block in self:
            yield block

    def position(self) -> tuple[float, float | None]:
        return self.done_bytes, self.total_bytes

    def _report(self, err: MappingError) -> None:
        self.stats.malformed_fields += 1
        if self._on_error is not None:
            self._on_error(err)
        else:
            log.warning("%s", err)

    def __iter__(self) -> Iterator[Block]:
        """The blocks, in order. A compressed file that ends early or is corrupt raises
        :class:`SourceError` naming the file, the line and the byte where it breaks, after every
        block before that point has been yielded."""
        done = 0
        first, last, stats, report = self.first, self.last, self.stats, self._report
        for path in self.files:
            with open(path, "rb") as raw, contextlib.ExitStack() as retry:
                gz = _is_gzip(raw)
                # gzip's own line reader refills 8 KB at a time; one MB at a time costs ~20% less
                lines: Iterable[bytes] = io.BufferedReader(gzip.GzipFile(fileobj=raw), 1 << 20) if gz else raw
                source, seen, lineno = raw, 0, 0  # seen: lines already handled before a retry
                while True:
                    try:
                        for lineno, line in enumerate(lines, 1):  # one generator level: the hot loop
                            if lineno <= seen:
                                continue
                            if lineno % 8 == 0:
                                self.done_bytes = done + raw.tell()
                            if not line or line.isspace():  # a blank line
                                continue
                            try:
                                block = map_block_line(line, report)
                            except (orjson.JSONDecodeError, MappingError) as err:
                                self._bad_line(path, lineno, err)
                                continue
                            if (first is not None and block.number < first) or (
                                    last is not None and block.number > last):
                                stats.skipped_blocks += 1
                                continue
                            stats.blocks += 1
                            stats.transactions += len(block.transactions)
                            yield block
                        break
                    except (EOFError, OSError, zlib.error) as err:  # truncated or corrupt
                        if source is raw and gz:
                            # its reader had read ahead: the complete lines before the break are
                            # read again from there, a chunk at a time, then the break is reported
                            source = retry.enter_context(open(path, "rb"))
                            lines, seen = _gzip_lines(source), lineno
                            continue
                        raise SourceError(f"{path}: unreadable after line {lineno}, at compressed byte "
                                          f"{source.tell()} of {path.stat().st_size} ({err})") from None
                done += raw.tell()
                self.done_bytes = done

    def _bad_line(self, path: Path, lineno: int, err: Exception) -> None:
        self.stats.bad_lines += 1
        if isinstance(err, orjson.JSONDecodeError):
            log.warning("%s:%d: not JSON (%s); line skipped", path, lineno, err)
        else:
            log.warning("%s:%d: %s; line skipped", path, lineno, err)


def _gzip_lines(raw: IO[bytes], chunk: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a gzip stream (of one or more members, without their newlines), decompressed a megabyte at a time
    (gzip's own line reader refills 8 KB at a time, ~20% slower). A stream that ends early yields
    every complete line before the cut, then raises ``EOFError``; corrupt data raises ``zlib.error``."""
    unzip = zlib.decompressobj(wbits=31)
    fed = False  # whether the current member has begun
    partial: list[bytes] = []  # the pieces of a line not ended yet
    while data := raw.read(chunk):
        while data:
            text = unzip.decompress(data, chunk)  # at most a megabyte out at a time: kinder to the caches
            fed, data = True, unzip.unconsumed_tail
            if unzip.eof:  # a member ends; another may follow
                data = unzip.unused_data
                unzip, fed = zlib.decompressobj(wbits=31), False
            lines = text.split(b"\n")
            if len(lines) > 1 and partial:
                partial.append(lines[0])
                lines[0] = b"".join(partial)
                partial = []
            tail = lines.pop()
            if tail:
                partial.append(tail)
            yield from lines
    if fed:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
    if partial:
        yield b"".join(partial)


def _is_gzip(fh: IO[bytes]) -> bool:
    magic = fh.read(2)
    fh.seek(0)
    return magic == b"\x1f\x8b"


async def rpc_blocks(
    fetcher: BlockFetcher,
    first: int,
    last: int,
    *,
    batch_size: int = 20,
    on_error: Callable[[MappingError], None] | None = None,
) -> AsyncIterator[Block]:
    """Blocks ``first``..``last`` (inclusive) from a node, in order, fetched in batches."""
    if last < first:
        raise SourceError(f"--to {last} is below --from {first}")

    def report(err: MappingError) -> None:
        if on_error is not None:
            on_error(err)
        else:
            log.warning("%s", err)

    for start in range(first, last + 1, batch_size):
        numbers = range(start, min(last, start + batch_size - 1) + 1)
        for raw in await fetcher.fetch(numbers):
            yield map_block(raw, report)


class RpcRangeSource:
    """Blocks ``first``..``last`` (inclusive) from a node, as a :class:`BlockSource`."""

    def __init__(self, fetcher: BlockFetcher, first: int, last: int, *, batch_size: int = 20,
                 on_error: Callable[[MappingError], None] | None = None) -> None:
        if last < first:
            raise SourceError(f"--to {last} is below --from {first}")
        self.fetcher, self.first, self.last = fetcher, first, last
        self.batch_size, self.on_error = batch_size, on_error
        self.done = 0

    async def blocks(self) -> AsyncIterator[Block]:
        async for block in rpc_blocks(self.fetcher, self.first, self.last, batch_size=self.batch_size,
                                      on_error=self.on_error):
            self.done += 1
            yield block

    def position(self) -> tuple[float, float | None]:
        return self.done, self.last - self.first + 1
