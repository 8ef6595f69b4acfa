"""Ship the U-GAT-IT face model from a training run into the repository.

Writes, from the latest checkpoint of RUN_DIR:

* ``weights/ugatit-selfie2anime/``: the A->B generator (fp16 safetensors + config.json), its
  model card ``MODEL_CARD.md`` and ``samples.jpg`` (the run's latest validation grid);
* ``training/ugatit-selfie2anime/``: what the next session needs to carry on when the full
  checkpoint is gone: ``state/`` (both generators and the four discriminators, fp16; warm start
  with ``--set init_from=training/ugatit-selfie2anime/state``), ``stats.jsonl`` (validation KID
  history), ``losses_every50.csv`` (every 50th loss row) and ``config.toml``.

Usage: python scripts/ship_ugatit_weights.py RUN_DIR [--data DATA_DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "ugatit-selfie2anime"


def export(run_dir: Path, out: Path, data: str | None) -> None:
    cmd = [sys.executable, "-m", "facetoon", "-q", "export", "ugatit", str(run_dir), str(out), "--fp16",
           "--discriminators"]
    if data:
        cmd += ["--data", data]
    subprocess.run(cmd, check=True)


def downsample_csv(src: Path, dst: Path, every: int = 50) -> int:
    with src.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if int(r["step"]) % every == 0]
        fields = reader.fieldnames or []
    with dst.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def model_card(meta: dict, stats: list[dict], config_text: str) -> str:
    cfg = meta["config"]
    rows = "\n".join(f"| {s['step']} | {s.get('train_hours', 0):.2f} | {s['kid_x100']:.2f} |" for s in stats) \
        or "| - | - | no validation pass yet |"
    if stats:
        best = min(stats, key=lambda s: s["kid_x100"])
        latest_kid = f"{stats[-1]['kid_x100']:.2f} at step {stats[-1]['step']}"
        best_kid = f"{best['kid_x100']:.2f} at step {best['step']}"
    else:
        latest_kid = best_kid = "not measured yet (first validation pass at step " \
            f"{cfg['validate_every']})"
    return f"""# ugatit-selfie2anime: the default face model of facetoon

U-GAT-IT generator (selfie -> anime face), A->B direction, trained **from scratch on this
project's 2-core CPU machines** with `facetoon train ugatit`. No pretrained U-GAT-IT weights were
used; no teacher model.

| | |
|---|---|
| architecture | `ugatit_generator`: light={cfg['light']}, ngf={cfg['ngf']}, n_res={cfg['n_res']}, trained at {cfg['img_size']} px |
| training steps | {meta['step']} (batch {cfg['batch_size']}) |
| wall-clock training time | {meta['train_hours']:.2f} h on 2 CPU cores (shared with development work) |
| precision | {cfg['precision']} (CPU fast path: channels_last + bf16 autocast) |
| storage | fp16 safetensors, upcast to fp32 on load |
| validation KIDx100 (latest) | {latest_kid} |
| validation KIDx100 (best) | {best_kid} |
| quality bar (issue 8) | <= 40; goal <= 15 |

**Status: an early checkpoint of a run that continues across sessions.** Until the KID bar is met
these weights are a work in progress; see the history below.

## Data

`../shared/data/selfie2anime` (the U-GAT-IT selfie2anime set: trainA selfies, trainB anime faces;
**research use only**). {cfg['holdout']} images of each domain are held out (seeded split,
`holdout_seed={cfg['holdout_seed']}`) for validation and never trained on.

## Configuration

`configs/ugatit_selfie2anime_cpu.toml` (its header explains every deviation from the paper, all
for CPU time). Resolved config of the run:

```toml
{config_text.strip()}
```

## Metric history

KIDx100 between {cfg['kid_images']} translated held-out selfies and {cfg['kid_images']} held-out anime faces, on pooled
MobileNetV2 features (`facetoon eval kid` definition, litert backend), computed by the trainer's validation pass:

| step | training hours | KIDx100 |
|---|---|---|
{rows}

For scale: raw selfies vs anime faces score about 160 on this metric, two anime sets under 2.

## Samples

`samples.jpg`: validation images; per row input | CAM heat-map | translation | cycle
reconstruction | identity (first rows selfie -> anime, last rows anime -> selfie).

## Reproduce / continue

```bash
facetoon train ugatit --data ../shared/data/selfie2anime --out RUN_DIR \\
    --config configs/ugatit_selfie2anime_cpu.toml --resume
# without the full checkpoint (a new machine): warm start from the committed compact state
facetoon train ugatit --data ../shared/data/selfie2anime --out RUN_DIR \\
    --config configs/ugatit_selfie2anime_cpu.toml --set init_from=training/{NAME}/state
python scripts/ship_ugatit_weights.py RUN_DIR     # re-export this folder and its card
```

## Licences

The weights are facetoon's (MIT). They were learnt from selfie2anime, which is distributed for
research; check its terms before commercial use.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", help="data folder, if it moved since training")
    args = ap.parse_args()
    weights = REPO / "weights" / NAME
    training = REPO / "training" / NAME
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        export(args.run_dir, out, args.data)
        state = training / "state"
        if state.exists():
            shutil.rmtree(state)
        state.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(out, state)
        if weights.exists():
            for p in ("config.json", "model.safetensors"):
                (weights / p).unlink(missing_ok=True)
        weights.mkdir(parents=True, exist_ok=True)
        for p in ("config.json", "model.safetensors"):
            shutil.copy2(out / "a2b" / p, weights / p)
    meta = json.loads((weights / "config.json").read_text())["meta"]
    stats_path = args.run_dir / "stats.jsonl"
    stats = [json.loads(line) for line in stats_path.read_text().splitlines() if line.strip()] \
        if stats_path.is_file() else []
    stats = [s for s in stats if s["step"] <= meta["step"]]
    if stats_path.is_file():
        shutil.copy2(stats_path, training / "stats.jsonl")
    config_text = (args.run_dir / "config.toml").read_text()
    (training / "config.toml").write_text(config_text)
    n = downsample_csv(args.run_dir / "losses.csv", training / "losses_every50.csv")
    latest = args.run_dir / "samples" / "latest.jpg"
    if latest.is_file():
        shutil.copy2(latest, weights / "samples.jpg")
    (weights / "MODEL_CARD.md").write_text(model_card(meta, stats, config_text))
    print(f"shipped step {meta['step']} ({meta['train_hours']:.2f} h) to {weights} and {training}; "
          f"{len(stats)} validation rows, {n} loss rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
