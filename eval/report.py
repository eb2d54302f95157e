"""Report files of an evaluation: results JSON, Markdown summary, and side-by-side tables of several runs.

Metrics are flat ``{name: value}`` dicts per evaluated model (e.g. ``{"linear.top1": 0.42}``); a key
``NAME.std`` holds the spread of ``NAME`` and is shown as ``mean ± std``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"


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
    return (f"Shows: the pretrained backbone is {verdict} its random initialisation on {results['n_test']} "
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
    lines = [
        f"# Evaluation of `{results['weights']}`",
        "",
        f"- backbone: `{results['backbone']}`, features: `{results['stage']}`, dataset: `{results['data']}`",
        f"- {results['n_classes']} classes, {results['n_train']} training / {results['n_test']} test videos "
        f"({results['split']} split)",
        "",
        results_table(results),
    ]
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
        raise ValueError(f"{file}: not an evaluation results file (no 'models' section)")
    return results


def compare_runs(paths: list[str | Path]) -> str:
    """One Markdown table with a column per (report, model), e.g. ``runA: pretrained``."""
    names = [Path(p).resolve().name for p in paths]
    columns: dict[str, dict[str, float]] = {}
    for path, name in zip(paths, names):
        label = name if names.count(name) == 1 else str(path)
        for model, metrics in load_results(path)["models"].items():
            columns[f"{label}: {model}"] = metrics
    return markdown_table(columns)
