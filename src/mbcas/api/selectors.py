"""Equality-based Kubernetes label selectors (``app=web,tier!=batch,canary,!legacy``).

The agent's opt-in and opt-out rules select pods by label with the same syntax ``kubectl -l``
accepts for equality-based requirements: ``k=v`` (or ``k==v``), ``k!=v``, ``k`` (exists) and
``!k`` (does not exist), comma-separated, all of which must hold. An empty selector matches every
pod. Set-based forms (``in``, ``notin``) are rejected with a clear error rather than misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["LabelSelector"]


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed selector; ``requirements`` are (key, op, value) with op in ``= != exists !exists``."""

    text: str
    requirements: tuple[tuple[str, str, str], ...]

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse ``text``; raises ``ValueError`` naming the bad requirement."""
        reqs: list[tuple[str, str, str]] = []
        for raw in (text or "").split(","):
            part = raw.strip()
            if not part:
                continue
            if " in " in f" {part} " or " notin " in f" {part} " or "(" in part:
                raise ValueError(f"label selector {text!r}: set-based requirement {part!r} is not supported")
            if "!=" in part:
                key, _, value = part.partition("!=")
                op = "!="
            elif "=" in part:
                key, _, value = part.partition("==") if "==" in part else part.partition("=")
                op = "="
            elif part.startswith("!"):
                key, value, op = part[1:], "", "!exists"
            else:
                key, value, op = part, "", "exists"
            key, value = key.strip(), value.strip()
            if not key or any(c.isspace() for c in key) or "=" in value or "!" in key:
                raise ValueError(f"label selector {text!r}: malformed requirement {part!r}")
            reqs.append((key, op, value))
        return cls(text or "", tuple(reqs))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, op, value in self.requirements:
            present = key in labels
            if op == "=" and (not present or labels[key] != value):
                return False
            if op == "!=" and present and labels[key] == value:
                return False
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
        return True
