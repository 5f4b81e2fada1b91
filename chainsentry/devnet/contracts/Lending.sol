// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IERC20 {
    function balanceOf(address) external view returns (uint256);
    function transfer(address, uint256) external returns (bool);
    function transferFrom(address, address, uint256) external returns (bool);
}

interface IPool {
    function getReserves() external view returns (uint112, uint112, uint32);
    function token0() external view returns (address);
}

/// Prices the collateral token from the pool's spot reserves: the flaw that flash-loan
/// oracle manipulation exploits (a time-weighted price would not move within one transaction).
contract SpotOracle {
    IPool public immutable pool;

    constructor(address pool_) {
        pool = IPool(pool_);
    }

    /// price of `asset` in the other pool token, 18 decimals
    function getUnderlyingPrice(address asset) external view returns (uint256) {
        (uint112 r0, uint112 r1,) = pool.getReserves();
        return asset == pool.token0() ? (uint256(r1) * 1e18) / r0 : (uint256(r0) * 1e18) / r1;
    }
}

/// A Compound-style market: `mint` deposits collateral, `borrow` lends the debt token up to 75%
/// of the collateral's value as the oracle says, `repayBorrow` and `redeem` undo them.
contract Lending {
    IERC20 public immutable collateral;
    IERC20 public immutable debtToken;
    SpotOracle public immutable oracle;
    mapping(address => uint256) public deposits;
    mapping(address => uint256) public debts;

    event Mint(address indexed account, uint256 amount);
    event Borrow(address indexed account, uint256 amount);
    event RepayBorrow(address indexed account, uint256 amount);
    event Redeem(address indexed account, uint256 amount);

    constructor(address collateral_, address debtToken_, address oracle_) {
        collateral = IERC20(collateral_);
        debtToken = IERC20(debtToken_);
        oracle = SpotOracle(oracle_);
    }

    function mint(uint256 amount) external returns (uint256) {
        collateral.transferFrom(msg.sender, address(this), amount);
        deposits[msg.sender] += amount;
        emit Mint(msg.sender, amount);
        return 0;
    }

    function borrow(uint256 amount) external returns (uint256) {
        uint256 value = (deposits[msg.sender] * oracle.getUnderlyingPrice(address(collateral))) / 1e18;
        require((debts[msg.sender] + amount) * 4 <= value * 3, "undercollateralised");
        debts[msg.sender] += amount;
        debtToken.transfer(msg.sender, amount);
        emit Borrow(msg.sender, amount);
        return 0;
    }

    function repayBorrow(uint256 amount) external returns (uint256) {
        debtToken.transferFrom(msg.sender, address(this), amount);
        debts[msg.sender] -= amount;
        emit RepayBorrow(msg.sender, amount);
        return 0;
    }

    function redeem(uint256 amount) external returns (uint256) {
        require(debts[msg.sender] == 0, "debt outstanding");
        deposits[msg.sender] -= amount;
        collateral.transfer(msg.sender, amount);
        emit Redeem(msg.sender, amount);
        return 0;
    }
}

interface IERC3156FlashBorrower {
    function onFlashLoan(address initiator, address token, uint256 amount, uint256 fee, bytes calldata data)
        external returns (bytes32);
}

/// An ERC-3156 flash lender (0.09% fee).
contract FlashLender {
    bytes32 private constant CALLBACK_SUCCESS = keccak256("ERC3156FlashBorrower.onFlashLoan");

    function flashLoan(address receiver, address token, uint256 amount, bytes calldata data) external returns (bool) {
        uint256 fee = (amount * 9) / 10000;
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).transfer(receiver, amount);
        require(
            IERC3156FlashBorrower(receiver).onFlashLoan(msg.sender, token, amount, fee, data) == CALLBACK_SUCCESS,
            "callback"
        );
        IERC20(token).transferFrom(receiver, address(this), amount + fee);
        require(IERC20(token).balanceOf(address(this)) >= before + fee, "not repaid");
        return true;
    }
}
