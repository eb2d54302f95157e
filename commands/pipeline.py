"""Named pipelines from ``pipelines.yaml``: loading, validation and overrides (the CLI layer).

Each stage describes its settings as a dataclass (``preprocess.settings``, ``labels.settings``,
``train.settings``, ``eval.settings``); this module reads YAML, checks every key and value against those
dataclasses (``common.settings.build``) and reports problems by name.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml

from common.errors import ConfigError
from common.runner import ClusterSettings
from common.settings import build, merge
from eval.settings import EvalSettings
from labels.settings import LabelSettings, build_label_settings
from preprocess.flow import make_flow
from preprocess.settings import ExtractSettings
from train.methods import METHODS, build_phases, build_train_settings
from train.settings import TrainSettings

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "pipelines.yaml"


def read_file(path: str | Path | None = None) -> dict[str, Any]:
    """Read a pipelines file; its top level holds ``cluster`` and ``pipelines``."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read pipelines file: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(data) - {"cluster", "pipelines"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (known: cluster, pipelines)")
    if not isinstance(data.get("pipelines"), dict) or not data["pipelines"]:
        raise ConfigError(f"{path}: 'pipelines' must map pipeline names to their settings")
    return data


def pipeline_names(path: str | Path | None = None) -> list[str]:
    """Names of the pipelines in the file."""
    return sorted(read_file(path)["pipelines"])


SHARED = ("clip_len", "crop_size")  # stated once per pipeline, used by the labels, train and eval stages
_SHARED_PLACES = {"labels": (), "train": (), "eval": ("clips",)}  # where each stage keeps them


@dataclasses.dataclass
class Pipeline:
    """One named pipeline: the settings of every stage, validated.

    ``train`` is None while the pipeline's method is not implemented yet: ``pending`` then says which method
    it waits for, and training refuses with that message (extraction and labels still run). A pipeline trained
    in ``phases`` (``[(name, settings)]``, see ``train.phases``) has its last phase as ``train``.
    """

    name: str
    preprocess: ExtractSettings
    labels: LabelSettings
    train: TrainSettings | None
    eval: EvalSettings
    description: str = ""
    pending: str | None = None
    phases: list[tuple[str, TrainSettings]] = dataclasses.field(default_factory=list)

    def trainable(self) -> TrainSettings:
        """``train``, or ConfigError saying which method this pipeline waits for."""
        if self.train is None:
            raise ConfigError(f"pipeline {self.name!r}: {self.pending}")
        return self.train


def _place_shared(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """Copy the pipeline-level ``clip_len`` / ``crop_size`` into every stage section that uses them; a stage
    that states one itself is an error (one value per pipeline)."""
    shared = {key: raw.pop(key) for key in SHARED if key in raw}
    for section, parents in _SHARED_PLACES.items():
        node = raw.setdefault(section, {}) or {}
        raw[section] = node = dict(node)
        for parent in parents:
            node[parent] = dict(node.get(parent) or {})
            node = node[parent]
        for key in SHARED:
            if key in node:
                where = ".".join((name, section, *parents, key))
                raise ConfigError(f"{where}: set {key} once, at the pipeline's top level ({name}.{key}), "
                                  "not per stage")
        node.update(shared)
    return raw


def load_pipeline(
    name: str, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Pipeline:
    """Load pipeline ``name`` from the pipelines file, apply ``overrides`` (nested dict) and validate."""
    data = read_file(path)
    pipelines = data["pipelines"]
    if name not in pipelines:
        raise ConfigError(f"unknown pipeline {name!r} (known: {', '.join(sorted(pipelines))})")
    raw = merge(pipelines[name] or {}, overrides or {})
    sections = ("preprocess", "labels", "train", "eval")
    unknown = sorted(set(raw) - set(sections) - {"description", *SHARED})
    if unknown:
        raise ConfigError(f"pipeline {name!r}: unknown section(s) {', '.join(unknown)} "
                          f"(known: description, {', '.join(SHARED)}, {', '.join(sections)})")
    raw = _place_shared(raw, name)
    preprocess = build(ExtractSettings, raw["preprocess"], f"{name}.preprocess")
    try:
        make_flow(preprocess.flow)  # the backend refuses unknown or ill-typed parameters here
    except ValueError as exc:
        raise ConfigError(f"{name}.preprocess.flow: {exc}") from exc
    train, pending, phases = None, None, []
    section = raw["train"] or {}
    listed = section.get("phases") if isinstance(section.get("phases"), list) else []
    methods = [section.get("method", TrainSettings.method)]
    methods += [phase.get("method") for phase in listed if isinstance(phase, Mapping) and "method" in phase]
    missing = sorted({m for m in methods if isinstance(m, str) and m not in METHODS})
    if missing:
        pending = (f"its method {', '.join(map(repr, missing))} is not implemented yet (known methods: "
                   f"{', '.join(sorted(METHODS))}); extraction and labels work, training does not")
    else:
        phases = build_phases(section, f"{name}.train")
        train = phases[-1][1] if phases else build_train_settings(section, f"{name}.train")
    return Pipeline(name=name, description=str(raw.get("description", "")), preprocess=preprocess,
                    labels=build_label_settings(raw["labels"], f"{name}.labels"), train=train,
                    eval=build(EvalSettings, raw["eval"], f"{name}.eval"), pending=pending, phases=phases)


def pipeline_record(pipeline: Pipeline) -> dict[str, Any]:
    """The resolved pipeline as plain data in the layout of pipelines.yaml (a method's settings under
    ``train.<method>``), as written to a run's ``config.yaml``."""
    record = dataclasses.asdict(pipeline)
    for train in [record.get("train")] + [settings for _, settings in record["phases"]]:
        if train is not None:
            train[train["method"]] = train.pop("method_settings")
    return record


def load_cluster(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ClusterSettings:
    """The ``cluster`` section of the pipelines file (how the CPU stage runs), with overrides."""
    raw = merge(read_file(path).get("cluster") or {}, overrides or {})
    return build(ClusterSettings, raw, "cluster")


def train_pipeline(pipeline: Pipeline, data_dir: str | Path, out_dir: str | Path, *, device: str = "cpu",
                   resume: bool = False, progress: bool = True) -> Path:
    """Pretext training of ``pipeline`` (in its phases, if it has them) into ``out_dir``; returns the exported
    ``backbone.pt``. ConfigError when its method is not implemented yet."""
    from train.loop import train
    from train.phases import train_in_phases

    settings = pipeline.trainable()
    record = pipeline_record(pipeline)
    if pipeline.phases:
        return train_in_phases(pipeline.phases, data_dir, out_dir, device=device, resume=resume,
                               progress=progress, record=record)
    return train(settings, data_dir, out_dir, device=device, resume=resume, progress=progress, record=record)
