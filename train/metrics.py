"""Training metrics: one JSON object per line in ``RUN_DIR/metrics.jsonl`` and TensorBoard scalars.

Only the main process writes. On resume, records past the resumed step (written after the checkpoint the run
restarts from) are dropped from the JSON-lines file and purged from TensorBoard, so both read as one run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

METRICS_FILE = "metrics.jsonl"


def drop_records_after(path: Path, step: int) -> None:
    """Rewrite the JSON-lines file ``path`` without the records whose ``step`` is greater than ``step``.

    A last line that is not valid JSON (a write cut short when the run was killed) is dropped too; a bad
    line elsewhere raises ValueError naming the file and the line.
    """
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not a JSON record ({exc})") from exc
        if record["step"] <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


class MetricsLogger:
    """Appends ``{"step": s, name: value, ...}`` records to ``out_dir/metrics.jsonl`` and to TensorBoard."""

    def __init__(self, out_dir: str | Path, start_step: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / METRICS_FILE
        self.writer: SummaryWriter | None = None
        if enabled:
            drop_records_after(self.path, start_step)
            self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step or None)

    def log(self, step: int, values: dict[str, float]) -> None:
        """Record scalar ``values`` at ``step`` (non-finite values are written as JSON null)."""
        if not self.enabled:
            return
        record = {"step": step, **{k: (float(v) if math.isfinite(v) else None) for k, v in values.items()}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
