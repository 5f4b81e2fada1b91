"""Chain data in: JSON-RPC client, block and mempool followers, replay sources, recorder, events.

The first stage of chainsentry. It depends on nothing else in the project; the detectors import
its event types. Everything here works without the rest of the service: a follower yields events
to any async consumer, a replay source is a plain iterator of blocks.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoint import ChainTracker, Checkpoint, CheckpointError, JsonCheckpoint, MemoryCheckpoint, TrackedBlock
    from .errors import UserError
    from .events import (
        Block,
        BlockAdded,
        BlockRetracted,
        CallFrame,
        ChainEvent,
        Log,
        PendingDropped,
        PendingIncluded,
        PendingReplaced,
        PendingSeen,
        PendingTx,
        Receipt,
        Tx,
    )
    from .fetch import TRACE_MODES, BlockFetcher, BlockNotFoundError, TraceMode
    from .follower import BlockFollower
    from .mappers import MappingError, block_from_rpc, map_block, tx_from_rpc
    from .mempool import MempoolFollower, PendingTracker
    from .metrics import IngestMetrics
    from .recorder import BlockRecorder, PendingRecorder, RecorderError
    from .replay import BlockSource, FileBlockSource, RpcRangeSource, SourceError, expand_sources, rpc_blocks
    from .rpc import (
        MalformedResponseError,
        MethodNotSupportedError,
        PermanentRpcError,
        RateLimitedError,
        RetryPolicy,
        RpcClient,
        RpcError,
        TransientRpcError,
    )
    from .wire import block_to_rpc, frames_from_parity

__all__ = [
    "TRACE_MODES",
    "Block",
    "BlockAdded",
    "BlockFetcher",
    "BlockFollower",
    "BlockNotFoundError",
    "BlockRecorder",
    "BlockRetracted",
    "BlockSource",
    "CallFrame",
    "ChainEvent",
    "ChainTracker",
    "Checkpoint",
    "CheckpointError",
    "FileBlockSource",
    "IngestMetrics",
    "JsonCheckpoint",
    "Log",
    "MalformedResponseError",
    "MappingError",
    "MemoryCheckpoint",
    "MempoolFollower",
    "MethodNotSupportedError",
    "PendingDropped",
    "PendingIncluded",
    "PendingRecorder",
    "PendingReplaced",
    "PendingSeen",
    "PendingTracker",
    "PendingTx",
    "PermanentRpcError",
    "RateLimitedError",
    "Receipt",
    "RecorderError",
    "RetryPolicy",
    "RpcClient",
    "RpcError",
    "RpcRangeSource",
    "SourceError",
    "TraceMode",
    "TrackedBlock",
    "TransientRpcError",
    "Tx",
    "UserError",
    "block_from_rpc",
    "block_to_rpc",
    "expand_sources",
    "frames_from_parity",
    "map_block",
    "rpc_blocks",
    "tx_from_rpc",
]

# Loaded on first use: `import ingest.errors` (the command line's start) does not load httpx,
# websockets or the mappers.
_SUBMODULES = ("errors", "events", "checkpoint", "metrics", "rpc", "mappers", "wire", "fetch", "follower",
               "mempool", "recorder", "replay")


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    for sub in _SUBMODULES:
        module = importlib.import_module(f".{sub}", __name__)
        if hasattr(module, name):
            globals()[name] = value = getattr(module, name)
            return value
    raise AttributeError(name)
