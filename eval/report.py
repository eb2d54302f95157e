"""Report files of an evaluation: results JSON, Markdown summary, and side-by-side tables of several runs.

Metrics are flat ``{name: value}`` dicts per evaluated model (e.g. ``{"linear.top1": 0.42}``); a key
``NAME.std`` holds the spread of ``NAME`` and is shown as ``mean ± std``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from eval.clusters import clusters_markdown

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"
PROTOCOLS: dict[str, tuple[str, ...]] = {  # protocol -> metric name prefixes
    "linear": ("linear.", "logreg."),
    "fewshot": ("fewshot.",),
    "retrieval": ("retrieval.",),
    "finetune": ("finetune.",),
    "scenes": ("scenes.",),
    "similarity": ("similarity.",),
    "clusters": ("clusters.",),
}
HEADLINE_METRICS: tuple[str, ...] = ("linear.top1", "fewshot.1shot", "retrieval.R@1", "finetune.100%.video_top1",
                                     "scenes.accuracy", "similarity.accuracy")
MODEL_NAMES = {"random": "random init", "idt": "IDT (hand-crafted)"}
SUPERVISED = "supervised (from scratch)"  # the random initialisation fine-tuned with labels


def _format(metrics: dict[str, float], name: str) -> str:
    if name not in metrics or metrics[name] is None:
        return "–"
    text = f"{100 * metrics[name]:.1f}"
    if f"{name}.std" in metrics:
        text += f" ± {100 * metrics[name + '.std']:.1f}"
    return text


def metric_names(columns: dict[str, dict[str, float]]) -> list[str]:
    """Every metric name of the columns (spreads excluded), in first-seen order."""
    names: list[str] = []
    for metrics in columns.values():
        names += [n for n in metrics if not n.endswith(".std") and n not in names]
    return names


def markdown_table(columns: dict[str, dict[str, float]], difference: tuple[str, str] | None = None) -> str:
    """Markdown table: one row per metric, one column per model, values in percent.

    ``difference=(a, b)`` adds a column ``a - b`` in percentage points (e.g. pretrained - random).
    """
    header = ["metric (%)", *columns]
    if difference:
        header.append(f"{difference[0]} − {difference[1]}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in metric_names(columns):
        row = [name, *(_format(metrics, name) for metrics in columns.values())]
        if difference:
            a, b = (columns[key].get(name) for key in difference)
            row.append("–" if a is None or b is None else f"{100 * (a - b):+.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def differences(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """``first - second`` for every metric (spreads excluded) present in both."""
    return {n: first[n] - second[n] for n in first if n in second and not n.endswith(".std")}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def is_top1(name: str) -> bool:
    """Whether metric ``name`` is a top-1 figure: linear probe / logistic regression / fine-tuning top-1,
    few-shot accuracy, retrieval R@1."""
    return name.endswith(("top1", "R@1")) or (name.startswith("fewshot.") and not name.endswith(".std"))


def comparison_line(results: dict[str, Any]) -> str:
    """One sentence on what an evaluation shows: on how many top-1 metrics the pretrained backbone is ahead
    of its random initialisation, by how much on average, on how many held-out videos."""
    pretrained, random = results["models"]["pretrained"], results["models"]["random"]
    gaps = [pretrained[n] - random[n] for n in metric_names({"p": pretrained}) if is_top1(n) and n in random]
    if not gaps:
        return "No top-1 metric to compare pretrained and random initialisation on."
    ahead = sum(gap > 0 for gap in gaps)
    verdict = "ahead of" if ahead > len(gaps) / 2 else "not ahead of"
    videos = results.get("n_test", results.get("n_labelled"))  # scenes / similarity only: every labelled video
    return (f"Shows: the pretrained backbone is {verdict} its random initialisation on {videos} "
            f"held-out videos ({ahead} of {len(gaps)} top-1 metrics higher, mean {100 * np.mean(gaps):+.1f} points).")


def results_table(results: dict[str, Any]) -> str:
    """The metrics table of one evaluation; when both ran, a pretrained − random column and under the table
    the :func:`comparison_line`."""
    models = results["models"]
    if not {"pretrained", "random"} <= set(models):
        return markdown_table(models)
    return markdown_table(models, ("pretrained", "random")) + "\n" + comparison_line(results) + "\n"


def summary_markdown(results: dict[str, Any]) -> str:
    """The summary page of one evaluation: what was evaluated and the metrics table."""
    source = (f"descriptors: `{results['descriptors']}`" if results.get("descriptors")
              else f"backbone: `{results['backbone']}`, features: `{results['stage']}`")
    lines = [f"# Evaluation of `{results['weights']}`", "", f"- {source}, dataset: `{results['data']}`"]
    if results.get("missing_descriptors"):
        missing = results["missing_descriptors"]
        lines.append(f"- {len(missing)} video(s) have no stored descriptor and count with a zero one: "
                     f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if "n_train" in results:
        lines.append(f"- {results['n_classes']} classes, {results['n_train']} training / {results['n_test']} test "
                     f"videos ({results['split']} split)")
    if any(t in results.get("tasks", []) for t in ("scenes", "similarity")):
        lines.append(f"- scenes / similarity: {results.get('n_labelled', '?')} labelled videos, overlapping windows")
    if "n_pairs" in results:
        lines.append(f"- similarity pairs: {results['n_pairs']} in {results['n_folds']} folds ({results['pairs']}); "
                     f"± is the spread over folds")
    if "finetune" in results.get("tasks", []) and "random" in results["models"]:
        lines.append(f"- finetune rows: the `random` column is the {SUPERVISED} reference")
    lines += ["", results_table(results)]
    if "clusters" in results:
        lines.append(clusters_markdown(results["clusters"]))
    figures = results.get("figures", [])
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def write_report(results: dict[str, Any], out_dir: str | Path) -> None:
    """Write ``results.json`` and ``summary.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_FILE).write_text(json.dumps(_jsonable(results), indent=2) + "\n")
    (out_dir / SUMMARY_FILE).write_text(summary_markdown(results))


def load_results(path: str | Path) -> dict[str, Any]:
    """Results of one evaluation from a report directory (or its ``results.json``)."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        results = json.loads(file.read_text())
    except OSError as exc:
        raise FileNotFoundError(f"{file}: no evaluation results ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(results, dict) or not isinstance(results.get("models"), dict):
        raise ValueError(f"{file}: not an evaluation results file (no 'models' mapping of model names to metrics)")
    for model, metrics in results["models"].items():
        if not isinstance(metrics, dict) or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in metrics.values()):
            raise ValueError(f"{file}: model {model!r} has no mapping of metric names to numbers")
    return results


def protocol_of(metric: str) -> str:
    """The protocol a flat metric name belongs to (``PROTOCOLS``), or ``other``."""
    return next((p for p, prefixes in PROTOCOLS.items() if metric.startswith(prefixes)), "other")


def column_name(report: str, model: str, protocol: str) -> str:
    """Column of one model of one report: ``report: model`` with readable model names; the random
    initialisation fine-tuned with labels is the supervised-from-scratch reference."""
    if model == "random" and protocol == "finetune":
        return f"{report}: {SUPERVISED}"
    return f"{report}: {MODEL_NAMES.get(model, model)}"


def comparison_columns(paths: list[str | Path], names: list[str] | None = None,
                       ) -> dict[str, dict[str, dict[str, float]]]:
    """{protocol: {column: metrics of that protocol (with spreads)}} over several report directories, each
    named by ``names`` (default: its folder name, or its path where two folders share a name)."""
    folders = [Path(p).resolve().name for p in paths]
    labels = names or [name if folders.count(name) == 1 else str(path) for path, name in zip(paths, folders)]
    if len(labels) != len(paths) or len(set(labels)) != len(labels):
        raise ValueError(f"one distinct name per report needed, got {labels} for {len(paths)} report(s)")
    tables: dict[str, dict[str, dict[str, float]]] = {}
    for path, label in zip(paths, labels):
        for model, metrics in load_results(path)["models"].items():
            for metric, value in metrics.items():
                protocol = protocol_of(metric.removesuffix(".std"))
                column = tables.setdefault(protocol, {}).setdefault(column_name(label, model, protocol), {})
                column[metric] = value
    order = [*PROTOCOLS, "other"]
    return {p: tables[p] for p in order if p in tables}


def compare_runs(paths: list[str | Path], names: list[str] | None = None) -> str:
    """Markdown: one table per protocol with a column per (report, model), e.g. ``runA: pretrained``;
    ``mean ± std`` where the protocol has a spread (few-shot draws, similarity folds)."""
    parts = [f"## {protocol}\n\n{markdown_table(columns)}"
             for protocol, columns in comparison_columns(paths, names).items()]
    return "\n".join(parts)


def headline_values(paths: list[str | Path], names: list[str] | None = None,
                    ) -> dict[str, dict[str, tuple[float, float | None]]]:
    """{metric: {column: (value, spread or None)}} of ``HEADLINE_METRICS`` present in the reports (the input
    of ``eval.figures.plot_headline_bars``)."""
    values: dict[str, dict[str, tuple[float, float | None]]] = {}
    for protocol, columns in comparison_columns(paths, names).items():
        for metric in (m for m in HEADLINE_METRICS if protocol_of(m) == protocol):
            found = {c: (m[metric], m.get(f"{metric}.std")) for c, m in columns.items() if m.get(metric) is not None}
            if found:
                values[metric] = found
    return values


def write_comparison(paths: list[str | Path], out_file: str | Path | None, names: list[str] | None = None,
                     figure_file: str | Path | None = None) -> tuple[str, Path | None]:
    """``compare_runs`` of the reports, written to ``out_file`` (Markdown, when given), and their headline bar
    chart drawn to ``figure_file`` (default: ``out_file`` with ``.png``; none without a headline metric);
    returns (the tables, the chart's path or None)."""
    from eval.figures import plot_headline_bars

    table = compare_runs(paths, names)
    if out_file is not None:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Path(out_file).write_text(table)
    figure = Path(figure_file) if figure_file else (Path(out_file).with_suffix(".png") if out_file else None)
    bars = headline_values(paths, names)
    if figure is None or not bars:
        return table, None
    figure.parent.mkdir(parents=True, exist_ok=True)
    try:
        plot_headline_bars(bars, figure, "Headline metrics (error bars: spread over draws / folds)")
    except ValueError as exc:  # matplotlib: a file type it cannot write
        raise ValueError(f"{figure}: {exc}") from exc
    return table, figure
