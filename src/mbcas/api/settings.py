"""The one ConfigMap both processes read: where it is, its shape, and how a document is validated.

MBCAS keeps its live settings in one ConfigMap (default ``mbcas-system/mbcas-config``, key
``config.yaml``). The agent reads all of it (:class:`mbcas.api.live.LiveConfig`: rollout keys
and the ``planner:``, ``demand:`` and ``contract:`` sections); the controller reads its
``contract:`` section (:class:`mbcas.api.contract.ContractSettings`), so the settings the two must
agree on have one source. Each re-reads it periodically and keeps the last good copy.

:func:`validate_known` validates a document against a model and tolerates unknown keys: each is
returned (the caller warns, naming it) and dropped, so a typo or a key from a newer version never
stops every other change. A bad *value* is still an error naming its field.

:class:`ProcessSettings` is the base of each process's restart-time settings and reads them from
the environment when it is built, by the rules pydantic-settings applied to these models before
MBCAS dropped it (its import cost the agent ~3 MiB of memory): a field ``name`` is the variable
``<PREFIX>NAME`` (names are case-insensitive), or, when the field has alias choices, each alias as
spelled (``NODE_NAME``), in order; a nested field is ``<PREFIX>SECTION__KEY``; a field whose type is
a list, tuple, mapping or model (or a union with one) takes JSON, with nested variables merged on
top of a JSON object; an empty value is an empty string; keyword arguments win over the
environment, mappings merged key by key. A value that must be JSON and is not is a ``ValueError``
naming the variable.
"""

from __future__ import annotations

import copy
import json
import os
import types
from collections import deque
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Annotated, Any, ClassVar, TypeGuard, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_CONFIG_MAP",
    "NESTED_DELIMITER",
    "ProcessSettings",
    "check_env",
    "deep_merge",
    "describe_error",
    "parse_config_yaml",
    "split_ref",
    "validate_known",
    "with_environment",
]

DEFAULT_CONFIG_MAP = "mbcas-system/mbcas-config"
"""``NAMESPACE/NAME`` of the shared ConfigMap (the chart's default release and namespace)."""
CONFIG_KEY = "config.yaml"
"""The ConfigMap's data key holding the YAML document."""

M = TypeVar("M", bound=BaseModel)


def check_env(prefix: str, fields: Iterable[str], moved: Mapping[str, str]) -> None:
    """Refuse environment variables with ``prefix`` that name no setting: reading the environment
    ignores them, and a setting that moved (e.g. into the shared ConfigMap) would seem set.

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


# ---------------------------------------------------------------------------- environment

NESTED_DELIMITER = "__"
"""Separates a section from its key in a variable's name (``MBCAS_CONTROLLER_RULES__BURST``)."""


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _takes_json(annotation: Any) -> bool:
    """Whether a type's value is JSON in the environment: a list, tuple, set, mapping or model."""
    if get_origin(annotation) is Annotated:
        return _takes_json(get_args(annotation)[0])
    return any(
        isinstance(t, type)
        and not issubclass(t, str | bytes)
        and issubclass(t, BaseModel | Mapping | Sequence | Set | tuple | deque)
        for t in (annotation, get_origin(annotation))
    )


def _json_rule(annotation: Any) -> tuple[bool, bool]:
    """(the value is JSON, a value that is not JSON is kept as a string): a union with a JSON type
    among its members (``list[str] | str``) keeps it."""
    if _takes_json(annotation):
        return True, False
    if _is_union(annotation) and any(_takes_json(arg) for arg in get_args(annotation)):
        return True, True
    return False, False


def _aliases(name: str, field: FieldInfo) -> list[str]:
    """The names a field is given under: its alias choices as spelled, else its name."""
    alias = field.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return [a for a in choices if isinstance(a, str)] or [name]


def _variables(name: str, field: FieldInfo, prefix: str) -> list[str]:
    """The lower-case variables a field is read from, in order (aliases are not prefixed)."""
    if field.validation_alias is not None:
        return [a.lower() for a in _aliases(name, field)]
    return [(prefix + name).lower()]


def _subfield(field: Any, key: str, prefix: str) -> Any:
    """What ``key`` names inside ``field`` (a FieldInfo or a type): a model's field, a mapping's
    value type, or None."""
    if not field:
        return None
    annotation = field.annotation if isinstance(field, FieldInfo) else field
    origin = get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, dict):
        args = get_args(annotation)
        return args[-1] if args else None
    for arg in get_args(annotation):
        found = _subfield(arg, key, prefix)
        if found:
            return found
    if _is_model(annotation):
        for name, sub in annotation.model_fields.items():
            if key.lower() in (name.lower(), *_variables(name, sub, prefix)):
                return sub
    return None


class _Environment:
    """The process environment read by one settings class (case-insensitive names)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values = {k.lower(): v for k, v in os.environ.items()}
        self.spelled = {k.lower(): k for k in os.environ}

    def _decode(self, variable: str, where: str, value: str, keep_string: bool) -> Any:
        try:
            return json.loads(value)
        except ValueError as exc:
            if keep_string:
                return value
            raise ValueError(f"{self.spelled[variable]}: {where} must be JSON ({exc})") from None

    def settings(self, model: type[BaseModel]) -> dict[str, Any]:
        """The fields set in the environment, each under its first alias (or its name)."""
        data: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            variables = _variables(name, field, self.prefix)
            found = next((v for v in variables if v in self.values), None)
            value: Any = None if found is None else self.values[found]
            is_json, keep_string = _json_rule(field.annotation)
            if is_json and found is not None:
                value = self._decode(found, name, value, keep_string)
                if isinstance(value, dict):
                    value = deep_merge(value, self._nested(name, field, variables))
            elif is_json:
                value = self._nested(name, field, variables) or None
            if value is not None:
                key = _aliases(name, field)[0]
                data[key] = _match_case(field.annotation, value) if isinstance(value, dict) else value
        return data

    def _nested(self, name: str, field: FieldInfo, variables: list[str]) -> dict[str, Any]:
        """``<VARIABLE>__KEY[__KEY...]`` as nested mappings, JSON decoded where the key's type takes it."""
        is_dict = field.annotation is dict or get_origin(field.annotation) is dict
        heads = [v + NESTED_DELIMITER for v in variables]
        result: dict[str, Any] = {}
        for variable, value in self.values.items():
            head = next((h for h in heads if variable.startswith(h)), None)
            if head is None:
                continue
            *keys, last = variable[len(head) :].split(NESTED_DELIMITER)
            node: Any = result
            target: Any = field
            for key in keys:
                target = _subfield(target, key, self.prefix)
                if isinstance(node, dict):
                    node = node.setdefault(key, {})
            target = _subfield(target, last, self.prefix)
            decoded: Any = value
            if (target or is_dict) and value:
                if isinstance(target, FieldInfo):
                    is_json, keep_string = _json_rule(target.annotation)
                else:  # a mapping's value type, or a key of an untyped mapping
                    is_json, keep_string = target is None or _takes_json(target), True
                if is_json:
                    where = ".".join([name, *keys, last])
                    decoded = self._decode(variable, where, value, keep_string)
            if isinstance(node, dict):
                node[last] = decoded
        return result


def _match_case(annotation: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each key that names a field of ``annotation`` (a model) case-insensitively
    spelled as the field is, recursively; other keys as they are."""
    args = get_args(annotation)
    if _is_union(annotation) and len(args) == 2 and type(None) in args:
        annotation = next(a for a in args if a is not type(None))
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if not _is_model(annotation):
        return values
    out: dict[str, Any] = {}
    for key, value in values.items():
        match = next(
            (
                (alias, sub)
                for name, sub in annotation.model_fields.items()
                for alias in _aliases(name, sub)
                if alias.lower() == key.lower()
            ),
            None,
        )
        if match is None:
            out[key] = value
        else:
            alias, sub = match
            out[alias] = _match_case(sub.annotation, value) if isinstance(value, dict) else value
    return out


def with_environment(model: type[BaseModel], prefix: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The input of ``model``: its settings in the environment (names starting with ``prefix``),
    with ``kwargs`` on top. A keyword names a field case-insensitively, by its name or an alias;
    a mapping given for a section is merged over the section's variables."""
    data = _Environment(prefix).settings(model)
    rest = dict(kwargs)
    for name, field in model.model_fields.items():
        names = _aliases(name, field)
        matched = [k for n in names for k in kwargs if k.lower() == n.lower() and k in rest]
        if not matched:
            continue
        for key in matched:
            del rest[key]
        value = kwargs[matched[0]]
        from_env = data.pop(names[0], None)
        if isinstance(from_env, dict) and isinstance(value, dict):
            value = deep_merge(from_env, value)
        data[matched[0] if matched[0] in names else names[0]] = value
    return {**data, **rest}


class ProcessSettings(BaseModel):
    """What the agent's and the controller's settings (env and flags, restart to change) share:
    where the shared ConfigMap is and how often to read it, and no stray environment variable.

    Building one reads the environment (see the module's docstring); keyword arguments win.
    Subclasses set ``env_prefix`` and, in ``moved``, where settings that left the environment are
    now (:func:`check_env`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    env_prefix: ClassVar[str] = ""
    moved: ClassVar[Mapping[str, str]] = {}

    def __init__(self, /, **values: Any) -> None:
        super().__init__(**with_environment(type(self), self.env_prefix, values))

    config_map: str | None = Field(
        default=DEFAULT_CONFIG_MAP, description="NAMESPACE/NAME of the shared live ConfigMap (empty: none)."
    )
    config_poll_s: float = Field(default=10.0, gt=0, description="Re-read the shared ConfigMap this often.")

    @model_validator(mode="before")
    @classmethod
    def _no_stray_env(cls, data: Any) -> Any:
        check_env(cls.env_prefix, cls.model_fields, cls.moved)
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
