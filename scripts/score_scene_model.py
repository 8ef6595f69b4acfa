"""Score scene (background) generators on the face model's validation split.

    python scripts/score_scene_model.py weights/animegan-anime \\
        ../shared/models/cartoongan/Hayao_net_G_float.pth [MORE ...] [--data ../shared/data/selfie2anime]

Each generator (an exported weights folder, e.g. ``weights/animegan-anime`` or a run's
``export/generator``, or an official CartoonGAN ``.pth``) stylizes the face model's 200 held-out
selfies (``holdout = 200`` of configs/ugatit_selfie2anime_cpu*.toml, the trainer's default
``holdout_seed = 1234``; these
selfies and anime faces are kept out of the scene model's data too, see
scripts/prepare_animegan_data.py) at 256 px, and the script prints KIDx100 between the results and
the 200 held-out anime faces: issue 8's metric (MobileNetV2 pooled features, the quantised
reference model, cubic kernel, unbiased), the one the face model is validated with. It says how far
a scene model moves a portrait toward the anime frames the face model is trained on. The first row
is the selfies unchanged, for scale.

Prints a Markdown table (generator | KIDx100 | seconds); ``--json`` prints one JSON object per line;
``--record FILE`` also appends each generator's row (date, generator, ``--label`` if given, its
training step if it has one, KIDx100) to a JSON-lines file, e.g. ``training/animegan-anime/scene_scores.jsonl``, which
``scripts/ship_weights.py animegan`` puts into the model card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
HOLDOUT, HOLDOUT_SEED, SIZE = 200, 1234, 256


def load_generator(spec: str) -> torch.nn.Module:
    """An fp32 eval-mode generator from a weights folder or an official CartoonGAN ``.pth``."""
    from facetoon.convert.cartoongan import load_official_cartoongan
    from facetoon.models import load_pretrained
    from facetoon.models.serialization import export_model_folder

    if spec.endswith(".pth"):
        return load_official_cartoongan(spec).float().eval()
    return load_pretrained(export_model_folder(spec), archs=("animegan", "cartoongan")).float().eval()


@torch.no_grad()
def stylize_all(generator: torch.nn.Module, x: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """``generator`` on ``x`` ``(N, 3, S, S)`` in [-1, 1] RGB, clamped to [-1, 1]."""
    return torch.cat([generator(x[i:i + batch]).float().clamp(-1, 1) for i in range(0, len(x), batch)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generators", nargs="+", help="weights folders or official CartoonGAN .pth files")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "selfie2anime")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--record", type=Path, help="append the generators' scores to this JSON-lines file")
    parser.add_argument("--label", action="append", default=[],
                        help="with --record: what each generator is (one --label per generator, in order), "
                             "e.g. 'first run, step 1381'")
    args = parser.parse_args()
    if args.label and len(args.label) != len(args.generators):
        parser.error(f"{len(args.label)} --label for {len(args.generators)} generators: give one per generator")

    from average_snapshots import holdout_selfies  # the face model's validation inputs, as its averages are scored
    from facetoon.errors import FacetoonError
    from facetoon.metrics.features import extract_features
    from facetoon.metrics.kid import validation_kid_x100
    from facetoon.train.data import load_image_tensor

    try:
        split = {"holdout": HOLDOUT, "holdout_seed": HOLDOUT_SEED, "kid_images": HOLDOUT, "img_size": SIZE}
        selfies, val_b = holdout_selfies(args.data, split)
        reference = extract_features(torch.stack([load_image_tensor(p, SIZE) for p in val_b]), backend="litert")
        generators = [(spec, load_generator(spec)) for spec in args.generators]
    except (FacetoonError, OSError) as exc:
        print(f"error: {exc}" + (" (pass --data)" if "trainA" in str(exc) or "trainB" in str(exc) else ""),
              file=sys.stderr)
        return 2

    def report(name: str, images: torch.Tensor, seconds: float) -> float:
        value = validation_kid_x100(extract_features(images, backend="litert"), reference)["kid_x100"]
        if args.json:
            print(json.dumps({"generator": name, "kid_x100": round(value, 2), "seconds": round(seconds, 1)}))
        else:
            print(f"| {name} | {value:.1f} | {seconds:.0f} |", flush=True)
        return value

    if not args.json:
        print(f"KIDx100, {len(selfies)} held-out selfies ({SIZE} px) stylized vs {len(val_b)} held-out anime faces\n")
        print("| generator | KIDx100 | seconds |\n|---|---|---|")
    report("(the selfies unchanged)", selfies, 0.0)
    labels = args.label or [None] * len(generators)
    for (spec, generator), label in zip(generators, labels):
        start = time.perf_counter()
        out = stylize_all(generator, selfies)
        value = report(spec, out, time.perf_counter() - start)
        if args.record:
            record(args.record, spec, value, label)
    return 0


def record(path: Path, spec: str, value: float, label: str | None = None) -> None:
    """Append ``{date, generator, label, step, kid_x100}`` to the JSON-lines file ``path`` (``step``:
    the training step in a weights folder's ``config.json`` meta, ``None`` for other generators)."""
    import datetime

    step = None
    config = Path(spec) / "config.json"
    if config.is_file():
        step = json.loads(config.read_text()).get("meta", {}).get("step")
    row = {"date": datetime.date.today().isoformat(), "generator": spec, "label": label, "step": step,
           "kid_x100": round(value, 2)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
