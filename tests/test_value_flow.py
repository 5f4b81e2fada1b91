"""Value-flow features, re-entry exceptions, overflow bait and capped evidence groups, on call trees
built by hand: what an analyst would check when reading a trace."""

from __future__ import annotations

import pytest

from detectors.features import tx_features
from detectors.rules import RuleError, load_rules, parse_rules
from ingest import CallFrame, Tx

EOA, BOT, POOL, VICTIM, TOKEN, OTHER, WETH = ("0x" + c * 40 for c in "1234567")


def word(x: int | str) -> str:
    return (x[2:] if isinstance(x, str) else f"{x:x}").rjust(64, "0")


def transfer(token: str, src: str, dest: str, amount: int) -> CallFrame:
    return CallFrame(type="CALL", sender=src, to=token, input="0xa9059cbb" + word(dest) + word(amount))


def pull(token: str, caller: str, src: str, dest: str, amount: int) -> CallFrame:
    return CallFrame(type="CALL", sender=caller, to=token, input="0x23b872dd" + word(src) + word(dest) + word(amount))


def features(*calls: CallFrame, input: str = "0x12345678") -> dict[str, float]:
    root = CallFrame(type="CALL", sender=EOA, to=BOT, input=input, calls=calls)
    return tx_features(Tx(hash="0x01", sender=EOA, to=BOT, value=0, input=input, trace=root))


def test_assets_taken_with_nothing_given_up_is_a_free_gain() -> None:
    drain = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xdeadbeef",
                      calls=(transfer(TOKEN, VICTIM, BOT, 10**24),))
    f = features(drain)
    assert (f["assets_gained"], f["assets_lost"], f["free_gain"]) == (1.0, 0.0, 1.0)


def test_an_arbitrage_cycle_keeps_a_sliver_and_gains_nothing() -> None:
    # the bot pays 100 tokens into a pool, gets 90 of another, trades them back for 101 elsewhere
    legs = (transfer(TOKEN, BOT, POOL, 100), transfer(OTHER, POOL, BOT, 90),
            transfer(OTHER, BOT, VICTIM, 90), transfer(TOKEN, VICTIM, BOT, 101))
    f = features(*legs)
    assert (f["assets_gained"], f["assets_lost"], f["free_gain"]) == (0.0, 0.0, 0.0)


def test_a_swap_gives_one_asset_for_another() -> None:
    f = features(pull(TOKEN, POOL, BOT, POOL, 100), transfer(OTHER, POOL, EOA, 50))
    assert (f["assets_gained"], f["assets_lost"], f["free_gain"]) == (1.0, 1.0, 0.0)


def test_unwrapping_is_an_exchange_not_a_loss() -> None:
    # WETH taken from a victim, unwrapped (WETH burnt, ETH paid back), part of the ETH paid to a helper
    unwrap = CallFrame(type="CALL", sender=BOT, to=WETH, input="0x2e1a7d4d" + word(300),
                       calls=(CallFrame(type="CALL", sender=WETH, to=BOT, value=300),))
    fee = CallFrame(type="CALL", sender=BOT, to=OTHER, value=30)
    f = features(pull(WETH, BOT, VICTIM, BOT, 300), unwrap, fee)
    assert (f["assets_gained"], f["assets_lost"], f["free_gain"]) == (1.0, 0.0, 1.0)  # ETH: +300 -30


def test_reverted_transfers_move_nothing() -> None:
    failed = CallFrame(type="CALL", sender=VICTIM, to=TOKEN, input="0xa9059cbb" + word(BOT) + word(5),
                       error="execution reverted")
    assert features(failed)["assets_gained"] == 0.0


def test_self_calls_and_token_functions_are_not_reentries() -> None:
    own = CallFrame(type="CALL", sender=VICTIM, to=VICTIM, input="0xb3af37c0")  # this.f() inside VICTIM
    fee_token = CallFrame(type="CALL", sender=POOL, to=TOKEN, input="0x70a08231" + word(POOL))
    inner = CallFrame(type="CALL", sender=TOKEN, to=POOL, input="0x022c0d9f", calls=(fee_token,))
    ordinary = features(CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x11111111", calls=(own,)),
                        CallFrame(type="CALL", sender=BOT, to=TOKEN, input="0xa9059cbb" + word(POOL) + word(1),
                                  calls=(inner,)))
    assert ordinary["reentries"] == 0.0
    back = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x3ccfd60b")  # withdraw() again
    hook = CallFrame(type="CALL", sender=VICTIM, to=BOT, input="0x99999999", calls=(back,))
    attack = features(CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x3ccfd60b", calls=(hook,)))
    assert attack["reentries"] == 1.0


@pytest.mark.parametrize(("lender", "entry", "callback"), [
    ("DODO", "0xd0a494e4", "0x7ed1f1dd"),  # flashLoan(uint256,uint256,address,bytes) -> DPPFlashLoanCall
    ("Morpho Blue", "0xe0232b42", "0x31f57072"),  # flashLoan(address,uint256,bytes) -> onMorphoFlashLoan
    ("BentoBox", "0xf1676d37", "0x23e30c8b"),  # flashLoan(...) -> onFlashLoan (ERC-3156's)
])
def test_newer_lenders_flash_loans_and_their_callbacks(lender: str, entry: str, callback: str) -> None:
    # the bot's helper contract borrows; the lender calls the helper back, which uses the tokens
    # and repays (a callback into the transaction's own contract never counts as a re-entry)
    def loan(callback_selector: str) -> dict[str, float]:
        work = CallFrame(type="CALL", sender=OTHER, to=VICTIM, input="0x3ccfd60b")
        back = CallFrame(type="CALL", sender=POOL, to=OTHER, input=callback_selector + word(OTHER) + word(10**21),
                         calls=(work, transfer(TOKEN, OTHER, POOL, 10**21)))
        borrow = CallFrame(type="CALL", sender=OTHER, to=POOL, input=entry + word(10**21) + word(OTHER),
                           calls=(transfer(TOKEN, POOL, OTHER, 10**21), back))
        return features(CallFrame(type="CALL", sender=BOT, to=OTHER, input="0x11111111", calls=(borrow,)))

    f = loan(callback)
    assert f["flash_calls"] == 1.0, lender
    assert f["reentries"] == 0.0, lender  # the callback is the lender's design
    assert loan("0x99999999")["reentries"] == 1.0  # called back through anything else: a re-entry


@pytest.mark.parametrize("price_read", ["0xbb7b8b80", "0x883bdbfd", "0x99530b06", "0xfeaf968c"])
@pytest.mark.parametrize("lending", ["0xc5ebeaec", "0x617ba037", "0x0ecbcdab", "0x50d8cd4b"])
def test_flash_loan_price_read_and_borrow_is_oracle_manipulation(price_read: str, lending: str) -> None:
    # borrow in a flash loan, read the price (a Curve pool's virtual price, a Uniswap v3 TWAP, a
    # vault's share price, Chainlink), act on a lending market (Compound borrow, Aave v3 supply,
    # Euler borrow, Morpho Blue borrow)
    def tree(read: str) -> dict[str, float]:
        back = CallFrame(type="CALL", sender=POOL, to=BOT, input="0x23e30c8b", calls=(
            CallFrame(type="STATICCALL", sender=VICTIM, to=OTHER, input=read),
            CallFrame(type="CALL", sender=BOT, to=VICTIM, input=lending + word(10**20)),
            transfer(TOKEN, BOT, POOL, 10**21)))
        return features(CallFrame(type="CALL", sender=BOT, to=POOL, input="0x5cffe9de" + word(BOT), calls=(back,)))

    rules = load_rules()
    f = tree(price_read)
    assert f["oracle_reads"] == 1.0
    assert "oracle-manipulation" in [r.name for r in rules.matches(f)]
    plain = tree("0x18160ddd")  # totalSupply(): not a price
    assert plain.get("oracle_reads", 0.0) == 0.0
    assert "oracle-manipulation" not in [r.name for r in rules.matches(plain)]


def test_overflow_bait_is_read_in_short_abi_calls_only() -> None:
    bait = "0x83f12fec" + word(0x40) + word(2) + word(OTHER) + word(VICTIM) + "8" + "0" * 63
    direct = tx_features(Tx(hash="0x02", sender=EOA, to=TOKEN, value=0, input=bait))
    assert direct["overflow_words"] == 1.0
    assert any(r.name == "overflow-bait" for r in load_rules().matches({**direct, "frames": 1.0}))
    route = "0x7c025200" + ("8" + "0" * 63) + "ab" * 32 * 20  # a router's flags in a long route
    assert tx_features(Tx(hash="0x03", sender=EOA, to=TOKEN, value=0, input=route))["overflow_words"] == 0.0
    random_words = "0x83f12fec" + "9c4f" * 16 + "f" * 64  # a hash and a max-uint allowance
    assert tx_features(Tx(hash="0x04", sender=EOA, to=TOKEN, value=0, input=random_words))["overflow_words"] == 0.0


def test_correlated_terms_say_at_most_their_cap() -> None:
    rules = load_rules()
    busy = {"max_repeat": 400.0, "balance_checks": 300.0, "token_moves": 200.0, "tokens_touched": 40.0,
            "depth": 12.0, "contracts": 60.0}
    parts = rules.contributions(busy)
    assert {c.feature for c in parts} == set(busy)  # every term still explains
    assert sum(c.contribution for c in parts) == pytest.approx(rules.caps["complexity"])
    drained = rules.contributions({**busy, "free_gain": 1.0})
    assert sum(c.contribution for c in drained) > rules.caps["complexity"] + 1.0  # the specific shape adds


def test_a_group_without_a_cap_is_refused() -> None:
    doc = {"version": 1, "evidence": [{"feature": "frames", "weight": 1.0, "group": "size"}]}
    with pytest.raises(RuleError, match="group 'size' has no cap"):
        parse_rules(doc, "mine.yaml")
    with pytest.raises(RuleError, match="caps must map"):
        parse_rules({**doc, "caps": {"size": -1}}, "mine.yaml")


def allowance(token: str, caller: str, owner: str, spender: str) -> CallFrame:
    return CallFrame(type="STATICCALL", sender=caller, to=token, input="0xdd62ed3e" + word(owner) + word(spender),
                     output="0x" + word(10**30))


def test_reading_third_parties_allowances_then_pulling_is_an_approval_exploit() -> None:
    # an attack contract looks up which holders approved the victim contract, then makes it pull
    holders = ["0x" + f"{i:040x}" for i in range(0xA1, 0xA4)]
    probes = [allowance(TOKEN, BOT, h, VICTIM) for h in holders]
    abuse = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xdeadbeef",
                      calls=tuple(pull(TOKEN, VICTIM, h, BOT, 10**20) for h in holders))
    f = features(*probes, abuse)
    assert f["third_party_allowances"] == 3.0 and f["third_party_pulls"] == 3.0
    assert "approval-exploit" in [r.name for r in load_rules().matches(f)]
    explained = [c.feature for c in load_rules().contributions(f)]
    assert "third_party_allowances" in explained


def test_a_router_checking_its_own_or_the_senders_allowance_is_ordinary() -> None:
    # a router reads the allowance the sender gave it and the one it gave a pool, then swaps
    f = features(allowance(TOKEN, BOT, EOA, BOT), allowance(TOKEN, BOT, BOT, POOL),
                 pull(TOKEN, BOT, EOA, POOL, 100), transfer(OTHER, POOL, EOA, 50))
    assert f["third_party_allowances"] == 0.0
    assert "approval-exploit" not in [r.name for r in load_rules().matches(f)]


def test_a_pull_of_someone_elses_tokens_written_into_the_calldata_is_an_arbitrary_call_drain() -> None:
    # the sender hands a router (BOT, public: users approved it) a call to execute; the call is a
    # transferFrom of a user's (VICTIM's) tokens to the sender, and the router makes it as given
    injected = "23b872dd" + word(VICTIM) + word(EOA) + word(10**22)
    calldata = "0x4f1ef286" + word(TOKEN) + word(64) + word(100) + injected + "0" * 56
    f = features(pull(TOKEN, BOT, VICTIM, EOA, 10**22), input=calldata)
    assert (f["third_party_pulls"], f["injected_pulls"], f["free_gain"]) == (1.0, 1.0, 1.0)
    rules = load_rules()
    assert "arbitrary-call-drain" in [r.name for r in rules.matches(f)]
    assert "injected_pulls" in [c.feature for c in rules.contributions(f)]
    # the same, when the router appends data of its own to the call it makes
    tagged = CallFrame(type="CALL", sender=BOT, to=TOKEN, input="0x" + injected + "c0ffee" * 4)
    assert features(tagged, input=calldata)["injected_pulls"] == 1.0
    # the same pull built by the contract from its own arguments (calldata holds only the amount)
    built = features(pull(TOKEN, BOT, VICTIM, EOA, 10**22), input="0x12345678" + word(10**22))
    assert (built["third_party_pulls"], built["injected_pulls"]) == (1.0, 0.0)
    # a wallet contract (a Safe) collecting a payment approved to it, on its owner's orders: it
    # pulls for itself, not for the sender
    own = "23b872dd" + word(VICTIM) + word(BOT) + word(10**22)
    collected = features(pull(TOKEN, BOT, VICTIM, BOT, 10**22), input="0x6a761202" + word(TOKEN) + own + "0" * 56)
    assert (collected["third_party_pulls"], collected["injected_pulls"]) == (1.0, 0.0)
    # the sender pulling an approval it was given, from the token itself: no contract executes it
    root = CallFrame(type="CALL", sender=EOA, to=TOKEN, input="0x" + injected)
    direct = tx_features(Tx(hash="0x03", sender=EOA, to=TOKEN, value=0, input=root.input, trace=root))
    assert direct["injected_pulls"] == 0.0
    # a token proxy repeating the call to its implementation (a delegatecall) is not another pull
    proxied = CallFrame(type="CALL", sender=EOA, to=TOKEN, input="0x" + injected,
                        calls=(CallFrame(type="DELEGATECALL", sender=TOKEN, to=OTHER, input="0x" + injected),))
    direct = tx_features(Tx(hash="0x04", sender=EOA, to=TOKEN, value=0, input=proxied.input, trace=proxied))
    assert direct["injected_pulls"] == 0.0


def test_a_third_partys_tokens_pulled_by_a_foreign_contract_for_nothing_is_an_unpaid_pull() -> None:
    # a router (POOL, which users approved) is handed a fake pool (BOT, the sender's) and pulls a
    # user's (VICTIM's) tokens to it in its swap callback: the call is not in the calldata word for
    # word, and the user gets nothing back
    callback = CallFrame(type="CALL", sender=BOT, to=POOL, input="0xfa461e33" + word(1) + word(2),
                         calls=(pull(TOKEN, POOL, VICTIM, BOT, 10**21),))
    swap = CallFrame(type="CALL", sender=POOL, to=BOT, input="0x128acb08" + word(BOT), calls=(callback,))
    drain = features(CallFrame(type="CALL", sender=BOT, to=POOL, input="0x2646478b" + word(BOT), calls=(swap,)))
    assert (drain["third_party_pulls"], drain["injected_pulls"], drain["unpaid_pulls"]) == (1.0, 0.0, 1.0)
    rules = load_rules()
    assert "unpaid-pull" in [r.name for r in rules.matches(drain)]
    assert "unpaid_pulls" in [c.feature for c in rules.contributions(drain)]
    # holders are counted once each, however many of their tokens are pulled
    many = features(*(pull(t, POOL, h, BOT, 5) for t in (TOKEN, OTHER) for h in (VICTIM, WETH)))
    assert many["unpaid_pulls"] == 2.0


def test_pulls_that_pay_the_holder_or_are_the_originators_own_are_not_unpaid() -> None:
    rules = load_rules()
    # an order fill: the exchange (POOL) pulls the maker's (VICTIM's) tokens to the taker, and the
    # taker's tokens go to the maker
    fill = features(pull(TOKEN, POOL, VICTIM, BOT, 100), pull(OTHER, POOL, BOT, VICTIM, 50))
    # a relayed payment in ETH: the holder is paid in ETH for the tokens pulled
    paid_eth = features(pull(TOKEN, POOL, VICTIM, BOT, 100), CallFrame(type="CALL", sender=BOT, to=VICTIM, value=7))
    # the sender's own contract (BOT) collecting a payment someone approved to it
    collected = features(pull(TOKEN, BOT, VICTIM, BOT, 100))
    # a pull of zero tokens moves nothing
    empty = features(pull(TOKEN, POOL, VICTIM, BOT, 0))
    # a pull that failed moved nothing either
    failed = features(CallFrame(type="CALL", sender=POOL, to=TOKEN, error="execution reverted",
                                input="0x23b872dd" + word(VICTIM) + word(BOT) + word(100)))
    # an accepted NFT bid: the exchange's proxy pulls the bidder's WETH to the seller (the sender),
    # and the bidder gets the NFT by a safe transfer
    nft = CallFrame(type="CALL", sender=POOL, to=OTHER,
                    input="0xf242432a" + word(EOA) + word(VICTIM) + word(7) + word(1) + word(160) + word(0))
    bid = features(pull(WETH, POOL, VICTIM, EOA, 10**18), nft)
    # a relayed deposit: the vault pulls the holder's tokens to itself (the shares it mints for the
    # holder move no token)
    deposit = features(pull(TOKEN, POOL, VICTIM, POOL, 100))
    for f in (fill, paid_eth, collected, empty, failed, bid, deposit):
        assert f["unpaid_pulls"] == 0.0
        assert "unpaid-pull" not in [r.name for r in rules.matches(f)]
    assert fill["third_party_pulls"] == 1.0 and collected["third_party_pulls"] == 1.0


V3_CALLBACK, V3_SWAP, V2_SWAP, V2_CALLBACK = "0xfa461e33", "0x128acb08", "0x022c0d9f", "0x10d1e85c"


def test_a_swap_callback_called_directly_is_forged() -> None:
    # the sender's contract (BOT) calls a router's (POOL's) uniswapV3SwapCallback itself, with data
    # naming a user (VICTIM) as the payer: the router pays from the user's approval
    forged = CallFrame(type="CALL", sender=BOT, to=POOL, input=V3_CALLBACK + word(10**21) + word(0) + word(VICTIM),
                       calls=(pull(TOKEN, POOL, VICTIM, BOT, 10**21),))
    f = features(forged)
    assert (f["forged_callbacks"], f["unpaid_pulls"]) == (1.0, 1.0)
    rules = load_rules()
    assert "forged-callback" in [r.name for r in rules.matches(f)]
    assert "forged_callbacks" in [c.feature for c in rules.contributions(f)]
    # the sender calling a callback from its own account
    root = CallFrame(type="CALL", sender=EOA, to=POOL, input=V3_CALLBACK + word(1) + word(0))
    direct = tx_features(Tx(hash="0x05", sender=EOA, to=POOL, value=0, input=root.input, trace=root))
    assert direct["forged_callbacks"] == 1.0


def test_callbacks_made_by_the_pool_or_lender_called_are_not_forged() -> None:
    # a pool's swap calls back the contract that called it (BOT, waiting on the stack)
    callback = CallFrame(type="CALL", sender=POOL, to=BOT, input=V3_CALLBACK + word(5) + word(0),
                         calls=(transfer(TOKEN, BOT, POOL, 5),))
    swap = CallFrame(type="CALL", sender=BOT, to=POOL, input=V3_SWAP + word(BOT), calls=(callback,))
    # a v2 flash swap paying another of the caller's contracts (OTHER, not on the stack): the pair,
    # called with swap, calls it back
    flash = CallFrame(type="CALL", sender=BOT, to=POOL, input=V2_SWAP + word(0) + word(9) + word(OTHER) + word(128),
                      calls=(CallFrame(type="CALL", sender=POOL, to=OTHER, input=V2_CALLBACK + word(BOT)),))
    # a token hook: an ERC-777 token telling a recipient it was paid
    hook = CallFrame(type="CALL", sender=BOT, to=OTHER, input="0x0023de29" + word(BOT) * 4)
    # a lender behind a proxy whose loan runs in a library (Aave v3): the callback into the receiver
    # (OTHER, not on the stack) is made inside the flashLoan call the lender was given
    receive = CallFrame(type="CALL", sender=POOL, to=OTHER, input="0x920f5c84" + word(160))
    library = CallFrame(type="DELEGATECALL", sender=POOL, to=VICTIM, input="0x2e7263ea" + word(1), calls=(receive,))
    impl = CallFrame(type="DELEGATECALL", sender=POOL, to=WETH, input="0xab9c4b5d" + word(OTHER), calls=(library,))
    lender = CallFrame(type="CALL", sender=BOT, to=POOL, input="0xab9c4b5d" + word(OTHER), calls=(impl,))
    for f in (features(swap), features(flash), features(hook), features(lender)):
        assert f["forged_callbacks"] == 0.0
        assert "forged-callback" not in [r.name for r in load_rules().matches(f)]


def test_allowances_granted_to_the_sender_by_a_third_party_contract() -> None:
    # a victim contract with a public approve function made to approve its tokens to the sender's contract
    unlimited = CallFrame(type="CALL", sender=VICTIM, to=TOKEN, input="0x095ea7b3" + word(BOT) + word(2**256 - 1))
    grant = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xdeadbeef" + word(TOKEN), calls=(unlimited,))
    f = features(grant)
    assert f["granted_approvals"] == 1.0
    assert "granted_approvals" in [c.feature for c in load_rules().contributions(f)]
    # an allowance revoked (zero), and the sender's contract approving a pool: nothing granted to it
    zero = CallFrame(type="CALL", sender=VICTIM, to=TOKEN, input="0x095ea7b3" + word(BOT) + word(0))
    revoke = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xdeadbeef", calls=(zero,))
    own = CallFrame(type="CALL", sender=BOT, to=TOKEN, input="0x095ea7b3" + word(POOL) + word(10**18))
    assert features(revoke)["granted_approvals"] == 0.0 and features(own)["granted_approvals"] == 0.0


def test_a_pairs_reserves_skimmed_or_synced() -> None:
    burn = transfer(TOKEN, BOT, POOL, 10**20)
    sync = CallFrame(type="CALL", sender=BOT, to=POOL, input="0xfff6cae9")
    skim = CallFrame(type="CALL", sender=BOT, to=POOL, input="0xbc25cf77" + word(BOT))
    f = features(burn, sync, skim)
    assert f["reserve_syncs"] == 2.0
    assert "reserve_syncs" in [c.feature for c in load_rules().contributions(f)]
    assert features(burn)["reserve_syncs"] == 0.0


def test_a_victim_calling_the_contract_it_was_handed_is_a_foreign_callin() -> None:
    # the sender's contract (BOT) deposits into a vault (VICTIM) naming itself as the payer; the vault
    # calls BOT's own function to collect, and BOT pays nothing (Visor's shape)
    collect = CallFrame(type="CALL", sender=VICTIM, to=BOT,
                        input="0x2e88fb97" + word(TOKEN) + word(VICTIM) + word(10**21))
    deposit = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xd3f7e1c6" + word(10**21) + word(BOT),
                        calls=(collect,))
    f = features(deposit)
    assert f["foreign_callins"] == 1.0
    assert "foreign_callins" in [c.feature for c in load_rules().contributions(f)]
    # a vault's own manager calling it back (its address not handed over in the call)
    managed = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x1bee801e" + word(POOL),
                        calls=(CallFrame(type="CALL", sender=VICTIM, to=BOT, input="0x10acd06d" + word(TOKEN)),))
    # a lender's loan calling back the borrower (BOT) with a callback of its own name
    loan = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x490e6cbc" + word(BOT) + word(1) + word(0) + word(128),
                     calls=(CallFrame(type="CALL", sender=VICTIM, to=BOT, input="0xc3924ed6" + word(1)),))
    # a fee token selling its fees through the router the sender called (inside its transferFrom)
    fee = CallFrame(type="CALL", sender=BOT, to=TOKEN,
                    input="0x23b872dd" + word(EOA) + word(POOL) + word(9) + word(BOT),
                    calls=(CallFrame(type="CALL", sender=TOKEN, to=BOT, input="0x791ac947" + word(1)),))
    for g in (features(managed), features(loan), features(fee)):
        assert g["foreign_callins"] == 0.0
    # a transaction that starts with a token function is that token's own business
    assert features(deposit, input="0xa9059cbb" + word(VICTIM) + word(1))["foreign_callins"] == 0.0


def test_the_senders_contract_passed_off_as_a_token_is_a_counterfeit() -> None:
    # the attack contract (BOT) hands a victim its own address as "the token"; the victim calls
    # transferFrom and approve on it, and the counterfeit pays out the real token in the hook
    hook = transfer(TOKEN, BOT, EOA, 10**21)
    fake_pull = CallFrame(type="CALL", sender=VICTIM, to=BOT, input="0x23b872dd" + word(BOT) + word(VICTIM) + word(1))
    fake_approve = CallFrame(type="CALL", sender=VICTIM, to=BOT, input="0x095ea7b3" + word(POOL) + word(1),
                             calls=(hook,))
    victim = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x31daf7fe" + word(BOT),
                       calls=(fake_pull, fake_approve, transfer(TOKEN, VICTIM, BOT, 10**21)))
    f = features(victim)
    assert f["counterfeit_token_calls"] == 2.0
    assert "counterfeit-token" in [r.name for r in load_rules().matches(f)]


def test_a_fee_token_called_back_by_a_router_is_not_a_counterfeit() -> None:
    # a user transfers a fee-on-transfer token; the token swaps its fees through a router, which
    # calls transferFrom on the token: the token's own business
    fee_swap = CallFrame(type="CALL", sender=BOT, to=POOL, input="0x791ac947" + word(5),
                         calls=(CallFrame(type="CALL", sender=POOL, to=BOT,
                                          input="0x23b872dd" + word(BOT) + word(OTHER) + word(5)),))
    root = CallFrame(type="CALL", sender=EOA, to=BOT, input="0xa9059cbb" + word(OTHER) + word(100), calls=(fee_swap,))
    f = tx_features(Tx(hash="0x02", sender=EOA, to=BOT, value=0, input=root.input, trace=root))
    assert f["counterfeit_token_calls"] == 0.0


def test_a_specific_rule_adds_its_evidence_to_the_score_and_says_so() -> None:
    from detectors.engine import ScoringEngine

    doc = {"version": 1, "evidence": [{"feature": "reentries", "weight": 1.0}],
           "rules": [{"name": "loop", "when": {"reentries": ">= 3"}, "severity": "high", "type": "exploit",
                      "evidence": 2.0}]}
    plain = parse_rules({**doc, "rules": [{**doc["rules"][0], "evidence": 0}]}, "a.yaml")
    specific = parse_rules(doc, "b.yaml")
    reenter = CallFrame(type="CALL", sender=OTHER, to=VICTIM, input="0x2e1a7d4e")  # back into the victim
    inner = CallFrame(type="CALL", sender=VICTIM, to=OTHER, input="0x12345678", calls=(reenter,))
    tx = Tx(hash="0x03", sender=EOA, to=BOT, value=0, input="0x12345678",
            trace=CallFrame(type="CALL", sender=EOA, to=BOT, input="0x12345678",
                            calls=tuple(CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xdeadbeef",
                                                  calls=(inner,)) for _ in range(4))))
    base = ScoringEngine(rules=plain).score_pending([tx], 0.0)[0]
    boosted = ScoringEngine(rules=specific).score_pending([tx], 0.0)[0]
    assert boosted.score > base.score
    assert boosted.explanation[0].feature == "rule:loop" and boosted.explanation[0].contribution == 2.0
    assert [c.feature for c in base.explanation] == ["reentries"]
    with pytest.raises(RuleError, match="evidence"):
        parse_rules({**doc, "rules": [{**doc["rules"][0], "evidence": "lots"}]}, "c.yaml")


def test_paying_the_block_producer_marks_an_mev_bundle_and_lowers_the_shape_evidence() -> None:
    from detectors.features import BlockContext

    miner = "0x" + "9" * 40
    flash = CallFrame(type="CALL", sender=BOT, to=POOL, input="0x5cffe9de" + word(BOT),
                      calls=(transfer(TOKEN, POOL, BOT, 10**20),))
    bribe = CallFrame(type="CALL", sender=BOT, to=miner, value=10**17)
    root = CallFrame(type="CALL", sender=EOA, to=BOT, input="0x12345678", calls=(flash, bribe))
    tx = Tx(hash="0x01", sender=EOA, to=BOT, value=0, input="0x12345678", trace=root)
    rules = load_rules()
    mined = tx_features(tx, BlockContext([tx], producer=miner))
    assert mined["pays_block_producer"] == 1.0
    elsewhere = tx_features(tx, BlockContext([tx], producer="0x" + "8" * 40))  # ETH to someone else
    assert elsewhere["pays_block_producer"] == 0.0
    pending = tx_features(tx, BlockContext([tx]))  # no block yet: the producer is unknown, not absent
    assert "pays_block_producer" not in pending

    def shape(x: dict[str, float]) -> float:
        return sum(c.contribution for c in rules.assess(x)[0])

    assert shape(mined) < shape(elsewhere) == shape(pending)
    assert any(c.feature == "pays_block_producer" for c in rules.assess(mined)[0])


def test_taking_over_a_live_contract_then_taking_its_tokens_is_a_takeover_theft() -> None:
    # an attack contract re-initialises a live vault (making itself the owner), then withdraws
    take = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xc4d66de8" + word(BOT))  # initialize(address)
    withdraw = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x3ccfd60b",
                         calls=(transfer(TOKEN, VICTIM, BOT, 10**24),))
    rules = load_rules()
    theft = features(take, withdraw)
    assert theft["takeover_calls"] == 1.0 and theft["free_gain"] == 1.0
    names = [r.name for r in rules.matches(theft)]
    assert "takeover-theft" in names and "access-control-takeover" in names
    # the same owner call without taking anything is only a suspicious takeover (no theft)
    alone = features(take)
    assert [r.name for r in rules.matches(alone)] == ["access-control-takeover"]
    # a contract initialised in the transaction that created it is no takeover
    created = CallFrame(type="CREATE", sender=BOT, to=VICTIM, input="0x6080",
                        calls=(CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xc4d66de8" + word(BOT)),))
    assert features(created)["takeover_calls"] == 0.0


def test_a_liquidation_is_counted_once_and_lowers_the_shape_evidence() -> None:
    # a liquidator's flash loan: borrow, liquidationCall on the lending pool proxy (delegated to
    # its implementation), collateral back, repay
    impl = "0x" + "a" * 40
    call = "0x00a718a9" + word(TOKEN) + word(TOKEN) + word(VICTIM) + word(10**20) + word(0)
    liquidate = CallFrame(type="CALL", sender=BOT, to=POOL, input=call,
                          calls=(CallFrame(type="DELEGATECALL", sender=POOL, to=impl, input=call,
                                           calls=(transfer(TOKEN, POOL, BOT, 11 * 10**19),)),))
    flash = CallFrame(type="CALL", sender=BOT, to=POOL, input="0x5cffe9de" + word(BOT),
                      calls=(transfer(TOKEN, POOL, BOT, 10**20), liquidate, transfer(TOKEN, BOT, POOL, 10**20)))
    liquidation = features(flash)
    assert liquidation["liquidation_calls"] == 1.0  # the proxy's delegatecall repeats it: once
    assert liquidation["lending_calls"] == 0.0  # Aave's liquidationCall is not counted as a lending call
    compound = features(CallFrame(type="CALL", sender=BOT, to=POOL, input="0xf5e3c462" + word(VICTIM) + word(1)
                                  + word(TOKEN)))
    assert compound["liquidation_calls"] == 1.0 and compound["lending_calls"] == 1.0  # both, as before
    rules = load_rules()

    def shape(x: dict[str, float]) -> float:
        return sum(c.contribution for c in rules.assess(x)[0])

    assert shape(liquidation) == pytest.approx(shape({**liquidation, "liquidation_calls": 0.0}) - 0.8)
    assert any(c.feature == "liquidation_calls" for c in rules.assess(liquidation)[0])


# harvest(), doHardWork(), claim(), getReward()
@pytest.mark.parametrize("routine", ["0x4641257d", "0x4fa5d854", "0x4e71d92d", "0x3d18b912"])
def test_a_protocols_public_no_argument_routine_is_not_a_bare_attack_call(routine: str) -> None:
    # a vault harvest: claim rewards from a gauge, swap them on a pool, redeposit; 40+ frames
    legs = []
    for _ in range(10):
        legs += [transfer(OTHER, POOL, BOT, 10**18), pull(OTHER, POOL, BOT, POOL, 10**18),
                 transfer(TOKEN, POOL, BOT, 10**18), pull(TOKEN, VICTIM, BOT, VICTIM, 10**18)]
    rules = load_rules()
    attack = features(*legs, input="0xbe9a6555")  # start(): the sender's own contract, pre-programmed
    assert attack["bare_call_tree"] == 41.0
    assert "attack-contract-bare-call" in [r.name for r in rules.matches(attack)]
    routine_call = features(*legs, input=routine)
    assert routine_call["bare_call_tree"] == 0.0 and routine_call["frames"] == 41.0
    assert not [r.name for r in rules.matches(routine_call) if r.name.startswith("attack-contract")]
    assert features(*legs, input=routine.upper().replace("0X", "0x"))["bare_call_tree"] == 0.0


def test_governance_inside_a_flash_loan_is_an_attack_and_an_ordinary_vote_is_not() -> None:
    from detectors.engine import ScoringEngine
    from ingest import Block

    gov = "0x" + "9" * 40
    # borrowed voting power: flash-borrow the governance token, delegate it, vote and execute, repay
    delegate = CallFrame(type="CALL", sender=BOT, to=TOKEN, input="0x5c19a95c" + word(BOT))
    vote = CallFrame(type="CALL", sender=BOT, to=gov, input="0x56781388" + word(7) + word(1))
    execute = CallFrame(type="CALL", sender=BOT, to=gov, input="0xfe0d94c1" + word(7),
                        calls=(transfer(OTHER, gov, BOT, 10**24),))
    callback = CallFrame(type="CALL", sender=POOL, to=BOT, input="0x920f5c84",
                         calls=(delegate, vote, execute, transfer(TOKEN, BOT, POOL, 10**24)))
    flash = CallFrame(type="CALL", sender=BOT, to=POOL, input="0xab9c4b5d" + word(BOT),
                      calls=(transfer(TOKEN, POOL, BOT, 10**24), callback))
    attack = features(flash)
    assert attack["governance_calls"] == 3.0 and attack["flash_calls"] == 1.0
    rules = load_rules()
    assert "flash-loan-governance" in [r.name for r in rules.matches(attack)]
    # a holder voting with tokens it holds, and a flash loan that votes on nothing: no such rule
    ordinary_vote = features(vote)
    assert ordinary_vote["governance_calls"] == 1.0
    assert "flash-loan-governance" not in [r.name for r in rules.matches(ordinary_vote)]
    plain_flash = features(CallFrame(type="CALL", sender=BOT, to=POOL, input="0xab9c4b5d" + word(BOT),
                                     calls=(transfer(TOKEN, POOL, BOT, 10**24),
                                            transfer(TOKEN, BOT, POOL, 10**24))))
    assert "flash-loan-governance" not in [r.name for r in rules.matches(plain_flash)]

    # the engine alerts on it, even on a cold stream, critical, and says why
    root = CallFrame(type="CALL", sender=EOA, to=BOT, input="0x12345678", calls=(flash,))
    tx = Tx(hash="0x" + "ab" * 32, sender=EOA, to=BOT, value=0, input="0x12345678", trace=root)
    voter = Tx(hash="0x" + "cd" * 32, sender=OTHER, to=gov, value=0, input=vote.input,
               trace=CallFrame(type="CALL", sender=OTHER, to=gov, input=vote.input))
    scores = ScoringEngine().score_block(Block(number=1, hash="0x" + "ee" * 32, timestamp=1, transactions=(tx, voter)))
    bad, good = scores
    assert bad.finding is not None and bad.finding.severity == "critical"
    assert bad.finding.detector == "rules/flash-loan-governance"
    assert good.finding is None and good.score < bad.score


def test_voting_and_executing_in_one_transaction_is_governance_without_its_delay() -> None:
    chief, spell = "0x" + "9" * 40, "0x" + "8" * 40
    rules = load_rules()
    # DSChief: lock tokens, vote for the sender's spell, lift it to authority, have it executed
    vote = CallFrame(type="CALL", sender=BOT, to=chief, input="0xed081329" + word(32) + word(1) + word(spell))
    lift = CallFrame(type="CALL", sender=BOT, to=chief, input="0x3c278bd5" + word(spell))
    taken = features(vote, lift)
    assert (taken["governance_calls"], taken["vote_and_execute"]) == (2.0, 1.0)
    assert "governance-in-one-transaction" in [r.name for r in rules.matches(taken)]
    # a proposal queued and executed by a keeper, and a vote on its own: no decision taken and executed
    keeper = features(CallFrame(type="CALL", sender=BOT, to=chief, input="0xddf0b009" + word(7)),
                      CallFrame(type="CALL", sender=BOT, to=chief, input="0xfe0d94c1" + word(6)))
    for f in (keeper, features(vote)):
        assert f["vote_and_execute"] == 0.0
        assert "governance-in-one-transaction" not in [r.name for r in rules.matches(f)]


def test_tokens_donated_to_a_market_the_sender_also_uses_inflate_its_share_price() -> None:
    market = "0x" + "9" * 40
    rules = load_rules()
    # mint a few shares of an empty market, send it tokens outright, borrow against the inflated shares
    mint = CallFrame(type="CALL", sender=BOT, to=market, input="0xa0712d68" + word(1),
                     calls=(pull(TOKEN, market, BOT, market, 1),))
    donate = transfer(TOKEN, BOT, market, 10**24)
    borrow = CallFrame(type="CALL", sender=BOT, to=market, input="0xc5ebeaec" + word(10**23))
    f = features(mint, donate, borrow)
    assert f["vault_donations"] == 1.0
    assert "vault_donations" in [c.feature for c in rules.contributions(f)]
    # an ERC-4626 vault deposited into (the vault pulls the tokens), and a Uniswap v2 pair paid by a
    # transfer before its swap: no donation to a market the sender uses
    vault = features(CallFrame(type="CALL", sender=BOT, to=market, input="0x6e553f65" + word(10**20) + word(BOT),
                               calls=(pull(TOKEN, market, BOT, market, 10**20),)))
    pair = features(transfer(TOKEN, BOT, POOL, 10**20), CallFrame(type="CALL", sender=BOT, to=POOL, input="0x022c0d9f"))
    assert vault["vault_donations"] == 0.0 and pair["vault_donations"] == 0.0


def test_the_initialiser_dictionary_is_what_its_generator_makes_and_spots_any_initialiser() -> None:
    from importlib import resources

    from detectors import initializers
    from detectors.features import TAKEOVER_SELECTORS

    stored = resources.files("detectors").joinpath(initializers.FILE).read_bytes()
    assert stored == initializers.build(), "rules/initializers.bin is stale: python -m detectors.initializers"
    known = initializers.load()
    assert len(known) == len(stored) // 4 > 30_000 and known <= TAKEOVER_SELECTORS
    # signatures nobody listed by hand: a vesting contract's init, a wide initialiser of addresses
    for sig in ("init(uint256,uint256[],uint256[],address)", "initialize(address,address,address,uint256,uint256)",
                "initialise(string,string,uint8)"):
        from eth_utils import keccak

        assert "0x" + keccak(text=sig)[:4].hex() in known, sig
    assert "0xa9059cbb" not in known and "0x095ea7b3" not in known  # transfer, approve

    # re-initialising a live vesting contract through its proxy is a takeover; the proxy's
    # delegatecall that repeats the call is not counted again
    init = "0x84304ad7" + word(1) + word(128) + word(160) + word(BOT) + word(0) + word(0)
    take = CallFrame(type="CALL", sender=BOT, to=VICTIM, input=init,
                     calls=(CallFrame(type="DELEGATECALL", sender=VICTIM, to=OTHER, input=init),))
    assert features(take)["takeover_calls"] == 1.0
    assert "access-control-takeover" in [r.name for r in load_rules().matches(features(take))]
    # a factory cloning a contract and initialising the clone in the same transaction is no takeover
    clone = CallFrame(type="CALL", sender=POOL, to=BOT, input="0xfb90b320",
                      calls=(CallFrame(type="CREATE", sender=BOT, to=VICTIM, input="0x3d602d80"),
                             CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x19ab453c" + word(POOL))))
    assert features(clone)["takeover_calls"] == 0.0


def test_functions_named_as_internal_called_from_outside_are_an_access_control_flaw() -> None:
    from importlib import resources

    from eth_utils import keccak

    from detectors import initializers
    from detectors.features import EXPOSED_INTERNAL_SELECTORS

    family = initializers.EXPOSED_INTERNALS
    stored = resources.files("detectors").joinpath(family.file).read_bytes()
    assert stored == initializers.build(family), "rules/internals.bin is stale: python -m detectors.initializers"
    known = initializers.load(family)
    assert len(known) == len(stored) // 4 > 30_000
    assert EXPOSED_INTERNAL_SELECTORS.issubset(known)
    for sig in ("_burn(address,address,uint256)", "_mint(address,uint256)", "_transfer(address,address,uint256)",
                "_setOwner(address)", "_approve(address,address,uint256)"):
        assert "0x" + keccak(text=sig)[:4].hex() in EXPOSED_INTERNAL_SELECTORS, sig
    for sig in ("transfer(address,uint256)", "burn(uint256)", "mint(address,uint256)", "_setPendingAdmin(address)"):
        assert "0x" + keccak(text=sig)[:4].hex() not in known, sig  # (Compound's public admin functions)

    burn = "0x" + keccak(text="_burn(address,address,uint256)")[:4].hex() + word(VICTIM) + word(VICTIM) + word(7)
    exposed = CallFrame(type="CALL", sender=BOT, to=TOKEN, input=burn,
                        calls=(CallFrame(type="DELEGATECALL", sender=TOKEN, to=OTHER, input=burn),))
    f = features(exposed)
    assert f["internal_calls"] == 1.0  # (the proxy's delegatecall is not counted again)
    rules = load_rules()
    assert "exposed-internal-function" in [r.name for r in rules.matches(f)]
    assert "internal_calls" in [c.feature for c in rules.contributions(f)]
    # the sender calling it from its own account, as Sandbox's attacker did
    direct = CallFrame(type="CALL", sender=EOA, to=TOKEN, input=burn)
    alone = tx_features(Tx(hash="0x06", sender=EOA, to=TOKEN, value=0, input=burn, trace=direct))
    assert alone["internal_calls"] == 1.0
    # what a Safe's owners execute is administration; a contract created here is set up, not attacked
    exec_tx = "0x6a761202" + word(TOKEN) + word(0) * 9
    root = CallFrame(type="CALL", sender=EOA, to=POOL, input=exec_tx,
                     calls=(CallFrame(type="CALL", sender=POOL, to=TOKEN, input=burn),))
    by_safe = tx_features(Tx(hash="0x07", sender=EOA, to=POOL, value=0, input=exec_tx, trace=root))
    created = features(CallFrame(type="CREATE", sender=BOT, to=VICTIM, input="0x6080"),
                       CallFrame(type="CALL", sender=BOT, to=VICTIM, input=burn))
    assert by_safe["internal_calls"] == 0.0 and created["internal_calls"] == 0.0


def test_a_multisig_or_timelock_handing_over_ownership_is_administration_not_a_takeover() -> None:
    safe, target = POOL, VICTIM
    handover = CallFrame(type="CALL", sender=safe, to=target, input="0xf2fde38b" + word(OTHER))  # transferOwnership
    exec_tx = "0x6a761202" + word(target) + word(0) * 9  # execTransaction(...) on the Safe
    root = CallFrame(type="CALL", sender=EOA, to=safe, input=exec_tx, calls=(handover,))
    by_safe = tx_features(Tx(hash="0x01", sender=EOA, to=safe, value=0, input=exec_tx, trace=root))
    assert by_safe["takeover_calls"] == 0.0
    # the same call made by anyone's contract, or by an account directly, is counted
    assert features(handover)["takeover_calls"] == 1.0
    direct = CallFrame(type="CALL", sender=EOA, to=target, input=handover.input)
    alone = tx_features(Tx(hash="0x02", sender=EOA, to=target, value=0, input=handover.input, trace=direct))
    assert alone["takeover_calls"] == 1.0
    assert "access-control-takeover" in [r.name for r in load_rules().matches(alone)]
    # a Safe executing a call into a contract that then re-initialises a third party is not exempt
    relay = CallFrame(type="CALL", sender=safe, to=BOT, input="0x12345678",
                      calls=(CallFrame(type="CALL", sender=BOT, to=target, input="0xc4d66de8" + word(BOT)),))
    via = tx_features(Tx(hash="0x03", sender=EOA, to=safe, value=0, input=exec_tx,
                         trace=CallFrame(type="CALL", sender=EOA, to=safe, input=exec_tx, calls=(relay,))))
    assert via["takeover_calls"] == 1.0


def test_memory_copied_through_the_identity_precompile_is_not_a_token_call() -> None:
    # a Vyper pool copies a transfer's calldata through the identity precompile (0x04), then makes it
    identity = "0x" + "0" * 39 + "4"
    data = "0xa9059cbb" + word(EOA) + word(10**18)
    copies = [CallFrame(type="CALL", sender=POOL, to=identity, input=data) for _ in range(5)]
    pay = CallFrame(type="CALL", sender=BOT, to=POOL, input="0x3df02124" + word(0) + word(1) + word(10) + word(9),
                    calls=(*copies, transfer(TOKEN, POOL, EOA, 10**18)))
    f = features(pay)
    assert f["token_moves"] == 1.0 and f["tokens_touched"] == 1.0 and f["max_repeat"] == 1.0


def test_a_price_read_of_a_pool_still_mid_withdrawal_is_read_only_reentrancy() -> None:
    # the pool pays ETH out of remove_liquidity before its state is settled; the attacker's receive()
    # borrows from a lender that prices the pool's LP token with the pool's own get_virtual_price
    price = CallFrame(type="STATICCALL", sender=VICTIM, to=POOL, input="0xbb7b8b80")
    borrow = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0xc5ebeaec" + word(10**24), calls=(price,))
    receive = CallFrame(type="CALL", sender=POOL, to=BOT, input="0x", value=10**20, calls=(borrow,))
    withdraw = CallFrame(type="CALL", sender=BOT, to=POOL, input="0x5b36389c" + word(10**20) + word(0) + word(0),
                         calls=(receive,))
    attack = features(withdraw)
    assert attack["reentrant_price_reads"] == 1.0 and attack["oracle_reads"] == 1.0
    rules = load_rules()
    assert "read-only-reentrancy" in [r.name for r in rules.matches(attack)]
    # the same price read once the withdrawal has returned, or the pool reading its own price: none
    after = features(CallFrame(type="CALL", sender=BOT, to=POOL, input=withdraw.input,
                               calls=(CallFrame(type="CALL", sender=POOL, to=BOT, input="0x", value=10**20),)),
                     CallFrame(type="CALL", sender=BOT, to=VICTIM, input=borrow.input, calls=(price,)))
    own = features(CallFrame(type="CALL", sender=BOT, to=POOL, input=withdraw.input,
                             calls=(CallFrame(type="STATICCALL", sender=POOL, to=POOL, input="0xbb7b8b80"),)))
    assert after["reentrant_price_reads"] == 0.0 and own["reentrant_price_reads"] == 0.0
    assert after["oracle_reads"] == 1.0


def test_a_contract_made_to_delegatecall_a_foreign_initialiser_is_taken_over() -> None:
    # Furucombo's shape: a proxy that delegatecalls whatever handler it is given is handed a
    # contract's initialize(address,bytes), which then runs on the proxy's own storage
    init = "0xd1f57894" + word(BOT) + word(64) + word(0)  # initialize(address,bytes)
    batch = CallFrame(type="CALL", sender=BOT, to=VICTIM, input="0x21f6d2e7" + word(OTHER),
                      calls=(CallFrame(type="DELEGATECALL", sender=VICTIM, to=OTHER, input=init),))
    assert features(batch)["takeover_calls"] == 1.0
    # a proxy forwarding the initialiser it was called with (one takeover, not two), and a proxy
    # created in the transaction initialising itself through its implementation (none)
    forward = CallFrame(type="CALL", sender=BOT, to=VICTIM, input=init,
                        calls=(CallFrame(type="DELEGATECALL", sender=VICTIM, to=OTHER, input=init),))
    assert features(forward)["takeover_calls"] == 1.0
    setup = CallFrame(type="CREATE", sender=BOT, to=VICTIM, input="0x6080",
                      calls=(CallFrame(type="DELEGATECALL", sender=VICTIM, to=OTHER, input=init),))
    assert features(setup)["takeover_calls"] == 0.0
