"""pipelines.yaml loading, validation and overrides."""
from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli

from commands.pipeline import load_cluster, load_pipeline, pipeline_names
from common.errors import ConfigError
from common.settings import parse_overrides
from preprocess.flow_codec import dequantize, quantize


def test_every_pipeline_in_the_file_loads() -> None:
    for name in pipeline_names():
        assert load_pipeline(name).name == name
    assert load_cluster().kind in ("local", "address", "slurm")


def test_paper_defaults() -> None:
    stats = load_pipeline("stats")
    assert stats.preprocess.size == (128, 171) and stats.preprocess.flow.bound == 20
    cpc = load_pipeline("cpc_flow_tvl1")
    assert cpc.preprocess.size == (256, 342) and cpc.preprocess.flow.bound == 10


def test_overrides_apply_and_are_typed() -> None:
    p = load_pipeline("stats", overrides=parse_overrides(["train.lr=0.01", "preprocess.flow.algo=dis"]))
    assert p.train.lr == 0.01 and p.preprocess.flow.algo == "dis"


def test_malformed_overrides_name_the_option_they_came_from(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^--set 'train.lr': expected key=value$"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match=r"^--set 'train.lr.x=1': 'lr' is set twice$"):
        parse_overrides(["train.lr=1", "train.lr.x=1"])
    result = CliRunner().invoke(cli, ["eval", "--weights", "random", "--backbone", "c3d", "--backbone-arg",
                                      "channels=[8", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Error: --backbone-arg channels: '[8' is not a valid YAML value" in result.output
    assert not (tmp_path / "r").exists()
    bad_file = tmp_path / "pipelines.yaml"
    bad_file.write_text("pipelines: [\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad_file))}: cannot read pipelines file: while parsing a "
                                          r"flow node expected the node content, but found '<stream end>' in [^\n]*$"):
        load_pipeline("stats", bad_file)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "stats.train: unknown key(s) 'lrr'"),
        ("preprocess.flow.algo=foo", "stats.preprocess.flow.algo: 'foo' is not one of"),
        ("preprocess.every=two", "stats.preprocess.every: expected an integer"),
        ("preprocess.every=0", "every must be >= 1"),
        ("bogus.x=1", "unknown section(s) bogus"),
    ],
)
def test_bad_values_are_reported_by_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pipeline("stats", overrides=parse_overrides([override]))


def test_unknown_pipeline_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'.*stats"):
        load_pipeline("nope")


def test_flow_codec_round_trip_matches_reference_convention() -> None:
    codes = np.arange(256, dtype=np.uint8)
    flow = dequantize(codes, 20.0)
    np.testing.assert_allclose(flow, codes.astype(np.float64) * 40 / 255 - 20, atol=1e-5)
    assert np.array_equal(quantize(flow, 20.0), codes)
    values = np.linspace(-25, 25, 1001)
    back = dequantize(quantize(values, 20.0), 20.0)
    inside = np.abs(values) <= 20
    assert np.abs(back[inside] - values[inside]).max() <= 20 / 255 + 1e-5
    assert np.allclose(back[values > 20], 20) and np.allclose(back[values < -20], -20)


def test_phases_are_checked_by_name() -> None:
    bad = [("train.phases=[]", "expected a non-empty list"),
           ("train.phases=[{name: a}, {name: a}]", r"phases\[1\]: each phase is a mapping with a unique 'name'"),
           ("train.phases=[{name: a, lrr: 1}]", r"phases\[0\]: unknown key\(s\) 'lrr'"),
           ("train.phases=[{name: a, method: nope}]", "its method 'nope' is not implemented yet")]
    for override, message in bad:
        try:
            loaded = load_pipeline("stats", overrides=parse_overrides([override]))
            loaded.trainable()
        except ConfigError as exc:
            assert re.search(message, str(exc)), (override, str(exc))
        else:
            raise AssertionError(f"{override} was accepted")
    two = load_pipeline("stats", overrides=parse_overrides(["train.phases=[{name: a}, {name: b, lr: 0.5}]"]))
    assert [(n, s.lr) for n, s in two.phases] == [("a", 0.0005), ("b", 0.5)] and two.train.lr == 0.5


def test_cvrl_evaluates_on_32_frame_stride_2_clips() -> None:
    clips = load_pipeline("cvrl_r3d50_k400").eval.clips
    assert (clips.clip_len, clips.length, clips.stride) == (16, 32, 2)
