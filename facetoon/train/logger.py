"""Training logs: a CSV of every loss, ``stats.jsonl`` of validation metrics, TensorBoard events.

Only the main rank writes. CSV rows are appended and flushed each step, so a crash loses nothing;
on resume, rows past the resumed step (written after the last checkpoint) are dropped first.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["MetricLogger"]

log = logging.getLogger(__name__)


class MetricLogger:
    def __init__(self, run_dir: str | os.PathLike[str], resume_step: int = 0, tensorboard: bool = True) -> None:
        self.dir = Path(run_dir)
        self.csv_path = self.dir / "losses.csv"
        self.stats_path = self.dir / "stats.jsonl"
        self._truncate(resume_step)
        self._csv_file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._fields: list[str] | None = None
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=resume_step or None)
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                log.warning("tensorboard is not installed; logging to CSV only")

    def _truncate(self, step: int) -> None:
        """Drop CSV/JSONL rows of steps > ``step`` (they belong to an interrupted future)."""
        if self.csv_path.is_file():
            with self.csv_path.open(newline="") as f:
                rows = list(csv.DictReader(f))
                fields = rows[0].keys() if rows else None
            keep = [r for r in rows if int(r["step"]) <= step]
            if fields is not None and len(keep) != len(rows):
                with self.csv_path.open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(fields))
                    w.writeheader()
                    w.writerows(keep)
        if self.stats_path.is_file():
            lines = [ln for ln in self.stats_path.read_text().splitlines()
                     if ln.strip() and json.loads(ln).get("step", 0) <= step]
            self.stats_path.write_text("".join(ln + "\n" for ln in lines))

    def log_losses(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **{k: f"{v:.6g}" for k, v in values.items()}}
        if self._writer is None or not set(row) <= set(self._fields or ()):
            self._open_csv(list(row))
        assert self._writer is not None and self._csv_file is not None
        self._writer.writerow(row)
        self._csv_file.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"loss/{k}", v, step)

    def _open_csv(self, keys: list[str]) -> None:
        """(Re)open the CSV for appending; when new columns appear, rewrite it with the union header."""
        if self._csv_file is not None:
            self._csv_file.close()
        rows: list[dict[str, str]] = []
        header: list[str] = []
        if self.csv_path.is_file() and self.csv_path.stat().st_size > 0:
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                rows = list(reader)
        fields = header + [k for k in keys if k not in header]
        if fields != header:
            with self.csv_path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(rows)
        self._fields = fields
        self._csv_file = self.csv_path.open("a", newline="")
        self._writer = csv.DictWriter(self._csv_file, fieldnames=fields, restval="")

    def log_stats(self, step: int, stats: dict[str, Any]) -> None:
        with self.stats_path.open("a") as f:
            f.write(json.dumps({"step": step, **stats}) + "\n")
        if self._tb is not None:
            for k, v in stats.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"val/{k}", v, step)

    def log_image(self, tag: str, step: int, image: np.ndarray) -> None:
        """``image``: HxWx3 uint8 RGB."""
        if self._tb is not None:
            self._tb.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self._csv_file is not None:
            self._csv_file.close()
        if self._tb is not None:
            self._tb.close()
