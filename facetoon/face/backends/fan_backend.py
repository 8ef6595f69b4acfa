"""FAN backend: dlib HOG boxes + the 2D FAN landmark network of the ``face-alignment`` package.

FAN ("How far are we from solving the 2D & 3D face alignment problem?", Bulat & Tzimiropoulos,
2017) predicts the 68 iBUG landmarks from heatmaps; it is more accurate than dlib's regression
trees on difficult poses but needs torch and is much slower on CPU (~0.3-1 s per face).

Weights are **never downloaded** by facetoon. The ``face-alignment`` package caches them in
torch hub's checkpoint folder, so a machine where it has run once already has them:

    <torch.hub.get_dir()>/checkpoints/2DFAN4-11f355bf06.pth.tar
    (usually ~/.cache/torch/hub/checkpoints/; TORCH_HOME moves it)

To provide them on an offline machine, copy that file there (from a machine with internet:
``python -c "import face_alignment as fa; fa.FaceAlignment(fa.LandmarksType.TWO_D, device='cpu')"``
or download the URL in ``face_alignment.api.models_urls['2DFAN-4']``), or point
``FACETOON_FAN_WEIGHTS`` (or ``FanBackend(weights=...)``) at the file. The weights are loaded
with ``torch.load(..., weights_only=True)``. The FAN weights were trained on 300-W-derived data:
check their licence before commercial use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError, WeightsError
from ..geometry import apply_affine, invert_affine
from .base import Box, Detection, FaceBackend

__all__ = ["FAN_FILE", "FanBackend", "fan_weights_path"]

log = logging.getLogger(__name__)

#: file name face-alignment 1.x gives the 2D FAN-4 weights in torch hub's checkpoint folder
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
_INPUT = 256  # FAN input side
_HEATMAP = 64  # FAN heatmap side
# face-alignment's crop convention for detector boxes: side = 200 * (w + h) / 195, centre moved
# up by 12% of the box height
_REFERENCE_SCALE = 195.0
_SCALE_FACTOR = 200.0
_CENTER_Y_OFFSET = 0.12

_NETS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _torch_hub_dir() -> Path:
    """torch hub's folder, as ``torch.hub.get_dir()`` computes it (without importing torch)."""
    import sys

    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir())
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home is None:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
        torch_home = os.path.join(cache, "torch")
    return Path(os.path.expanduser(torch_home)) / "hub"


def fan_weights_path(weights: str | os.PathLike[str] | None = None) -> Path:
    """Where the FAN weights are expected: ``weights``, else ``FACETOON_FAN_WEIGHTS``, else
    torch hub's ``checkpoints/2DFAN4-11f355bf06.pth.tar``."""
    if weights is not None:
        return Path(weights)
    env = os.environ.get("FACETOON_FAN_WEIGHTS")
    if env:
        return Path(env)
    return _torch_hub_dir() / "checkpoints" / FAN_FILE


def _load_net(path: Path) -> Any:
    key = str(path.resolve())
    with _LOCK:
        net = _NETS.get(key)
        if net is None:
            import torch

            try:
                from face_alignment.models.fan import FAN
            except ImportError as exc:
                raise WeightsError(f"the FAN backend needs the face-alignment package ({exc}); "
                                   "pip install face-alignment") from exc
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                if isinstance(state, dict) and "state_dict" in state:
                    state = state["state_dict"]
                net = FAN(4)
                net.load_state_dict(state)
            except Exception as exc:  # noqa: BLE001 - any unreadable/mismatched file is a WeightsError
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise WeightsError(f"not usable as 2D FAN-4 weights: {first}", path=path) from exc
            net.eval()
            _NETS[key] = net
            log.debug("loaded FAN weights from %s", path)
    return net


class FanBackend(FaceBackend):
    """dlib detector boxes + FAN 68-point landmarks (scheme ``"ibug68"``).

    Args:
        weights: path of ``2DFAN4-11f355bf06.pth.tar`` (default: see :func:`fan_weights_path`).
        detector: dlib detector for the boxes, ``"hog"`` or ``"cnn"``.
        landmarks: must be ``"68"`` (or ``None``).
        threads: torch CPU threads for FAN (``None`` = leave torch's setting).

    Raises:
        WeightsError: the weights file is missing (no download is attempted) or unusable.
    """

    scheme = "ibug68"
    min_face: ClassVar[float] = 80.0

    def __init__(self, weights: str | os.PathLike[str] | None = None, detector: str = "hog",
                 landmarks: str | None = "68", threads: int | None = None) -> None:
        if landmarks not in (None, "68"):
            raise ConfigError(f"landmarks: the FAN backend measures 68 points, got {landmarks!r}")
        path = fan_weights_path(weights)
        if not path.is_file():
            raise WeightsError(
                f"FAN weights not found; facetoon never downloads weights. Copy {FAN_FILE} "
                f"(face-alignment's 2D FAN-4) to {path.parent}, or set FACETOON_FAN_WEIGHTS to its path",
                path=path,
            )
        if detector not in ("hog", "cnn"):
            raise ConfigError(f"detector: expected 'hog' or 'cnn', got {detector!r}")
        from . import get_backend

        self.name = "fan"
        self.weights = path
        self.threads = threads
        self._detector = get_backend("dlib" if detector == "hog" else "dlib-cnn")
        self._net = _load_net(path)

    def detect(self, image: np.ndarray, *, upsample: int = 0, threshold: float | None = None) -> list[Detection]:
        return self._detector.detect(image, upsample=upsample, threshold=threshold)

    @staticmethod
    def _crop_matrix(box: Box) -> np.ndarray:
        """Image -> FAN input (256 px) matrix for a detector box."""
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - _CENTER_Y_OFFSET * h
        side = _SCALE_FACTOR * (w + h) / _REFERENCE_SCALE
        k = _INPUT / side
        return np.array([[k, 0.0, (_INPUT - 1) / 2 - k * cx], [0.0, k, (_INPUT - 1) / 2 - k * cy]])

    def landmarks_many(self, image: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
        import cv2
        import torch

        if not boxes:
            return []
        rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else np.ascontiguousarray(image)
        mats = [self._crop_matrix(b) for b in boxes]
        crops = [cv2.warpAffine(rgb, m, (_INPUT, _INPUT), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT) for m in mats]
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self._net(x)
        finally:
            if self.threads:
                torch.set_num_threads(previous)
        heat = (out[-1] if isinstance(out, (list, tuple)) else out).float().numpy()  # (B, 68, 64, 64)
        return [self._decode(hm, m) for hm, m in zip(heat, mats)]

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        return self.landmarks_many(image, [box])[0]

    @staticmethod
    def _decode(heatmaps: np.ndarray, to_input: np.ndarray) -> np.ndarray:
        """Heatmap maxima (moved a quarter pixel towards the higher neighbour) -> image pixels."""
        n, hh, ww = heatmaps.shape
        flat = heatmaps.reshape(n, -1).argmax(axis=1)
        ys, xs = np.divmod(flat, ww)
        px, py = xs.astype(np.float64), ys.astype(np.float64)
        for i in range(n):
            x, y, hm = xs[i], ys[i], heatmaps[i]
            if 0 < x < ww - 1:
                px[i] += 0.25 * np.sign(hm[y, x + 1] - hm[y, x - 1])
            if 0 < y < hh - 1:
                py[i] += 0.25 * np.sign(hm[y + 1, x] - hm[y - 1, x])
        stride = _INPUT / _HEATMAP
        pts = np.stack([(px + 0.5) * stride - 0.5, (py + 0.5) * stride - 0.5], axis=1)
        return apply_affine(invert_affine(to_input), pts)
