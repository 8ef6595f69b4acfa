"""The face model's validation curve: ``docs/figures/ugatit_kid_curve.png``.

    python scripts/make_kid_curve.py [--stats training/ugatit-selfie2anime/stats.jsonl] [--out PATH]

Plots KIDx100 against the training step from the committed validation history (written by
``facetoon train ugatit`` and merged across sessions by ``scripts/ship_weights.py``): the
generator as trained (``kid_x100_live`` where the run kept a weight average, else ``kid_x100``)
and, where kept, the weight average (``kid_x100``). Horizontal lines: the quality bar (40) and
goal (15) of issue 8; where ``averages.jsonl`` sits beside the stats (written by
``scripts/average_snapshots.py``): each snapshot average, drawn at its last snapshot's step with a
thin line back to its first (the steps it spans); and two references of
``python benchmarks/bench_kid_resolution.py``, read from its table in the README: real anime faces
shrunk to the training size of 128 px (the floor
of a 128 px model) and the raw selfies. On a second axis, where ``losses_every50.csv`` sits beside
the stats: the learning rate the trainer logged (the schedule). Where ``sessions.jsonl`` records
the image size and config file of each session: a vertical line where a phase begins (the
training size or the config file changes, e.g. the 256 px phase). A dashed line: the power law
``KID = c * step**b`` fitted (least squares in log-log) to the validations of steps ``--fit-from``
to ``--fit-to`` (default: from step 8000 to the latest), drawn to ``--draw-until``; the script prints
the fit and the step where it would reach the bar and the goal. A trend of a noisy curve, not a
prediction, and it depends on the window (e.g. across the 128 and 256 px phases, whose KIDs are
measured on outputs of different sizes, or within one): it says how far "more CPU time at this
configuration" is from the bar.
Re-run after shipping new weights.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from ship_weights import read_jsonl, trained_kid, training_phases  # this folder is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATS = REPO / "training" / "ugatit-selfie2anime" / "stats.jsonl"
LOSSES_NAME = "losses_every50.csv"
SESSIONS_NAME = "sessions.jsonl"
AVERAGES_NAME = "averages.jsonl"
DEFAULT_OUT = REPO / "docs" / "figures" / "ugatit_kid_curve.png"


def resolution_references(readme: Path) -> dict[str, float]:
    """From the README's bench_kid_resolution table (header ``| size | ...``, row ``| KIDx100 vs
    held-out anime | ...``): the 128 px anime floor and the raw selfies; ``{}`` if it is not there."""
    lines = readme.read_text().splitlines()
    for i, line in enumerate(lines[:-2]):
        if line.startswith("| size |") and lines[i + 2].startswith("| KIDx100 vs held-out anime |"):
            header = [c.strip() for c in line.strip("|").split("|")]
            values = [c.strip().strip("*") for c in lines[i + 2].strip("|").split("|")]
            refs = {}
            for column, label in (("128 px", "anime faces shrunk to 128 px (floor)"),
                                  ("raw selfies, 256 px", "raw selfies, 256 px")):
                if column in header:
                    try:
                        refs[label] = float(values[header.index(column)])
                    except (ValueError, IndexError):
                        pass
            return refs
    return {}


def learning_rates(losses_csv: Path) -> tuple[list[int], list[float]]:
    """(steps, lr) from a trainer loss table with ``step`` and ``lr`` columns; empty if absent."""
    if not losses_csv.is_file():
        return [], []
    with losses_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("lr") not in (None, "")]
    return [int(r["step"]) for r in rows], [float(r["lr"]) for r in rows]


def phase_starts(sessions_jsonl: Path) -> list[tuple[int, str]]:
    """(first step, label) of every new phase after the first: a change of the training size
    ("256 px") or, at the same size, of the config file ("new lr cycle")."""
    phases = training_phases(read_jsonl(sessions_jsonl))
    return [(first, f"{size} px" if size != before[0] else "new lr cycle")
            for before, (size, _, first, _) in zip(phases, phases[1:])]


def power_law_fit(steps: list[int], kids: list[float]) -> tuple[float, float]:
    """``(c, b)`` of ``kid = c * step**b``, least squares on ``log kid`` against ``log step``."""
    import numpy as np

    if len(set(steps)) < 2 or min(kids) <= 0:
        raise ValueError("a power-law fit needs positive KIDs at two or more steps")
    b, log_c = np.polyfit(np.log(steps), np.log(kids), 1)
    return float(np.exp(log_c)), float(b)


def steps_to_reach(value: float, c: float, b: float) -> float:
    """The step where ``c * step**b`` equals ``value`` (inf if the fit does not decrease)."""
    return math.inf if b >= 0 else (value / c) ** (1 / b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stats", type=Path, default=DEFAULT_STATS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--fit-from", type=int, default=8000,
                    help="first validation step of the power-law trend (default 8000: past the first "
                         "steps of the 128 px phase)")
    ap.add_argument("--fit-to", type=int, default=None,
                    help="last validation step of the trend (default: the latest), e.g. to fit one phase")
    ap.add_argument("--draw-until", type=int, default=45000, help="last step the trend line is drawn to")
    args = ap.parse_args(argv)
    if not args.stats.is_file():
        print(f"make_kid_curve.py: {args.stats} not found", file=sys.stderr)
        return 1
    rows = read_jsonl(args.stats)
    rows = [r for r in rows if "kid_x100" in r]
    if not rows:
        print(f"make_kid_curve.py: no kid_x100 rows in {args.stats}", file=sys.stderr)
        return 1

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4), dpi=110)
    ax.plot([r["step"] for r in rows], [trained_kid(r) for r in rows], "o-",
            color="tab:blue", label="generator as trained")
    averaged = [r for r in rows if "kid_x100_live" in r]
    if averaged:
        ax.plot([r["step"] for r in averaged], [r["kid_x100"] for r in averaged], "s", color="tab:gray",
                label="its weight average (ema_decay), where kept")
    averages = [r for r in read_jsonl(args.stats.parent / AVERAGES_NAME) if r.get("snapshot_steps") and "kid_x100" in r]
    for i, r in enumerate(averages):
        first, last_step = min(r["snapshot_steps"]), max(r["snapshot_steps"])
        ax.plot([first, last_step], [r["kid_x100"]] * 2, "-", color="tab:brown", linewidth=0.8, alpha=0.6)
        ax.plot([last_step], [r["kid_x100"]], "D", color="tab:brown",
                label="uniform average of the exported snapshots (line: steps it spans)" if i == 0 else None)
    for value, label, style in ((40.0, "bar (40)", "tab:red"), (15.0, "goal (15)", "tab:green")):
        ax.axhline(value, color=style, linestyle=":", linewidth=1.5, label=label)
    for label, value in resolution_references(REPO / "README.md").items():
        ax.axhline(value, color="black", linestyle="-.", linewidth=0.8, alpha=0.6, label=f"{label}: {value:g}")
    for step, label in phase_starts(args.stats.parent / SESSIONS_NAME):
        ax.axvline(step, color="tab:purple", linewidth=1)
        ax.annotate(f"{label} from here", (step, 0), xytext=(-3, 4), textcoords="offset points",
                    color="tab:purple", fontsize=8, rotation=90, ha="right", va="bottom")  # phases may be close
    ax.set_xlabel("training step (batch 1)")
    ax.set_ylabel("validation KIDx100 (lower is better)")
    ax.set_title("ugatit-selfie2anime: 200 held-out selfies vs 200 held-out anime faces")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    last = rows[-1]["step"] if args.fit_to is None else args.fit_to
    fit_rows = [r for r in rows if args.fit_from <= r["step"] <= last and trained_kid(r) > 0]
    if len({r["step"] for r in fit_rows}) >= 2:
        import numpy as np

        c, b = power_law_fit([r["step"] for r in fit_rows], [trained_kid(r) for r in fit_rows])
        xs = np.linspace(fit_rows[0]["step"], max(args.draw_until, rows[-1]["step"]), 100)
        ax.plot(xs, c * xs ** b, "--", color="tab:blue", alpha=0.5, linewidth=1,
                label=f"trend of steps {fit_rows[0]['step']}-{fit_rows[-1]['step']}: KID ~ step^{b:.2f}")
        reach = {v: steps_to_reach(v, c, b) for v in (40.0, 15.0)}
        print(f"power-law trend of the {len(fit_rows)} validations of steps {fit_rows[0]['step']}-"
              f"{fit_rows[-1]['step']}: "
              f"KIDx100 = {c:.4g} * step^{b:.3f}; it reaches 40 at step {reach[40.0]:,.0f} "
              f"and 15 at step {reach[15.0]:,.0f}")
    handles, labels = ax.get_legend_handles_labels()
    steps, lrs = learning_rates(args.stats.parent / LOSSES_NAME)
    if steps:
        ax_lr = ax.twinx()
        (line,) = ax_lr.plot(steps, lrs, color="tab:orange", linewidth=1, alpha=0.8)
        ax_lr.set_ylabel("learning rate", color="tab:orange")
        ax_lr.set_ylim(bottom=0)
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        handles.append(line)
        labels.append("learning rate (right axis)")
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(rows)} validation rows, last step {rows[-1]['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
