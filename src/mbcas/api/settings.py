"""The one ConfigMap both processes read: where it is, its shape, and how a document is validated.

MBCAS keeps its live settings in one ConfigMap (default ``mbcas-system/mbcas-config``, key
``config.yaml``). The agent reads all of it (:class:`mbcas.api.live.LiveConfig`: rollout keys
and the ``planner:``, ``demand:`` and ``contract:`` sections); the controller reads its
``contract:`` section (:class:`mbcas.api.contract.ContractSettings`), so the settings the two must
agree on have one source. Each re-reads it periodically and keeps the last good copy.

:func:`validate_known` validates a document against a model and tolerates unknown keys: each is
returned (the caller warns, naming it) and dropped, so a typo or a key from a newer version never
stops every other change. A bad *value* is still an error naming its field.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_CONFIG_MAP",
    "ProcessSettings",
    "check_env",
    "deep_merge",
    "describe_error",
    "parse_config_yaml",
    "split_ref",
    "validate_known",
]

DEFAULT_CONFIG_MAP = "mbcas-system/mbcas-config"
"""``NAMESPACE/NAME`` of the shared ConfigMap (the chart's default release and namespace)."""
CONFIG_KEY = "config.yaml"
"""The ConfigMap's data key holding the YAML document."""

M = TypeVar("M", bound=BaseModel)


def check_env(prefix: str, fields: Iterable[str], moved: Mapping[str, str]) -> None:
    """Refuse environment variables with ``prefix`` that name no setting: pydantic-settings would
    ignore them silently, and a setting that moved (e.g. into the shared ConfigMap) would seem set.

    ``fields`` are the settings' names (a nested one's variable is ``<PREFIX><FIELD>__<KEY>``);
    ``moved`` maps an old name (lower case, without the prefix) to where the setting is now.
    Raises ``ValueError`` naming each such variable.
    """
    known = {f.upper() for f in fields}
    bad = []
    for name in sorted(os.environ):
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :]
        if key.split("__", 1)[0] in known:
            continue
        hint = moved.get(key.lower())
        bad.append(f"{name} is not a setting" + (f": {hint}" if hint else ""))
    if bad:
        raise ValueError("; ".join(bad))


def split_ref(value: str) -> tuple[str, str]:
    """``"NAMESPACE/NAME"`` as a pair; ``ValueError`` for anything else."""
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"must be NAMESPACE/NAME, got {value!r}")
    return namespace, name


def describe_error(exc: ValidationError) -> str:
    """One line per bad field of a pydantic error: ``planner.max_cpu: malformed CPU quantity ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_config_yaml(text: str) -> dict[str, Any]:
    """The settings of a ``config.yaml`` document (an empty document has none).

    Raises ``ValueError`` when it is not YAML or not a mapping.
    """
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"{CONFIG_KEY} is not YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{CONFIG_KEY} must be a mapping of settings, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top, section by section (nested mappings are merged)."""
    out = dict(base)
    for key, value in overrides.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def _drop(data: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    node: Any = data
    for part in loc[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if isinstance(node, dict) and loc and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


def validate_known(model: type[M], data: Mapping[str, Any]) -> tuple[M, tuple[str, ...]]:
    """``data`` validated as ``model``, unknown keys dropped; returns the model and the dotted
    names of the keys it dropped (``("planner.max_cpus",)``).

    Raises ``ValueError`` naming each bad field when a known key has a bad value.
    """
    try:
        return model.model_validate(data), ()
    except ValidationError as exc:
        unknown = [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if not unknown:
            raise ValueError(describe_error(exc)) from None
    cleaned = copy.deepcopy(dict(data))
    names = tuple(".".join(str(p) for p in loc) for loc in unknown if _drop(cleaned, loc))
    try:
        return model.model_validate(cleaned), names
    except ValidationError as exc:
        raise ValueError(describe_error(exc)) from None


class ProcessSettings(BaseSettings):
    """What the agent's and the controller's settings (env and flags, restart to change) share:
    where the shared ConfigMap is and how often to read it, and no stray environment variable.

    Subclasses set ``env_prefix`` and, in ``moved``, where settings that left the environment are
    now (:func:`check_env`).
    """

    moved: ClassVar[Mapping[str, str]] = {}

    config_map: str | None = Field(
        default=DEFAULT_CONFIG_MAP, description="NAMESPACE/NAME of the shared live ConfigMap (empty: none)."
    )
    config_poll_s: float = Field(default=10.0, gt=0, description="Re-read the shared ConfigMap this often.")

    @model_validator(mode="before")
    @classmethod
    def _no_stray_env(cls, data: Any) -> Any:
        check_env(str(cls.model_config.get("env_prefix", "")), cls.model_fields, cls.moved)
        return data

    @field_validator("config_map")
    @classmethod
    def _namespaced_name(cls, value: str | None) -> str | None:
        if value:
            split_ref(value)
        return value

    def config_map_ref(self) -> tuple[str, str] | None:
        """The shared ConfigMap as ``(namespace, name)``; None when there is none."""
        if not self.config_map:
            return None
        try:
            return split_ref(self.config_map)
        except ValueError as exc:
            raise ValueError(f"config_map: {exc}") from None
