"""Start and stop a local anvil node (from the npm package ``@foundry-rs/anvil-linux-amd64``).

Used by ``chainsentry demo``, the tests and the benchmarks. anvil is found, in order, at
``$CHAINSENTRY_ANVIL``, ``node_modules/.bin/anvil`` in the project (``make install`` puts it there),
or on ``PATH``. It always listens on 127.0.0.1, on a free port it picks itself (``--port 0``),
which it prints as ``Listening on 127.0.0.1:PORT``; HTTP and WebSocket share the port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ingest.errors import UserError

ANVIL_VERSION = "1.7.1"
_LISTEN = re.compile(rb"Listening on (127\.0\.0\.1|\[::1\]|localhost):(\d+)")


class AnvilNotFoundError(UserError, RuntimeError):
    pass


def find_anvil() -> str:
    env = os.environ.get("CHAINSENTRY_ANVIL")
    if env:
        if not os.access(env, os.X_OK):
            raise AnvilNotFoundError(f"CHAINSENTRY_ANVIL={env} is not an executable")
        return env
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "node_modules" / ".bin" / "anvil"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilNotFoundError(
        f"anvil not found: run `make install` (npm installs @foundry-rs/anvil-linux-amd64@{ANVIL_VERSION}) "
        "or set CHAINSENTRY_ANVIL"
    )


def _discard(stream: IO[bytes]) -> None:
    """Read and drop a child's output until it closes (memory stays constant)."""
    while stream.read(65536):
        pass


class Anvil:
    """A running anvil process; use as a context manager or call :meth:`stop`."""

    def __init__(
        self,
        *,
        mining: bool = True,
        block_time: float | None = None,
        accounts: int = 10,
        extra_args: Sequence[str] = (),
        port: int = 0,
        startup_timeout: float = 30.0,
    ) -> None:
        self.binary = find_anvil()
        args = [self.binary, "--host", "127.0.0.1", "--port", str(port), "--accounts", str(accounts)]
        if not mining:
            args.append("--no-mining")
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        args += list(extra_args)
        self.args = args
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Anvil:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        seen = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen += line
            m = _LISTEN.search(line)
            if m:
                self.port = int(m.group(2))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"anvil did not start: {seen[-2000:].decode(errors='replace')}")
        # keep reading its output so a full pipe never blocks it
        self._drain = threading.Thread(target=_discard, args=(self.proc.stdout,), daemon=True)
        self._drain.start()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
