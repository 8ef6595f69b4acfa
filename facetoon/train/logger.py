"""Training logs: a CSV of every loss, ``stats.jsonl`` of validation metrics, TensorBoard events.

Only the main rank writes. CSV rows are appended and flushed each step, so a crash loses nothing;
on resume, rows past the resumed step (written after the last checkpoint) are dropped first, and so
is a row or line a crash left half-written. Files are only ever rewritten atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._fileutil import atomic_write_bytes

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
        """Drop CSV/JSONL rows of steps > ``step`` (they belong to an interrupted future) and rows a
        crash left incomplete."""
        if self.csv_path.is_file():
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                fields = list(reader.fieldnames or [])
                rows = list(reader)
            steps = [_row_step(r) for r in rows]
            keep = [r for r, n in zip(rows, steps) if n is not None and n <= step]
            if fields and len(keep) != len(rows):
                if None in steps:
                    log.warning("%s: dropped an incomplete row (a crash while writing it?)", self.csv_path)
                _write_csv(self.csv_path, fields, keep)
        if self.stats_path.is_file():
            lines, torn = [], 0
            for ln in self.stats_path.read_text().splitlines():
                if not ln.strip():
                    continue
                try:
                    row = json.loads(ln)
                except json.JSONDecodeError:
                    torn += 1
                    continue
                if row.get("step", 0) <= step:
                    lines.append(ln)
            if torn:
                log.warning("%s: dropped %d unreadable line(s) (a crash while writing?)", self.stats_path, torn)
            atomic_write_bytes(self.stats_path, "".join(ln + "\n" for ln in lines).encode())

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
            _write_csv(self.csv_path, fields, rows)
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


def _row_step(row: dict[str, str | None]) -> int | None:
    """The step of a CSV row; ``None`` for a row a crash cut short (missing fields or a bad step)."""
    if any(v is None for v in row.values()):
        return None
    try:
        return int(row["step"] or "")
    except (KeyError, ValueError):
        return None


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with ``rows`` under the header ``fields`` (missing values blank)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=fields, restval="")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())
