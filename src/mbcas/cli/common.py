"""Small helpers the ``mbcas`` commands share: one way to fail, one way to read an input, one way
to add a sub-command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["command", "fail", "read_input"]


def fail(message: str, code: int = 2) -> int:
    """Print ``message`` on stderr (one line, no traceback) and return the exit code ``code``."""
    print(message, file=sys.stderr)
    return code


def read_input(path: str) -> str:
    """The text of ``path`` (``-`` reads stdin). Raises ``ValueError`` with a one-line message."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def command(
    subparsers: Any, name: str, summary: str, description: str | None = None
) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` (``summary`` in ``mbcas --help``, ``description`` in its own)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=description or summary
    )
    return parser
