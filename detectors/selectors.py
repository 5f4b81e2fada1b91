"""What a 4-byte selector is: the function families the feature units recognise in call trees.

Each family is a named *kind* (:data:`KINDS`): the traversal (:mod:`.traversal`) tags every frame
with the kind of its selector, so a unit reads only the frames of the kinds it names. The kinds
are disjoint (checked at import), so a frame has at most one. The sets name the functions by
their standard signatures, not by address: they describe what a call does on any chain.
"""

from __future__ import annotations

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

KINDS: dict[str, frozenset[str]] = {
    "token_move": TOKEN_MOVES,
    "balance_of": frozenset({BALANCE_OF}),
    "approve": frozenset({APPROVE}),
    "wrap": frozenset({WRAP}),
    "unwrap": frozenset({UNWRAP}),
    "flash_loan": FLASH_SELECTORS,
    "v2_swap": frozenset({UNISWAP_V2_SWAP}),
    "takeover": TAKEOVER_SELECTORS,
    "lending": LENDING_SELECTORS - LIQUIDATION_SELECTORS,
    "liquidation": LIQUIDATION_SELECTORS,
    "oracle": ORACLE_SELECTORS,
    "allowance": frozenset({ALLOWANCE}),
    "governance": GOVERNANCE_SELECTORS,
    "callback": CALLBACK_SELECTORS - TOKEN_HOOKS - FLASH_SELECTORS,
    "reserve": RESERVE_SELECTORS,
    "vault": VAULT_SELECTORS,
    "nft_transfer": NFT_TRANSFER_SELECTORS,
    "internal": EXPOSED_INTERNAL_SELECTORS,
}
KIND_OF: dict[str, str] = {sel: kind for kind, sels in KINDS.items() for sel in sels}
assert len(KIND_OF) == sum(len(sels) for sels in KINDS.values()), "selector kinds overlap"


def add_kind(name: str, selectors: frozenset[str]) -> None:
    """Register a new kind (a unit's own family of functions); refused if it overlaps another."""
    if name in KINDS:
        raise ValueError(f"selector kind {name!r} is already registered")
    taken = sorted(s for s in selectors if s in KIND_OF)
    if taken:
        raise ValueError(f"selector {taken[0]} of kind {name!r} is already of kind {KIND_OF[taken[0]]!r}")
    KINDS[name] = frozenset(selectors)
    KIND_OF.update(dict.fromkeys(selectors, name))


ZERO_WORD = "0" * 64
MAX_UINT_WORD = "f" * 64
TOPIC_TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOPIC_APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
TOPIC_OWNERSHIP = "0x8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0"
TOPIC_UPGRADED = "0xbc7cd75a20ee27fd9adebab32041f755214dbc6bffa90cc0225b39da2e5c2d3b"
TOPIC_ADMIN = "0x7e644d79422f17c01e4894b5f4f588d331ebfa28653d42ae832dc59e38c9798f"
