"""The portrait pipeline: ``facetoon.stylize(image)`` and the reusable :class:`Stylizer`.

    >>> import facetoon
    >>> out = facetoon.stylize("portrait.jpg")                      # doctest: +SKIP
    >>> st = facetoon.Stylizer(strength=0.8)                        # loads the models once
    >>> outs = [st(p) for p in ["a.jpg", "b.jpg"]]                  # doctest: +SKIP
    >>> res = st.stylize("a.jpg", return_details=True)              # doctest: +SKIP
    >>> res.image, res.faces[0].heatmap, res.faces[0].mask          # doctest: +SKIP

The pipeline only orchestrates (diffusers style); every step is a public function of its own
module:

1. read the input (:func:`facetoon.io.read_image`: EXIF orientation, gray, 16-bit, RGBA — the
   models see transparent pixels composited over white, the alpha is kept aside);
2. find faces (:func:`facetoon.face.detect_faces`), largest first;
3. align each to the face model's template at the model's training size
   (:func:`facetoon.face.align_face`);
4. stylize the crops in one batch with the face model (U-GAT-IT A->B generator) and the whole
   photo with the scene model (:class:`facetoon.background.BackgroundStylizer`: AnimeGAN,
   CartoonGAN...), both under ``torch.inference_mode`` with the chosen precision;
5. paste the faces back (:mod:`facetoon.blend`: soft face-and-hair masks, colour
   harmonisation, soft or Poisson blending, largest face last);
6. mix with the photo by ``strength`` and re-attach the alpha channel.

Images: RGB ``uint8`` arrays ``(H, W, 3)`` inside; models see ``(B, 3, H, W)`` float RGB in
``[-1, 1]``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Union, overload

import numpy as np
import torch
from PIL import Image
from torch import nn

from .blend import BLEND_MODES, DEFAULT_SHAPE, MaskShape, composite_faces, make_layer
from .errors import ConfigError, NoFaceError, WeightsError
from .face import AlignedFace, Face, align_face, detect_faces
from .face.align import PADDING_MODES
from .io import ImageSource, read_image, to_image
from .models.serialization import CONFIG_NAME, load_pretrained, resolve_weights, weights_dir
from .runtime import Runtime, resolve_runtime

__all__ = [
    "DEFAULT_FACE_WEIGHTS",
    "DEFAULT_BACKGROUND_WEIGHTS",
    "PIPELINE_CONFIG",
    "FaceDetails",
    "StylizeResult",
    "Stylizer",
    "clear_cache",
    "get_stylizer",
    "stylize",
]

log = logging.getLogger(__name__)

#: named weights (folders of ``weights/``) used when no model is given
DEFAULT_FACE_WEIGHTS = "ugatit-selfie2anime"
DEFAULT_BACKGROUND_WEIGHTS = "animegan-anime"
#: file name of a pipeline folder's configuration (see :meth:`Stylizer.from_pretrained`)
PIPELINE_CONFIG = "pipeline.json"

ModelSpec = Union[nn.Module, str, "os.PathLike[str]", None]
# image sources that give a PIL image back
_FileOrPIL = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image]


class _Keep:
    """Sentinel: keep the Stylizer's own value of an option."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()

# faces scoring below this while another face of the photo scores face_score_ratio^-1 times
# more are dropped as likely false positives (badges, prints, patterns)
_WEAK_SCORE = 0.25


# --------------------------------------------------------------------------- results


@dataclass(eq=False)
class FaceDetails:
    """What the pipeline did with one face (for notebooks and debugging).

    Attributes:
        face: the detection (:class:`~facetoon.face.Face`; box and landmarks in photo pixels).
        aligned: the :class:`~facetoon.face.AlignedFace` (crop, matrices, valid mask).
        stylized: ``(S, S, 3)`` uint8 RGB output of the face model for ``aligned.image``.
        heatmap: ``(S, S)`` float32 in ``[0, 1]``: the face model's CAM attention map,
            upsampled to the crop size and min-max normalised (``None`` for models without one).
        crop_mask: ``(S, S)`` float32 soft blend mask in crop pixels.
        mask: ``(H, W)`` float32 soft blend mask in photo pixels (this face's own mask; a larger
            face pasted later may cover part of it).
    """

    face: Face
    aligned: AlignedFace
    stylized: np.ndarray
    heatmap: np.ndarray | None
    crop_mask: np.ndarray
    mask: np.ndarray

    @property
    def landmarks(self) -> np.ndarray:
        """``(N, 2)`` landmarks in photo pixels."""
        return self.face.landmarks

    @property
    def crop(self) -> np.ndarray:
        """``(S, S, 3)`` uint8 RGB aligned photo crop the face model saw."""
        return self.aligned.image


@dataclass(eq=False)
class StylizeResult:
    """Typed result of ``Stylizer.stylize(..., return_details=True)``.

    Attributes:
        image: the output, of the type the call returns without details (PIL image for PIL,
            path or bytes input; ``uint8`` array ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA when
            the input had transparency, for array input).
        faces: one :class:`FaceDetails` per stylized face, largest first.
        background: ``(H, W, 3)`` uint8 RGB output of the scene model at full style (the photo
            itself when there is no scene model).
        photo: ``(H, W, 3)`` uint8 RGB input as read (EXIF-rotated, gray expanded, transparency
            composited over white).
        alpha: ``(H, W)`` uint8 alpha of the input, or ``None``.
        strength: the style strength used.
        timings: seconds per stage (``read``, ``detect``, ``background``, ``faces``, ``blend``,
            ``total``).
    """

    image: Image.Image | np.ndarray
    faces: list[FaceDetails]
    background: np.ndarray
    photo: np.ndarray
    alpha: np.ndarray | None
    strength: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def array(self) -> np.ndarray:
        """The output as a ``uint8`` array (``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA)."""
        return np.asarray(self.image)


# --------------------------------------------------------------------------- model loading


def _check_strength(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"strength: expected a number in [0, 1], got {value!r}")
    return float(value)


def _check_max_faces(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"max_faces: expected None or an integer >= 0, got {value!r}")
    return int(value)


def _check_blend(value: Any) -> str:
    if value not in BLEND_MODES:
        raise ConfigError(f"blend: expected one of {list(BLEND_MODES)}, got {value!r}")
    return str(value)


def _check_harmonize(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, (int, float, np.number)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"harmonize: expected True, False or an amount in [0, 1], got {value!r}")
    return float(value)


def _model_folder(spec: str | os.PathLike[str], what: str, option: str) -> Path:
    """Resolve a weights folder (path or name); an export folder with ``a2b/`` gives ``a2b/``."""
    path = Path(spec)
    if path.is_dir() and not (path / CONFIG_NAME).is_file() and (path / "a2b" / CONFIG_NAME).is_file():
        return path / "a2b"
    try:
        return resolve_weights(spec)
    except WeightsError:
        raise WeightsError(
            f"{what} weights not found: {os.fspath(spec)!r} is neither a folder with config.json + "
            f"model.safetensors nor a named model in {weights_dir()} (set FACETOON_WEIGHTS, or pass "
            f"{option}= a weights folder, or a torch model instance)"
        ) from None


def _load_folder(folder: Path) -> nn.Module:
    return load_pretrained(folder, device="cpu", dtype=torch.float32)


def _load_face_model(spec: ModelSpec) -> nn.Module | None:
    if spec is None or isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"face_model: expected a torch module, a weights folder or name, or None; "
                          f"got {type(spec).__name__}")
    return _load_folder(_model_folder(spec, "face model", "face_model"))


def _load_background_model(spec: ModelSpec, weights: str | os.PathLike[str] | None) -> nn.Module | None:
    """``"animegan"``/``"cartoongan"`` (+ ``weights``), a folder/name, a module or ``None``."""
    if spec is None or isinstance(spec, nn.Module):
        if weights is not None:
            raise ConfigError("background_weights is only used with background_model='animegan' or "
                              "'cartoongan'")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"background_model: expected 'animegan', 'cartoongan', a weights folder or name, "
                          f"a torch module or None; got {type(spec).__name__}")
    kind = os.fspath(spec).lower()
    if kind == "none":
        return None
    if kind == "cartoongan":
        if weights is None:
            raise WeightsError("background_model='cartoongan' needs background_weights= the official "
                               "<Style>_net_G_float.pth file or an exported weights folder (none is shipped)")
        path = Path(weights)
        if path.is_file():
            from .convert.cartoongan import load_official_cartoongan

            return load_official_cartoongan(path)
        return _load_folder(_model_folder(path, "CartoonGAN", "background_weights"))
    if kind == "animegan":
        if weights is None:
            return _load_folder(_model_folder(DEFAULT_BACKGROUND_WEIGHTS, "default background (AnimeGAN)",
                                              "background_model"))
        path = Path(weights)
        if path.is_file():
            from .convert.animegan import load_animegan_v2_port

            return load_animegan_v2_port(path)
        return _load_folder(_model_folder(path, "AnimeGAN", "background_weights"))
    if weights is not None:
        raise ConfigError("background_weights is only used with background_model='animegan' or "
                          "'cartoongan'")
    return _load_folder(_model_folder(spec, "background model", "background_model"))


def _face_size_of(model: nn.Module | None, face_size: int | None) -> int:
    config = getattr(model, "config", None) or {}
    trained = config.get("img_size") if isinstance(config, Mapping) else None
    size = face_size if face_size is not None else int(trained) if trained else 256
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
            or not 32 <= size <= 1024 or size % 4:
        raise ConfigError(f"face_size: expected a multiple of 4 in 32..1024, got {size!r}")
    light = config.get("light", True) if isinstance(config, Mapping) else True
    if trained and not light and size != int(trained):
        raise ConfigError(f"face_size: the full (non-light) U-GAT-IT generator runs at {trained} px only, "
                          f"got {size}")
    return int(size)


# --------------------------------------------------------------------------- the pipeline


class Stylizer:
    """Portrait to anime: detect, align and stylize faces, stylize the scene, blend.

    Models are loaded (and moved to the device) once, in the constructor; every call reuses
    them. Calls are not thread-safe (use one Stylizer per thread).

    Args:
        face_model: the face translator: a torch module mapping ``(B, 3, S, S)`` RGB in
            ``[-1, 1]`` to the same (a U-GAT-IT generator's ``(image, cam_logit, heatmap)``
            tuple is understood), a weights folder (``config.json`` + ``model.safetensors``, or
            an export folder with ``a2b/``), a name in the weights directory, or ``None`` to leave
            faces to the scene model. Default: the shipped ``ugatit-selfie2anime``.
        background_model: the scene model: ``"animegan"`` (default: the shipped
            ``animegan-anime`` weights, or ``background_weights``), ``"cartoongan"`` (needs
            ``background_weights``: an official ``<Style>_net_G_float.pth`` or an exported
            folder), any weights folder or name, a torch module (RGB ``[-1, 1]`` in and out), or
            ``None`` to keep the photo around the faces.
        background_weights: weights for ``background_model="animegan"`` (an exported folder, or a
            ``.pt``/``.pth`` state dict of the widely used AnimeGANv2 PyTorch port) or
            ``"cartoongan"`` (an official ``.pth`` release file or an exported folder).
        face_size: side of the aligned face crops; default: the face model's training size
            (``config["img_size"]``, e.g. 128 or 256), else 256.
        max_faces: stylize at most this many faces (the largest); ``None`` = all.
        strength: style strength in ``[0, 1]``: the output is ``photo + strength * (styled -
            photo)`` for faces and scene alike (0 = the photo exactly, 1 = full style).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"auto"``, ``"fp32"`` or ``"fast"`` (bf16 + channels_last on CPUs with native
            bf16, fp16 autocast on CUDA); see :mod:`facetoon.runtime`.
        detector: face backend for :func:`facetoon.face.detect_faces` (``"dlib"``,
            ``"dlib-cnn"``, ``"fan"``).
        detector_options: extra keyword arguments of :func:`~facetoon.face.detect_faces`
            (``min_size``, ``landmarks``, ``upsample``, ``rotate``...).
        face_score_ratio: false-positive guard: a face scoring below 0.25 is dropped when
            another face of the same photo scores more than ``1 / face_score_ratio`` times as
            much (0 disables).
        require_face: raise :class:`~facetoon.errors.NoFaceError` when no face is found
            (default: log a warning and return the stylized scene).
        blend: ``"soft"`` (feathered alpha, default), ``"poisson"`` (``cv2.seamlessClone`` and
            then the feathered alpha) or ``"hard"`` (no feathering; for comparisons).
        harmonize: match each face's colours to the scene around it (Lab statistics over the
            mask's transition band, see :mod:`facetoon.blend.harmonize`): ``True`` (= 1.0),
            ``False`` (= 0, keep the face model's palette) or an amount in ``[0, 1]``.
        mask_shape: proportions of the face mask (:class:`facetoon.blend.MaskShape`).
        padding: padding of crops that reach past the photo (:func:`facetoon.face.align_face`);
            padded pixels are never pasted back.
        background_options: keyword arguments of :class:`facetoon.background.BackgroundStylizer`
            (tiling budget, speed mode...).
        warmup: load the face detector's model files and run the face model once on a blank
            crop now, so that the first call does not pay for it.

    Raises:
        WeightsError: a model cannot be found or loaded (the message says what to pass).
        ConfigError: an invalid option.
    """

    def __init__(
        self,
        face_model: ModelSpec = DEFAULT_FACE_WEIGHTS,
        background_model: ModelSpec = "animegan",
        *,
        background_weights: str | os.PathLike[str] | None = None,
        face_size: int | None = None,
        max_faces: int | None = None,
        strength: float = 1.0,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        detector: str = "dlib",
        detector_options: Mapping[str, Any] | None = None,
        face_score_ratio: float = 0.1,
        require_face: bool = False,
        blend: str = "soft",
        harmonize: bool | float = True,
        mask_shape: MaskShape = DEFAULT_SHAPE,
        padding: str = "blur",
        background_options: Mapping[str, Any] | None = None,
        warmup: bool = True,
    ) -> None:
        self.strength = _check_strength(strength)
        self.max_faces = _check_max_faces(max_faces)
        self.blend = _check_blend(blend)
        self.harmonize = _check_harmonize(harmonize)
        self.require_face = bool(require_face)
        if padding not in PADDING_MODES:
            raise ConfigError(f"padding: expected one of {list(PADDING_MODES)}, got {padding!r}")
        self.padding = padding
        if not isinstance(mask_shape, MaskShape):
            raise ConfigError(f"mask_shape: expected a facetoon.blend.MaskShape, "
                              f"got {type(mask_shape).__name__}")
        self.mask_shape = mask_shape
        if not isinstance(face_score_ratio, (int, float)) or not 0.0 <= face_score_ratio < 1.0:
            raise ConfigError(f"face_score_ratio: expected a number in [0, 1), got {face_score_ratio!r}")
        self.face_score_ratio = float(face_score_ratio)
        self.detector = detector
        self.detector_options = dict(detector_options or {})
        for key in ("max_faces", "backend"):
            if key in self.detector_options:
                raise ConfigError(f"detector_options: pass {key!r} as a Stylizer option, not here")
        self.runtime: Runtime = resolve_runtime(device, precision)

        t0 = time.perf_counter()
        face = _load_face_model(face_model)
        background = _load_background_model(background_model, background_weights)
        self.face_size = _face_size_of(face, face_size)
        self.face_model = None if face is None else self.runtime.prepare_module(face.eval())
        self.background_model = background
        self._background = None
        if background is not None:
            from .background import BackgroundStylizer

            self._background = BackgroundStylizer(
                background.eval(), device=self.runtime.device,
                precision="fast" if self.runtime.precision == "fast" else "fp32",
                **dict(background_options or {}))
        if warmup:
            self._warmup()
        self.load_seconds = time.perf_counter() - t0
        self._specs = {"face_model": face_model, "background_model": background_model,
                       "background_weights": background_weights}
        log.debug("Stylizer ready in %.2f s: face model %s at %d px, background %s, %s/%s",
                  self.load_seconds, type(face).__name__ if face is not None else None, self.face_size,
                  type(background).__name__ if background is not None else None,
                  self.runtime.device, self.runtime.precision)

    def _warmup(self) -> None:
        """Load the detector's models (lazily loaded by the backend) and run the face model once."""
        from .face.backends import FaceBackend, get_backend

        if self.face_model is None:
            return
        landmarks = self.detector_options.get("landmarks")
        backend = get_backend(self.detector, **({} if landmarks is None else {"landmarks": str(landmarks)})) \
            if not isinstance(self.detector, FaceBackend) else self.detector
        blank = np.zeros((64, 64), np.uint8)
        backend.detect(blank)
        backend.landmarks(blank, (8.0, 8.0, 56.0, 56.0))
        # first use of the alignment fit and of OpenCV imports their libraries
        from .face.geometry import estimate_similarity

        tri = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        estimate_similarity(tri, 2.0 * tri)
        self.stylize_crops([np.zeros((self.face_size, self.face_size, 3), np.uint8)])

    # ----------------------------------------------------------------- construction helpers

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike[str], **overrides: Any) -> Stylizer:
        """A Stylizer from a pipeline folder (or its name in the weights directory).

        The folder holds ``pipeline.json``::

            {"face_model": "face", "background_model": "background", "options": {"strength": 0.9}}

        where model entries are sub-folders of the pipeline folder, named weights, or
        ``"animegan"``/``"cartoongan"`` with ``"background_weights"``, or ``null``. A plain model
        folder (``config.json``; or an export folder with ``a2b/``) is taken as the face model
        with the default scene model. ``overrides`` are constructor arguments and win over the
        file.
        """
        import json

        folder = Path(path_or_name)
        if not folder.is_dir():
            candidate = weights_dir() / str(path_or_name)
            if candidate.is_dir():
                folder = candidate
            else:
                raise WeightsError(f"no pipeline folder here nor named {os.fspath(path_or_name)!r} in "
                                   f"{weights_dir()}", path=path_or_name)
        config_file = folder / PIPELINE_CONFIG
        if not config_file.is_file():
            if (folder / CONFIG_NAME).is_file() or (folder / "a2b" / CONFIG_NAME).is_file():
                kwargs: dict[str, Any] = {"face_model": folder}
                kwargs.update(overrides)
                return cls(**kwargs)
            raise WeightsError(f"neither {PIPELINE_CONFIG} nor a model config.json in this folder",
                               path=folder)
        try:
            doc = json.loads(config_file.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path=config_file) from None
        if not isinstance(doc, dict):
            raise ConfigError("expected a JSON object", path=config_file)

        def local(value: Any) -> Any:
            if isinstance(value, str) and (folder / value).exists():
                return folder / value
            return value

        kwargs = {}
        for key in ("face_model", "background_model", "background_weights"):
            if key in doc:
                kwargs[key] = local(doc[key])
        options = doc.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError("'options' must be an object", path=config_file)
        if "mask_shape" in options and isinstance(options["mask_shape"], dict):
            options = {**options, "mask_shape": MaskShape(**options["mask_shape"])}
        kwargs.update(options)
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"bad pipeline option: {exc}", path=config_file) from None

    def save_pretrained(self, directory: str | os.PathLike[str], *, fp16: bool = False) -> Path:
        """Write the models (``face/``, ``background/``) and ``pipeline.json`` to ``directory``.

        Only registered facetoon architectures can be saved. Reload with :meth:`from_pretrained`.
        """
        import json
        from dataclasses import asdict

        from .models.serialization import save_pretrained

        out = Path(directory)
        dtype = torch.float16 if fp16 else None
        doc: dict[str, Any] = {"face_model": None, "background_model": None}
        if self.face_model is not None:
            face = self.face_model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
            save_pretrained(face, out / "face", dtype=dtype)
            doc["face_model"] = "face"
        if self.background_model is not None:
            save_pretrained(self.background_model, out / "background", dtype=dtype)
            doc["background_model"] = "background"
        doc["options"] = {
            "face_size": self.face_size, "strength": self.strength, "max_faces": self.max_faces,
            "detector": self.detector, "detector_options": self.detector_options,
            "face_score_ratio": self.face_score_ratio, "blend": self.blend, "harmonize": self.harmonize,
            "padding": self.padding, "mask_shape": asdict(self.mask_shape),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / PIPELINE_CONFIG).write_text(json.dumps(doc, indent=2) + "\n")
        if self.face_model is not None and self.runtime.channels_last:
            self.face_model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return out

    def __repr__(self) -> str:
        face = type(self.face_model).__name__ if self.face_model is not None else None
        bg = type(self.background_model).__name__ if self.background_model is not None else None
        return (f"Stylizer(face_model={face}, background_model={bg}, face_size={self.face_size}, "
                f"device={self.runtime.device}, precision={self.runtime.precision!r}, "
                f"strength={self.strength}, blend={self.blend!r})")

    # ----------------------------------------------------------------- stages

    def detect(self, photo: np.ndarray, max_faces: int | None = None) -> list[Face]:
        """Faces of an RGB uint8 photo, largest first (after the false-positive guard)."""
        faces = detect_faces(photo, self.detector, **self.detector_options)
        if self.face_score_ratio > 0 and len(faces) > 1:
            best = max(f.score for f in faces)
            kept = [f for f in faces if f.score >= _WEAK_SCORE or f.score >= self.face_score_ratio * best]
            if len(kept) < len(faces):
                log.debug("dropped %d weak face(s) (score < %.2f and < %.2f x the best %.2f)",
                          len(faces) - len(kept), _WEAK_SCORE, self.face_score_ratio, best)
            faces = kept
        if max_faces is not None:
            faces = faces[:max_faces]
        return faces

    def stylize_background(self, photo: np.ndarray) -> np.ndarray:
        """The scene model's output for the whole photo, ``(H, W, 3)`` uint8 RGB (the photo if none)."""
        if self._background is None:
            return photo.copy()
        out = self._background(photo)
        return np.asarray(out)

    def stylize_crops(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """Run the face model on aligned crops in one batch.

        Args:
            crops: ``(S, S, 3)`` uint8 RGB crops.

        Returns:
            ``(stylized crops (S, S, 3) uint8, heat-maps (S, S) float32 in [0, 1] or None)``.
        """
        if not crops:
            return [], []
        if self.face_model is None:
            raise ConfigError("this Stylizer has no face model")
        import torch.nn.functional as F

        rt = self.runtime
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        x = rt.prepare_input(batch)
        with rt.inference():
            out = self.face_model(x)
        heat = None
        if isinstance(out, (tuple, list)):
            image = out[0]
            if len(out) >= 3 and isinstance(out[2], torch.Tensor) and out[2].dim() == 4:
                heat = out[2]
        else:
            image = out
        if not isinstance(image, torch.Tensor) or tuple(image.shape) != tuple(x.shape):
            raise ConfigError(f"face model output has shape {tuple(getattr(image, 'shape', ()))}, "
                              f"expected {tuple(x.shape)} (RGB in [-1, 1])")
        styled = to_image(image.float())
        styled_list = [styled] if styled.ndim == 3 else list(styled)
        heatmaps: list[np.ndarray | None] = [None] * len(crops)
        if heat is not None:
            s = crops[0].shape[0]
            up = F.interpolate(heat.float().cpu(), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
            lo = up.amin(dim=(1, 2), keepdim=True)
            hi = up.amax(dim=(1, 2), keepdim=True)
            heatmaps = list(((up - lo) / (hi - lo).clamp_min(1e-8)).numpy().astype(np.float32))
        return [np.ascontiguousarray(c) for c in styled_list], heatmaps

    # ----------------------------------------------------------------- the call

    @overload
    def stylize(self, image: np.ndarray, *, strength: float | None = ...,
                max_faces: int | None | _Keep = ..., require_face: bool | None = ...,
                blend: str | None = ..., harmonize: bool | float | None = ...,
                return_details: Literal[False] = ...) -> np.ndarray: ...

    @overload
    def stylize(self, image: _FileOrPIL, *, strength: float | None = ...,
                max_faces: int | None | _Keep = ..., require_face: bool | None = ...,
                blend: str | None = ..., harmonize: bool | float | None = ...,
                return_details: Literal[False] = ...) -> Image.Image: ...

    @overload
    def stylize(self, image: ImageSource, *, strength: float | None = ...,
                max_faces: int | None | _Keep = ..., require_face: bool | None = ...,
                blend: str | None = ..., harmonize: bool | float | None = ...,
                return_details: Literal[True]) -> StylizeResult: ...

    def stylize(
        self,
        image: ImageSource,
        *,
        strength: float | None = None,
        max_faces: int | None | _Keep = KEEP,
        require_face: bool | None = None,
        blend: str | None = None,
        harmonize: bool | float | None = None,
        return_details: bool = False,
    ) -> Image.Image | np.ndarray | StylizeResult:
        """Stylize one photo.

        Args:
            image: anything :func:`facetoon.io.read_image` reads: a path, bytes, a binary file
                object, a PIL image or a numpy array (RGB/gray/RGBA uint8, uint16, float in
                [0, 1]). EXIF orientation is applied; gray becomes RGB.
            strength, require_face, blend, harmonize: override the constructor's options for
                this call (``None`` = keep).
            max_faces: override (default: the constructor's; ``None`` = all faces).
            return_details: return a :class:`StylizeResult` instead of just the image.

        Returns:
            The stylized image, of the same size as the (EXIF-oriented) input: a PIL image when
            given a PIL image, a path, bytes or a file object; a ``uint8`` array when given an
            array — RGB ``(H, W, 3)``, or RGBA ``(H, W, 4)`` / mode ``"RGBA"`` with the input's
            alpha re-attached when the input had transparency.

        Raises:
            InvalidImageError: the input is not a readable image.
            NoFaceError: no face found and ``require_face`` is set.
        """
        t_start = time.perf_counter()
        s = self.strength if strength is None else _check_strength(strength)
        n_max = self.max_faces if isinstance(max_faces, _Keep) else _check_max_faces(max_faces)
        need_face = self.require_face if require_face is None else bool(require_face)
        mode = self.blend if blend is None else _check_blend(blend)
        harm = self.harmonize if harmonize is None else _check_harmonize(harmonize)
        timings: dict[str, float] = {}

        as_array = isinstance(image, np.ndarray)
        label = _label(image)
        rgba = read_image(image, keep_alpha=True)
        straight = np.ascontiguousarray(rgba[:, :, :3])
        alpha: np.ndarray | None = None
        if (rgba[:, :, 3] == 255).all():
            photo = straight
        else:
            alpha = np.ascontiguousarray(rgba[:, :, 3])
            photo = _over_white(straight, alpha)
        t = time.perf_counter()
        timings["read"] = t - t_start

        faces: list[Face] = []
        details: list[FaceDetails] = []
        if s == 0.0 and not return_details:
            composite = photo.copy()
            background = photo
        else:
            looked = self.face_model is not None and n_max != 0
            faces = self.detect(photo, n_max) if looked else []
            timings["detect"] = time.perf_counter() - t
            if looked and not faces:
                if need_face:
                    raise NoFaceError("no face found", path=label)
                log.warning("%s: no face found; only the scene is stylized", label)
            t = time.perf_counter()
            background = self.stylize_background(photo)
            timings["background"] = time.perf_counter() - t
            t = time.perf_counter()
            padding: Any = self.padding
            aligned = [align_face(photo, f, size=self.face_size, padding=padding) for f in faces]
            styled, heatmaps = self.stylize_crops([a.image for a in aligned])
            timings["faces"] = time.perf_counter() - t
            t = time.perf_counter()
            layers = [make_layer(c, a, self.mask_shape) for c, a in zip(styled, aligned)]
            result = composite_faces(background, layers, mode=mode,  # type: ignore[arg-type]
                                     harmonize=harm > 0, harmonize_amount=harm)
            composite = result.image
            timings["blend"] = time.perf_counter() - t
            details = [FaceDetails(face=f, aligned=a, stylized=c, heatmap=h, crop_mask=layer.mask, mask=m)
                       for f, a, c, h, layer, m
                       in zip(faces, aligned, styled, heatmaps, layers, result.masks)]
        # mix with the input's own colour values (for RGBA: straight, not composited)
        out = _mix(straight, composite, s)
        final = _finish(out, alpha, as_array)
        timings["total"] = time.perf_counter() - t_start
        if not return_details:
            return final
        return StylizeResult(image=final, faces=details, background=background, photo=photo, alpha=alpha,
                             strength=s, timings=timings)

    __call__ = stylize


def _label(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, np.ndarray):
        return "<array>"
    if isinstance(src, Image.Image):
        return getattr(src, "filename", "") or "<PIL image>"
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    name = getattr(src, "name", None)
    return name if isinstance(name, str) and name else "<image>"


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite straight RGB over white, like :func:`facetoon.io.read_image` (rounded)."""
    a = alpha.astype(np.uint32)[:, :, None]
    return ((rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _mix(photo: np.ndarray, styled: np.ndarray, strength: float) -> np.ndarray:
    """``photo + strength * (styled - photo)``, rounded; exact at 0 and 1."""
    if strength >= 1.0:
        return styled
    if strength <= 0.0:
        return photo.copy()
    p = photo.astype(np.float32)
    out = p + np.float32(strength) * (styled.astype(np.float32) - p)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _finish(rgb: np.ndarray, alpha: np.ndarray | None, as_array: bool) -> Image.Image | np.ndarray:
    arr = rgb if alpha is None else np.dstack([rgb, alpha])
    arr = np.ascontiguousarray(arr)
    if as_array:
        return arr
    return Image.fromarray(arr)  # (H, W, 3) -> "RGB", (H, W, 4) -> "RGBA"


# --------------------------------------------------------------------------- functional API

_CALL_OPTIONS = frozenset({"strength", "max_faces", "require_face", "blend", "harmonize", "return_details"})
_CACHE: OrderedDict[tuple[Any, ...], Stylizer] = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


def _cache_key(options: Mapping[str, Any]) -> tuple[Any, ...]:
    def freeze(v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((k, freeze(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(freeze(x) for x in v)
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        try:
            hash(v)
        except TypeError:
            return ("id", id(v))
        if isinstance(v, nn.Module):
            return ("id", id(v))
        return v

    return tuple(sorted((k, freeze(v)) for k, v in options.items()))


def get_stylizer(**options: Any) -> Stylizer:
    """The cached :class:`Stylizer` for these constructor options (built on first use).

    The last two option sets are kept; models passed as instances are keyed by identity.
    """
    key = _cache_key(options)
    with _CACHE_LOCK:
        st = _CACHE.get(key)
        if st is not None:
            _CACHE.move_to_end(key)
            return st
    st = Stylizer(**options)
    with _CACHE_LOCK:
        _CACHE[key] = st
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return st


def clear_cache() -> None:
    """Forget the cached default Stylizers (frees their models)."""
    with _CACHE_LOCK:
        _CACHE.clear()


@overload
def stylize(image: np.ndarray, *, return_details: Literal[False] = ..., **options: Any) -> np.ndarray: ...


@overload
def stylize(image: _FileOrPIL, *, return_details: Literal[False] = ..., **options: Any) -> Image.Image: ...


@overload
def stylize(image: ImageSource, *, return_details: Literal[True], **options: Any) -> StylizeResult: ...


def stylize(image: ImageSource, **options: Any) -> Image.Image | np.ndarray | StylizeResult:
    """Stylize a portrait with a cached default :class:`Stylizer`.

    ``options`` are those of :class:`Stylizer` and :meth:`Stylizer.stylize`; the constructor
    options (models, device, precision, face size...) select a Stylizer that is built once and
    reused by later calls with the same options, the per-call ones (``strength``,
    ``max_faces``, ``require_face``, ``blend``, ``harmonize``, ``return_details``) apply to this
    call only.

        >>> out = facetoon.stylize("portrait.jpg", strength=0.8)   # doctest: +SKIP
    """
    call = {k: v for k, v in options.items() if k in _CALL_OPTIONS}
    build = {k: v for k, v in options.items() if k not in _CALL_OPTIONS}
    return get_stylizer(**build).stylize(image, **call)
