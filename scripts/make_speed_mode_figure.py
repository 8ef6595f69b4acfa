"""Side-by-side figure of the scene model's speed mode: ``docs/figures/speed_mode_side_by_side.jpg``.

    python scripts/make_speed_mode_figure.py                    # CartoonGAN Hayao from ../shared
    python scripts/make_speed_mode_figure.py --background-weights weights/animegan-anime --out /tmp/x.jpg

Per photo (``examples/astronaut.png`` and ``../shared/fixtures/four_faces.jpg``), left to right:
the photo, the scene model at full resolution, the speed mode (``internal_scale`` 0.5: the model
at half size, a guided filter restores the edges) and, for comparison, the same half-size result
only resized back (bicubic). Bottom row: a 2x zoom into the first photo's centre, same columns.
Each panel is labelled with its PSNR against the full-resolution result.

The photos are used at their native resolution (512 px wide). Relative to its content a smaller
photo loses more to the half-size pass than a 1080p one of the same scene, so this is the harder
case for the speed mode. The scene model is the official CartoonGAN Hayao generator (a converged
model, MIT licence) when ``../shared`` is present, else the shipped ``animegan-anime`` weights.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from facetoon.viz import caption

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACETOON_SHARED", REPO.parent / "shared"))
HAYAO = SHARED / "models" / "cartoongan" / "Hayao_net_G_float.pth"
PHOTOS = [REPO / "examples" / "astronaut.png", SHARED / "fixtures" / "four_faces.jpg"]
DEFAULT_OUT = REPO / "docs" / "figures" / "speed_mode_side_by_side.jpg"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _fit(img: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)


def panels(model: object, photo: np.ndarray, scale: float) -> list[tuple[str, np.ndarray]]:
    """(label, image) for photo, full resolution, speed mode and plain resize-back."""
    import cv2

    from facetoon.background import BackgroundStylizer

    full = BackgroundStylizer(model, precision="fast")(photo)
    fast = BackgroundStylizer(model, precision="fast", internal_scale=scale)(photo)
    h, w = photo.shape[:2]
    small = cv2.resize(photo, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    plain = cv2.resize(BackgroundStylizer(model, precision="fast")(small), (w, h), interpolation=cv2.INTER_CUBIC)
    return [("photo", photo), ("full resolution", full),
            (f"speed mode x{scale:g} + guided filter: {psnr(fast, full):.1f} dB", fast),
            (f"x{scale:g}, bicubic resize only: {psnr(plain, full):.1f} dB", plain)]


def make_figure(model: object, photos: list[Path], scale: float = 0.5, width: int = 384) -> np.ndarray:
    """The figure as an RGB uint8 array (4 columns of ``width`` px)."""
    from facetoon.io import read_image

    rows = []
    zoom_row = None
    for i, path in enumerate(photos):
        photo = read_image(path)
        cells = panels(model, photo, scale)
        print(f"{path.name}: " + "; ".join(text for text, _ in cells[2:]), flush=True)
        rows.append(np.concatenate([caption(_fit(img, width), text, scale=0.5) for text, img in cells], axis=1))
        if i == 0:  # 2x zoom into the centre of the first photo (crop of width/2 px, shown at width)
            import cv2

            h, w = photo.shape[:2]
            c = width // 2
            y0, x0 = (h - c) // 2, (w - c) // 2
            zoom_row = np.concatenate(
                [caption(cv2.resize(img[y0:y0 + c, x0:x0 + c], (width, width), interpolation=cv2.INTER_NEAREST),
                         f"2x zoom: {text.split(':')[0]}", scale=0.5) for text, img in cells], axis=1)
    if zoom_row is not None:
        rows.append(zoom_row)
    out = np.zeros((sum(r.shape[0] for r in rows), rows[0].shape[1], 3), np.uint8)
    y = 0
    for r in rows:
        out[y:y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--background-weights", default=None,
                    help="scene model weights folder (default: CartoonGAN Hayao from ../shared, else the shipped "
                         "animegan-anime)")
    ap.add_argument("--scale", type=float, default=0.5, help="internal scale of the speed mode (default 0.5)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from facetoon.io import write_image
    from facetoon.models import load_pretrained

    if args.background_weights:
        model: object = load_pretrained(args.background_weights)
        label = args.background_weights
    elif HAYAO.is_file():
        from facetoon.convert.cartoongan import load_official_cartoongan

        model, label = load_official_cartoongan(HAYAO), "CartoonGAN Hayao (official weights)"
    else:
        model, label = load_pretrained("animegan-anime"), "animegan-anime (shipped)"
    photos = [p for p in PHOTOS if p.is_file()]
    figure = make_figure(model, photos, args.scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(figure, args.out, quality=90)
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]}), scene model: {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
