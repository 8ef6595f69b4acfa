"""``facetoon faces IMAGE``: detect faces, print them, optionally draw them and save aligned crops.

    facetoon faces group.jpg                       # one line per face, largest first
    facetoon faces group.jpg --draw debug.png      # boxes, landmarks and crop grids
    facetoon faces group.jpg --crops crops/        # crops/face0.png ... (256x256, aligned)
    facetoon faces group.jpg --json                # machine-readable
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register", "run_faces"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "faces", help="detect faces and landmarks in an image (debug drawing, aligned crops)",
        description="Detect the faces of an image with their landmarks; print one line per face (largest "
        "first), optionally write a debug drawing and the aligned face crops.",
    )
    parser.add_argument("image", metavar="IMAGE", help="input image file")
    parser.add_argument("--backend", default="dlib", help="face backend: dlib (default), dlib-cnn or fan")
    parser.add_argument("--landmarks", choices=("5", "68"), default=None,
                        help="landmark model (dlib: 5 = default, public domain; 68 = non-commercial licence)")
    parser.add_argument("--min-size", type=float, default=None,
                        help="smallest face to find, in pixels (detector box side); also sets the detection scale")
    parser.add_argument("--max-faces", type=int, default=None, help="keep only the N largest faces")
    parser.add_argument("--upsample", type=int, default=0, help="extra 2x upsamplings in the detector (0-3)")
    parser.add_argument("--rotate", choices=("auto", "always", "never"), default="auto",
                        help="also detect on rotated copies: auto = only when nothing is found upright")
    parser.add_argument("--draw", metavar="OUT", default=None,
                        help="write a drawing of boxes, landmarks and crop grids to this image file")
    parser.add_argument("--crops", metavar="DIR", default=None, help="write the aligned crops to this folder")
    parser.add_argument("--size", type=int, default=256, help="side of the aligned crops (default 256)")
    parser.add_argument("--padding", choices=("blur", "reflect", "edge", "constant"), default="blur",
                        help="padding of crops that reach past the image (default blur)")
    parser.add_argument("--json", action="store_true", help="print the faces as a JSON list")
    parser.set_defaults(func=run_faces)


def run_faces(args: argparse.Namespace) -> int:
    """Handler of ``facetoon faces``; returns the exit status."""
    from .._fileutil import not_a_folder, not_a_folder_reason
    from ..errors import ConfigError, OutputError
    from ..face import align_face, detect_faces
    from ..io import WRITE_FORMATS, read_image, write_image

    # checked before anything is printed: a failing run must not print results (or --json) first
    if (args.draw or args.crops) and not 8 <= args.size <= 4096:
        raise ConfigError(f"--size must be an integer 8..4096, got {args.size}")
    if args.draw and Path(args.draw).suffix.lower() not in WRITE_FORMATS:
        raise ConfigError(f"--draw: unsupported image extension {Path(args.draw).suffix or '(none)'!r}; "
                          f"supported: {', '.join(sorted(WRITE_FORMATS))}")
    for option, given, folder in (("--draw", args.draw, Path(args.draw or ".").parent),
                                  ("--crops", args.crops, Path(args.crops or "."))):
        blocker = not_a_folder(folder) if given else None
        if blocker is not None:
            raise OutputError(f"{option} names a file, not a folder" if blocker == Path(given)
                              else f"{option} cannot be written: {not_a_folder_reason(blocker)}", path=given)
    image = read_image(args.image)
    faces = detect_faces(image, args.backend, max_faces=args.max_faces, min_size=args.min_size,
                         landmarks=args.landmarks, upsample=args.upsample, rotate=args.rotate)
    aligned = [align_face(image, f, size=args.size, padding=args.padding) for f in faces] \
        if (args.draw or args.crops) else []
    if args.json:
        rows = [{
            "box": [round(v, 2) for v in f.box],
            "score": round(f.score, 4),
            "angle": round(f.angle, 2),
            "size": round(f.size, 2),
            "points": {k: [round(float(c), 2) for c in v] for k, v in f.points.items()},
            "estimated": sorted(f.estimated),
            "landmarks": [[round(float(c), 2) for c in p] for p in f.landmarks],
        } for f in faces]
        print(json.dumps(rows))
    else:
        h, w = image.shape[:2]
        print(f"{args.image}: {w}x{h}, {len(faces)} face(s)")
        for i, f in enumerate(faces):
            x0, y0, x1, y1 = f.box
            print(f"  #{i}: box ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f})  size {f.size:.0f} px  "
                  f"score {f.score:.2f}  angle {f.angle:+.1f} deg")
    if args.draw:
        from ..viz import draw_crop_grid, draw_faces

        drawing = draw_faces(image, faces)
        for a in aligned:
            drawing = draw_crop_grid(drawing, a)
        write_image(drawing, args.draw, protect=[args.image])
    if args.crops:
        folder = Path(args.crops)
        for i, a in enumerate(aligned):
            write_image(a.image, folder / f"face{i}.png", protect=[args.image])
        _warn_about_older_crops(folder, len(aligned))
    return 0


def _warn_about_older_crops(folder: Path, count: int) -> None:
    """Warn about ``face<N>.png`` files in ``folder`` with ``N >= count``: crops of an earlier run
    (of another image, or with more faces) that this run did not overwrite. They are left as they
    are: the folder may be the user's."""
    import logging
    import re

    older = sorted((p for p in folder.glob("face*.png")
                    if (m := re.fullmatch(r"face(\d+)\.png", p.name)) and int(m.group(1)) >= count),
                   key=lambda p: int(p.stem[4:]))
    if older:
        names = ", ".join(p.name for p in older[:5]) + (", ..." if len(older) > 5 else "")
        logging.getLogger(__name__).warning("%s: %d crop(s) not from this image, left from an earlier run: %s",
                                            folder, len(older), names)
