"""dlib backend: HOG or CNN (MMOD) face detector + 5- or 68-point shape predictor.

Model files come from the ``face-recognition-models`` package (``pip install
face-recognition-models``), located with :func:`importlib.util.find_spec` (no
``pkg_resources``), or from the folder named by the ``FACETOON_DLIB_MODELS`` environment
variable. They are loaded once per process, on first use, under a lock. A dlib object must not be
used by two threads at once (its maintainer's rule; the HOG detector releases the GIL and two
threads detecting at the same time crashed the process), so each model runs under its own lock:
threads sharing a backend take turns in dlib and run the rest of the pipeline in parallel.

Licences of the model files (not of this code):

* ``shape_predictor_5_face_landmarks.dat`` (the default) — public domain (dlib, Davis King).
* ``shape_predictor_68_face_landmarks.dat`` — trained on the iBUG 300-W data set, whose licence
  excludes commercial use: ``landmarks="68"`` is for **non-commercial use only**.
* ``mmod_human_face_detector.dat`` (``detector="cnn"``) — dlib's CNN face detector, CC0.

The 5-point model returns, in this order: the outer and inner corner of the eye on the image's
right (the subject's left eye), the outer and inner corner of the eye on the image's left, and
the base of the nose (the point under the nose tip, between the nostrils).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ...errors import ConfigError, WeightsError
from .base import Box, Detection, FaceBackend

__all__ = ["DlibBackend", "MODEL_FILES", "dlib_model_path"]

log = logging.getLogger(__name__)

MODEL_FILES: dict[str, str] = {
    "5": "shape_predictor_5_face_landmarks.dat",
    "68": "shape_predictor_68_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
}
_INSTALL_HINT = (
    "install the dlib model files with `pip install face-recognition-models` "
    "or set FACETOON_DLIB_MODELS to a folder holding them"
)

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()  # loading
_RUN_LOCKS = {kind: threading.Lock() for kind in ("hog", "cnn", "5", "68")}  # one caller per dlib model


def _models_dir() -> Path | None:
    env = os.environ.get("FACETOON_DLIB_MODELS")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def dlib_model_path(kind: str) -> Path:
    """Path of the dlib model file ``kind`` (``"5"``, ``"68"`` or ``"cnn"``).

    Raises:
        WeightsError: the file is not on this machine (with an install hint).
    """
    folder = _models_dir()
    if folder is None:
        raise WeightsError(f"dlib model {MODEL_FILES[kind]} not found: {_INSTALL_HINT}")
    path = folder / MODEL_FILES[kind]
    if not path.is_file():
        raise WeightsError(f"dlib model file missing: {_INSTALL_HINT}", path=path)
    return path


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib is a dependency
        raise WeightsError(f"dlib is not importable ({exc}); install it with `pip install dlib-bin`") from exc
    return dlib


def _model(kind: str) -> Any:
    """Load (once) and return a dlib model: ``"hog"``, ``"cnn"``, ``"5"`` or ``"68"``."""
    model = _MODELS.get(kind)
    if model is not None:
        return model
    with _LOCK:
        model = _MODELS.get(kind)
        if model is None:
            dlib = _dlib()
            if kind == "hog":
                model = dlib.get_frontal_face_detector()
            else:
                path = dlib_model_path(kind)
                log.debug("loading dlib model %s", path)
                try:
                    if kind == "cnn":
                        model = dlib.cnn_face_detection_model_v1(str(path))
                    else:
                        model = dlib.shape_predictor(str(path))
                except RuntimeError as exc:
                    raise WeightsError(f"cannot load dlib model ({exc}); reinstall face-recognition-models",
                                       path=path) from exc
            _MODELS[kind] = model
    return model


def _rect(box: Box) -> Any:
    """Continuous box -> dlib rectangle (inclusive integer pixel bounds)."""
    x0, y0, x1, y1 = box
    return _dlib().rectangle(int(round(x0 + 0.5)), int(round(y0 + 0.5)),
                             int(round(x1 - 0.5)), int(round(y1 - 0.5)))


def _box(rect: Any) -> Box:
    """dlib rectangle (inclusive pixel bounds) -> continuous box."""
    return (rect.left() - 0.5, rect.top() - 0.5, rect.right() + 0.5, rect.bottom() + 0.5)


class DlibBackend(FaceBackend):
    """dlib detector (``"hog"`` or ``"cnn"``) + shape predictor (``"5"`` or ``"68"`` points).

    Args:
        detector: ``"hog"`` (frontal HOG + linear SVM, fast) or ``"cnn"`` (MMOD CNN, slow on CPU).
        landmarks: ``"5"`` (public domain model; default) or ``"68"`` (iBUG 300-W model,
            **non-commercial use only**).
        threshold: detection score threshold; lower finds more faces and more false ones.
    """

    min_face: ClassVar[float] = 80.0

    def __init__(self, detector: Literal["hog", "cnn"] = "hog", landmarks: str | None = "5",
                 threshold: float = 0.0) -> None:
        landmarks = "5" if landmarks is None else str(landmarks)
        if detector not in ("hog", "cnn"):
            raise ConfigError(f"detector: expected 'hog' or 'cnn', got {detector!r}")
        if landmarks not in ("5", "68"):
            raise ConfigError(f"landmarks: the dlib backend offers '5' or '68' points, got {landmarks!r}")
        self.detector = detector
        self.points = landmarks
        self.threshold = float(threshold)
        self.scheme = "dlib5" if landmarks == "5" else "ibug68"
        self.name = "dlib" if detector == "hog" else "dlib-cnn"
        # fail now, not at the first face, when a model file is missing
        dlib_model_path(landmarks)
        if detector == "cnn":
            dlib_model_path("cnn")

    def detect(self, image: np.ndarray, *, upsample: int = 0, threshold: float | None = None) -> list[Detection]:
        thr = self.threshold if threshold is None else float(threshold)
        img = np.ascontiguousarray(image)
        if self.detector == "hog":
            if img.ndim == 3:  # HOG on gray is ~1.4x faster and finds the same faces
                from .._image import to_gray

                img = to_gray(img)
            with _RUN_LOCKS["hog"]:
                rects, scores, _ = _model("hog").run(img, int(upsample), thr)
            return [Detection(_box(r), float(s)) for r, s in zip(rects, scores)]
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        with _RUN_LOCKS["cnn"]:
            found = _model("cnn")(img, int(upsample))
        return [Detection(_box(d.rect), float(d.confidence)) for d in found
                if d.confidence >= thr]

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        with _RUN_LOCKS[self.points]:
            shape = _model(self.points)(np.ascontiguousarray(image), _rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def __repr__(self) -> str:
        return f"DlibBackend(detector={self.detector!r}, landmarks={self.points!r})"
