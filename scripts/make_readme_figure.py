"""Make the README's before/after figure: ``docs/figures/astronaut_before_after.jpg``.

    python scripts/make_readme_figure.py                  # with the shipped default weights
    python scripts/make_readme_figure.py --face-weights W --background-weights B --out /tmp/fig.jpg

Top row: the bundled photo ``examples/astronaut.png`` and ``facetoon.stylize`` of it (default
options). Bottom row, what the pipeline did with the face: the aligned crop the face model saw,
its stylized crop, the face model's CAM attention map over the crop, and the soft blend mask
in the photo frame. Labels are drawn in the image, so the figure explains itself.

With no default weights in ``weights/`` (and none given) the script stops with the library's
WeightsError message; it never draws a figure from random weights unless ``--allow-random`` is
given (for testing the script itself; such figures must not be committed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facetoon.viz import caption

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.png"
DEFAULT_OUT = REPO / "docs" / "figures" / "astronaut_before_after.jpg"


def make_figure(stylizer: object, photo_path: Path = PHOTO) -> np.ndarray:
    """The figure as an RGB uint8 array (1024 px wide)."""
    import cv2

    from facetoon.io import read_image

    photo = read_image(photo_path)
    res = stylizer.stylize(photo, return_details=True)  # type: ignore[attr-defined]
    out = np.asarray(res.image)[..., :3]
    side = 512
    top = np.concatenate([caption(cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA), "photo"),
                          caption(cv2.resize(out, (side, side), interpolation=cv2.INTER_AREA),
                                  "facetoon.stylize(photo)")], axis=1)
    if not res.faces:
        return top
    d = res.faces[0]
    cell = 256

    def fit(img: np.ndarray) -> np.ndarray:
        interp = cv2.INTER_CUBIC if img.shape[0] < cell else cv2.INTER_AREA
        return cv2.resize(img, (cell, cell), interpolation=interp)

    crop = fit(d.crop)
    styled = fit(d.stylized)
    if d.heatmap is not None:
        heat = cv2.applyColorMap(np.rint(d.heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
        heat = fit(np.rint(0.55 * heat + 0.45 * d.crop).astype(np.uint8))
    else:
        heat = np.zeros((cell, cell, 3), np.uint8)
    # the photo dimmed outside the blend mask, in the photo frame, around the face
    dimmed = np.rint(photo * (0.25 + 0.75 * d.mask[..., None])).astype(np.uint8)
    ys, xs = np.nonzero(d.mask > 0.01)
    if len(ys):
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        half = 0.65 * max(ys.max() - ys.min(), xs.max() - xs.min())
        y0, x0 = int(max(0, cy - half)), int(max(0, cx - half))
        y1, x1 = int(min(photo.shape[0], cy + half)), int(min(photo.shape[1], cx + half))
        dimmed = dimmed[y0:y1, x0:x1]
    mask_rgb = fit(dimmed)
    bottom = np.concatenate([caption(crop, "aligned face crop"), caption(styled, "face model output"),
                             caption(heat, "CAM attention"), caption(mask_rgb, "blend mask")], axis=1)
    return np.concatenate([top, bottom], axis=0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output image (default {DEFAULT_OUT})")
    p.add_argument("--face-weights", default=None, help="face model weights folder (default: shipped)")
    p.add_argument("--background-weights", default=None, help="AnimeGAN weights folder (default: shipped)")
    p.add_argument("--allow-random", action="store_true",
                   help="use random-init models when no weights exist (tests only; never commit the result)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from facetoon.errors import WeightsError
    from facetoon.io import write_image
    from facetoon.pipeline import DEFAULT_FACE_WEIGHTS, Stylizer

    torch.set_num_threads(args.threads)
    face: str = args.face_weights or DEFAULT_FACE_WEIGHTS
    scene = "animegan"
    try:
        stylizer = Stylizer(face_model=face, background_model=scene,
                            background_weights=args.background_weights)
    except WeightsError as exc:
        if not args.allow_random:
            print(f"make_readme_figure: {exc}", file=sys.stderr)
            return 1
        from facetoon.models import create_model

        torch.manual_seed(0)
        stylizer = Stylizer(face_model=create_model("ugatit_generator", light=True, ngf=32, img_size=128),
                            background_model=create_model("animegan", version="v2"))
        print("make_readme_figure: WARNING: random-init models (--allow-random); do not commit this figure",
              file=sys.stderr)
    figure = make_figure(stylizer)
    write_image(figure, args.out, quality=90, protect=[PHOTO])
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
