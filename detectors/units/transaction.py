"""Features of the transaction's own fields: value, calldata, creation, gas price and fee."""

from __future__ import annotations

from typing import Any

from ingest.events import Tx

from ..selectors import WEI
from .base import TxUnit

_CRAFTED_LEAD = frozenset("456789abcde")
_ZEROS, _FS = "0" * 56, "f" * 56


class Transaction(TxUnit):
    """``value_eth``: ETH sent; ``calldata_bytes``; ``is_create``: a contract creation;
    ``has_selector``: calldata starts with a 4-byte selector; ``overflow_words``: crafted amounts
    near 2^256 in the calldata (:func:`overflow_words`); ``gas_price_ratio``: the gas price against
    the block's median; ``fee_eth``: gas used times its price (with a receipt)."""

    names = ("value_eth", "calldata_bytes", "is_create", "has_selector", "overflow_words", "gas_price_ratio",
             "fee_eth")

    def compute(self, tx: Tx, block: Any, out: dict[str, float]) -> None:
        value, inp, gas_price, receipt = tx.value, tx.input, tx.gas_price, tx.receipt
        if value is not None:
            # value / 10**18, the same float: when the value is exactly a float (most are: round
            # amounts, or under 2**53 wei), dividing the two floats rounds the exact quotient once, as
            # Python's int division does, without its big-integer long division (~1,500 instructions)
            as_float = float(value)
            out["value_eth"] = as_float / 1e18 if as_float == value else value / WEI
        n = len(inp)
        out["calldata_bytes"] = float((n - 2) // 2)
        out["is_create"] = 1.0 if tx.to is None and tx.sender is not None else 0.0
        out["has_selector"] = 1.0 if n >= 10 else 0.0
        out["overflow_words"] = float(overflow_words(inp))
        if gas_price is not None and block is not None and block.median_gas_price:
            out["gas_price_ratio"] = gas_price / block.median_gas_price
        if receipt is not None and receipt.gas_used is not None and receipt.effective_gas_price is not None:
            out["fee_eth"] = receipt.gas_used * receipt.effective_gas_price / WEI


def overflow_words(data: str) -> int:
    """ABI words that look like overflow bait: crafted amounts near 2^256.

    A crafted amount is >= 2^254 and, after its leading digit, all ``0`` or all ``f`` but for the
    last two bytes (``0x8000...``, ``0x8fff...f``, ``0x7000...01``): numbers chosen so that a sum
    or a product wraps around. Random 32-byte words (hashes, signatures) are as large but have no
    such structure, left-aligned ``bytes4`` (selectors in routes) have several leading digits, and
    ``0xff...`` words are small negative numbers and max-uint allowances. Only ABI-encoded calldata
    (a selector then whole 32-byte words) of a call with few arguments (at most 16 words) is read:
    bait is an argument of one token function, while routers pack flags into the high bits of
    long route data.

    >>> overflow_words("0x83f12fec" + "0" * 62 + "40" + "8" + "0" * 63)
    1
    >>> overflow_words("0x83f12fec" + "9c4f" * 16 + "f" * 64)
    0
    """
    if (len(data) - 10) % 64 != 0 or len(data) > 10 + 16 * 64:
        return 0
    n = 0
    for i in range(10, len(data) - 63, 64):
        if data[i] in _CRAFTED_LEAD:
            body = data[i + 1 : i + 57]  # the digits after the leading one, bar the last two bytes
            if body in (_ZEROS, _FS):
                n += 1
    return n
