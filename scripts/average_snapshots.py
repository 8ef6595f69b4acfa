"""Average snapshots of the face model's generator and score the average on the validation split.

A U-GAT-IT generator trained with batch 1 swings from one checkpoint to the next: its validation
KIDx100 moves by 10-30 between validations 1000 steps apart. The uniform average of the weights of
several snapshots of one run (stochastic weight averaging, Izmailov et al. 2018, applied to saved
snapshots; ``torch.optim.swa_utils.AveragedModel``) is a steadier generator. Training is not
changed: the average is made after the fact, from the exported A->B generators of the run
(``training/ugatit-selfie2anime/snapshots/step_N/``, one per validation interval).

    python scripts/average_snapshots.py training/ugatit-selfie2anime/snapshots/step_* \\
        --data ../shared/data/selfie2anime --each --out weights/ugatit-selfie2anime

writes the average as an fp16 weights folder (``config.json`` meta: the latest snapshot's run
metadata, ``weights`` naming the average and ``snapshot_steps``), ``samples.jpg`` (held-out selfie |
its translation, one pair per cell) and appends the scores to
``training/ugatit-selfie2anime/averages.jsonl``. The score is the trainer's validation KIDx100: the
same held-out images (the snapshots' ``holdout``, ``holdout_seed``, ``kid_images``), the same
MobileNetV2 features (``kid_backend``), the generator in fp32. ``--each`` also scores every
snapshot alone; a snapshot whose weights file (by its sha256) was scored before, on as many images
with the same features, keeps its recorded score (``--rescore`` scores it again). Without
``--data`` nothing is scored (and nothing is recorded).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "training" / "ugatit-selfie2anime" / "averages.jsonl"


def load_snapshots(folders: list[Path]) -> tuple[list[nn.Module], list[dict[str, Any]], list[Path]]:
    """The generators (fp32, eval mode), their ``config.json`` documents and their folders, sorted by step."""
    from facetoon.errors import ConfigError
    from facetoon.models import load_pretrained
    from facetoon.models.serialization import read_config

    docs = [read_config(f) for f in folders]
    for f, doc in zip(folders, docs):
        if "step" not in doc.get("meta", {}):
            raise ConfigError(f"{f}: config.json has no meta.step (not an export of a training run)")
        if (doc["arch"], doc["config"]) != (docs[0]["arch"], docs[0]["config"]):
            raise ConfigError(f"{f}: another architecture than {folders[0]} ({doc['arch']} {doc['config']})")
    order = sorted(range(len(folders)), key=lambda i: docs[i]["meta"]["step"])
    return [load_pretrained(folders[i]).eval() for i in order], [docs[i] for i in order], [folders[i] for i in order]


def weights_digest(folder: Path) -> str:
    """The sha256 of a snapshot's ``model.safetensors``: the key its score is recorded under."""
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def recorded_scores(record: Path, kid_images: int, kid_backend: str) -> dict[str, float]:
    """Scores of single snapshots in ``record`` by their weights' sha256 (rows scored on
    ``kid_images`` images with ``kid_backend`` features; rows without digests are left out)."""
    scores: dict[str, float] = {}
    if record.is_file():
        for row in map(json.loads, record.read_text().splitlines()):
            if (row.get("kid_images"), row.get("kid_backend")) == (kid_images, kid_backend):
                scores.update({digest: row["each"][step] for step, digest in row.get("sha256", {}).items()
                               if step in row.get("each", {})})
    return scores


def uniform_average(models: list[nn.Module]) -> nn.Module:
    """A new module whose parameters are the mean of ``models``' (buffers: the last model's)."""
    average = AveragedModel(models[0], use_buffers=False)  # default averaging: the running mean
    for m in models:
        average.update_parameters(m)
    return average.module.eval()


def holdout_selfies(data: Path, cfg: dict[str, Any]) -> tuple[torch.Tensor, list[Path]]:
    """The trainer's validation inputs ``(N, 3, S, S)`` in [-1, 1] RGB and the held-out anime files."""
    from facetoon.train.data import list_images, load_image_tensor, split_holdout

    _, val_a = split_holdout(list_images(data / "trainA"), cfg["holdout"], cfg["holdout_seed"])
    _, val_b = split_holdout(list_images(data / "trainB"), cfg["holdout"], cfg["holdout_seed"])
    n = cfg["kid_images"]
    return torch.stack([load_image_tensor(p, cfg["img_size"]) for p in val_a[:n]]), val_b[:n]


@torch.no_grad()
def translate(generator: nn.Module, x: torch.Tensor, batch: int = 16) -> list:
    """A->B translations of ``x`` as ``H x W x 3`` uint8 RGB arrays."""
    from facetoon.train.samples import tensor_to_uint8

    out = []
    for i in range(0, len(x), batch):
        out += [tensor_to_uint8(t) for t in generator(x[i:i + batch])[0]]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("snapshots", type=Path, nargs="+", help="exported A->B generator folders of one run")
    ap.add_argument("--out", type=Path, help="write the average here (fp16 weights folder + samples.jpg)")
    ap.add_argument("--data", type=Path, help="selfie2anime folder: score the average on the validation split")
    ap.add_argument("--each", action="store_true", help="also score every snapshot alone (with --data)")
    ap.add_argument("--rescore", action="store_true",
                    help="with --each, score every snapshot again instead of keeping recorded scores")
    ap.add_argument("--samples", type=int, default=8, help="held-out selfies in samples.jpg (default 8)")
    ap.add_argument("--kid-images", type=int,
                    help="score on this many held-out images (default: the run's kid_images, as validated)")
    ap.add_argument("--record", type=Path, default=RECORD, help=f"append the scores here (default {RECORD})")
    args = ap.parse_args()

    from facetoon.errors import FacetoonError

    try:
        models, docs, folders = load_snapshots(args.snapshots)
    except FacetoonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = [d["meta"]["step"] for d in docs]
    average = uniform_average(models)
    meta = dict(docs[-1]["meta"])
    meta["weights"] = (f"uniform average of {len(models)} snapshots of the trained generator, steps "
                       + ", ".join(map(str, steps)) + " (scripts/average_snapshots.py)")
    meta["snapshot_steps"] = steps
    cfg = dict(meta["config"])
    if args.kid_images is not None:
        cfg["kid_images"] = args.kid_images
    x = anime = None
    if args.data is not None:
        from facetoon.metrics.features import extract_features
        from facetoon.metrics.kid import validation_kid_x100

        x, anime_files = holdout_selfies(args.data, cfg)
        anime = extract_features(anime_files, backend=cfg["kid_backend"])

        def score(g: nn.Module) -> float:
            fakes = extract_features(translate(g, x), backend=cfg["kid_backend"])
            return float(validation_kid_x100(fakes, anime)["kid_x100"])

        each, digests = {}, {str(step): weights_digest(f) for step, f in zip(steps, folders)}
        if args.each:
            known = {} if args.rescore else recorded_scores(args.record, cfg["kid_images"], cfg["kid_backend"])
            for step, m in zip(steps, models):
                digest = digests[str(step)]
                each[str(step)] = known[digest] if digest in known else round(score(m), 4)
                print(f"step {step}: KIDx100 {each[str(step)]:.2f}" + (" (recorded)" if digest in known else ""),
                      flush=True)
        meta["kid_x100"] = round(score(average), 4)
        print(f"uniform average of {len(models)} snapshots (steps {steps[0]}-{steps[-1]}): "
              f"KIDx100 {meta['kid_x100']:.2f}", flush=True)
        row = {"date": datetime.date.today().isoformat(), "snapshot_steps": steps, "kid_x100": meta["kid_x100"],
               "kid_images": cfg["kid_images"], "kid_backend": cfg["kid_backend"], "each": each, "sha256": digests}
        args.record.parent.mkdir(parents=True, exist_ok=True)
        with args.record.open("a") as f:
            f.write(json.dumps(row) + "\n")
    if args.out is not None:
        from facetoon.io import write_image
        from facetoon.models import save_pretrained
        from facetoon.train.samples import image_grid, tensor_to_uint8

        save_pretrained(average, args.out, dtype=torch.float16, meta=meta)
        if x is not None and args.samples > 0:
            k = min(args.samples, len(x))
            pairs = list(zip((tensor_to_uint8(t) for t in x[:k]), translate(average, x[:k])))
            rows = [[*pairs[i], *pairs[i + 1]] if i + 1 < k else list(pairs[i]) for i in range(0, k, 2)]
            write_image(image_grid(rows), args.out / "samples.jpg")
        print(f"wrote {args.out} (steps {steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
