"""Pretext methods as plug-ins: one module each, registered by name (``train.method`` in a pipeline).

Each method subclasses ``base.PretextMethod`` and adds its settings, data declaration, heads, loss and hooks;
``registry`` maps names to methods and builds a pipeline's ``train:`` section. See docs/ARCHITECTURE.md.
"""
from __future__ import annotations

from train.backbones.base import Backbone
from train.methods import pace, stats  # noqa: F401  (each registers its method)
from train.methods.base import PretextMethod, StepOutput
from train.methods.registry import METHODS, build_phases, build_train_settings, method_class, register_method
from train.settings import TrainSettings


def build_method(settings: TrainSettings, backbone: Backbone) -> PretextMethod:
    """The pretext method ``settings.method`` around ``backbone``, with its own settings."""
    return method_class(settings.method)(backbone, settings.method_settings)


__all__ = ["METHODS", "PretextMethod", "StepOutput", "build_method", "build_phases", "build_train_settings",
           "method_class", "register_method"]
