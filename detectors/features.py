"""Transaction features: from the transaction, its call tree and its logs, in one pass.

Every feature is a float; a feature whose source is absent (no trace, no receipt, no gas fields)
is left out of the dict rather than set to 0, so "missing" never reads as a signal: detectors
use what a transaction has. Names are stable (they appear in explanations and scores).

The trace features describe shapes that exploits share across protocols and years, not
addresses: how much a single call sets in motion (frames, depth, contracts, repeated calls), who
re-enters whom (reentrancy), tokens moved and checked (transfer/balanceOf), value flowing to the
sender, contracts created and called within the same transaction, flash-loan shaped
borrow-and-repay, a bare 4-byte call that sets off a large tree (a pre-programmed attack
contract), overflow-sized amounts in calldata, and calls of initialisation or ownership
functions on contracts that were not created in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ingest.events import Block, CallFrame, Tx

from . import initializers

WEI = 10**18

# 4-byte selectors of the token functions every ERC20/721 shares
TRANSFER = "0xa9059cbb"
TRANSFER_FROM = "0x23b872dd"
APPROVE = "0x095ea7b3"
BALANCE_OF = "0x70a08231"
ALLOWANCE = "0xdd62ed3e"
TOKEN_MOVES = frozenset({TRANSFER, TRANSFER_FROM})
# wrapping and unwrapping native ETH (WETH-style deposit() / withdraw(uint256)): an exchange of
# equal amounts, not value gained or given up
WRAP = "0xd0e30db0"
UNWRAP = "0x2e1a7d4d"
# the ERC-20 surface (and allowance, totalSupply): a token re-entered for one of these is how
# fee-on-transfer tokens sell their fees and token proxies work, not a re-entry of a victim
TOKEN_FUNCTIONS = frozenset({TRANSFER, TRANSFER_FROM, APPROVE, BALANCE_OF, ALLOWANCE, "0x18160ddd"})
# flash-loan entry points of the common lenders (ERC-3156, Aave v1/v2/v3, dYdX, Balancer,
# Uniswap v2 swap with callback data, Uniswap v3 flash, Euler, DODO, Morpho Blue, Sushi BentoBox)
FLASH_SELECTORS = frozenset({
    "0x5cffe9de", "0xab9c4b5d", "0x42b0b77c", "0x5c38449e", "0xa67a6a45", "0x490e6cbc", "0xa1d48336",
    "0x1b11d0ff", "0xd9d98ce4",
    "0xd0a494e4",  # flashLoan(uint256,uint256,address,bytes) (DODO pools)
    "0xe0232b42",  # flashLoan(address,uint256,bytes) (Morpho Blue)
    "0xf1676d37",  # flashLoan(address,address,address,uint256,bytes) (BentoBox)
    "0xf483b3da",  # batchFlashLoan(address,address[],address[],uint256[],bytes) (BentoBox)
})
UNISWAP_V2_SWAP = "0x022c0d9f"
# callbacks a protocol makes into its caller by design (swap and flash-loan callbacks, token
# hooks): calling back through them is how those protocols work, not a re-entry. With token hooks
# an attack re-enters the victim from the hook, and that next call still counts.
CALLBACK_SELECTORS = frozenset({
    "0x10d1e85c",  # uniswapV2Call
    "0xfa461e33",  # uniswapV3SwapCallback
    "0xe9cbafb0",  # uniswapV3FlashCallback
    "0xd3487997",  # uniswapV3MintCallback
    "0x84800812",  # pancakeCall
    "0x920f5c84",  # executeOperation (Aave v2 flash loan)
    "0x1b11d0ff",  # executeOperation (Aave v3 simple flash loan)
    "0x23e30c8b",  # onFlashLoan (ERC-3156)
    "0xf04f2707",  # receiveFlashLoan (Balancer)
    "0x8b418713",  # callFunction (dYdX)
    "0xeb2021c3",  # DVMFlashLoanCall (DODO)
    "0x7ed1f1dd",  # DPPFlashLoanCall (DODO)
    "0xd5b99797",  # DSPFlashLoanCall (DODO)
    "0x31f57072",  # onMorphoFlashLoan (Morpho Blue)
    "0x2075be03",  # onMorphoSupply (Morpho Blue: supply, repay, collateral and liquidation callbacks)
    "0x05b4591c",  # onMorphoRepay
    "0xb1022fdf",  # onMorphoSupplyCollateral
    "0xcf7ea196",  # onMorphoLiquidate
    "0xd9d17623",  # onBatchFlashLoan (BentoBox)
    "0x91dd7346",  # unlockCallback (Uniswap v4)
    "0x2c8958f6",  # algebraSwapCallback
    "0x23a69e75",  # pancakeV3SwapCallback
    "0x0023de29",  # tokensReceived (ERC-777)
    "0x150b7a02",  # onERC721Received
    "0xf23a6e61",  # onERC1155Received
    "0xbc197c81",  # onERC1155BatchReceived
})
# the swap and flash-loan callbacks above (not the token hooks, which tokens make on transfers),
# and the functions whose callee calls its caller back with one of them: a pool's swap or mint, a
# lender's flash loan, Uniswap v4's unlock. A callback that does not come from one of these, into a
# contract that is not itself waiting on the call stack, is forged: a contract's callback called
# directly to make it pay (ParaSwap's and MEV bots' uniswapV3SwapCallback, uniswapV2Call)
TOKEN_HOOKS = frozenset({"0x0023de29", "0x150b7a02", "0xf23a6e61", "0xbc197c81"})
CALLBACK_PROVIDERS = FLASH_SELECTORS | frozenset({
    UNISWAP_V2_SWAP,
    "0x128acb08",  # swap(address,bool,int256,uint160,bytes) (Uniswap v3 and its forks)
    "0x3c8a7d8d",  # mint(address,int24,int24,uint128,bytes) (Uniswap v3)
    "0x48c89491",  # unlock(bytes) (Uniswap v4)
    # Morpho Blue's supply, repay, supplyCollateral and liquidate (with callback data)
    "0xa99aad89", "0x20b76e81", "0x238d6579", "0xd8eabcb8",
})
# share-vault entry and exit points (ERC-4626, and deposit(uint256) of older vaults): with the
# lending markets' mint/redeem, where a donation (tokens sent outright, not deposited) inflates the
# price of a share
VAULT_SELECTORS = frozenset({
    "0x6e553f65",  # deposit(uint256,address)
    "0x94bf804d",  # mint(uint256,address)
    "0xba087652",  # redeem(uint256,address,address)
    "0xb460af94",  # withdraw(uint256,address,address)
    "0xb6b55f25",  # deposit(uint256)
})
# NFT transfers (ERC-721 and ERC-1155 safe transfers; an ERC-721 transferFrom reads as a token
# move): what a holder whose tokens were pulled may have been paid with (an accepted NFT bid)
NFT_TRANSFER_SELECTORS = frozenset({
    "0x42842e0e",  # safeTransferFrom(address,address,uint256)
    "0xb88d4fde",  # safeTransferFrom(address,address,uint256,bytes)
    "0xf242432a",  # safeTransferFrom(address,address,uint256,uint256,bytes) (ERC-1155)
    "0x2eb2c2d6",  # safeBatchTransferFrom(address,address,uint256[],uint256[],bytes) (ERC-1155)
})
# a Uniswap v2 pair's reserves skimmed or re-synced to its balances: a token's balance moved
# under its pair (burnt from it, donated to it) and the pair made to account for it
RESERVE_SELECTORS = frozenset({
    "0xbc25cf77",  # skim(address)
    "0xfff6cae9",  # sync()
})
# initialisation and ownership functions that an outsider should not call on a live contract:
# every init/initialize/initialise signature enumerated by .initializers, and these
TAKEOVER_SELECTORS = initializers.load() | frozenset({
    "0xe46dcfeb",  # initWallet(address[],uint256,uint256)
    "0xa6f9dae1",  # changeOwner(address)
    "0x8f283970",  # changeAdmin(address)
    "0xcbf0b0c0",  # kill(address)
    "0xf2fde38b",  # transferOwnership(address)
    "0x13af4035",  # setOwner(address)
    "0x3659cfe6",  # upgradeTo(address)
    "0x4f1ef286",  # upgradeToAndCall(address,bytes)
    "0x704b6c02",  # setAdmin(address)
})
# functions named as internal (a leading underscore: _mint, _burn, _transfer, _setOwner, ...) that a
# contract exposes by mistake, enumerated by .initializers: anyone may mint, burn, move or take
# (one 4-byte collision with an initialiser is left to the takeover list)
EXPOSED_INTERNAL_SELECTORS = initializers.load(initializers.EXPOSED_INTERNALS) - TAKEOVER_SELECTORS
# the precompiled contracts (ecrecover, sha256, ripemd160, identity, modexp, the pairing curve ops,
# blake2f, the KZG point evaluation): Vyper copies memory through the identity precompile (0x04),
# so its input is whatever bytes were copied, a token transfer's calldata included. Such a call is
# not a call of the function its first 4 bytes name
PRECOMPILES = frozenset(f"0x{i:040x}" for i in range(1, 11))
# how a multisig or a timelock executes what its owners decided: a takeover call the root contract
# makes under one of these is the contract's administration at work (a Safe's owners handing over
# ownership, a timelock's queued upgrade), not an outsider's takeover
ADMIN_EXEC_SELECTORS = frozenset({
    "0x6a761202",  # execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes) (Safe)
    "0x0825f38f",  # executeTransaction(address,uint256,string,bytes,uint256) (Compound Timelock)
    "0x134008d3",  # execute(address,uint256,bytes,bytes32,bytes32) (OpenZeppelin TimelockController)
    "0xe38335e5",  # executeBatch(address[],uint256[],bytes[],bytes32,bytes32) (OpenZeppelin TimelockController)
})
# lending-market actions (Compound-style cTokens, Aave pools) and price-oracle reads: borrowing
# against a price read inside the same transaction is the shape of oracle manipulation
LENDING_SELECTORS = frozenset({
    "0xc5ebeaec",  # borrow(uint256)
    "0xa0712d68",  # mint(uint256)
    "0x1249c58b",  # mint() (cEther)
    "0xdb006a75",  # redeem(uint256)
    "0x852a12e3",  # redeemUnderlying(uint256)
    "0x0e752702",  # repayBorrow(uint256)
    "0x4e4d9fea",  # repayBorrow() (cEther)
    "0xf5e3c462",  # liquidateBorrow(address,uint256,address)
    "0xe8eda9df",  # deposit(address,uint256,address,uint16) (Aave)
    "0x69328dec",  # withdraw(address,uint256,address) (Aave)
    "0xa415bcad",  # borrow(address,uint256,uint256,uint16,address) (Aave)
    "0x573ade81",  # repay(address,uint256,uint256,address) (Aave)
    "0x617ba037",  # supply(address,uint256,address,uint16) (Aave v3)
    "0xf2b9fdb8",  # supply(address,uint256) (Compound v3)
    "0x0ecbcdab",  # borrow(uint256,uint256) (Euler)
    "0x50d8cd4b",  # borrow(MarketParams,uint256,uint256,address,address) (Morpho Blue)
    "0x238d6579",  # supplyCollateral(MarketParams,uint256,address,bytes) (Morpho Blue)
})
# liquidations: a liquidator repays a borrower's debt and takes collateral at a discount, often
# with a flash loan and oracle reads, so it has the shape of a price-manipulation exploit and is
# the commonest ordinary one (mev-inspect classifies Aave and Compound liquidations as MEV). Only
# the long-standing public entry points are listed: a new protocol's own liquidate() stays unknown.
LIQUIDATION_SELECTORS = frozenset({
    "0x00a718a9",  # liquidationCall(address,address,address,uint256,bool) (Aave v1-v3)
    "0xf5e3c462",  # liquidateBorrow(address,uint256,address) (Compound cToken; also a lending call)
    "0xaae40a2a",  # liquidateBorrow(address,address) (Compound cEther)
    "0x45cf2230",  # bite(bytes32,address) (Maker Cat)
    "0xed998908",  # bark(bytes32,address,address) (Maker Dog)
    "0x2f865568",  # liquidate(address) (Liquity)
    "0x1e8b1c2b",  # batchLiquidateTroves(address[]) (Liquity)
    "0x653d46e7",  # liquidateTroves(uint256) (Liquity)
})
ORACLE_SELECTORS = frozenset({
    "0x41976e09",  # getPrice(address)
    "0x50d25bcd",  # latestAnswer()
    "0xfc57d4df",  # getUnderlyingPrice(address)
    "0xfeaf968c",  # latestRoundData()
    "0x9d1b464a",  # currentPrice()
    "0xb3596f07",  # getAssetPrice(address)
    "0xbb7b8b80",  # get_virtual_price() (Curve LP tokens priced by their pool: read-only re-entry)
    "0x883bdbfd",  # observe(uint32[]) (Uniswap v3 TWAP)
    "0x99530b06",  # pricePerShare() (Yearn-style vault shares)
    "0x77c7b8fc",  # getPricePerFullShare()
    "0x59e02dd7",  # peek() (Maker medianizer / OSM)
    "0x57de26a4",  # read()
})
# governance: votes, proposals, their execution, and voting power delegated (Compound Governor
# Alpha/Bravo, OpenZeppelin Governor, Aave v2 governance, Beanstalk's commit). Ordinary on their
# own; inside a flash loan they are the flash-loan governance attack (borrowed voting power)
GOVERNANCE_SELECTORS = frozenset({
    "0x56781388",  # castVote(uint256,uint8)
    "0x15373e3d",  # castVote(uint256,bool) (Governor Alpha)
    "0x7b3c71d3",  # castVoteWithReason(uint256,uint8,string)
    "0x3bccf4fd",  # castVoteBySig(uint256,uint8,uint8,bytes32,bytes32)
    "0x5f398a14",  # castVoteWithReasonAndParams(uint256,uint8,string,bytes)
    "0xda95691a",  # propose(address[],uint256[],string[],bytes[],string) (Governor Bravo)
    "0x7d5e81e2",  # propose(address[],uint256[],bytes[],string) (OpenZeppelin Governor)
    "0xfe0d94c1",  # execute(uint256) (Governor Bravo)
    "0xddf0b009",  # queue(uint256)
    "0x2656227d",  # execute(address[],uint256[],bytes[],bytes32) (OpenZeppelin Governor)
    "0x160cbed7",  # queue(address[],uint256[],bytes[],bytes32)
    "0x5c19a95c",  # delegate(address) (voting power)
    "0xc9d27afe",  # vote(uint256,bool)
    "0x612c56fa",  # submitVote(uint256,bool) (Aave v2)
    "0x73015684",  # emergencyCommit(uint32) (Beanstalk)
    "0xed081329",  # vote(address[]) (DSChief: Maker-style governance)
    "0xa69beaba",  # vote(bytes32) (DSChief)
    "0x3c278bd5",  # lift(address) (DSChief: the voted spell made the authority)
})
# ... of which these carry out what was decided: a vote, a proposal or voting power taken and a
# decision executed in one transaction is governance without its delay (a takeover by votes)
GOVERNANCE_EXEC_SELECTORS = frozenset({
    "0xfe0d94c1", "0xddf0b009", "0x2656227d", "0x160cbed7", "0x73015684", "0x3c278bd5",
})
# public no-argument entry points of protocols: keeper and maintenance jobs (vault harvests,
# rebases, interest accrual), reward claims and payable deposits. Anyone calls them, and they can
# set off a large call tree (a harvest claims, swaps and redeposits), but such a call is the
# protocol's own routine, not a contract pre-programmed to attack: bare_call_tree ignores them.
PUBLIC_NOARG_SELECTORS = frozenset({
    "0x4641257d",  # harvest()
    "0xd389800f",  # earn()
    "0x440368a3",  # tend()
    "0x322e9f04",  # work() (keeper jobs)
    "0x4fa5d854",  # doHardWork()
    "0xf69e2046",  # compound()
    "0xfdb5a03e",  # reinvest()
    "0x7d7c2a1c",  # rebalance()
    "0xaf14052c",  # rebase()
    "0x18178358",  # poke()
    "0xa6afed95",  # accrueInterest() (Compound)
    "0xc2c4c5c1",  # checkpoint() (vote-escrow, gauges)
    "0x4e71d92d",  # claim()
    "0x3d18b912",  # getReward() (staking rewards)
    "0x372500ab",  # claimRewards()
    "0xe9fad8ee",  # exit() (staking rewards: withdraw and claim)
    "0x1249c58b",  # mint() (cEther, and free mints)
    "0x4e4d9fea",  # repayBorrow() (cEther)
    "0xd0e30db0",  # deposit() (WETH and payable vaults)
})
NOT_REENTRY = CALLBACK_SELECTORS | TOKEN_FUNCTIONS
# one lookup per frame: what a selector is (the sets above are disjoint, checked here)
(_MOVE, _BALANCE, _APPROVE, _WRAP, _UNWRAP, _FLASH, _V2_SWAP, _TAKEOVER, _LENDING, _ORACLE, _ALLOWANCE,
 _LIQUIDATE, _GOVERN, _CALLBACK, _RESERVE, _VAULT, _NFT, _INTERNAL) = range(18)
_KINDS: tuple[tuple[int, frozenset[str]], ...] = (
    (_MOVE, TOKEN_MOVES), (_BALANCE, frozenset({BALANCE_OF})), (_APPROVE, frozenset({APPROVE})),
    (_WRAP, frozenset({WRAP})), (_UNWRAP, frozenset({UNWRAP})), (_FLASH, FLASH_SELECTORS),
    (_V2_SWAP, frozenset({UNISWAP_V2_SWAP})), (_TAKEOVER, TAKEOVER_SELECTORS),
    (_LENDING, LENDING_SELECTORS - LIQUIDATION_SELECTORS), (_LIQUIDATE, LIQUIDATION_SELECTORS),
    (_ORACLE, ORACLE_SELECTORS), (_ALLOWANCE, frozenset({ALLOWANCE})), (_GOVERN, GOVERNANCE_SELECTORS),
    (_CALLBACK, CALLBACK_SELECTORS - TOKEN_HOOKS - FLASH_SELECTORS), (_RESERVE, RESERVE_SELECTORS),
    (_VAULT, VAULT_SELECTORS), (_NFT, NFT_TRANSFER_SELECTORS), (_INTERNAL, EXPOSED_INTERNAL_SELECTORS),
)
_SELECTOR_KIND: dict[str, int] = {sel: code for code, sels in _KINDS for sel in sels}
assert len(_SELECTOR_KIND) == sum(len(sels) for _, sels in _KINDS), "selector sets overlap"
_ZERO_WORD = "0" * 64
TOPIC_TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOPIC_APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
TOPIC_OWNERSHIP = "0x8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0"
TOPIC_UPGRADED = "0xbc7cd75a20ee27fd9adebab32041f755214dbc6bffa90cc0225b39da2e5c2d3b"
TOPIC_ADMIN = "0x7e644d79422f17c01e4894b5f4f588d331ebfa28653d42ae832dc59e38c9798f"
MAX_UINT_WORD = "f" * 64

FEATURES: tuple[str, ...] = (
    # transaction
    "value_eth", "calldata_bytes", "is_create", "has_selector", "gas_price_ratio", "fee_eth",
    # call tree
    "frames", "depth", "contracts", "delegatecalls", "creates", "selfdestructs", "staticcalls",
    "value_calls", "failed_frames", "max_repeat", "reentries", "calls_into_created", "token_moves",
    "tokens_touched", "balance_checks", "approvals", "eth_to_sender", "flash_calls", "borrow_repay",
    "bare_call_tree", "takeover_calls", "lending_calls", "oracle_reads",
    # calls of the public liquidation entry points of the large lending protocols
    "liquidation_calls",
    # governance calls (votes, proposals, execution, delegation) made in the transaction
    "governance_calls",
    # functions named as internal (_mint, _burn, _transfer, _setOwner, ...) called on a live contract
    "internal_calls",
    # governance voted (or proposed, or voting power delegated) and executed in one transaction
    "vote_and_execute",
    # price reads (ORACLE_SELECTORS) of a contract whose own call is still on the stack, by a third
    # party: read-only re-entrancy (a pool's virtual price read while it is mid-withdrawal)
    "reentrant_price_reads",
    # calldata words
    "overflow_words",
    # logs
    "logs", "transfer_events", "unlimited_approvals", "ownership_events", "upgrade_events",
    # novelty, from per-entity state (detectors.online.EntityState), when the stream is warm
    "contract_calls_before", "selector_new_on_contract", "selector_seen_before", "sender_txs_before",
    "contract_callers_before", "frames_z_on_contract",
    # the sender's wallet profile: age in the stream, and whether it was funded by a contract
    "sender_age_days", "sender_funded_by_contract",
    # the called contract's creation, when the stream saw it: by this sender? how long ago?
    "to_created_by_sender", "to_age_hours",
    # third-party token pulls: transferFrom of someone who is neither the sender nor the caller,
    # and how many such holders had their whole balance (as just read with balanceOf) pulled: a drainer;
    # allowances that third parties granted, read (who approved what: looking for funds to pull)
    "third_party_pulls", "drained_holders", "third_party_allowances",
    # third-party pulls made by a contract, to someone else, with calldata the sender wrote: the
    # whole transferFrom call, word for word, inside the transaction's input (an arbitrary-call
    # flaw: a router or proxy executes whatever call it is handed, with the approvals users gave it)
    "injected_pulls",
    # third parties whose tokens a contract outside the originator's side pulled (transferFrom, with
    # the approvals they gave that contract) to someone other than itself, and who received nothing
    # (no token, ETH or NFT) in the transaction: a contract made to spend its users' approvals for
    # someone else (a swap, an order fill, an accepted bid pays the holder; a contract pulling to
    # itself is a deposit, paid in shares minted out of sight; a drain through an arbitrary call or
    # an unchecked `from` pays nothing)
    "unpaid_pulls",
    # swap and flash-loan callbacks called directly: not by the pool or lender that was just called
    # with a swap or a loan, nor into a contract waiting on the stack for one (a contract's callback
    # forged to make it pay)
    "forged_callbacks",
    # allowances granted to the originator's side (approve with a nonzero amount) by a contract
    # outside it: a contract made to approve its holdings to whoever asks
    "granted_approvals",
    # Uniswap v2 pairs skimmed or synced (reserves re-read from balances moved under them)
    "reserve_syncs",
    # lending markets and share vaults that the originator's contracts both entered or left (mint,
    # redeem, deposit, withdraw, borrow) and sent tokens to outright with transfer: a donation
    # inflating the price of a share (empty-market and vault-inflation attacks)
    "vault_donations",
    # the originator's contract called by a third party with a function of its own (no token
    # function, standard callback or hook; not a pool's or lender's callback, not from inside a
    # token's transfer) whose address was an argument of the call that third party was making, when
    # the transaction does not start with a token function: a victim calling code whose address it
    # was handed (a fake vault, market, pool or owner)
    "foreign_callins",
    # the originator's own contract called as a token (transfer/transferFrom/approve) by a third
    # party, when the transaction itself did not call a token function: a counterfeit token fed
    # to a victim that trusts whatever token address it is given
    "counterfeit_token_calls",
    # value flow of the originator (the sender, the contract it called, contracts created in the
    # transaction): assets it ended with more of (by at least half of what came in), assets it
    # ended with less of, and the gained ones when none was given up (value taken, not traded)
    "assets_gained", "assets_lost", "free_gain",
    # ETH sent to the block's producer from inside the call tree: the bribe of an MEV bundle
    # (searchers pay the builder directly); known for mined blocks only
    "pays_block_producer",
)


def log1p(x: float) -> float:
    return math.log1p(x) if x > 0 else 0.0


_CRAFTED_LEAD = frozenset("456789abcde")
_ZEROS, _FS = "0" * 56, "f" * 56


def _calldata_overflow_words(data: str) -> int:
    """ABI words that look like overflow bait: crafted amounts near 2^256.

    A crafted amount is >= 2^254 and, after its leading digit, all ``0`` or all ``f`` but for the
    last two bytes (``0x8000...``, ``0x8fff...f``, ``0x7000...01``): numbers chosen so that a sum
    or a product wraps around. Random 32-byte words (hashes, signatures) are as large but have no
    such structure, left-aligned ``bytes4`` (selectors in routes) have several leading digits, and
    ``0xff...`` words are small negative numbers and max-uint allowances. Only ABI-encoded calldata
    (a selector then whole 32-byte words) of a call with few arguments (at most 16 words) is read:
    bait is an argument of one token function, while routers pack flags into the high bits of
    long route data.

    >>> _calldata_overflow_words("0x83f12fec" + "0" * 62 + "40" + "8" + "0" * 63)
    1
    >>> _calldata_overflow_words("0x83f12fec" + "9c4f" * 16 + "f" * 64)
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


def trace_features(tx: Tx, frame: CallFrame, out: dict[str, float], producer: str | None = None) -> None:
    """Call-tree features of ``tx`` into ``out`` (one pass over the frames); ``producer``: the
    block's producer, when known (ETH paid to it is counted)."""
    frames = depth_max = delegate = creates = selfdestructs = statics = value_calls = failed = 0
    token_moves = balance_checks = approvals = flash = reentries = into_created = takeover = pulls = 0
    lending = oracle = allowances = counterfeit = paid_producer = liquidations = injected = governance = 0
    stale_reads = 0
    forged = granted = reserve_syncs = callins = gov_exec = internal = 0
    sent_out: set[str] = set()  # who the originator's contracts sent tokens to with transfer
    entered: set[str | None] = set()  # lending markets and vaults the originator's contracts called
    foreign_pulled: set[str] = set()  # third parties whose tokens a contract outside the originator pulled
    nft_to: list[str] = []  # recipients of NFTs
    # a transaction that calls a token function itself is a token's own business (fee tokens
    # swapping their fees have routers call them back); otherwise, the originator's contracts
    # being called as a token by a third party is a counterfeit token at work
    fake_watch = len(tx.input) >= 10 and tx.input[:10] not in TOKEN_FUNCTIONS
    admin_root = tx.input[:10].lower() in ADMIN_EXEC_SELECTORS  # a multisig or timelock executing
    eth_to_sender = 0
    balances_read: dict[tuple[str | None, str], str] = {}  # (token, holder) -> balanceOf output just read
    drained: set[str] = set()  # third parties whose whole balance, just read, was pulled with transferFrom
    sender = tx.sender
    repeats: dict[tuple[str | None, str], int] = {}
    contracts: set[str | None] = set()
    tokens: set[str | None] = set()
    created: set[str | None] = set()
    root_to = frame.to
    mine: set[str | None] = {sender, root_to}  # the originator: the sender, the contract it called, contracts created
    received_from: dict[tuple[str | None, str], int] = {}  # (token, counterparty) -> times tokens came in
    borrow_repay = 0
    moves: list[tuple[str | None, str | None, str | None, int]] = []  # (asset, from, to, amount); ETH is None
    # iterative DFS with the stack of (frame, depth, callers on the path, the selector and input of
    # the call the calling contract was given: through a proxy's or library's delegatecall, the call
    # into the contract whose context it runs in)
    stack: list[tuple[CallFrame, int, frozenset[str | None], str | None, str]] = [
        (frame, 0, frozenset((sender,)), None, "")]
    while stack:
        f, d, path, caller_sel, caller_input = stack.pop()
        frames += 1
        if d > depth_max:
            depth_max = d
        kind = f.type
        to = f.to
        contracts.add(to)
        if kind == "DELEGATECALL":
            delegate += 1
        elif kind == "STATICCALL":
            statics += 1
        elif kind == "CREATE" or kind == "CREATE2":
            creates += 1
            created.add(to)
            mine.add(to)
        elif kind == "SELFDESTRUCT" and f.value:
            selfdestructs += 1  # destroyed holding funds (gas tokens self-destruct empty by the dozen)
        if f.error is not None:
            failed += 1
        v = f.value
        ok = kind == "CALL" and f.error is None
        if v:
            value_calls += 1
            if to == producer and f.error is None:
                paid_producer += 1
            if to == sender and d > 0:
                eth_to_sender += v
            if ok or (kind in ("CREATE", "CREATE2") and f.error is None):
                moves.append((None, f.sender, to, v))
        if to in created and d > 0 and kind != "CREATE" and kind != "CREATE2":
            into_created += 1
        inp = f.input
        if len(inp) < 10 or to in PRECOMPILES:  # (a precompile's input is data, not a function call)
            sel = None
        else:
            sel = inp[:10]
            key = (to, sel)
            repeats[key] = repeats.get(key, 0) + 1
            # re-entry: a function call into a third-party contract still on the stack. A bare ETH
            # send back to the caller (WETH.withdraw paying a bot), a callback into the
            # transaction's own contract (flash-swap callbacks into the bot), a contract calling its
            # own functions (``this.f()``) and a token re-entered for a token function
            # (fee-on-transfer tokens) are how ordinary contracts work.
            if (kind == "CALL" and d > 0 and to in path and to != root_to and to != sender and to != f.sender
                    and sel not in NOT_REENTRY):
                reentries += 1
            code = _SELECTOR_KIND.get(sel)
            if fake_watch and to in mine and d > 0 and kind == "CALL" and to != sender and f.sender not in mine:
                if code in (_MOVE, _APPROVE):
                    counterfeit += 1  # the originator's contract called as a token by a third party
                elif (sel not in CALLBACK_SELECTORS and sel not in TOKEN_FUNCTIONS
                      and caller_sel not in CALLBACK_PROVIDERS and caller_sel not in TOKEN_FUNCTIONS
                      and to is not None and to[2:] in caller_input):
                    callins += 1  # ... or with a function of its own, by a contract handed its address
            if code is None:
                pass
            elif code == _MOVE:
                token_moves += 1
                tokens.add(to)
                # transfer(to, amount): tokens leave f.sender; transferFrom(from, to, amount)
                if sel == TRANSFER:
                    dest = "0x" + inp[34:74]
                    src = f.sender
                    amount = inp[74:138]
                    if ok and src in mine:
                        sent_out.add(dest)
                else:
                    src = "0x" + inp[34:74]
                    dest = "0x" + inp[98:138]
                    amount = inp[138:202]
                if ok and len(amount) == 64:  # a call that went through (a proxy's delegatecall repeats it)
                    try:
                        amt = int(amount, 16)
                    except ValueError:
                        amt = 0
                    else:
                        moves.append((to, src, dest, amt))
                    if src not in mine and src != f.sender and src != dest:
                        pulls += 1
                        if amt and f.sender not in mine and dest != f.sender:  # (a deposit pulls to itself)
                            foreign_pulled.add(src)
                        # the selector and its three words (a router may append data of its own)
                        if d > 0 and dest != f.sender and inp[2:202] in frame.input:
                            injected += 1  # (a contract pulling for itself, as a Safe collecting a payment, is not)
                        read = balances_read.get((to, src))
                        if read is not None and read[2:].lstrip("0") == amount.lstrip("0") and read[2:].strip("0"):
                            drained.add(src)
                if dest in (root_to, sender):
                    received_from[(to, src)] = received_from.get((to, src), 0) + 1
                elif (src in (root_to, sender)) and received_from.get((to, dest)):
                    borrow_repay += 1  # the same token went back to whom it came from
            elif code == _BALANCE:
                balance_checks += 1
                tokens.add(to)
                if f.output is not None and len(inp) >= 74:
                    balances_read[(to, "0x" + inp[34:74])] = f.output
            elif code == _APPROVE:
                approvals += 1
                # approve(spender, amount): a contract outside the originator's side granting it an allowance
                if (ok and f.sender not in mine and len(inp) >= 138 and "0x" + inp[34:74] in mine
                        and inp[74:138] != _ZERO_WORD):
                    granted += 1
            elif code == _WRAP:
                if ok and v:
                    moves.append((to, to, f.sender, v))  # wrapped tokens minted for the ETH sent
            elif code == _UNWRAP:
                if ok and len(inp) >= 74:
                    try:  # noqa: SIM105
                        moves.append((to, f.sender, to, int(inp[10:74], 16)))  # wrapped tokens burnt for ETH
                    except ValueError:
                        pass
            elif code == _FLASH:
                flash += 1
            elif code == _V2_SWAP:
                if len(inp) > 330 and inp[266:330] != _ZERO_WORD:  # a swap with callback data: a flash swap
                    flash += 1
            elif code in (_TAKEOVER, _INTERNAL):
                # a live contract's initialiser, ownership or internal-named function called (a proxy's
                # delegatecall repeats it; what a multisig or timelock executes is administration)
                if kind == "CALL" and to not in created and not (admin_root and f.sender == root_to):
                    if code == _TAKEOVER:
                        takeover += 1
                    else:
                        internal += 1
                elif code == _TAKEOVER and kind == "DELEGATECALL" and sel != caller_sel and f.sender not in created:
                    takeover += 1  # a contract made to run a foreign initialiser on its own storage
            elif code == _LENDING:
                lending += 1
                if ok and f.sender in mine:
                    entered.add(to)
            elif code == _LIQUIDATE:
                if kind == "CALL":  # (a proxy's delegatecall repeats it)
                    liquidations += 1
                if sel in LENDING_SELECTORS:
                    lending += 1
            elif code == _VAULT:
                if ok and f.sender in mine:
                    entered.add(to)
            elif code == _NFT:
                if ok and len(inp) >= 138:
                    nft_to.append("0x" + inp[98:138])
            elif code == _ORACLE:
                oracle += 1
                if to in path and to != f.sender:  # a price read of a contract still mid-call
                    stale_reads += 1
            elif code == _GOVERN:
                if kind == "CALL":  # (a proxy's delegatecall repeats it)
                    governance += 1
                    if sel in GOVERNANCE_EXEC_SELECTORS:
                        gov_exec += 1
            elif code == _CALLBACK:
                # called by the sender itself, or neither from a swap or flash loan nor into a contract
                # waiting on the stack for it
                if kind == "CALL" and (d == 0 or (to not in path and caller_sel not in CALLBACK_PROVIDERS)):
                    forged += 1
            elif code == _RESERVE:
                if kind == "CALL":
                    reserve_syncs += 1
            elif len(inp) >= 74:  # allowance(owner, spender): whose approvals are read?
                owner = "0x" + inp[34:74]
                if owner not in mine and owner != f.sender:
                    allowances += 1
        if f.calls:
            if kind == "DELEGATECALL":  # code run in the caller's context: its calls are the caller's,
                child_path, child_sel, child_input = path, caller_sel, caller_input  # made in the call it was given
            else:
                child_path, child_sel, child_input = path | {to}, sel, inp
            for c in reversed(f.calls):
                stack.append((c, d + 1, child_path, child_sel, child_input))
    out["frames"] = float(frames)
    out["depth"] = float(depth_max)
    out["contracts"] = float(len(contracts))
    out["delegatecalls"] = float(delegate)
    out["creates"] = float(creates)
    out["selfdestructs"] = float(selfdestructs)
    out["staticcalls"] = float(statics)
    out["value_calls"] = float(value_calls)
    out["failed_frames"] = float(failed)
    out["max_repeat"] = float(max(repeats.values(), default=0))
    out["reentries"] = float(reentries)
    out["calls_into_created"] = float(into_created)
    out["token_moves"] = float(token_moves)
    out["tokens_touched"] = float(len(tokens))
    out["balance_checks"] = float(balance_checks)
    out["approvals"] = float(approvals)
    out["eth_to_sender"] = eth_to_sender / WEI
    out["flash_calls"] = float(flash)
    out["borrow_repay"] = float(borrow_repay)
    out["takeover_calls"] = float(takeover)
    out["third_party_pulls"] = float(pulls)
    out["drained_holders"] = float(len(drained))
    out["third_party_allowances"] = float(allowances)
    out["injected_pulls"] = float(injected)
    out["counterfeit_token_calls"] = float(counterfeit)
    out["lending_calls"] = float(lending)
    out["liquidation_calls"] = float(liquidations)
    out["governance_calls"] = float(governance)
    if foreign_pulled:  # ... and who received nothing at all in the transaction: pulls with nothing in return
        foreign_pulled.difference_update([dest for _, _, dest, amount in moves if amount])
        foreign_pulled.difference_update(nft_to)
    out["unpaid_pulls"] = float(len(foreign_pulled))
    out["forged_callbacks"] = float(forged)
    out["granted_approvals"] = float(granted)
    out["reserve_syncs"] = float(reserve_syncs)
    out["foreign_callins"] = float(callins)
    out["internal_calls"] = float(internal)
    out["vote_and_execute"] = 1.0 if gov_exec and governance > gov_exec else 0.0
    out["vault_donations"] = float(len(sent_out.intersection(entered))) if sent_out and entered else 0.0
    gained, lost = _value_flow(moves, mine)
    out["assets_gained"] = float(gained)
    out["assets_lost"] = float(lost)
    out["free_gain"] = float(gained) if gained and not lost else 0.0
    out["oracle_reads"] = float(oracle)
    out["reentrant_price_reads"] = float(stale_reads)
    if producer is not None and value_calls:
        out["pays_block_producer"] = float(paid_producer)
    # a call with no arguments that sets off a large tree: a contract pre-programmed to attack
    # (not a protocol's public routine: a harvest, a claim)
    calldata = (len(tx.input) - 2) // 2
    out["bare_call_tree"] = (
        float(frames) if calldata == 4 and frames > 1 and tx.input[:10].lower() not in PUBLIC_NOARG_SELECTORS else 0.0
    )


def _value_flow(moves: list[tuple[str | None, str | None, str | None, int]],
                me: set[str | None]) -> tuple[int, int]:
    """(assets gained, assets lost) by ``me`` over ``moves`` (asset, from, to, amount); ETH is None.

    Tokens are read from transfer/transferFrom calldata; a WETH-style deposit() or withdraw(x)
    adds the wrapped tokens minted or burnt (which move without a transfer call). An asset is
    gained when what came in exceeds what went out by at least half of what came in (an arbitrage
    keeps a sliver of what it turned over; a drain keeps most of it), lost when more went out
    than came in.

    >>> me = {"0xa"}
    >>> _value_flow([("0xt", "0xv", "0xa", 100)], me)
    (1, 0)
    >>> _value_flow([("0xt", "0xa", "0xp", 100), ("0xt", "0xp", "0xa", 101)], me)  # arbitrage
    (0, 0)
    >>> _value_flow([("0xt", "0xa", "0xp", 9), ("0xu", "0xp", "0xa", 5)], me)  # a swap
    (1, 1)
    """
    flow: dict[str | None, list[int]] = {}
    for asset, src, dest, amount in moves:
        if not amount or (src in me) == (dest in me):
            continue
        io = flow.get(asset)
        if io is None:
            io = flow[asset] = [0, 0]
        io[0 if dest in me else 1] += amount
    gained = lost = 0
    for came, went in flow.values():
        if came - went >= came / 2 and came > went:
            gained += 1
        elif went > came:
            lost += 1
    return gained, lost


def log_features(tx: Tx, out: dict[str, float]) -> None:
    receipt = tx.receipt
    if receipt is None or not receipt.logs:
        return  # no logs: nothing to count (zero counts carry no evidence, and no model reads them)
    transfers = unlimited = ownership = upgrades = 0
    for lg in receipt.logs:
        if not lg.topics:
            continue
        t0 = lg.topics[0]
        if t0 == TOPIC_TRANSFER:
            transfers += 1
        elif t0 == TOPIC_APPROVAL:
            if lg.data[-64:] == MAX_UINT_WORD:
                unlimited += 1
        elif t0 == TOPIC_OWNERSHIP:
            ownership += 1
        elif t0 in (TOPIC_UPGRADED, TOPIC_ADMIN):
            upgrades += 1
    out["logs"] = float(len(receipt.logs))
    out["transfer_events"] = float(transfers)
    out["unlimited_approvals"] = float(unlimited)
    out["ownership_events"] = float(ownership)
    out["upgrade_events"] = float(upgrades)


class BlockContext:
    """What a transaction is compared with in its block: the median gas price, and the block's
    producer (its fee recipient, ``miner``) when the block is known (not for pending transactions)."""

    __slots__ = ("median_gas_price", "producer")

    def __init__(self, txs: Iterable[Tx], producer: str | None = None) -> None:
        prices = [t.gas_price for t in txs if t.gas_price]
        if len(prices) > 1:
            prices.sort()
        self.median_gas_price = prices[len(prices) // 2] if prices else None
        self.producer = producer

    @classmethod
    def of(cls, block: Block) -> BlockContext:
        return cls(block.transactions, block.miner)


def tx_features(tx: Tx, ctx: BlockContext | None = None) -> dict[str, float]:
    """All features the transaction's data allows (see module docstring).

    >>> f = tx_features(Tx(hash="0x1", sender="0xa", to="0xb", value=2 * WEI, input="0xa9059cbb" + "0" * 128))
    >>> f["value_eth"], f["calldata_bytes"], "frames" in f
    (2.0, 68.0, False)
    """
    out: dict[str, float] = {}
    value, inp, trace, gas_price, receipt = tx.value, tx.input, tx.trace, tx.gas_price, tx.receipt
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
    out["overflow_words"] = float(_calldata_overflow_words(inp))
    if gas_price is not None and ctx is not None and ctx.median_gas_price:
        out["gas_price_ratio"] = gas_price / ctx.median_gas_price
    if receipt is not None and receipt.gas_used is not None and receipt.effective_gas_price is not None:
        out["fee_eth"] = receipt.gas_used * receipt.effective_gas_price / WEI
    if trace is not None:
        trace_features(tx, trace, out, ctx.producer if ctx is not None else None)
    log_features(tx, out)
    return out
