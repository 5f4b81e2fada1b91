"""Compile the devnet's Solidity contracts with solc from npm (``solc`` pinned in package.json).

The compiled artifacts (ABI and creation bytecode per contract) are committed as
``contracts/artifacts.json`` so that the demo needs no compiler at run time; a test recompiles the
sources and checks the artifacts match. Regenerate with ``python -m chainsentry.devnet.solc``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parent / "contracts"
ARTIFACTS = CONTRACTS / "artifacts.json"
ROOT = Path(__file__).resolve().parents[2]
SOLC_JS = ROOT / "node_modules" / "solc" / "solc.js"

_RUNNER = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => process.stdout.write(solc.compile(input)));
"""


class CompileError(RuntimeError):
    pass


def compile_sources(sources_dir: Path = CONTRACTS) -> dict[str, dict[str, Any]]:
    """{contract name: {"abi": [...], "bytecode": "0x..."}} for every .sol file."""
    node = shutil.which("node")
    if node is None or not SOLC_JS.exists():
        raise CompileError("solc from npm is needed: run `npm ci` (make install)")
    std = {
        "language": "Solidity",
        "sources": {p.name: {"content": p.read_text()} for p in sorted(sources_dir.glob("*.sol"))},
        "settings": {"optimizer": {"enabled": True, "runs": 200}, "evmVersion": "cancun",
                     "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    res = subprocess.run([node, "-e", _RUNNER, str(SOLC_JS.parent)], input=json.dumps(std), capture_output=True,
                         text=True, timeout=600)
    if res.returncode != 0:
        raise CompileError(f"solc failed: {res.stderr[-2000:]}")
    out = json.loads(res.stdout)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e["formattedMessage"] for e in errors))
    artifacts: dict[str, dict[str, Any]] = {}
    for contracts in out["contracts"].values():
        for name, c in contracts.items():
            if c["evm"]["bytecode"]["object"]:  # interfaces have none
                artifacts[name] = {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"]}
    return dict(sorted(artifacts.items()))


def load_artifacts() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(ARTIFACTS.read_text())
    return data


def main() -> int:
    try:
        artifacts = compile_sources()
    except CompileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    ARTIFACTS.write_text(json.dumps(artifacts, indent=1, sort_keys=True) + "\n")
    print(f"{len(artifacts)} contracts -> {ARTIFACTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
