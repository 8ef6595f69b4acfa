"""Side-by-side samples behind the scene model's choice of style images: ``docs/figures/scene_style_choice.jpg``.

    python scripts/make_style_figure.py [--background-weights weights/animegan-anime] [--out PATH]

The two anime style domains ``../shared`` offers for the background model are the anime frames of
selfie2anime trainB (the face model's own target domain: its anime faces come with the background
art of their frames) and the official CartoonGAN Hayao model (Miyazaki scenery; a model, so a
style set would be its outputs on photos). Top row: three trainB frames of the scene model's style
set. Then one row per validation photo of the scene model's data layout (``val/``: BSDS500 photos
the model never trained on): the photo | CartoonGAN Hayao | facetoon's scene model. The figure
shows what the trainB style means for scenes next to the Hayao look, at the same size, so the
face model and the scene model of one portrait can be judged for a common style.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facetoon.viz import caption

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_OUT = REPO / "docs" / "figures" / "scene_style_choice.jpg"
CELL = 256


def _cell(img: np.ndarray) -> np.ndarray:
    """Centre crop to a square and resize to CELL x CELL (RGB uint8)."""
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y:y + s, x:x + s], (CELL, CELL), interpolation=cv2.INTER_AREA)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--background-weights", default=str(REPO / "weights" / "animegan-anime"))
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--photos", type=int, default=3, help="validation photos, one row each")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    from facetoon.background import BackgroundStylizer
    from facetoon.convert.cartoongan import load_official_cartoongan
    from facetoon.io import read_image, write_image
    from facetoon.train.data import list_images, split_holdout

    hayao_path = args.shared / "models" / "cartoongan" / "Hayao_net_G_float.pth"
    if not hayao_path.is_file():
        print(f"make_style_figure: {hayao_path} is absent", file=sys.stderr)
        return 1
    ours = BackgroundStylizer(args.background_weights, precision="fast")
    hayao = BackgroundStylizer(load_official_cartoongan(hayao_path), precision="fast")
    anime, _ = split_holdout(list_images(args.shared / "data" / "selfie2anime" / "trainB"), 200, 1234)
    style_row = np.concatenate([caption(_cell(read_image(p)), "style: trainB frame")
                                for p in anime[:: max(1, len(anime) // 3)][:3]], axis=1)
    rows = [style_row]
    photos = list_images(args.shared / "data" / "photos" / "bsds500" / "val")[:8]  # the layout's val/
    for p in photos[: args.photos]:
        photo = _cell(read_image(p))
        cells = [caption(photo, "photo"), caption(hayao(photo), "CartoonGAN Hayao"),
                 caption(ours(photo), "facetoon scene model")]
        rows.append(np.concatenate(cells, axis=1))
    write_image(np.concatenate(rows, axis=0), args.out, quality=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
