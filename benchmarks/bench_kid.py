"""KIDx100 reference figures on selfie2anime, with both feature backends, and their speed.

    python benchmarks/bench_kid.py [--n 500] [--subsets 100] [--shared ../shared] [--threads 2]

Image sets (sorted file names of ../shared/data/selfie2anime):
  selfies      trainA[:n]
  anime        trainB[:n]
  anime-even   trainB[0:2n:2]   and  anime-odd  trainB[1:2n:2]   (disjoint, interleaved)
  anime-next   trainB[n:2n]     (disjoint from `anime`, the next block of files)
  testB        the 100 anime faces of testB

Prints a Markdown table: KIDx100 mean ± std (100 subsets of min(1000, n_a, n_b), seed 0, and
a second column with subsets of 100 for a spread) per backend, the per-image feature time of
each backend, and the cosine similarity of the two backends' features. The output starts with
the machine (``_common.machine_summary``); the feature times depend on it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import SHARED, machine_summary
from facetoon.metrics.features import FeatureExtractor
from facetoon.metrics.kid import kid

PAIRS = (
    ("anime-even", "anime-odd", "anime vs anime (interleaved halves)"),
    ("anime", "anime-next", "anime vs anime (next block of files)"),
    ("testB", "anime", "testB vs trainB anime"),
    ("selfies", "anime", "selfies vs anime"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="images per set (default 500)")
    parser.add_argument("--subsets", type=int, default=100)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both backends")
    parser.add_argument("--backends", nargs="+", default=["litert", "torch"], choices=["litert", "torch"])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(machine_summary() + "\n", flush=True)
    data = args.shared / "data" / "selfie2anime"
    a_files = sorted((data / "trainA").glob("*.jpg"))
    b_files = sorted((data / "trainB").glob("*.jpg"))
    n = args.n
    sets = {
        "selfies": a_files[:n],
        "anime": b_files[:n],
        "anime-even": b_files[0:2 * n:2],
        "anime-odd": b_files[1:2 * n:2],
        "anime-next": b_files[n:2 * n],
        "testB": sorted((data / "testB").glob("*.jpg")),
    }
    model = args.shared / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_quant.tflite"
    # each distinct file once per backend
    unique = sorted({p for files in sets.values() for p in files})
    feats: dict[str, dict[Path, np.ndarray]] = {}
    speed: dict[str, float] = {}
    for backend in args.backends:
        ext = FeatureExtractor(backend, model, num_threads=args.threads)
        ext(unique[:8])  # warm-up
        start = time.perf_counter()
        out = ext(unique, batch_size=32)
        speed[backend] = (time.perf_counter() - start) / len(unique)
        feats[backend] = dict(zip(unique, out))

    def stack(backend: str, name: str) -> np.ndarray:
        return np.stack([feats[backend][p] for p in sets[name]])

    print(f"{len(unique)} distinct images; {args.subsets} subsets, seed 0; n = {n} per set "
          f"(testB: {len(sets['testB'])})\n")
    head = "| pair | n_a, n_b |" + "".join(
        f" {b}: default subsets | {b}: subsets of 100 |" for b in args.backends)
    print(head)
    print("|" + "---|" * (2 + 2 * len(args.backends)))
    for left, right, label in PAIRS:
        row = f"| {label} | {len(sets[left])}, {len(sets[right])} |"
        for backend in args.backends:
            fa, fb = stack(backend, left), stack(backend, right)
            full = kid(fa, fb, n_subsets=args.subsets)
            small = kid(fa, fb, n_subsets=args.subsets, subset_size=100)
            row += (f" {full.mean_x100:.2f} ± {full.std_x100:.2f} |"
                    f" {small.mean_x100:.2f} ± {small.std_x100:.2f} |")
        print(row)
    print()
    for backend in args.backends:
        print(f"- {backend}: {1000 * speed[backend]:.1f} ms per image (decode + resize + network, "
              f"{args.threads} threads)")
    if len(args.backends) == 2:
        x = np.stack([feats["litert"][p] for p in unique]).astype(np.float64)
        y = np.stack([feats["torch"][p] for p in unique]).astype(np.float64)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        rel = np.linalg.norm(x - y, axis=1) / np.linalg.norm(x, axis=1)
        print(f"- litert vs torch features over {len(unique)} images: cosine mean {cos.mean():.4f} "
              f"(min {cos.min():.4f}), relative error mean {rel.mean():.3f} (max {rel.max():.3f})")


if __name__ == "__main__":
    main()
