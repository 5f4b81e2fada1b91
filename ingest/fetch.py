"""Fetch blocks from a node in the block-JSONL shape: full transactions, receipts and traces.

One JSON-RPC batch per step for a range of blocks: headers with transactions, then receipts
(``eth_getBlockReceipts``, falling back to ``eth_getTransactionReceipt`` per transaction when
the node lacks it), then call traces by the configured mode:

* ``parity``: ``trace_block``, converted to callTracer frames (fast on anvil, Erigon, Reth);
* ``debug``: ``debug_traceBlockByNumber`` with callTracer (geth; slow on big blocks);
* ``auto``: the first of parity, debug the node answers, probed once; else none;
* ``off``: no traces.

The output is plain dicts, exactly what the recorder writes and what ``mappers.map_block`` reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

from .mappers import MappingError, quantity
from .rpc import MalformedResponseError, MethodNotSupportedError, PermanentRpcError, RpcClient
from .wire import frames_from_parity

log = logging.getLogger(__name__)

TraceMode = Literal["auto", "debug", "parity", "off"]
TRACE_MODES: tuple[str, ...] = ("auto", "debug", "parity", "off")


class BlockNotFoundError(PermanentRpcError):
    """The node has no block at that number (yet)."""


class BlockFetcher:
    """Fetches ranges of blocks with receipts and traces as block-JSONL dicts."""

    def __init__(
        self, rpc: RpcClient, *, traces: TraceMode = "auto", receipts: bool = True, concurrency: int = 4
    ) -> None:
        if traces not in TRACE_MODES:
            raise ValueError(f"traces must be one of {', '.join(TRACE_MODES)}, not {traces!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.rpc = rpc
        self.trace_mode: str = traces
        self.receipts = receipts
        self.concurrency = concurrency
        self._block_receipts = True  # until the node says it lacks eth_getBlockReceipts

    async def head(self) -> int:
        return _int(await self.rpc.call("eth_blockNumber"), "eth_blockNumber")

    async def header(self, number: int) -> dict[str, Any] | None:
        """The block at ``number`` without transactions (for reorg checks), or None.

        Raises :class:`MalformedResponseError` (retried) for an answer that is not that block."""
        result = await self.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if result is None:
            return None
        check_block(number, result)
        return result  # type: ignore[no-any-return]

    async def fetch(self, numbers: Sequence[int]) -> list[dict[str, Any]]:
        """The blocks at ``numbers``, in order, each with ``receipts`` and ``traces`` as configured.

        Blocks, receipts and traces are requested concurrently, the blocks split into up to
        ``concurrency`` parallel batches: nodes answer one batch sequentially, and a block with
        full transactions is the slowest of the three to build (on anvil, ~40 ms for 200 txs).
        Raises :class:`BlockNotFoundError` if the node has no block at one of the numbers.
        """
        numbers = list(numbers)
        if not numbers:
            return []
        if self.trace_mode == "auto":
            await self._probe_traces(numbers[0])
        want_receipts = self.receipts and self._block_receipts
        want_traces = self.trace_mode != "off"
        jobs: list[Any] = [self._blocks(numbers)]
        if want_receipts:
            jobs.append(self.rpc.batch([("eth_getBlockReceipts", [hex(n)]) for n in numbers]))
        if want_traces:
            jobs.append(self._traces(numbers))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, MethodNotSupportedError):
                raise res
        blocks = results[0]
        if isinstance(blocks, BaseException):
            raise blocks
        if want_receipts:
            receipts = results[1]
            if isinstance(receipts, MethodNotSupportedError):
                log.info("node lacks eth_getBlockReceipts; fetching receipts per transaction")
                self._block_receipts = False
            elif not isinstance(receipts, BaseException):
                for block, rs in zip(blocks, receipts, strict=True):
                    if block.get("transactions"):
                        block["receipts"] = rs if isinstance(rs, list) else []
        if self.receipts and not self._block_receipts:
            await self._receipts_per_tx(blocks)
        if want_traces:
            traces = results[-1]
            if isinstance(traces, BaseException):
                raise traces
            for block, tr in zip(blocks, traces, strict=True):
                if block.get("transactions"):
                    block["traces"] = tr
        return list(blocks)

    async def _blocks(self, numbers: list[int]) -> list[dict[str, Any]]:
        size = max(1, -(-len(numbers) // self.concurrency))
        chunks = [numbers[i : i + size] for i in range(0, len(numbers), size)]
        parts = await asyncio.gather(
            *(self.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in chunk]) for chunk in chunks)
        )
        blocks = [b for part in parts for b in part]
        for n, block in zip(numbers, blocks, strict=True):
            if block is None:
                raise BlockNotFoundError(f"no block {n} at the node", method="eth_getBlockByNumber")
            check_block(n, block)
        return blocks

    async def _traces(self, numbers: list[int]) -> list[list[dict[str, Any]]]:
        if self.trace_mode == "parity":
            results = await self.rpc.batch([("trace_block", [hex(n)]) for n in numbers])
            return [frames_from_parity(flat if isinstance(flat, list) else []) for flat in results]
        opts = {"tracer": "callTracer"}
        results = await self.rpc.batch([("debug_traceBlockByNumber", [hex(n), opts]) for n in numbers])
        return [r or [] for r in results]  # anything but a list is reported by the mapper

    async def _receipts_per_tx(self, blocks: list[dict[str, Any]]) -> None:
        with_txs = [b for b in blocks if b.get("transactions")]
        calls = [("eth_getTransactionReceipt", [tx["hash"]]) for b in with_txs for tx in b["transactions"]]
        flat = iter(await self.rpc.batch(calls))
        for block in with_txs:
            block["receipts"] = [r for r in (next(flat) for _ in block["transactions"]) if isinstance(r, dict)]

    async def _probe_traces(self, number: int) -> None:
        for mode, method, params in (
            ("parity", "trace_block", [hex(number)]),
            ("debug", "debug_traceBlockByNumber", [hex(number), {"tracer": "callTracer"}]),
        ):
            try:
                await self.rpc.call(method, params)
            except (MethodNotSupportedError, PermanentRpcError) as err:
                log.info("traces: %s not usable here (%s)", method, err)
                continue
            self.trace_mode = mode
            log.info("traces: using %s (%s)", mode, method)
            return
        log.warning("traces: the node offers neither trace_block nor debug_traceBlockByNumber; traces off")
        self.trace_mode = "off"


def check_block(number: int, block: object) -> None:
    """Refuse an ``eth_getBlockByNumber`` answer that is not block ``number``: another number, or
    a hash or parent hash that is not 32 bytes of hex. Such an answer is retried, never used: a
    wrong number would put a block in another's place, a bad hash would look like a reorg."""
    def bad(what: str) -> MalformedResponseError:
        return MalformedResponseError(f"asked for block {number}, the node answered {what}",
                                      method="eth_getBlockByNumber")

    if not isinstance(block, dict):
        raise bad(f"{block!r:.60}")
    got = block.get("number")
    try:
        same = got == hex(number) or (isinstance(got, str) and quantity(got, "number") == number)
    except MappingError:
        same = False
    if not same:
        raise bad(f"block number {got!r:.70}")
    for key in ("hash", "parentHash"):
        value = block.get(key)
        if not (isinstance(value, str) and len(value) == 66 and value.startswith("0x") and _is_hex(value[2:])):
            raise bad(f"{key} {value!r:.70}")


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _int(value: object, what: str) -> int:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise MalformedResponseError(f"{what} answered {value!r:.60}, not a hex quantity", method=what)
