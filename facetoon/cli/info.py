"""``facetoon info``: what facetoon sees on this machine, or what it reads from an image.

``facetoon info`` prints the versions (facetoon, Python, torch, numpy, Pillow, OpenCV, dlib),
the device inference would use, whether dlib's landmark models are installed, where named
weights are looked up and which are there, and the pixel budget of :func:`facetoon.io.read_image`.
``facetoon info --image PATH`` reads each image the way the pipeline does and prints its file
format, stored size and mode, EXIF orientation and the size of the RGB array it becomes.
``--json`` prints one JSON object instead (handy in bug reports).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ..errors import FacetoonError

__all__ = ["register", "run_info", "environment_info", "image_info", "landmark_models"]

#: dlib model files facetoon can use, by role (from the ``face_recognition_models`` package).
LANDMARK_MODEL_FILES = {
    "landmarks_5": "shape_predictor_5_face_landmarks.dat",
    "landmarks_68": "shape_predictor_68_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}

#: Licence of the model files whose terms are known, shown next to them.
MODEL_LICENCES = {
    "landmarks_5": "public domain",
    "landmarks_68": "iBUG 300-W data: non-commercial use only",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show versions, device, face models and weights; or describe an image",
        description="Show what facetoon finds on this machine (versions, device, dlib landmark "
        "models, weights folder, pixel budget). With --image, read images the way the pipeline "
        "does and describe them instead.",
    )
    parser.add_argument(
        "--image", "-i", metavar="PATH", action="append", default=None,
        help="describe this image (repeatable: an unreadable one is reported and the others still "
             "described); errors name the file and exit with status 1",
    )
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (a list of them for several --image)")
    parser.set_defaults(func=run_info)


def landmark_models() -> dict[str, str | None]:
    """Role -> path of each dlib model file found in ``face_recognition_models`` (``None`` if absent).

    The package folder is found with :func:`importlib.util.find_spec`, without importing it
    (importing it needs ``pkg_resources``).
    """
    found: dict[str, str | None] = {role: None for role in LANDMARK_MODEL_FILES}
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for base in locations:
        for role, name in LANDMARK_MODEL_FILES.items():
            path = Path(base) / "models" / name
            if found[role] is None and path.is_file():
                found[role] = str(path)
    return found


def _version_of(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - a broken optional install is reported, not raised
        return None
    return str(getattr(mod, "__version__", "unknown"))


def environment_info() -> dict[str, Any]:
    """Versions, device, face models, weights folder and pixel budget as a JSON-able dict."""
    import numpy
    import PIL

    from .._version import __version__
    from ..io import get_max_pixels

    info: dict[str, Any] = {
        "facetoon": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "opencv": _version_of("cv2"),
        "dlib": _version_of("dlib"),
    }
    try:
        import torch
    except ImportError:
        info.update(torch=None, device=None, cuda=False, torch_threads=None)
    else:
        cuda = bool(torch.cuda.is_available())
        info.update(
            torch=torch.__version__,
            device="cuda" if cuda else "cpu",
            cuda=cuda,
            cuda_devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda else [],
            torch_threads=torch.get_num_threads(),
        )
    info["landmark_models"] = landmark_models()
    info.update(_weights_info())
    info["max_pixels"] = get_max_pixels()
    info["max_pixels_env"] = os.environ.get("FACETOON_MAX_PIXELS")
    return info


def _weights_info() -> dict[str, Any]:
    try:
        from ..models.serialization import CONFIG_NAME, weights_dir
    except ImportError as exc:  # torch missing: the weights folder is still worth reporting
        return {"weights_dir": None, "weights_env": os.environ.get("FACETOON_WEIGHTS"),
                "weights": [], "weights_error": str(exc)}
    directory = weights_dir()
    names = sorted(p.name for p in directory.glob("*") if (p / CONFIG_NAME).is_file()) \
        if directory.is_dir() else []
    return {
        "weights_dir": str(directory),
        "weights_env": os.environ.get("FACETOON_WEIGHTS"),
        "weights": names,
    }


def image_info(path: str) -> dict[str, Any]:
    """How facetoon reads the image at ``path``: file format, stored size/mode, EXIF orientation,
    frames, transparency, and the ``(H, W, 3)`` array :func:`facetoon.io.read_image` returns.

    Raises:
        InvalidImageError: the file is missing or not a readable image.
        ImageTooLargeError: the image exceeds the pixel budget.
    """
    from PIL import Image

    from ..io import exif_orientation, get_max_pixels, pillow_pixel_budget, read_image_with_alpha, readable_formats

    rgb, alpha = read_image_with_alpha(path)  # validates the file fully, with our errors
    # the header again (no decoding) for the stored, pre-conversion facts
    with pillow_pixel_budget(get_max_pixels()), Image.open(path, formats=readable_formats()) as im:
        orientation = exif_orientation(im, path)
        frames = int(getattr(im, "n_frames", 1))
        return {
            "path": path,
            "format": im.format,
            "stored_size": [im.width, im.height],
            "mode": im.mode,
            "exif_orientation": orientation,
            "frames": frames,
            "has_transparency": alpha is not None,
            "rgb_shape": list(rgb.shape),
            "rgb_mean": [round(float(m), 2) for m in rgb.reshape(-1, 3).mean(axis=0)],
        }


def _print_env(info: dict[str, Any]) -> None:
    models = info["landmark_models"]
    lines = [
        ("facetoon", info["facetoon"]),
        ("python", f"{info['python']} ({info['platform']})"),
        ("torch", info["torch"] or "not installed"),
        ("device", f"{info['device']} ({info['torch_threads']} CPU threads)"
         if info["device"] == "cpu" else f"{info['device']} {', '.join(info.get('cuda_devices', []))}"),
        ("numpy / pillow", f"{info['numpy']} / {info['pillow']}"),
        ("opencv", info["opencv"] or "not installed"),
        ("dlib", info["dlib"] or "not installed"),
    ]
    for role, path in models.items():
        note = f"  [{MODEL_LICENCES[role]}]" if path and role in MODEL_LICENCES else ""
        lines.append((f"dlib {role}",
                      (path + note) if path else "not found (pip install face-recognition-models)"))
    weights = info["weights"]
    lines.append(("weights folder", f"{info['weights_dir']}"
                  + (" (from FACETOON_WEIGHTS)" if info.get("weights_env") else
                     " (set FACETOON_WEIGHTS to change)")))
    lines.append(("named weights", ", ".join(weights) if weights else "none"))
    budget = info["max_pixels"]
    lines.append(("max pixels", "no limit" if budget is None else f"{budget:,}"
                  + (" (from FACETOON_MAX_PIXELS)" if info["max_pixels_env"] else "")))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")


def _image_line(info: dict[str, Any]) -> str:
    w, h = info["stored_size"]
    rh, rw, _ = info["rgb_shape"]
    extra = []
    if info["exif_orientation"] != 1:
        extra.append(f"EXIF orientation {info['exif_orientation']}")
    if info["frames"] > 1:
        extra.append(f"{info['frames']} frames, first used")
    if info["has_transparency"]:
        extra.append("transparent, composited on white")
    tail = f"; {'; '.join(extra)}" if extra else ""
    return f"{info['path']}: {info['format']} {w}x{h} {info['mode']} -> RGB {rw}x{rh}{tail}"


def run_info(args: argparse.Namespace) -> int:
    """Handler of ``facetoon info``; returns the exit status."""
    if args.image:
        if len(args.image) == 1:  # one file: its error is the command's (one line, exit 1)
            info = image_info(args.image[0])
            print(json.dumps(info, indent=2) if args.json else _image_line(info))
            return 0
        # several files: describe each, report the unreadable ones and go on; exit 1 if any failed
        infos, failed = [], 0
        for path in args.image:
            try:
                info = image_info(path)
            except FacetoonError as exc:
                failed += 1
                print(f"facetoon: error: {exc}", file=sys.stderr)
                continue
            infos.append(info)
            if not args.json:
                print(_image_line(info))
            sys.stdout.flush()
        if args.json:
            print(json.dumps(infos, indent=2))
        if failed:
            print(f"facetoon: error: {failed} of {len(args.image)} images could not be read", file=sys.stderr)
        return 1 if failed else 0
    env = environment_info()
    if args.json:
        print(json.dumps(env, indent=2))
    else:
        _print_env(env)
    sys.stdout.flush()
    return 0
