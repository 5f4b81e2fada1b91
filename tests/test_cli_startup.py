"""The command line answers at once: asking for help or the version loads no heavy library, and a
user mistake is one line while a bug shows its traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chainsentry.cli import _user_error
from ingest.errors import UserError

HEAVY = ("kafka", "pyod", "sklearn", "scipy", "river", "fastapi", "detectors.engine", "numpy")
COMMANDS = ("run", "replay", "worker", "record", "evaluate", "demo")

# run the CLI, then print the name of every module it loaded
PROBE = ("import atexit, sys; atexit.register(lambda: print(' '.join(sorted(sys.modules)), file=sys.stderr)); "
         "sys.argv[0] = 'chainsentry'; from chainsentry.cli import main; main()")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)],
                         ids=lambda a: " ".join(a))
def test_help_and_version_load_nothing_heavy(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    loaded = set(proc.stderr.split())
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"`chainsentry {' '.join(argv)}` loaded {heavy[:8]}"


def test_shell_completion_is_offered() -> None:
    code = "import sys; sys.argv[0] = 'chainsentry'; from chainsentry.cli import main; main()"
    # typer's own switch: the shell is the one named, not detected (pytest runs under no shell)
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = subprocess.run([sys.executable, "-c", code, "--show-completion", "bash"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    # the script bash sources: completions come from `chainsentry` itself, asked with its environment variable
    assert "_CHAINSENTRY_COMPLETE=complete_bash" in proc.stdout
    assert "-F _chainsentry_completion chainsentry" in proc.stdout


def test_every_user_error_class_is_one_family() -> None:
    from alerts.store import StoreError
    from chainsentry.config import ConfigError
    from detectors.rules import RuleError
    from detectors.snapshot import SnapshotError
    from ingest import CheckpointError, MappingError, RecorderError, RpcError, SourceError

    for cls in (StoreError, ConfigError, RuleError, SnapshotError, CheckpointError, RecorderError, RpcError,
                SourceError):
        assert _user_error(cls("x")), cls
    assert _user_error(MappingError("gas", "0xzz", "not a hex quantity", block=1))
    assert _user_error(UserError("x"))
    assert not _user_error(ValueError("a bug")) and not _user_error(KeyError("a bug"))


def test_a_bug_shows_its_traceback_and_a_mistake_does_not(tmp_path: pytest.TempPathFactory) -> None:
    bad = f"{tmp_path}/bad.yaml"
    with open(bad, "w") as fh:
        fh.write("ingest:\n  tracez: off\n")
    mistake = subprocess.run([sys.executable, "-m", "chainsentry.cli", "replay", "x.jsonl", "--config", bad],
                             capture_output=True, text=True, timeout=60)
    assert mistake.returncode == 2 and mistake.stderr.startswith("chainsentry: error:")
    assert "Traceback" not in mistake.stderr and "tracez" in mistake.stderr
    # a bug: a ValueError from inside a command is not dressed as a user mistake
    code = ("import sys; sys.argv[0] = 'chainsentry'; import chainsentry.cli as c\n"
            "def boom(*a, **k): raise ValueError('an internal bug')\n"
            "c._settings = boom; c.main()")
    bug = subprocess.run([sys.executable, "-c", code, "replay", "x.jsonl"], capture_output=True, text=True,
                         timeout=60)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "ValueError: an internal bug" in bug.stderr
