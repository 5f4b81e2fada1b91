"""Every monitor example in the README loads as a config file (ABIs read, expressions parsed),
and the config refuses a bad monitor with one line naming it and the place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chainsentry.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]
VAULT_ABI = '[{"type": "function", "name": "setFeeRecipient", "inputs": [{"name": "to", "type": "address"}]}]'


def _examples() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Monitors and responses", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


def test_the_readme_has_the_monitor_examples() -> None:
    text = "".join(_examples())
    for needed in ("functions:", "outflows:", "window_blocks", "OwnershipTransferred", "Upgraded", "failures:",
                   "anomaly:", "kind: transaction", "kind: safe", "kind: script"):
        assert needed in text, needed


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e.split("name: ", 1)[1].split("\n", 1)[0])
def test_each_readme_monitor_example_loads(example: str, tmp_path: Path) -> None:
    (tmp_path / "abi").mkdir()
    (tmp_path / "abi" / "Vault.json").write_text(VAULT_ABI)
    config = tmp_path / "chainsentry.yaml"
    config.write_text(example)
    settings = load_settings(config, environ={})
    assert settings.monitors and all(m.addresses for m in settings.monitors)


@pytest.mark.parametrize(("monitor", "words"), [
    ("{name: m, addresses: ['0x5fbdb2315678afecb367f032d93f642f64180aa3'], abis: [erc20], "
     "functions: [{function: transfer, where: 'value > 5 ether and'}]}",
     "monitor 'm', functions[0].where: column"),
    ("{name: m, addresses: ['0x5fbdb2315678afecb367f032d93f642f64180aa3'], abis: [erc20], events: [{event: Transfr}]}",
     "monitor 'm', events[0]: no event 'Transfr'"),
    ("{name: m, addresses: ['0x5fbdb'], outflows: [{}]}", "is not an address"),
    ("{name: m, addresses: ['0x5fbdb2315678afecb367f032d93f642f64180aa3'], responses: [{kind: email}]}",
     "responses"),
])
def test_a_bad_monitor_is_one_error_at_load(monitor: str, words: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"monitors: [{monitor}]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config, environ={})
    assert words in str(err.value) and "\n" not in str(err.value)
