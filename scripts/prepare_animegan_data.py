"""Build the AnimeGAN data layout for facetoon's default background model, from ../shared.

The layout (see facetoon.data.animegan_layout) is made of symbolic links into ../shared, plus the
edge-smoothed style copies computed by ``facetoon prepare-smooth``:

    OUT/train_photo/   BSDS500 train+val photos and the selfie2anime trainA selfies, minus the
                       face model's held-out validation selfies
    OUT/anime/style/   selfie2anime trainB anime frames, minus the face model's held-out ones
    OUT/anime/smooth/  their edge-smoothed copies, made at the training size (``--size``, default
                       128: img_size of configs/animegan_anime_cpu*.toml; the first run's animegan-anime
                       weights were trained before this option, on copies made at the frames' 256 px)
    OUT/val/           8 BSDS500 test-like photos (the first of bsds500/val) for the sample grids

The held-out split is the U-GAT-IT trainer's (``holdout=200``, ``holdout_seed=1234`` as in
configs/ugatit_selfie2anime_cpu.toml), so the face model's validation images stay unseen.

Usage: python scripts/prepare_animegan_data.py [--shared ../shared] [--out DATA_DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from facetoon.train.data import list_images, split_holdout

REPO = Path(__file__).resolve().parents[1]


def link_all(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        dst = folder / f.name
        if not dst.exists():
            dst.symlink_to(f.resolve())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO.parent / "data" / "animegan")
    ap.add_argument("--holdout", type=int, default=200)
    ap.add_argument("--holdout-seed", type=int, default=1234)
    ap.add_argument("--size", type=int, default=128, help="training img_size: the smooth copies are made at it")
    args = ap.parse_args()
    s2a = args.shared / "data" / "selfie2anime"
    selfies, _ = split_holdout(list_images(s2a / "trainA"), args.holdout, args.holdout_seed)
    anime, _ = split_holdout(list_images(s2a / "trainB"), args.holdout, args.holdout_seed)
    bsds = args.shared / "data" / "photos" / "bsds500"
    bsds_train, bsds_val = list_images(bsds / "train"), list_images(bsds / "val")
    link_all(bsds_train + bsds_val[8:] + selfies, args.out / "train_photo")
    link_all(bsds_val[:8], args.out / "val")
    link_all(anime, args.out / "anime" / "style")
    subprocess.run([sys.executable, "-m", "facetoon", "-q", "prepare-smooth", str(args.out / "anime" / "style"),
                    str(args.out / "anime" / "smooth"), "--size", str(args.size)], check=True)
    print(f"{args.out}: {len(bsds_train) + len(bsds_val) - 8 + len(selfies)} photos, {len(anime)} style images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
