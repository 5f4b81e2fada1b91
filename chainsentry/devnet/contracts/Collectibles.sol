// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// A minimal ERC-721 with a paid public mint.
contract Collectibles {
    uint256 public constant PRICE = 0.01 ether;
    uint256 public totalSupply;
    mapping(uint256 => address) public ownerOf;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    function mint() external payable returns (uint256 id) {
        require(msg.value == PRICE, "price");
        id = ++totalSupply;
        ownerOf[id] = msg.sender;
        balanceOf[msg.sender] += 1;
        emit Transfer(address(0), msg.sender, id);
    }

    function transferFrom(address from, address to, uint256 id) external {
        require(ownerOf[id] == from && msg.sender == from, "owner");
        ownerOf[id] = to;
        balanceOf[from] -= 1;
        balanceOf[to] += 1;
        emit Transfer(from, to, id);
    }
}
