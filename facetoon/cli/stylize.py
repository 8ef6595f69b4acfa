"""``facetoon stylize INPUT... [-o OUT]``: stylize portrait photos in batch.

    facetoon stylize examples/astronaut.png -o examples/     # examples/astronaut_facetoon.png
    facetoon stylize photos/ "more/*.jpg" -o out/ --format webp --strength 0.8
    facetoon stylize me.jpg -o me_anime.png --details          # + me_anime_details/ debug images
    facetoon stylize shots/ -o out/ --background cartoongan \\
        --background-weights Hayao_net_G_float.pth --face-weights runs/export/a2b

Inputs are files, folders (their image files; ``--recursive`` for sub-folders) and glob
patterns. Outputs are named ``{stem}{suffix}{ext}`` (default suffix ``_facetoon``, extension of
the input or ``--format``) in the ``-o`` folder (created), or beside each input without ``-o``;
``-o`` may name a single output file when there is one input. An input is never overwritten.
Unreadable files are reported and skipped; the summary at the end lists every failure and the
exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._stylizer_args import add_stylizer_arguments, command_line_error, make_stylizer

__all__ = ["register", "run_stylize", "output_path"]

FORMATS = ("png", "jpg", "webp")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stylize", help="turn portrait photos into anime-style pictures",
        description="Stylize photos: faces by the face model (U-GAT-IT), the scene by the scene model "
                    "(AnimeGAN by default), blended without a seam. Files, folders and glob patterns.",
        epilog="Example: facetoon stylize examples/astronaut.png -o examples/",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output folder (created), or an output file for a single input; "
                        "default: beside each input")
    p.add_argument("--suffix", default="_facetoon", help="appended to the input's stem (default: _facetoon)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: the input's, png for formats that cannot be written)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality 1-100 (default 95)")
    p.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output file exists")
    p.add_argument("--details", action="store_true",
                   help="also write debug images to {output stem}_details/: detections and landmarks, "
                        "aligned and stylized crops, CAM heat-maps, blend masks, the stylized scene")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stylizer_arguments(p, require_face=True)
    p.set_defaults(func=run_stylize)


def output_path(src: Path, out_dir: Path | None, suffix: str, fmt: str | None) -> Path:
    """``{out_dir or src.parent}/{src.stem}{suffix}{ext}``; ``ext`` from ``fmt`` or the input."""
    from ..io import WRITE_FORMATS

    if fmt is not None:
        ext = "." + fmt
    else:
        ext = src.suffix.lower() if src.suffix.lower() in WRITE_FORMATS else ".png"
    return (out_dir if out_dir is not None else src.parent) / f"{src.stem}{suffix}{ext}"


def _is_earlier_output(path: Path, suffix: str) -> bool:
    """A file this command wrote before: ``<stem><suffix>.<ext>`` or inside a ``*_details`` folder."""
    return bool(suffix) and (path.stem.endswith(suffix) or path.parent.name.endswith(suffix + "_details"))


def _write_details(res: Any, folder: Path, protect: list[Path], quality: int) -> None:
    """Debug images of one result (see ``--details``)."""
    import numpy as np

    from ..io import write_image

    def save(img: Any, name: str) -> None:
        write_image(img, folder / name, protect=protect, quality=quality)

    save(res.background, "scene.png")
    try:
        from ..viz import draw_crop_grid, draw_faces

        drawing = draw_faces(res.photo, [d.face for d in res.faces])
        for d in res.faces:
            drawing = draw_crop_grid(drawing, d.aligned)
    except ImportError:  # pragma: no cover - facetoon.viz is part of the package
        drawing = res.photo
    save(drawing, "faces.png")
    union = np.zeros(res.photo.shape[:2], np.float32)
    for i, d in enumerate(res.faces):
        save(d.crop, f"face{i}_crop.png")
        save(d.stylized, f"face{i}_stylized.png")
        save(np.rint(d.crop_mask * 255).astype(np.uint8), f"face{i}_mask.png")
        if d.heatmap is not None:
            import cv2

            heat = cv2.applyColorMap(np.rint(d.heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
            overlay = np.rint(0.5 * heat + 0.5 * d.crop).astype(np.uint8)
            save(overlay, f"face{i}_heatmap.png")
        np.maximum(union, d.mask, out=union)
    save(np.rint(union * 255).astype(np.uint8), "mask.png")


def _output_target(args: argparse.Namespace, files: list[Path]) -> tuple[Path | None, Path | None]:
    """``(single output file, output folder)`` that ``-o`` names (both ``None`` without ``-o``);
    raises ConfigError or OutputError with the reason when ``-o`` cannot be used (nothing is
    written and no model is loaded yet)."""
    from .._fileutil import not_a_folder, not_a_folder_reason
    from ..errors import ConfigError, OutputError
    from ..io import IMAGE_EXTENSIONS, WRITE_FORMATS

    if args.output is None:
        return None, None
    out = Path(args.output)
    ext = out.suffix.lower()
    if out.is_dir():
        return None, out
    blocker = not_a_folder(out.parent)
    if blocker is not None:
        raise OutputError(f"-o cannot be written: {not_a_folder_reason(blocker)}", path=out)
    # one input named (a file, or a folder or pattern with one image; a missing one fails later)
    one_input = len(args.inputs) == 1 and len(files) <= 1
    if not one_input and (ext in IMAGE_EXTENSIONS or out.exists()):
        many = f"there are {len(files)} input images" if len(files) > 1 else f"{len(args.inputs)} inputs are given"
        if out.exists():
            raise ConfigError(f"-o names an existing file but {many}; give a folder", path=out)
        raise ConfigError(f"-o looks like a file name but {many}; give a folder", path=out)
    if ext in WRITE_FORMATS:  # one input
        if args.format is not None and WRITE_FORMATS[ext] != WRITE_FORMATS.get(f".{args.format}"):
            raise ConfigError(f"--format {args.format} contradicts the extension of -o {out.name}; "
                              "give one of them", path=out)
        return out, None
    if ext in IMAGE_EXTENSIONS:
        raise ConfigError(f"-o: facetoon cannot write {out.suffix} images; use one of "
                          f"{', '.join(sorted(WRITE_FORMATS))} (or create the folder first to write into it)",
                          path=out)
    if out.exists():
        raise ConfigError(f"-o names an existing file that is not an image ({', '.join(sorted(WRITE_FORMATS))}); "
                          "give a folder or an image file name", path=out)
    return None, out


def run_stylize(args: argparse.Namespace) -> int:
    """Handler of ``facetoon stylize``; returns the exit status (1 if any input failed)."""
    import logging

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..errors import ConfigError, FacetoonError, WeightsError
    from ..io import iter_image_files, write_image

    if not 1 <= args.quality <= 100:
        raise ConfigError(f"--quality must be 1..100, got {args.quality}")
    if os.sep in args.suffix or (os.altsep and os.altsep in args.suffix):
        raise ConfigError(f"--suffix must not contain a path separator, got {args.suffix!r}")
    failures: list[tuple[str, str]] = []
    files: list[Path] = []
    earlier = 0
    for item in args.inputs:
        try:
            found = iter_image_files([item], recursive=args.recursive)
        except FacetoonError as exc:
            failures.append((item, exc.reason if getattr(exc, "path", None) else str(exc)))
            continue
        if not Path(item).is_file():  # a folder or a glob: leave out facetoon's own earlier outputs
            kept = [f for f in found if not _is_earlier_output(f, args.suffix)]
            earlier += len(found) - len(kept)
            found = kept
        files.extend(found)
    # de-duplicate (the same file named twice)
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    files = list(unique.values())

    single, out_dir = _output_target(args, files)

    plan: list[tuple[Path, Path]] = []
    claimed: dict[Path, Path] = {}
    for f in files:
        target = single if single is not None else output_path(f, out_dir, args.suffix, args.format)
        key = target.resolve()
        if key in claimed:
            failures.append((str(f), f"output {target} would overwrite the output of {claimed[key]}; "
                                     "use --suffix or separate runs"))
            continue
        claimed[key] = f
        plan.append((f, target))

    todo = [(f, t) for f, t in plan if not (args.skip_existing and t.exists())]
    skipped = len(plan) - len(todo)
    protect = list(files)  # every input found, also those left out of the plan (name clash)
    written = 0
    if todo:
        try:
            stylizer = make_stylizer(args)
        except WeightsError as exc:
            raise command_line_error(exc) from None
        quiet = bool(getattr(args, "quiet", False))
        debug = bool(getattr(args, "debug", False))
        log = logging.getLogger("facetoon")
        bar = tqdm(todo, unit="img", desc="stylize", disable=True if (quiet or args.no_progress) else None,
                   file=sys.stderr)
        with logging_redirect_tqdm(loggers=[log]):
            for src, target in bar:
                bar.set_postfix_str(src.name, refresh=False)
                try:
                    res = stylizer.stylize(src, return_details=args.details)
                    image = res.image if args.details else res
                    if target.exists() and target.is_dir():
                        raise ConfigError("output path is a folder", path=target)
                    if args.details:  # first: an output that exists is complete (--skip-existing)
                        _write_details(res, target.with_name(target.stem + "_details"), protect, args.quality)
                    write_image(image, target, protect=protect, quality=args.quality)
                    written += 1
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                    if isinstance(exc, FacetoonError):
                        reason = exc.reason if exc.path == str(src) else str(exc)
                    else:
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        reason = f"{type(exc).__name__}: {first}"
                    failures.append((str(src), reason))
                    if debug:  # the traceback now, the batch goes on (the summary lists it too)
                        log.debug("%s failed: %s", src, reason, exc_info=True)
        bar.close()

    where = single if single is not None else (out_dir if out_dir is not None else "beside the inputs")
    parts = [f"{written} written"]
    if skipped:
        parts.append(f"{skipped} skipped (output exists)")
    if earlier:
        parts.append(f"{earlier} earlier facetoon output(s) in the inputs left out")
    if failures:
        parts.append(f"{len(failures)} failed")
    print(f"facetoon stylize: {', '.join(parts)} -> {where}")
    if failures:
        print("failures:", file=sys.stderr)
        for name, reason in failures:
            print(f"  {name}: {reason}", file=sys.stderr)
        return 1
    return 0
