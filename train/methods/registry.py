"""Pretext methods by name: each method module registers its class with ``@register_method("name")``."""
from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar

from common.errors import ConfigError
from common.settings import build, merge
from train.settings import TrainSettings

METHODS: dict[str, type] = {}
MethodClass = TypeVar("MethodClass", bound=type)


def register_method(name: str) -> Callable[[MethodClass], MethodClass]:
    """Class decorator: make the ``PretextMethod`` subclass trainable as ``train.method: name``."""

    def register(cls: MethodClass) -> MethodClass:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return register


def method_class(name: str) -> type:
    """The registered method ``name``; ConfigError listing the known ones otherwise."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


def build_phases(values: Mapping[str, Any] | None, where: str) -> list[tuple[str, TrainSettings]]:
    """The training phases of a pipeline's ``train:`` mapping: ``phases: [{name: NAME, KEY: VALUE, ...}, ...]``,
    each phase's keys merged over the rest of the section (a method's sub-section too); ``[]`` without phases."""
    values = dict(values or {})
    phases = values.pop("phases", None)
    if phases is None:
        return []
    if not isinstance(phases, list) or not phases:
        raise ConfigError(f"{where}.phases: expected a non-empty list of phases")
    built, names = [], set()
    for k, phase in enumerate(phases):
        if not isinstance(phase, Mapping) or not isinstance(phase.get("name"), str) or phase["name"] in names:
            raise ConfigError(f"{where}.phases[{k}]: each phase is a mapping with a unique 'name'")
        names.add(phase["name"])
        overrides = {key: value for key, value in phase.items() if key != "name"}
        built.append((phase["name"], build_train_settings(merge(values, overrides), f"{where}.phases[{k}]")))
    return built


def build_train_settings(values: Mapping[str, Any] | None, where: str) -> TrainSettings:
    """``TrainSettings`` from a pipeline's ``train:`` mapping; the sub-section named after ``method`` is checked
    against that method's ``Settings`` and becomes ``method_settings``. Sections of other registered methods
    are checked too (a typo is an error) but not used, so ``--set train.method=...`` can switch methods."""
    values = dict(values or {})
    if "phases" in values:
        raise ConfigError(f"{where}: a phase cannot hold phases")
    if "method_settings" in values:
        raise ConfigError(f"{where}: unknown key 'method_settings' (a method's settings go in {where}.<method>)")
    name = values.get("method", TrainSettings.method)
    cls = method_class(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(f"{where}.method: expected a method name, got {name!r}")
    section = values.pop(name, None)
    for other in sorted(set(values) & set(METHODS)):  # another method's section: checked, not used
        build(METHODS[other].Settings, values.pop(other), f"{where}.{other}")
    settings = build(TrainSettings, values, where)
    settings.method_settings = build(cls.Settings, section, f"{where}.{name}")
    return settings
