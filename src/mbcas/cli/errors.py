"""How the CLI reports an error: one line naming what is wrong, no traceback; exit code 2 for a
bad argument or setting.

- :func:`fail` is the one way a command reports an error (``mbcas plan: error: ...``);
- :class:`OneLineParser` is the ``argparse`` parser of every command: a usage error is one line
  (``mbcas resize: error: argument --wait: must be >= 0, got '-3'``), not the usage block;
- the ``type=`` functions below check numbers and CPU quantities while the arguments are parsed,
  before anything connects anywhere (``--wait -3``, ``--cpu abc``);
- :func:`describe_settings` turns a pydantic ``ValidationError`` of a settings object into one
  line naming each bad setting by its flag or environment variable, as the user wrote it (a
  nested setting's variable joins the levels with ``__``: ``MBCAS_CONTROLLER_RULES__BURST``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn

from pydantic import ValidationError

from mbcas.core.units import QuantityError, parse_cpu

__all__ = [
    "OneLineParser",
    "cpu_quantity",
    "describe_settings",
    "fail",
    "non_negative_float",
    "one_line",
    "positive_float",
    "usage_error",
]

EXIT_USAGE = 2


def one_line(text: object) -> str:
    """``text`` with its line breaks folded, so an error is a single line."""
    return " ".join(str(text).split())


def fail(prog: str, message: object, code: int = EXIT_USAGE) -> int:
    """Print ``prog: error: message`` on stderr, on one line; returns the exit code ``code`` (by
    default 2, a bad argument or setting; a :class:`~mbcas.kube.errors.KubeError` has its own)."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return code


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (and exit 2, as argparse does)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def usage_error(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise usage_error(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise usage_error(f"not a finite number: {text!r}")
    return value


def positive_float(text: str) -> float:
    """``type=`` for a number of seconds (or a ratio) that must be > 0."""
    value = _number(text)
    if value <= 0:
        raise usage_error(f"must be > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """``type=`` for a number that must be >= 0."""
    value = _number(text)
    if value < 0:
        raise usage_error(f"must be >= 0, got {text!r}")
    return value


def cpu_quantity(text: str) -> str:
    """``type=`` for a CPU quantity > 0 (``750m``, ``1.5``); returns the text as given."""
    try:
        mcpu = parse_cpu(text)
    except (QuantityError, ValueError) as exc:
        raise usage_error(one_line(exc)) from None
    if mcpu <= 0:
        raise usage_error(f"must be a CPU quantity > 0, got {text!r}")
    return text


def describe_settings(
    exc: ValidationError | ValueError,
    *,
    env_prefix: str | None = None,
    flags: Mapping[str, str] | None = None,
    given: Callable[[str], bool] | None = None,
) -> str:
    """One line naming each bad setting: by its flag when ``given(field)`` says the flag set it,
    else by its environment variable (``env_prefix`` + FIELD, nested levels joined by ``__``),
    with the dotted field name alongside (``rules.burst``)."""
    if not isinstance(exc, ValidationError):
        return one_line(str(exc).removeprefix("Value error, "))
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc)
        msg = one_line(err["msg"]).removeprefix("Value error, ")
        if not field:
            parts.append(msg)
            continue
        flag = (flags or {}).get(field)
        if flag is not None and (given is None or given(field)):
            name = f"{flag} ({field})"
        elif env_prefix is not None:
            name = f"{env_prefix}{'__'.join(loc).upper()} ({field})"
        else:
            name = field
        shown = err.get("input")
        value = f" (got {shown!r})" if isinstance(shown, str | int | float) else ""
        parts.append(f"{name}: {msg}{value}")
    return "; ".join(parts)
