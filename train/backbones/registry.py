"""Backbones by name: each architecture file registers its builders with ``@register_backbone("name")``."""
from __future__ import annotations

from typing import Callable, TypeVar

from train.backbones.base import Backbone

BACKBONES: dict[str, Callable[..., Backbone]] = {}

Builder = TypeVar("Builder", bound=Callable[..., Backbone])


def register_backbone(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make the builder ``fn(in_channels=3, **kwargs) -> Backbone`` buildable as ``name``."""

    def register(builder: Builder) -> Builder:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = builder
        return builder

    return register
