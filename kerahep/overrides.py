"""The values of ``--set section.key=value`` overrides: parsed literally
(:func:`parse_value`), then coerced to the annotated type of the field they set
(:func:`coerce`); :class:`kerahep.config.Config` applies them."""

from __future__ import annotations

import ast
import types
import typing

from .errors import ConfigError


def parse_assignments(assignments) -> dict:
    """``["section.key=value", ...]`` -> ``{"section.key": parsed value}`` (the last of a repeated key)."""
    changes = {}
    for item in assignments or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        changes[key.strip()] = parse_value(raw.strip())
    return changes


def parse_value(raw: str):
    """Parse an override value literally: numbers, tuples, None, booleans; else a string."""
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def coerce(key: str, value, hint):
    """Coerce a parsed value to the field's annotated type, or raise ConfigError."""
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(key, value, a)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"bad value for {key}: {value!r}")
    target = origin or hint
    if target is tuple or target is list:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(value, (int, float, str)):
            return (value,)
        raise ConfigError(f"{key} expects a tuple, got {value!r}")
    if target is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} expects true or false, got {value!r}")
    if target is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key} expects an integer, got {value!r}")
        return value
    if target is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} expects a number, got {value!r}")
        return float(value)
    if target is str:
        if not isinstance(value, str):
            return str(value)
        return value
    return value
