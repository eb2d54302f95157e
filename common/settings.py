"""Settings as plain dataclasses: checking a mapping (YAML) against one, ``--set`` overrides, deep merges
and the describer of differences between recorded and wanted settings. Knows no stage."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Mapping

import yaml

from common.errors import ConfigError


def build(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """Make dataclass ``cls`` from ``values``, checking every key and value; ``where`` names the place."""
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(names)})")
    kwargs = {k: _check(hints[k], v, f"{where}.{k}") for k, v in values.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return obj


def _check(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null, got {value!r}")
        return None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_check(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_check(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_check(kt, k, where): _check(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {tp}")


def parse_overrides(pairs: list[str] | tuple[str, ...], flag: str = "--set") -> dict[str, Any]:
    """Turn ``["train.lr=0.01", "preprocess.flow.algo=dis"]`` into a nested dict (values parsed as YAML);
    ``flag`` names the option the pairs came from in the errors."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"{flag} {pair!r}: expected key=value")
        key, raw = pair.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag} {pair!r}: {part!r} is set twice")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise ConfigError(f"{flag} {key.strip()}: {raw!r} is not a valid YAML value ({problem})") from None
    return nested


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` over ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def setting_differences(recorded: Any, wanted: Any, where: str, prefix: str = "") -> list[str]:
    """One line per leaf where two nested settings mappings differ, ``"key.sub: OLD WHERE, NEW now"``
    (``where`` says where ``recorded`` lives, e.g. "in the dataset")."""
    if isinstance(recorded, Mapping) and isinstance(wanted, Mapping):
        keys = sorted(set(recorded) | set(wanted))
        return [line for key in keys
                for line in setting_differences(recorded.get(key), wanted.get(key), where, f"{prefix}{key}.")]
    return [] if recorded == wanted else [f"{prefix.rstrip('.')}: {recorded!r} {where}, {wanted!r} now"]
