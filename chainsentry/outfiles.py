"""Output files the commands write: checked before the work starts, appended whole after a kill."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.errors import UserError


class OutputPathError(UserError):
    """An output path that cannot be written (a user mistake: one line, exit 2)."""


def check_writable(path: Path | None, what: str) -> None:
    """Refuse ``path`` now, before any work, if the file cannot be created or appended to there.

    Its folder must exist: a typo in a folder name is an error, not a new folder.
    """
    if path is None:
        return
    parent = path.parent
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a directory")
    if not parent.is_dir():
        raise OutputPathError(f"{what} {path}: folder {parent} does not exist")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise OutputPathError(f"{what} {path} is not writable")


def cut_partial_line(path: Path) -> None:
    """Drop a last line left half-written by a killed process, so appended lines stay whole."""
    if not path.is_file():  # not there yet, or a pipe or device
        return
    fh = open(path, "r+b")  # noqa: SIM115 - closed below
    with fh:
        size = fh.seek(0, 2)
        pos = size
        while pos > 0:
            step = min(pos, 1 << 16)
            fh.seek(pos - step)
            nl = fh.read(step).rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        if pos != size:
            fh.truncate(pos)
