"""Mappers: RPC JSON <-> events. Property tests for the round trip, real files, malformed input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import Block, CallFrame, Log, MappingError, Receipt, Tx, block_from_rpc, block_to_rpc, map_block
from ingest.mappers import frame_from_calltracer, map_block_line, quantity, tx_from_rpc
from ingest.wire import frames_from_parity, tx_to_rpc

hexes = st.integers(min_value=0, max_value=2**256 - 1)
small = st.integers(min_value=0, max_value=2**64 - 1)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
calldata = st.binary(max_size=100).map(lambda b: "0x" + b.hex())
opt = st.none().__or__


def frames(depth: int = 3) -> st.SearchStrategy[CallFrame]:
    leaf = st.builds(
        CallFrame,
        type=st.sampled_from(["CALL", "DELEGATECALL", "STATICCALL", "CREATE", "CREATE2", "SELFDESTRUCT"]),
        sender=addresses, to=opt(addresses), value=opt(hexes), input=calldata, gas=opt(small),
        gas_used=opt(small), output=opt(calldata), error=opt(st.sampled_from(["execution reverted", "out of gas"])),
        calls=st.just(()),
    )
    return st.recursive(
        leaf,
        lambda children: st.builds(
            CallFrame, type=st.just("CALL"), sender=addresses, to=opt(addresses), value=opt(hexes), input=calldata,
            calls=st.lists(children, max_size=3).map(tuple),
        ),
        max_leaves=8,
    )


logs = st.builds(Log, address=addresses, topics=st.lists(hashes, max_size=4).map(tuple), data=calldata,
                 log_index=opt(small), removed=st.booleans())


@st.composite
def txs(draw: Any, number: int) -> Tx:
    h = draw(hashes)
    receipt = draw(opt(st.builds(Receipt, tx_hash=st.just(h), status=opt(st.sampled_from([0, 1])),
                                 gas_used=opt(small), cumulative_gas_used=opt(small),
                                 effective_gas_price=opt(small), contract_address=opt(addresses),
                                 type=opt(st.sampled_from([0, 1, 2, 3])),
                                 logs=st.lists(logs, max_size=3).map(tuple))))
    return Tx(
        hash=h, sender=draw(opt(addresses)), to=draw(opt(addresses)), value=draw(opt(hexes)), input=draw(calldata),
        nonce=draw(opt(small)), gas=draw(opt(small)), type=draw(opt(st.sampled_from([0, 1, 2, 3, 4]))),
        gas_price=draw(opt(small)), max_fee_per_gas=draw(opt(small)), max_priority_fee_per_gas=draw(opt(small)),
        max_fee_per_blob_gas=draw(opt(small)), blob_versioned_hashes=tuple(draw(st.lists(hashes, max_size=2))),
        chain_id=draw(opt(small)), block_number=number, block_hash=draw(opt(hashes)), index=draw(opt(small)),
        receipt=receipt, trace=draw(opt(frames())),
    )


@st.composite
def blocks(draw: Any) -> Block:
    number = draw(small)
    body = draw(st.lists(txs(number), max_size=4, unique_by=lambda t: t.hash))
    return Block(
        number=number, hash=draw(opt(hashes)), parent_hash=draw(opt(hashes)), timestamp=draw(opt(small)),
        miner=draw(opt(addresses)), gas_limit=draw(opt(small)), gas_used=draw(opt(small)),
        base_fee_per_gas=draw(opt(small)), transactions=tuple(body),
    )


@settings(max_examples=150, deadline=None)
@given(blocks())
def test_block_round_trip_through_json(block: Block) -> None:
    """block_to_rpc then JSON then block_from_rpc gives the same block: record -> replay is exact."""
    wire = orjson.dumps(block_to_rpc(block))
    assert block_from_rpc(orjson.loads(wire)) == block


@settings(max_examples=150, deadline=None)
@given(frames())
def test_calltracer_frames_round_trip(frame: CallFrame) -> None:
    from ingest.wire import frame_to_calltracer

    assert frame_from_calltracer(json.loads(json.dumps(frame_to_calltracer(frame)))) == frame


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["value", "gas", "nonce", "gasPrice", "blockNumber"]),
       st.one_of(st.text(max_size=8).filter(lambda s: not s.startswith("0x")), st.floats(), st.lists(st.integers())))
def test_malformed_quantity_is_named_and_the_rest_kept(field: str, bad: Any) -> None:
    good = {"hash": "0x" + "ab" * 32, "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "0x10"}
    raw = {"number": "0x5", "transactions": [dict(good, **{field: bad}), dict(good, hash="0x" + "cd" * 32)]}
    errors: list[MappingError] = []
    block = map_block(raw, errors.append)
    assert len(block.transactions) == 2, "the malformed field must not cost the transaction"
    assert [e.field for e in errors] == [field]
    assert errors[0].block == 5 and errors[0].tx == "0x" + "ab" * 32
    assert getattr(block.transactions[0], {"value": "value", "gas": "gas", "nonce": "nonce", "gasPrice": "gas_price",
                                           "blockNumber": "block_number"}[field]) is None
    assert block.transactions[1].value == 16
    with pytest.raises(MappingError, match=field):
        block_from_rpc(raw)


def test_error_message_names_block_transaction_and_field() -> None:
    raw = {"number": "0x10", "transactions": [{"hash": "0x" + "ab" * 32, "value": "lots"}]}
    with pytest.raises(MappingError) as info:
        block_from_rpc(raw)
    msg = str(info.value)
    assert "'value'" in msg and "block 16" in msg and "0xabab" in msg and "'lots'" in msg


def test_missing_number_or_hash() -> None:
    with pytest.raises(MappingError, match="'number'"):
        map_block({"transactions": []}, lambda e: None)
    errors: list[MappingError] = []
    block = map_block({"number": "0x1", "transactions": [{"value": "0x1"}]}, errors.append)
    assert block.transactions == () and errors[0].field == "hash"


def test_absent_fields_are_none_not_zero() -> None:
    tx = tx_from_rpc({"hash": "0x" + "00" * 32})
    assert tx.value is None and tx.gas is None and tx.receipt is None and tx.input == "0x"
    assert tx_to_rpc(tx) == {"hash": "0x" + "00" * 32, "input": "0x"}


def test_bad_trace_or_receipt_keeps_the_transaction() -> None:
    h = "0x" + "ab" * 32
    raw = {"number": "0x1", "transactions": [{"hash": h, "value": "0x1"}],
           "receipts": [{"transactionHash": h, "status": "yes"}],
           "traces": [{"txHash": h, "result": {"type": "CALL", "from": "nope"}}]}
    errors: list[MappingError] = []
    block = map_block(raw, errors.append)
    assert block.transactions[0].value == 1
    assert block.transactions[0].receipt is None and block.transactions[0].trace is None
    assert sorted(e.field for e in errors) == ["receipt.status", "trace.from"]


def test_quantity_rules() -> None:
    assert quantity("0x0", "f") == 0 and quantity("0x", "f") == 0 and quantity(None, "f") is None
    for bad in ("0xzz", "10", -1, 1.5, True, "0x" + "f" * 65):
        with pytest.raises(MappingError):
            quantity(bad, "f")


def test_addresses_normalised_once() -> None:
    tx = tx_from_rpc({"hash": "0x" + "AB" * 32, "from": "0x" + "AbCd" * 10})
    assert tx.hash == "0x" + "ab" * 32 and tx.sender == "0x" + "abcd" * 10


def test_parity_traces_become_call_frames() -> None:
    h = "0x" + "11" * 32
    flat = [
        {"type": "call", "action": {"callType": "call", "from": "0x" + "01" * 20, "to": "0x" + "02" * 20,
                                    "value": "0x5", "input": "0xa9059cbb", "gas": "0x10"},
         "result": {"gasUsed": "0x8", "output": "0x"}, "traceAddress": [], "transactionHash": h, "subtraces": 2},
        {"type": "create", "action": {"from": "0x" + "02" * 20, "value": "0x0", "init": "0x6000", "gas": "0x1"},
         "result": {"address": "0x" + "03" * 20, "code": "0x00", "gasUsed": "0x1"}, "traceAddress": [0],
         "transactionHash": h},
        {"type": "call", "action": {"callType": "delegatecall", "from": "0x" + "02" * 20, "to": "0x" + "04" * 20,
                                    "input": "0x"}, "result": None, "error": "Reverted", "traceAddress": [1],
         "transactionHash": h},
        {"type": "suicide", "action": {"address": "0x" + "03" * 20, "refundAddress": "0x" + "05" * 20,
                                       "balance": "0x7"}, "traceAddress": [0, 0], "transactionHash": h},
        {"type": "reward", "action": {"author": "0x" + "06" * 20, "value": "0x1"}, "traceAddress": []},
    ]
    [entry] = frames_from_parity(flat)
    root = frame_from_calltracer(entry["result"])
    assert entry["txHash"] == h
    assert [f.type for f in root.walk()] == ["CALL", "CREATE", "SELFDESTRUCT", "DELEGATECALL"]
    assert root.calls[0].to == "0x" + "03" * 20 and root.calls[0].calls[0].value == 7
    assert root.calls[1].error == "execution reverted" and root.value == 5


def test_real_attack_file_maps_completely(data_dir: Path) -> None:
    total = traced = 0
    with gzip.open(data_dir / "attacks-dev.jsonl.gz", "rb") as fh:
        for line in fh:
            errors: list[MappingError] = []
            block = map_block(orjson.loads(line), errors.append)
            assert errors == []
            total += len(block.transactions)
            traced += sum(1 for t in block.transactions if t.trace is not None)
            again = block_from_rpc(orjson.loads(orjson.dumps(block_to_rpc(block))))
            assert again == block
    assert total == 2887 and traced == total


def test_real_mainnet_receipts_and_logs(data_dir: Path) -> None:
    with open(data_dir / "mainnet-17173049-17173050.jsonl", "rb") as fh:
        blocks_ = [block_from_rpc(orjson.loads(line)) for line in fh]
    assert [b.number for b in blocks_] == [17173049, 17173050]
    assert sum(len(b.transactions) for b in blocks_) == 298
    tx = blocks_[0].transactions[0]
    assert tx.receipt is not None and tx.receipt.logs and tx.type is not None
    assert blocks_[1].parent_hash == blocks_[0].hash
    assert all(t.receipt is not None for b in blocks_ for t in b.transactions)


def _both(raw: Any) -> tuple[Block, list[str], Block, list[str]]:
    line = orjson.dumps(raw)
    a_err: list[MappingError] = []
    b_err: list[MappingError] = []
    a = map_block(orjson.loads(line), a_err.append)
    b = map_block_line(line, b_err.append)
    return a, [str(e) for e in a_err], b, [str(e) for e in b_err]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["value", "gas", "nonce", "from", "to", "input", "hash", "blockHash", "gasPrice"]),
       st.one_of(st.none(), st.text(max_size=70), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                 st.lists(st.integers(0, 9), max_size=2)),
       st.sampled_from(["tx", "receipt", "trace", "log"]))
def test_the_typed_line_decoder_maps_and_reports_as_map_block(field: str, bad: Any, where: str) -> None:
    """The replay reader decodes lines straight into typed structs; whatever a line holds, the
    block and the errors reported must be those of ``map_block`` on the parsed line."""
    h = "0x" + "ab" * 32
    tx = {"hash": h, "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "0x10", "input": "0x1234"}
    receipt = {"transactionHash": h, "status": "0x1",
               "logs": [{"address": "0x" + "33" * 20, "topics": ["0x" + "44" * 32], "data": "0x"}]}
    frame = {"type": "CALL", "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "input": "0x1234", "value": "0x0",
             "calls": [{"type": "staticcall", "from": "0x" + "22" * 20, "to": "0x" + "55" * 20}]}
    if where == "tx":
        tx[field] = bad
    elif where == "receipt":
        receipt[{"value": "status", "gas": "gasUsed"}.get(field, field)] = bad
    elif where == "trace":
        frame[field] = bad
    else:
        receipt["logs"][0][{"value": "data", "hash": "topics"}.get(field, "address")] = bad  # type: ignore[index]
    raw = {"number": "0x7", "timestamp": "0x10", "transactions": [tx], "receipts": [receipt],
           "traces": [{"txHash": h, "result": frame}]}
    a, a_err, b, b_err = _both(raw)
    assert a == b and a_err == b_err


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["transactions", "receipts", "traces", "result", "calls", "logs", "topics", "header"]),
       _JSON)
def test_any_value_in_any_place_is_reported_never_a_crash(place: str, bad: Any) -> None:
    """A node replaced by any JSON value at all (an entry that is not an object, a list where an
    object belongs, ...): the block is mapped with what is well-formed, each problem reported;
    nothing but a MappingError for an unplaceable block ever leaves the mapper."""
    h = "0x" + "ab" * 32
    tx = {"hash": h, "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "0x10", "input": "0x1234"}
    log = {"address": "0x" + "33" * 20, "topics": ["0x" + "44" * 32], "data": "0x"}
    receipt = {"transactionHash": h, "status": "0x1", "logs": [log]}
    inner = {"type": "STATICCALL", "from": "0x" + "22" * 20, "to": "0x" + "55" * 20}
    frame = {"type": "CALL", "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "input": "0x1234", "value": "0x0",
             "calls": [inner]}
    trace = {"txHash": h, "result": frame}
    raw = {"number": "0x7", "timestamp": "0x10", "transactions": [tx], "receipts": [receipt], "traces": [trace]}
    if place in ("transactions", "receipts", "traces"):
        raw[place] = [bad, *raw[place]]  # type: ignore[list-item]
    elif place == "result":
        trace["result"] = bad
    elif place == "calls":
        frame["calls"] = [bad, inner]
    elif place == "logs":
        receipt["logs"] = [bad, log]
    elif place == "topics":
        log["topics"] = [bad]
    else:
        raw["timestamp"] = bad
    a, a_err, b, b_err = _both(raw)
    assert a == b and a_err == b_err
    assert a.number == 7
    assert [t.hash for t in a.transactions] == [h]  # the good transaction is kept
    # an object only lacking fields is not malformed (any field may be absent); a null topic is
    # read as an empty one, and a header quantity may come as a JSON number
    if not isinstance(bad, dict) and place != "header" and not (place == "topics" and bad is None):
        assert a_err, "a node that is not what belongs there must be reported"


def test_the_typed_line_decoder_reads_the_data_files_as_map_block(data_dir: Path) -> None:
    n = 0
    for name in ("attacks-dev.jsonl.gz", "mainnet-17173049-17173050.jsonl"):
        path = data_dir / name
        with (gzip.open(path, "rb") if name.endswith(".gz") else open(path, "rb")) as fh:
            for line in fh:
                assert map_block_line(line, pytest.fail) == map_block(orjson.loads(line), pytest.fail)
                n += 1
    assert n == 15
    with pytest.raises(orjson.JSONDecodeError):
        map_block_line(b"{not json", pytest.fail)
    hashes_only = orjson.dumps({"number": "0x1", "transactions": ["0x" + "ab" * 32]})
    errors: list[MappingError] = []
    assert map_block_line(hashes_only, errors.append).transactions == () and len(errors) == 1
