#!/usr/bin/env python
"""Benchmark and measure the face module (detection, landmarks, alignment, paste-back).

    python benchmarks/bench_faces.py                 # speed table (1920x1080 photo with one face)
    python benchmarks/bench_faces.py --all           # + detection rate, rotation, round trip, padding
    python benchmarks/bench_faces.py --rate 0        # detection rate on all of trainA (~3 min)

The 1080p test photo is built from real images: a BSDS500 photo scaled to cover 1920x1080 and
a selfie2anime trainA selfie upscaled to 640x640 and blended in with a soft round edge.
Timings are the median of ``--repeats`` runs after a warm-up (models loaded), single process:
wall-clock time and the CPU time of this process (which, unlike wall time, does not grow when
other jobs share the cores), and the cores other processes used meanwhile (``other load``).
The output starts with the machine (``_common.machine_summary``).
Run from the repository root; data comes from ``../shared``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from _common import SHARED, OtherLoad, machine_summary
from facetoon.face import PADDING_MODES, align_face, detect_faces, paste_back, warp_to_image
from facetoon.face.align import crop_with_matrix
from facetoon.face.geometry import compose, rotation_about, translation

TRAIN_A = SHARED / "data" / "selfie2anime" / "trainA"


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def scene_1080p(selfie: Path, background: Path, face_px: int = 640) -> np.ndarray:
    """A 1920x1080 RGB photo: ``background`` scaled to cover, ``selfie`` upscaled and blended in."""
    bg = _rgb(background)
    k = max(1920 / bg.shape[1], 1080 / bg.shape[0])
    bg = cv2.resize(bg, (round(bg.shape[1] * k), round(bg.shape[0] * k)), interpolation=cv2.INTER_CUBIC)
    y0, x0 = (bg.shape[0] - 1080) // 2, (bg.shape[1] - 1920) // 2
    canvas = bg[y0:y0 + 1080, x0:x0 + 1920].astype(np.float32)
    face = cv2.resize(_rgb(selfie), (face_px, face_px), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    yy, xx = np.mgrid[0:face_px, 0:face_px]
    r = np.hypot(xx - face_px / 2, yy - face_px / 2) / (face_px / 2)
    alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0)[:, :, None]
    top, left = 1080 - face_px - 120, 1100
    roi = canvas[top:top + face_px, left:left + face_px]
    canvas[top:top + face_px, left:left + face_px] = roi * (1 - alpha) + face * alpha
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Median wall-clock and CPU (this process, all threads) milliseconds per call, and the cores
    other processes used during the timed calls."""
    fn()  # warm-up: loads models, fills caches
    wall, cpu = [], []
    with OtherLoad() as other:
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return 1000.0 * statistics.median(wall), 1000.0 * statistics.median(cpu), other.cores


def bench_speed(repeats: int) -> None:
    selfie = sorted(TRAIN_A.glob("*.jpg"))[0]
    background = SHARED / "data" / "photos" / "bsds500" / "train" / "100075.jpg"
    img = scene_1080p(selfie, background)
    faces = detect_faces(img)
    if len(faces) != 1:
        raise SystemExit(f"expected one face in the 1080p test photo, found {len(faces)}")
    face = faces[0]
    aligned = align_face(img, face)
    big = cv2.resize(img, (3840, 2160), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)

    rows = [
        ("1920x1080, detect + landmarks + align (256)", lambda: align_face(img, detect_faces(img)[0])),
        ("1920x1080, detect_faces (HOG on 960x540 + 5 landmarks)", lambda: detect_faces(img)),
        ("1920x1080, align_face 256 px (blur padding)", lambda: align_face(img, face)),
        ("1920x1080, paste_back 256-px crop", lambda: paste_back(img, aligned.image, aligned)),
        ("1920x1080, detect_faces landmarks='68'", lambda: detect_faces(img, landmarks="68")),
        ("3840x2160, detect + landmarks + align (256)", lambda: align_face(big, detect_faces(big)[0])),
        ("640x360, detect + landmarks + align (256)", lambda: align_face(small, detect_faces(small)[0])),
    ]
    print(f"face box {face.size:.0f} px, median of {repeats} runs\n")
    print("| case | wall ms | CPU ms | other load (cores) |")
    print("|---|---:|---:|---:|")
    for name, fn in rows:
        wall, cpu, other = _median_ms(fn, repeats)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {other:.2f} |", flush=True)
    print()


def bench_rate(limit: int) -> None:
    files = sorted(TRAIN_A.glob("*.jpg"))
    if limit:
        files = files[:: max(1, len(files) // limit)][:limit]
    found = 0
    t0 = time.perf_counter()
    for path in files:
        found += bool(detect_faces(_rgb(path)))
    dt = time.perf_counter() - t0
    print(f"detection rate on selfie2anime/trainA: {found}/{len(files)} = {100 * found / len(files):.1f}% "
          f"(default settings, {1000 * dt / len(files):.0f} ms/image)\n")


def bench_rotation(count: int = 6) -> None:
    """Rotate near-upright selfies by -45..45 degrees and compare the measured roll."""
    errors, upright_found, total = [], 0, 0
    used = 0
    for path in sorted(TRAIN_A.glob("*.jpg"))[::97]:
        canvas = cv2.copyMakeBorder(_rgb(path), 100, 100, 100, 100, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        f5, f68 = detect_faces(canvas, max_faces=1), detect_faces(canvas, max_faces=1, landmarks="68")
        if not (f5 and f68 and abs(f5[0].angle) < 8 and abs(f5[0].angle - f68[0].angle) < 1.5):
            continue
        roll0, used = f5[0].angle, used + 1
        h, w = canvas.shape[:2]
        for angle in range(-45, 46, 5):
            if angle == 0:
                continue
            rotated = cv2.warpAffine(canvas, rotation_about(((w - 1) / 2, (h - 1) / 2), angle), (w, h),
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
            faces = detect_faces(rotated)
            total += 1
            upright_found += bool(detect_faces(rotated, rotate="never"))
            errors.append(abs(faces[0].angle - (roll0 - angle)) if faces else np.nan)
        if used == count:
            break
    err = np.array(errors)
    found = np.isfinite(err)
    print(f"rotation -45..45 deg (5-deg steps, {used} selfies, {total} images): found {found.sum()}/{total} "
          f"(upright pass alone: {upright_found}/{total}); roll error mean {np.nanmean(err):.2f} deg, "
          f"max {np.nanmax(err):.2f} deg\n")


def bench_round_trip(count: int = 40) -> None:
    """Align at the resolution of the photo, warp back: mean abs error in the face region."""
    errors = []
    for path in sorted(TRAIN_A.glob("*.jpg"))[::80][:count]:
        img = _rgb(path)
        faces = detect_faces(img, max_faces=1)
        if not faces:
            continue
        face = faces[0]
        size = int(round(256 / align_face(img, face).scale))
        a = align_face(img, face, size=size)
        back = warp_to_image(a.image, a, img.shape, interpolation="cubic")
        valid = warp_to_image(a.mask, a, img.shape) > 0.999
        pts = np.vstack([face.landmarks, np.stack(list(face.points.values()))])
        hull = cv2.convexHull(((pts - pts.mean(0)) * 1.1 + pts.mean(0)).astype(np.float32)).astype(np.int32)
        region = np.zeros(img.shape[:2], np.uint8)
        cv2.fillConvexPoly(region, hull, 1)
        sel = (region > 0) & valid
        errors.append(float(np.abs(back.astype(np.float64) - img)[sel].mean()))
    print(f"round trip (align at scale 1, warp back, face region, {len(errors)} selfies): mean abs error "
          f"{np.mean(errors):.2f} levels, worst {np.max(errors):.2f}\n")


def bench_padding(count: int) -> None:
    """Cut a selfie's side off, align as if it were the whole photo, and compare each padding mode
    with the real pixels that were cut (what the face model would have seen)."""
    cuts = {"left": (0, 56), "right": (0, -56), "top": (1, 40), "bottom": (1, -56)}
    stats: dict[str, list[tuple[float, float, float]]] = {m: [] for m in PADDING_MODES}
    done = 0
    for path in sorted(TRAIN_A.glob("*.jpg"))[5::37]:
        img = _rgb(path)
        faces = detect_faces(img, max_faces=1)
        if not faces:
            continue
        m = align_face(img, faces[0]).matrix
        truth, truth_mask = crop_with_matrix(img, m, 256, "constant")
        for axis, cut in cuts.values():
            if axis == 0:
                part = img[:, cut:] if cut > 0 else img[:, :cut]
                shift = translation(cut if cut > 0 else 0, 0)
            else:
                part = img[cut:] if cut > 0 else img[:cut]
                shift = translation(0, cut if cut > 0 else 0)
            mm = compose(m, shift)  # part pixels -> crop pixels, same crop as before
            for mode in PADDING_MODES:
                crop, mask = crop_with_matrix(part, mm, 256, mode)
                pad = (mask < 0.001) & (truth_mask > 0.999)  # padded here, real in the full selfie
                if pad.sum() < 500:
                    continue
                a, b = crop.astype(np.float32), truth.astype(np.float32)
                mae = float(np.abs(a - b)[pad].mean())
                low = float(np.abs(cv2.GaussianBlur(a, (0, 0), 6) - cv2.GaussianBlur(b, (0, 0), 6))[pad].mean())

                def detail(x: np.ndarray) -> float:
                    g = cv2.cvtColor(x.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
                    return float(np.abs(cv2.Laplacian(g, cv2.CV_32F))[pad].mean())

                stats[mode].append((mae, low, detail(crop) / max(detail(truth), 1e-6)))
        done += 1
        if done == count:
            break
    print(f"padding vs the real pixels beyond a cut edge ({done} selfies x 4 sides):\n")
    print("| padding | MAE (levels) | MAE after blur sigma 6 | detail ratio (1 = real) |")
    print("|---|---:|---:|---:|")
    for mode, rows in stats.items():
        arr = np.array(rows)
        print(f"| {mode} | {arr[:, 0].mean():.1f} | {arr[:, 1].mean():.1f} | {arr[:, 2].mean():.2f} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per case (default 20)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed table")
    parser.add_argument("--rate", type=int, default=None, metavar="N",
                        help="detection rate on N trainA images (0 = all 3206)")
    parser.add_argument("--rotation", action="store_true", help="roll recovery on rotated selfies")
    parser.add_argument("--round-trip", action="store_true", help="align + warp back error")
    parser.add_argument("--padding", type=int, nargs="?", const=60, default=None, metavar="N",
                        help="compare padding modes on N selfies (default 60)")
    parser.add_argument("--all", action="store_true", help="everything (rate on 400 images)")
    args = parser.parse_args()
    if not TRAIN_A.is_dir():
        raise SystemExit(f"needs the shared data folder at {SHARED}")
    print(machine_summary() + "\n", flush=True)
    if not args.no_speed:
        bench_speed(args.repeats)
    if args.rate is not None or args.all:
        bench_rate(400 if args.rate is None else args.rate)
    if args.rotation or args.all:
        bench_rotation()
    if args.round_trip or args.all:
        bench_round_trip()
    if args.padding is not None or args.all:
        bench_padding(args.padding or 60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
