"""Find faces and measure their landmarks, for any backend.

:func:`detect_faces` runs a backend's detector on a resized copy of the image (downscaled for
speed on large photos, upscaled when small faces are asked for), optionally on rotated copies
for tilted heads, and measures landmarks at **full resolution** — in an upright patch when the
face is rotated — so the landmark accuracy does not depend on the detection scale.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError
from ._image import as_image
from .backends import FaceBackend, get_backend
from .geometry import (
    apply_affine,
    compose,
    invert_affine,
    resize_matrix,
    rotation_about,
    translation,
)
from .landmarks import named_points, roll_angle
from .types import Face
from .warp import resample

__all__ = ["detect_faces", "check_detect_options", "DEFAULT_DETECT_SIZE", "DEFAULT_ANGLES"]

log = logging.getLogger(__name__)

#: long side (pixels) of the copy the detector runs on when ``min_size`` is not given
DEFAULT_DETECT_SIZE = 960
#: rotations (degrees) of the extra detection passes for tilted heads; with the HOG detector's
#: own tolerance of about +-20 degrees they cover in-plane rotations up to about +-50 degrees
DEFAULT_ANGLES: tuple[float, ...] = (-30.0, 30.0)
# small images are upscaled up to this factor towards detect_size when min_size is not given
_MAX_AUTO_UPSCALE = 2.0
# largest detection scale and detection-copy size, whatever min_size asks for
_MAX_SCALE = 4.0
_MAX_DETECT_PIXELS = 36_000_000
# refine landmarks in an upright patch when the measured roll differs from the patch angle by more
_REFINE_DEGREES = 2.0
_REFINE_STEPS = 3


@dataclass
class _Candidate:
    """A detector box in image pixels: centre, width, height, and the angle of its frame."""

    cx: float
    cy: float
    w: float
    h: float
    angle: float
    score: float

    @property
    def side(self) -> float:
        return 0.5 * (self.w + self.h)

    def box(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounding box of the (possibly rotated) detector box."""
        if self.angle == 0.0:
            return (self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2)
        hw, hh = self.w / 2, self.h / 2
        corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]) + [self.cx, self.cy]
        back = apply_affine(rotation_about((self.cx, self.cy), -self.angle), corners)
        x0, y0 = back.min(axis=0)
        x1, y1 = back.max(axis=0)
        return (float(x0), float(y0), float(x1), float(y1))


def _check_options(max_faces: Any, min_size: Any, upsample: Any, detect_size: Any, rotate: Any,
                   angles: Any) -> tuple[float, ...]:
    if max_faces is not None and (not isinstance(max_faces, (int, np.integer)) or max_faces < 0):
        raise ConfigError(f"max_faces: expected None or an integer >= 0, got {max_faces!r}")
    if min_size is not None and (not isinstance(min_size, (int, float, np.number)) or not min_size > 0):
        raise ConfigError(f"min_size: expected None or a size in pixels > 0, got {min_size!r}")
    if not isinstance(upsample, (int, np.integer)) or not 0 <= upsample <= 3:
        raise ConfigError(f"upsample: expected an integer 0..3, got {upsample!r}")
    if not isinstance(detect_size, (int, np.integer)) or detect_size < 80:
        raise ConfigError(f"detect_size: expected an integer >= 80 (pixels), got {detect_size!r}")
    if rotate not in ("auto", "always", "never"):
        raise ConfigError(f"rotate: expected 'auto', 'always' or 'never', got {rotate!r}")
    try:
        out = tuple(float(a) for a in angles)
    except (TypeError, ValueError):
        raise ConfigError(f"angles: expected a sequence of degrees, got {angles!r}") from None
    if any(not math.isfinite(a) or a == 0.0 for a in out):
        raise ConfigError(f"angles: expected finite non-zero degrees, got {angles!r}")
    return out


def check_detect_options(options: Mapping[str, Any]) -> None:
    """Check the keyword options of :func:`detect_faces` (as a ``detector_options`` mapping) before
    any image is read.

    Raises:
        ConfigError: an option's value is invalid; the message names the option.
    """
    _check_options(options.get("max_faces"), options.get("min_size"), options.get("upsample", 0),
                   options.get("detect_size", DEFAULT_DETECT_SIZE), options.get("rotate", "auto"),
                   options.get("angles", DEFAULT_ANGLES))


def _detection_scale(h: int, w: int, min_face: float, min_size: float | None, detect_size: int) -> float:
    """Scale of the detection copy: ``detect_size`` on the long side, or what ``min_size`` needs."""
    if min_size is None:
        scale = min(_MAX_AUTO_UPSCALE, detect_size / max(h, w))
    else:
        # a face of min_size pixels must be at least min_face pixels on the detection copy;
        # never shrink the copy below ~1.25 detector windows on its short side
        scale = max(min_face / float(min_size), min(1.0, 1.25 * min_face / min(h, w)))
    scale = min(scale, _MAX_SCALE, math.sqrt(_MAX_DETECT_PIXELS / float(h * w)))
    return scale


def _resized(image: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resized copy and the exact image -> copy matrix."""
    h, w = image.shape[:2]
    if scale == 1.0:
        return image, resize_matrix(1.0)
    import cv2

    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    return small, resize_matrix(nw / w, nh / h)


def _rotated(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` rotated by ``angle`` degrees on a canvas that holds all of it, and the matrix."""
    import cv2

    h, w = image.shape[:2]
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    nw, nh = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    m = compose(translation((nw - w) / 2, (nh - h) / 2), rotation_about(((w - 1) / 2, (h - 1) / 2), angle))
    out = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, m


def _candidates(backend: FaceBackend, image: np.ndarray, to_image: np.ndarray, angle: float,
                upsample: int) -> list[_Candidate]:
    """Run the detector on ``image`` (whose pixels map to the original by ``to_image``)."""
    scale = math.sqrt(abs(np.linalg.det(to_image[:, :2])))
    out = []
    for det in backend.detect(image, upsample=upsample):
        x0, y0, x1, y1 = det.box
        (cx, cy), = apply_affine(to_image, [((x0 + x1) / 2, (y0 + y1) / 2)])
        out.append(_Candidate(float(cx), float(cy), (x1 - x0) * scale, (y1 - y0) * scale, angle, det.score))
    return out


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _deduplicate(faces: list[Face]) -> list[Face]:
    """Greedy suppression of faces found twice: keep the best-scoring one of each."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        mid = (f.left_eye + f.right_eye) / 2
        same = any(
            _iou(f.box, k.box) > 0.4
            or float(np.linalg.norm(mid - (k.left_eye + k.right_eye) / 2)) < 0.35 * min(f.size, k.size)
            for k in kept
        )
        if not same:
            kept.append(f)
    return kept


def _upright_patch(image: np.ndarray, cx: float, cy: float, angle: float, k: float,
                   side: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``side``-pixel patch centred on ``(cx, cy)`` of the image rotated by ``angle`` and scaled by
    ``k``; returns the patch and its image -> patch matrix."""
    centre = (side - 1) / 2
    m = compose(translation(centre - cx, centre - cy), rotation_about((cx, cy), angle, k))
    return resample(image, m, (side, side), interpolation="linear", border="constant"), m


def _measure(backend: FaceBackend, image: np.ndarray, c: _Candidate, angle: float) -> np.ndarray:
    """Landmarks of candidate ``c`` measured on the image rotated by ``angle`` about its centre."""
    if angle == 0.0:
        box = (c.cx - c.w / 2, c.cy - c.h / 2, c.cx + c.w / 2, c.cy + c.h / 2)
        return backend.landmarks(image, box)
    # an upright patch twice the box size around the face, at most ~800 px wide
    k = min(1.0, 400.0 / max(c.w, c.h))
    side = int(math.ceil(2.0 * k * max(c.w, c.h)))
    patch, m = _upright_patch(image, c.cx, c.cy, angle, k, side)
    centre = (side - 1) / 2
    hw, hh = k * c.w / 2, k * c.h / 2
    pts = backend.landmarks(patch, (centre - hw, centre - hh, centre + hw, centre + hh))
    return apply_affine(invert_affine(m), pts)


def _verify(backend: FaceBackend, image: np.ndarray, face: Face) -> float | None:
    """Re-detect a face found on a rotated copy on an upright patch at its measured roll.

    The detector fires on a real face once it is upright; a false detection of a rotated pass
    (rotated-copy edges, texture) has a meaningless roll and is not found again. Returns the
    score of the re-detection, or ``None``.
    """
    target = 1.25 * backend.min_face  # face box side on the patch
    k = target / face.size
    side = int(math.ceil(2.5 * target))
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    patch, _ = _upright_patch(image, cx, cy, face.angle, k, side)
    centre = (side - 1) / 2
    best = None
    for det in backend.detect(patch):
        x0, y0, x1, y1 = det.box
        w = 0.5 * ((x1 - x0) + (y1 - y0))
        near = math.hypot((x0 + x1) / 2 - centre, (y0 + y1) / 2 - centre) < 0.5 * target
        if near and 0.6 < w / target < 1.6 and (best is None or det.score > best):
            best = det.score
    return best


def _face(backend: FaceBackend, image: np.ndarray, c: _Candidate, refine: bool,
          start: float | None = None) -> Face:
    """The face of candidate ``c``: landmarks measured on a patch at the candidate's angle (or
    ``start``) and, with ``refine``, re-measured at the roll they give until it agrees."""
    angle = c.angle if start is None else start
    lm = _measure(backend, image, c, angle)
    points, estimated = named_points(lm, backend.scheme)
    if refine:
        for _ in range(_REFINE_STEPS):
            roll = roll_angle(points["left_eye"], points["right_eye"])
            if abs(roll - angle) <= _REFINE_DEGREES:
                break
            angle = roll
            lm = _measure(backend, image, c, angle)
            points, estimated = named_points(lm, backend.scheme)
    return Face(box=c.box(), landmarks=lm, score=c.score, points=points, estimated=estimated,
                scheme=backend.scheme, size=c.side, backend=backend.name)


def _upright_face(backend: FaceBackend, image: np.ndarray, c: _Candidate, refine: bool,
                  angles: Sequence[float]) -> Face:
    """The face of a candidate of the upright pass, with the roll the detector confirms best.

    The upright detector still fires on faces tilted by 35-40 degrees, where a landmark model can
    measure a roll of the wrong sign or none at all, and the refinement then confirms it (the
    68-point model turned a -32 degree face into +12 and a -36 degree one into +1; dlib's 5-point
    model measured both right). With 68-point models and ``refine``, the landmarks are therefore
    also measured starting from each of ``angles`` (the rotated passes' angles); of the rolls
    found, the one whose upright patch the detector re-detects with the highest score
    (:func:`_verify`) is kept, the first measurement when none is re-detected.
    """
    face = _face(backend, image, c, refine)
    if not refine or backend.scheme != "ibug68":
        return face  # the 5-point model measured those faces right (and the retries triple the time)
    best, best_score = face, _verify(backend, image, face)
    for start in angles:
        retry = _face(backend, image, c, True, start=float(start))
        if abs(retry.angle - best.angle) <= _REFINE_DEGREES:
            continue  # the same roll again
        score = _verify(backend, image, retry)
        if score is not None and (best_score is None or score > best_score):
            log.debug("upright face at (%.0f, %.0f): roll %+.1f (from %+.0f) re-detected better than %+.1f",
                      c.cx, c.cy, retry.angle, start, best.angle)
            best, best_score = retry, score
    return best


def detect_faces(
    image: Any,
    backend: str | FaceBackend = "dlib",
    *,
    max_faces: int | None = None,
    min_size: float | None = None,
    landmarks: str | int | None = None,
    upsample: int = 0,
    detect_size: int = DEFAULT_DETECT_SIZE,
    rotate: Literal["auto", "always", "never"] = "auto",
    angles: Sequence[float] = DEFAULT_ANGLES,
    refine: bool = True,
) -> list[Face]:
    """Find the faces in an image, largest first, with their landmarks.

    Args:
        image: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 gray array, or anything
            :func:`facetoon.io.read_image` reads (path, bytes, PIL image...).
        backend: ``"dlib"`` (HOG detector, default), ``"dlib-cnn"`` (MMOD CNN detector),
            ``"fan"`` (FAN 68-point landmarks; needs its weights) or a :class:`FaceBackend`.
        max_faces: keep at most this many (the largest); ``None`` = all.
        min_size: smallest face to find, as the side of the detector box in image pixels
            (roughly brow-to-chin height). Given, it sets the detection scale (the detector
            sees ``min_size`` faces at its minimum size of ~80 px, upscaling small images) and
            smaller faces are dropped. ``None``: detect on a copy whose long side is
            ``detect_size`` pixels (small images are upscaled at most 2x); faces smaller than
            about ``80 * long_side / detect_size`` pixels (40 px for small images) are missed.
        landmarks: landmark model, ``"5"`` or ``"68"`` for dlib (default ``"5"``; the
            68-point model is for non-commercial use only), ``"68"`` for FAN.
        upsample: extra 2x upsamplings of the detection copy inside dlib (finds faces half
            as small per step, ~4x slower per step).
        detect_size: long side of the detection copy when ``min_size`` is ``None``.
        rotate: also detect on copies rotated by ``angles`` — ``"auto"``: only when the
            upright pass finds nothing; ``"always"``; ``"never"``. HOG finds faces tilted up to
            about 20 degrees; the extra passes extend that to at least 45 degrees.
        angles: rotations (degrees) of the extra passes.
        refine: re-measure the landmarks of tilted faces (roll > 2 degrees) on a patch rotated
            upright, where the landmark models are accurate (up to 3 times, until the roll
            agrees within 2 degrees). Faces found on rotated copies are always refined, then
            verified by detecting them again on that upright patch (which removes the false
            detections rotated copies otherwise add). With 68-point landmarks, faces of the
            upright pass are also measured from each of ``angles`` and the roll re-detected
            best is kept (that model can take a face tilted 35-40 degrees for an upright one).

    Returns:
        A list of :class:`Face`, sorted by size, largest first; empty when there is no face.

    Raises:
        InvalidImageError: ``image`` is not an image.
        ConfigError: an option is invalid.
        WeightsError: the backend's model files are missing.
    """
    img = as_image(image, "image")
    angle_list = _check_options(max_faces, min_size, upsample, detect_size, rotate, angles)
    options: dict[str, Any] = {}
    if landmarks is not None:
        options["landmarks"] = str(landmarks)
    be = get_backend(backend, **options)

    h, w = img.shape[:2]
    scale = _detection_scale(h, w, be.min_face, min_size, int(detect_size))
    small, to_small = _resized(img, scale)
    back = invert_affine(to_small)
    cands = _candidates(be, small, back, 0.0, int(upsample))
    if min_size is not None:
        cands = [c for c in cands if c.side >= float(min_size)]
    faces = [_upright_face(be, img, c, refine, angle_list) for c in cands]
    if rotate == "always" or (rotate == "auto" and not faces):
        for a in angle_list:
            rot, to_rot = _rotated(small, a)
            found = _candidates(be, rot, compose(back, invert_affine(to_rot)), a, int(upsample))
            if min_size is not None:
                found = [c for c in found if c.side >= float(min_size)]
            kept = 0
            for c in found:
                face = _face(be, img, c, True)
                score = _verify(be, img, face)
                if score is not None:
                    faces.append(replace(face, score=max(score, face.score)))
                    kept += 1
            log.debug("rotated pass %+.0f deg: %d candidate(s), %d verified", a, len(found), kept)
    faces = _deduplicate(faces)
    faces.sort(key=lambda f: -f.size)
    if max_faces is not None:
        faces = faces[: int(max_faces)]
    log.debug("detect_faces: %dx%d image, detection scale %.3f, %d face(s)", w, h, scale, len(faces))
    return faces
