"""Small helpers the ``mbcas`` commands share: one way to read an input, one way to add a
sub-command. How a command fails is :mod:`mbcas.cli.errors`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["command", "read_input"]


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
