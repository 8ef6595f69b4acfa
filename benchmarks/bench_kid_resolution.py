"""The resolution floor of the face model's KID: real anime faces, resized, against the validation set.

    python benchmarks/bench_kid_resolution.py [--sizes 64 96 128 192 256] [--n 200]

The U-GAT-IT trainer's validation (``configs/ugatit_selfie2anime_cpu.toml``: ``holdout = 200``,
``holdout_seed = 1234``, ``kid_images = 200``) scores the A->B translations of held-out selfies,
produced at the training size, against the held-out anime faces at their full 256 px. A model
that produced *real* anime faces, but at S px, would still pay for the missing detail. This script
measures that floor: KIDx100 (litert MobileNetV2 features, 100 subsets, seed 0, the trainer's
definition) of ``n`` anime faces from the *training* part of trainB resized to S px (area
downsampling, as a generator working at S px would give) against the validation anime faces; and,
for scale, the raw validation selfies at each size (the "no model" baseline a generator at S px starts from).

A configuration whose floor is close to the quality bar (KIDx100 <= 40; goal <= 15) cannot meet
it whatever the training time.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import SHARED, machine_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 96, 128, 192, 256])
    parser.add_argument("--n", type=int, default=200, help="anime faces per size (default 200)")
    parser.add_argument("--holdout", type=int, default=200)
    parser.add_argument("--holdout-seed", type=int, default=1234)
    args = parser.parse_args()
    print(machine_summary() + "\n", flush=True)

    from PIL import Image

    from facetoon.metrics.features import extract_features
    from facetoon.metrics.kid import kid
    from facetoon.train.data import list_images, split_holdout

    root = SHARED / "data" / "selfie2anime"
    train_b, val_b = split_holdout(list_images(root / "trainB"), args.holdout, args.holdout_seed)
    _, val_a = split_holdout(list_images(root / "trainA"), args.holdout, args.holdout_seed)
    reference = extract_features(val_b, backend="litert")

    def at(files: list, size: int) -> list[np.ndarray]:
        out = []
        for p in files:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BOX)))
        return out

    print(f"reference: the {len(val_b)} held-out anime faces at full size; 100 subsets, seed 0\n")
    print("| images | size | KIDx100 vs held-out anime |")
    print("|---|---|---|")
    for size in args.sizes:
        result = kid(extract_features(at(train_b[: args.n], size), backend="litert"), reference,
                     n_subsets=100, seed=0)
        print(f"| {args.n} training anime faces | {size} px | {result.mean_x100:.2f} |", flush=True)
    for size in args.sizes:
        result = kid(extract_features(at(val_a, size), backend="litert"), reference, n_subsets=100, seed=0)
        print(f"| {len(val_a)} held-out selfies (no model) | {size} px | {result.mean_x100:.2f} |", flush=True)


if __name__ == "__main__":
    main()
