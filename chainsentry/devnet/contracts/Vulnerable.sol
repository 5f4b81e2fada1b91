// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// An ETH bank that pays out before it updates the balance: reentrancy. Its owner can name a
/// guardian, and the guardian (or the owner) can pause it: deposits and withdrawals stop.
contract EtherBank {
    mapping(address => uint256) public balances;
    address public owner;
    address public guardian;
    bool public paused;

    event Paused(address account);
    event Unpaused(address account);
    event GuardianChanged(address previousGuardian, address newGuardian);

    constructor() {
        owner = msg.sender;
        guardian = msg.sender;
    }

    modifier whenNotPaused() {
        require(!paused, "paused");
        _;
    }

    function setGuardian(address guardian_) external {
        require(msg.sender == owner, "owner");
        emit GuardianChanged(guardian, guardian_);
        guardian = guardian_;
    }

    function pause() external {
        require(msg.sender == guardian || msg.sender == owner, "guardian");
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external {
        require(msg.sender == owner, "owner");
        paused = false;
        emit Unpaused(msg.sender);
    }

    function deposit() external payable whenNotPaused {
        balances[msg.sender] += msg.value;
    }

    function withdraw() external whenNotPaused {
        uint256 amount = balances[msg.sender];
        require(amount > 0, "nothing");
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "send");
        balances[msg.sender] = 0;
    }
}

/// A treasury whose initialiser anyone can call again: access-control takeover.
contract Treasury {
    address public owner;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    receive() external payable {}

    function initialize(address owner_) external {
        emit OwnershipTransferred(owner, owner_);
        owner = owner_;
    }

    function withdraw(address payable to, uint256 amount) external {
        require(msg.sender == owner, "owner");
        to.transfer(amount);
    }
}

/// A fixed-denomination mixer: deposits in, withdrawals out to any address (no proof checked).
contract Mixer {
    uint256 public constant DENOMINATION = 1 ether;
    mapping(bytes32 => bool) public commitments;
    mapping(bytes32 => bool) public spent;

    event Deposit(bytes32 indexed commitment);
    event Withdrawal(address to, bytes32 nullifier);

    function deposit(bytes32 commitment) external payable {
        require(msg.value == DENOMINATION && !commitments[commitment], "deposit");
        commitments[commitment] = true;
        emit Deposit(commitment);
    }

    function withdraw(address payable to, bytes32 secret) external {
        bytes32 commitment = keccak256(abi.encodePacked(secret));
        require(commitments[commitment] && !spent[commitment], "note");
        spent[commitment] = true;
        to.transfer(DENOMINATION);
        emit Withdrawal(to, commitment);
    }
}

/// A router that makes any call it is handed, with the approvals its users gave it (meant for
/// moving a user's own tokens): an arbitrary-call flaw, as in the Socket, LI.FI and Dexible exploits.
contract Router {
    event Executed(address indexed caller, address indexed target, bytes4 selector);

    function execute(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory out) = target.call(data);
        require(ok, "call");
        emit Executed(msg.sender, target, bytes4(data));
        return out;
    }
}
