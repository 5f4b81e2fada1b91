"""The hot modules compiled with Cython (setup.py) behave exactly as their sources.

`make` compiles them in place; the same ``.py`` files run uncompiled when
``CHAINSENTRY_NO_EXTENSIONS=1``. A researcher's scores must not depend on which of the two ran:
a replay through each gives the same bytes, and a snapshot saved by one is read by the other.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainsentry.cli import COMPILED_MODULES, build_info
from conftest import stale_extensions

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "detectors", "alerts", "chainsentry")


def compiled_modules() -> list[str]:
    """The modules setup.py compiles, as dotted names (from chainsentry/compiled.py, the one list)."""
    proc = subprocess.run([sys.executable, "-c", "import setup, sys; print(' '.join(setup.COMPILED))"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split()
    assert listed, "setup.py lists no module to compile"
    return [p.removesuffix(".py").replace("/", ".") for p in listed]


def test_the_hot_modules_run_compiled() -> None:
    assert tuple(compiled_modules()) == COMPILED_MODULES  # what `chainsentry --version` reports on
    if os.environ.get("CHAINSENTRY_NO_EXTENSIONS"):
        pytest.skip("CHAINSENTRY_NO_EXTENSIONS is set: everything runs from the sources")
    for name in compiled_modules():
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(".so"), f"{name} is not compiled: run `make compiled`"
    n = len(COMPILED_MODULES)
    assert build_info().endswith(f"compiled: {n}/{n} hot modules")


def test_version_says_what_runs_compiled(tmp_path: Path) -> None:
    src = _sources_only(tmp_path / "src")
    code = "from chainsentry.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "--version"], env={**os.environ, "PYTHONPATH": str(src)},
                          capture_output=True, text=True, timeout=60, cwd=src)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(rf"chainsentry \S+; compiled: 0/{len(COMPILED_MODULES)} hot modules\n", proc.stdout)


def test_a_source_changed_after_compiling_is_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "detectors"
    pkg.mkdir()
    so, py = pkg / "wallets.cpython-311-x86_64-linux-gnu.so", pkg / "wallets.py"
    so.write_bytes(b"")
    py.write_text("")
    os.utime(so, (1_000, 1_000))
    os.utime(py, (2_000, 2_000))
    assert stale_extensions(tmp_path) == ["detectors/wallets.py"]
    os.utime(so, (3_000, 3_000))
    assert stale_extensions(tmp_path) == []
    pxd = pkg / "wallets.pxd"  # the C declarations of a compiled module count as its source too
    pxd.write_text("")
    os.utime(pxd, (4_000, 4_000))
    assert stale_extensions(tmp_path) == ["detectors/wallets.pxd"]
    os.utime(so, (5_000, 5_000))
    shared = pkg / "_helpers.pxd"  # declarations another module of the package cimports count too
    shared.write_text("")
    os.utime(shared, (6_000, 6_000))
    assert stale_extensions(tmp_path) == ["detectors/_helpers.pxd"]


def _sources_only(dest: Path) -> Path:
    """A copy of the packages without any compiled module: imported from there, all runs from .py."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    assert not list(dest.glob("*/*.so"))
    return dest


def _replay(pythonpath: Path | None, *args: str | Path) -> None:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = ("import sys, detectors.engine as e; print(e.__file__, file=sys.stderr); "
            "from chainsentry.cli import main; sys.argv[0] = 'chainsentry'; main()")
    proc = subprocess.run([sys.executable, "-c", code, "replay", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=pythonpath or ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = proc.stderr.splitlines()[0]
    assert loaded.startswith(str(pythonpath or ROOT)), loaded  # the tree meant, not the installed one
    if pythonpath is not None:
        assert loaded.endswith(".py"), loaded
    elif not os.environ.get("CHAINSENTRY_NO_EXTENSIONS"):
        assert loaded.endswith(".so"), loaded


def test_compiled_and_sources_give_the_same_scores_and_snapshots(tmp_path: Path, data_dir: Path) -> None:
    src = _sources_only(tmp_path / "src")
    # wallet behaviour (the start of the wallet file), then every detector (the attack file: traces,
    # rules, tree models, alerts), then the mainnet blocks; each step starts from the state the
    # other kind saved at the end of the step before
    steps: list[tuple[str, list[str | Path]]] = [
        ("wallets", [data_dir / "wallets-dev.jsonl.gz", "--to", "3000000"]),
        ("attacks", [data_dir / "attacks-dev.jsonl.gz"]),
        ("mainnet", [data_dir / "mainnet-17173049-17173050.jsonl"]),
    ]
    modes = {"compiled": None, "sources": src}
    out: dict[str, dict[str, bytes]] = {mode: {} for mode in modes}
    before: str | None = None
    for step, args in steps:
        for mode, path in modes.items():
            other = "sources" if mode == "compiled" else "compiled"
            d = tmp_path / mode
            d.mkdir(exist_ok=True)
            extra: list[str | Path] = [] if before is None else ["--snapshot-in", tmp_path / other / f"{before}.snap"]
            _replay(path, *args, *extra, "--scores", d / f"{step}.jsonl", "--alerts", d / f"{step}-alerts.jsonl",
                    "--snapshot-out", d / f"{step}.snap")
            out[mode][step] = (d / f"{step}.jsonl").read_bytes()
            out[mode][f"{step}-alerts"] = (d / f"{step}-alerts.jsonl").read_bytes()
        before = step
    lines = {name: data.count(b"\n") for name, data in out["compiled"].items()}
    assert lines["wallets"] > 5000 and lines["attacks"] > 2800 and lines["mainnet"] > 100, lines
    assert lines["attacks-alerts"] >= 30, lines
    for name in out["compiled"]:
        assert out["compiled"][name] == out["sources"][name], f"{name} differs between compiled and sources"


_HEXISH = st.text(alphabet="0123456789abcdefABCDEFxX_ +-g\u00e9\u0130", max_size=24)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(_HEXISH, _HEXISH.map(lambda s: "0x" + s), st.integers(0, 2**70).map(hex),
                 st.integers(0, 2**70).map(lambda n: hex(n).upper().replace("0X", "0x"))))
def test_the_mappers_hex_helpers_are_int_and_lower(s: str) -> None:
    """Compiled, the mappers read hex quantities and lower-case addresses with C code of their own
    (ingest/_hex.pxd): for any string it must give what int(s, 16) and s.lower() give, or fail alike."""
    from ingest.mappers import MappingError, address, quantity

    try:
        expected: object = (int(s, 16) if len(s) > 2 else 0) if s[:2] == "0x" and len(s) <= 66 else MappingError
    except ValueError:
        expected = MappingError
    try:
        got: object = quantity(s, "f")
    except MappingError:
        got = MappingError
    assert got == expected and type(got) is type(expected)
    padded = "0x" + (s + "aB" * 20)[:40]
    assert address(padded, "f") == padded.lower()


def test_the_typed_fast_path_reads_every_data_line(data_dir: Path) -> None:
    """A line that does not map whole is mapped again part by part: the same block, at several
    times the cost. So the same output proves nothing about speed; this does. Every line of the
    data files (wallets-dev: its first 20,000) maps whole."""
    import gzip

    from ingest.mappers import _block, _decode_raw_block

    n = 0
    for name, limit in (("attacks-dev.jsonl.gz", None), ("mainnet-17173049-17173050.jsonl", None),
                        ("wallets-dev.jsonl.gz", 20_000)):
        path = data_dir / name
        with (gzip.open(path, "rb") if name.endswith(".gz") else open(path, "rb")) as fh:
            for i, line in enumerate(fh):
                if limit is not None and i == limit:
                    break
                _block(_decode_raw_block(line))  # raises where the part-by-part path would take over
                n += 1
    assert n == 13 + 2 + 20_000
