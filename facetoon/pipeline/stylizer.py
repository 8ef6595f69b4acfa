"""The :class:`Stylizer`: detect, align and stylize faces, stylize the scene, blend (see
:mod:`facetoon.pipeline` for the stages)."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, overload

import numpy as np
import torch
from PIL import Image
from torch import nn

from .._fileutil import atomic_write_bytes
from ..blend import DEFAULT_SHAPE, FaceLayer, MaskShape, composite_faces, make_layer
from ..errors import ConfigError, InvalidImageError, NoFaceError, WeightsError
from ..face import Face, align_face, detect_faces
from ..face.align import PADDING_MODES
from ..face.detect import check_detect_options
from ..io import ImageSource, to_image
from ..models.serialization import CONFIG_NAME, missing_weights_dir_hint, weights_dir
from ..runtime import Runtime, resolve_runtime, to_channels_last, to_contiguous_format
from .image_io import FileOrPIL, finish, mix, read_input, straight_colours
from .loading import DEFAULT_FACE_WEIGHTS, ModelSpec, face_size_of, load_background_model, load_face_model
from .options import (KEEP, CallOptions, Keep, check_option_keys, pick_faces, resolve_call_options, validate_blend,
                      validate_faces, validate_harmonize, validate_max_faces, validate_strength)
from .results import FaceDetails, StylizeResult

__all__ = ["PIPELINE_CONFIG", "Stylizer"]

log = logging.getLogger(__name__)


#: file name of a pipeline folder's configuration (see :meth:`Stylizer.from_pretrained`)
PIPELINE_CONFIG = "pipeline.json"

# faces scoring below this while another face of the photo scores face_score_ratio^-1 times
# more are dropped as likely false positives (badges, prints, patterns)
_WEAK_SCORE = 0.25

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _serialised(method: _Method) -> _Method:
    """Run a :class:`Stylizer` method under the Stylizer's re-entrant lock (see its docstring)."""
    @functools.wraps(method)
    def locked(self: Stylizer, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return cast(_Method, locked)


def _check_padding(value: Any) -> str:
    if value not in PADDING_MODES:
        raise ConfigError(f"padding: expected one of {list(PADDING_MODES)}, got {value!r}")
    return str(value)


def _check_mask_shape(value: Any) -> MaskShape:
    if not isinstance(value, MaskShape):
        raise ConfigError(f"mask_shape: expected a facetoon.blend.MaskShape, got {type(value).__name__}")
    return value


def _check_face_score_ratio(value: Any) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"face_score_ratio: expected a number in [0, 1), got {value!r}")
    return float(value)


#: the checks of the Stylizer's options, run by ``Stylizer.__setattr__`` (in the constructor and
#: when an option is set later): ``check(stylizer, value)`` returns the normalised value
_CHECKS: dict[str, Callable[[Stylizer, Any], Any]] = {
    "strength": lambda st, v: validate_strength(v),
    "max_faces": lambda st, v: validate_max_faces(v),
    "blend": lambda st, v: validate_blend(v),
    "harmonize": lambda st, v: validate_harmonize(v),
    "require_face": lambda st, v: bool(v),
    "padding": lambda st, v: _check_padding(v),
    "mask_shape": lambda st, v: _check_mask_shape(v),
    "face_score_ratio": lambda st, v: _check_face_score_ratio(v),
    # in the constructor, before the face model is set, the value is face_size_of's result already
    "face_size": lambda st, v: face_size_of(getattr(st, "face_model", None), v),
}


class Stylizer:
    """Portrait to anime: detect, align and stylize faces, stylize the scene, blend.

    Models are loaded (and moved to the device) once, in the constructor; every call reuses
    them. A module you pass as ``face_model`` or ``background_model`` is used in place: it is put
    in eval mode, moved to the device, cast to float32 (an fp16, bf16 or float64 module too; the
    ``precision`` option chooses the compute precision) and may be converted to channels_last;
    pass a copy if you keep training it or need it in its own dtype.

    The options ``face_size``, ``max_faces``, ``strength``, ``face_score_ratio``,
    ``require_face``, ``blend``, ``harmonize``, ``mask_shape`` and ``padding`` are attributes of
    the same names; setting one later is checked as in the constructor (a
    :class:`~facetoon.errors.ConfigError` for a bad value). A Stylizer can be pickled and
    deep-copied (with its models) when its ``detector`` is a backend name.

    Thread safety: calls on one Stylizer are serialised (:meth:`stylize`, :meth:`stylize_batch`,
    :meth:`stylize_crops`, :meth:`stylize_background` and :meth:`save_pretrained` hold one
    re-entrant lock: a tiled scene pass keeps per-call state on the scene model). For parallel
    throughput use one Stylizer per thread, each with its own model instances (the scene passes
    of two Stylizers given one scene module instance take turns). :meth:`detect` only reads the
    options and takes no lock.

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
            bf16, fp16 autocast on CUDA); see :mod:`facetoon.runtime`. ``"auto"`` and ``"fast"``
            also run the scene model through its fused inference graph (in fp32 on CPUs without
            native bf16: the same result as ``"fp32"`` within float rounding, 1.2-1.8x faster on an AVX2 EPYC);
            where ``"fast"`` resolves to bf16 on CPU, a light U-GAT-IT face model runs through its
            fused graph too (:func:`facetoon.models.ugatit_fast.fuse_for_inference`, about 3x
            faster than under autocast). ``"fp32"`` runs the reference modules.
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
        self._lock = threading.RLock()
        # each checked by __setattr__ (_CHECKS), here and when set later
        self.strength = strength
        self.max_faces = max_faces
        self.blend = blend
        self.harmonize = harmonize
        self.require_face = require_face
        self.padding = padding
        self.mask_shape = mask_shape
        self.face_score_ratio = face_score_ratio
        self.detector = detector
        # keys and values checked here: a typo or a bad value fails now, not once per photo
        self.detector_options = check_option_keys("detector_options", detector_options or {}, detect_faces,
                                                  reserved=("max_faces", "backend"))
        check_detect_options(self.detector_options)
        self.runtime: Runtime = resolve_runtime(device, precision)

        t0 = time.perf_counter()
        face = load_face_model(face_model)
        background = load_background_model(background_model, background_weights)
        self.face_size = face_size_of(face, face_size)
        self.face_model = None if face is None else self.runtime.prepare_module(face.eval())
        # (fingerprint of the face model's weights, its fused module or None)
        self._fused_face: tuple[tuple[tuple[int, int], ...], nn.Module | None] | None = None
        self._fused_face_for(self.face_model)
        self.background_model = background
        self._background = None
        self.background_options: dict[str, Any] = {}  # as given (checked), saved by save_pretrained
        if background is not None:
            from ..background import BackgroundStylizer

            scene_options = check_option_keys("background_options", background_options or {},
                                              BackgroundStylizer, reserved=("device", "precision"))
            try:
                self._background = BackgroundStylizer(
                    background.eval(), device=self.runtime.device,
                    # "auto"/"fast": the fused graph, bf16 where native, else fp32 (still faster)
                    precision="fp32" if precision == "fp32" else "fast", **scene_options)
            except TypeError as exc:  # e.g. a string where a number belongs
                raise ConfigError(f"background_options: a value has the wrong type ({exc})") from None
            self.background_options = dict(scene_options)
        if warmup:
            self._warmup()
        self.load_seconds = time.perf_counter() - t0
        self._specs = {"face_model": face_model, "background_model": background_model,
                       "background_weights": background_weights}
        log.debug("Stylizer ready in %.2f s: face model %s at %d px, background %s, %s/%s",
                  self.load_seconds, type(face).__name__ if face is not None else None, self.face_size,
                  type(background).__name__ if background is not None else None,
                  self.runtime.device, self.runtime.precision)

    def __setattr__(self, name: str, value: Any) -> None:
        check = _CHECKS.get(name)
        super().__setattr__(name, value if check is None else check(self, value))

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy support: the lock is not copied (a new one is made), nor the fused face
        module (rebuilt on first use). The state is copied under the lock, so a call running in
        another thread (which patches the scene model's norm layers while tiling) is not caught
        half-way."""
        import contextlib
        import copy

        scene = self._background
        with self._lock, (scene._lock if scene is not None else contextlib.nullcontext()):
            state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
            state["_fused_face"] = None
            return copy.deepcopy(state)  # one copy: the models shared by its parts stay shared

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__["_lock"] = threading.RLock()

    def _warmup(self) -> None:
        """Load the detector's models (lazily loaded by the backend) and run the face model once."""
        from ..face.backends import FaceBackend, get_backend

        if self.face_model is None:
            return
        landmarks = self.detector_options.get("landmarks")
        backend = get_backend(self.detector, **({} if landmarks is None else {"landmarks": str(landmarks)})) \
            if not isinstance(self.detector, FaceBackend) else self.detector
        blank = np.zeros((64, 64), np.uint8)
        backend.detect(blank)
        backend.landmarks(blank, (8.0, 8.0, 56.0, 56.0))
        # first use of the alignment fit and of OpenCV imports their libraries
        from ..face.geometry import estimate_similarity

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
        file; for ``detector_options`` and ``background_options`` they win key by key (the file's
        other keys stay).

        Raises:
            ConfigError: an override the constructor does not take (the message names it), or an
                unknown key in the file's ``options`` (the message names the file).
            WeightsError: no such folder, or no ``pipeline.json`` nor model in it.
        """
        import json

        folder = Path(path_or_name)
        if not folder.is_dir():
            candidate = weights_dir() / str(path_or_name)
            if candidate.is_dir():
                folder = candidate
            else:
                hint = missing_weights_dir_hint()
                raise WeightsError(f"no pipeline folder here, and {hint}" if hint is not None else
                                   f"no pipeline folder here nor named {os.fspath(path_or_name)!r} in "
                                   f"{weights_dir()}", path=path_or_name)
        # a typo in the call's own arguments is the caller's, not the folder's
        check_option_keys("Stylizer.from_pretrained", overrides, cls, reserved=())
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
        try:
            check_option_keys("options", options, cls, reserved=())
        except ConfigError as exc:
            raise ConfigError(exc.reason, path=config_file) from None
        if "mask_shape" in options and isinstance(options["mask_shape"], dict):
            try:
                options = {**options, "mask_shape": MaskShape(**options["mask_shape"])}
            except TypeError as exc:
                raise ConfigError(f"options.mask_shape: {exc}", path=config_file) from None
        kwargs.update(options)
        for key, value in overrides.items():
            if key in ("detector_options", "background_options") and isinstance(kwargs.get(key), Mapping) \
                    and isinstance(value, Mapping):
                value = {**kwargs[key], **value}
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:  # keys are checked above: a value of the wrong type
            raise ConfigError(f"an option (of {PIPELINE_CONFIG} or of the call) has the wrong type: {exc}",
                              path=folder) from None

    @_serialised
    def save_pretrained(self, directory: str | os.PathLike[str], *, fp16: bool = False) -> Path:
        """Write the models (``face/``, ``background/``) and ``pipeline.json`` to ``directory``.

        Only registered facetoon architectures can be saved. Reload with :meth:`from_pretrained`.
        Serialised with the calls (the face model's memory format changes while it is written).
        """
        import json
        from dataclasses import asdict

        from ..models.serialization import save_pretrained

        out = Path(directory)
        dtype = torch.float16 if fp16 else None
        doc: dict[str, Any] = {"face_model": None, "background_model": None}
        if self.face_model is not None:
            save_pretrained(to_contiguous_format(self.face_model), out / "face", dtype=dtype)
            doc["face_model"] = "face"
        if self.background_model is not None:
            save_pretrained(self.background_model, out / "background", dtype=dtype)
            doc["background_model"] = "background"
        doc["options"] = {
            "face_size": self.face_size, "strength": self.strength, "max_faces": self.max_faces,
            "detector": self.detector, "detector_options": self.detector_options,
            "face_score_ratio": self.face_score_ratio, "blend": self.blend, "harmonize": self.harmonize,
            "padding": self.padding, "mask_shape": asdict(self.mask_shape),
            "require_face": self.require_face, "background_options": self.background_options,
        }
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / PIPELINE_CONFIG, (json.dumps(doc, indent=2) + "\n").encode())
        if self.face_model is not None and self.runtime.channels_last:
            to_channels_last(self.face_model)
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

    @_serialised
    def stylize_background(self, photo: np.ndarray) -> np.ndarray:
        """The scene model's output for the whole photo, ``(H, W, 3)`` uint8 RGB (the photo if none)."""
        if self._background is None:
            return photo.copy()
        out = self._background(photo)
        return np.asarray(out)

    @_serialised
    def stylize_crops(self, crops: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """Run the face model on aligned crops in one batch.

        Args:
            crops: ``(S, S, 3)`` uint8 RGB crops, all of the same size ``S``.

        Returns:
            ``(stylized crops (S, S, 3) uint8, heat-maps (S, S) float32 in [0, 1] or None)``.

        Raises:
            InvalidImageError: a crop is not an ``(S, S, 3)`` uint8 array, or the sizes differ.
            ConfigError: this Stylizer has no face model.
        """
        _check_crops(crops)
        if not crops:
            return [], []
        if self.face_model is None:
            raise ConfigError("this Stylizer has no face model")
        import torch.nn.functional as F

        rt = self.runtime
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        x = rt.prepare_input(batch)
        out = self._run_face_model(x)
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

    def _fused_face_for(self, model: nn.Module | None) -> nn.Module | None:
        """The fused inference module (:func:`facetoon.models.ugatit_fast.fuse_for_inference`)
        that runs in place of ``model``, or ``None`` to run ``model`` itself.

        Used on CPU with precision ``"fast"`` (bf16) for a light U-GAT-IT generator whose
        ``forward`` is not overridden. The fused copy of the weights is rebuilt when the
        module's parameters change (in-place updates, ``load_state_dict``, moves, casts).
        """
        from ..models.ugatit import Generator

        rt = self.runtime
        if not isinstance(model, Generator) or not model.light or type(model).forward is not Generator.forward \
                or "forward" in vars(model) or rt.device.type != "cpu" or rt.precision != "fast" \
                or rt.autocast_dtype is None:
            return None
        key = tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))
        if self._fused_face is not None and self._fused_face[0] == key:
            return self._fused_face[1]
        from ..models.ugatit_fast import fuse_for_inference

        fused: nn.Module | None
        try:
            fused = fuse_for_inference(model, rt.autocast_dtype)
        except ConfigError as exc:  # a non-standard layout: run the module itself
            log.debug("face model not fused (%s); running it under autocast", exc)
            fused = None
        self._fused_face = (key, fused)
        return fused

    def _run_face_model(self, x: torch.Tensor) -> Any:
        """``self.face_model(x)`` with the runtime's precision (``x`` prepared by the runtime).

        On the CPU fast path a light U-GAT-IT generator runs as its fused inference module (the
        same function, bf16, about 3x faster at 256 px).
        """
        model = self.face_model
        assert model is not None
        fused = self._fused_face_for(model)
        with torch.inference_mode():
            if fused is not None:
                return fused(x)
        with self.runtime.inference():
            return model(x)

    # ----------------------------------------------------------------- the call

    def _options(self, strength: Any, max_faces: Any, blend: Any, harmonize: Any) -> CallOptions:
        """This call's options: ``None`` (``KEEP`` for ``max_faces``) keeps the Stylizer's own."""
        own = CallOptions(self.strength, self.max_faces, self.blend, self.harmonize)
        return resolve_call_options(own, strength, max_faces, blend, harmonize)

    def _render(self, photos: list[np.ndarray], faces: list[list[Face]], weights: list[list[float]],
                opts: CallOptions, timings: dict[str, float],
                face_batch: int | None = None) -> list[_Rendered]:
        """Scene model, alignment, face model (all crops of all photos batched), blending.

        ``photos``: ``(H, W, 3)`` uint8 RGB; ``faces[i]``/``weights[i]``: the faces of photo ``i``
        and their blend-mask factors in ``(0, 1]``. Returns the full-style composite per photo.
        """
        t = time.perf_counter()
        backgrounds = [self.stylize_background(p) for p in photos]
        timings["background"] = timings.get("background", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        padding: Any = self.padding
        aligned = [[align_face(p, f, size=self.face_size, padding=padding) for f in fs]
                   for p, fs in zip(photos, faces)]
        flat = [a.image for per in aligned for a in per]
        step = len(flat) if not face_batch else face_batch
        styled: list[np.ndarray] = []
        heatmaps: list[np.ndarray | None] = []
        for i in range(0, len(flat), max(step, 1)):
            c, h = self.stylize_crops(flat[i:i + step])
            styled += c
            heatmaps += h
        timings["faces"] = timings.get("faces", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        out: list[_Rendered] = []
        k = 0
        for background, per, ws, fs in zip(backgrounds, aligned, weights, faces):
            crops, heats = styled[k:k + len(per)], heatmaps[k:k + len(per)]
            k += len(per)
            layers = [_weighted(make_layer(c, a, self.mask_shape), w) for c, a, w in zip(crops, per, ws)]
            result = composite_faces(background, layers, mode=opts.blend,  # type: ignore[arg-type]
                                     harmonize=opts.harmonize > 0, harmonize_amount=opts.harmonize)
            details = [FaceDetails(face=f, aligned=a, stylized=c, heatmap=h, crop_mask=layer.mask, mask=m)
                       for f, a, c, h, layer, m in zip(fs, per, crops, heats, layers, result.masks)]
            out.append(_Rendered(composite=result.image, background=background, details=details))
        timings["blend"] = timings.get("blend", 0.0) + time.perf_counter() - t
        return out

    @overload
    def stylize(self, image: np.ndarray, *, faces: Sequence[Face] | None = ...,
                face_weights: Sequence[float] | None = ..., strength: float | None = ...,
                max_faces: int | None | Keep = ..., require_face: bool | None = ...,
                blend: str | None = ..., harmonize: bool | float | None = ...,
                return_details: Literal[False] = ...) -> np.ndarray: ...

    @overload
    def stylize(self, image: FileOrPIL, *, faces: Sequence[Face] | None = ...,
                face_weights: Sequence[float] | None = ..., strength: float | None = ...,
                max_faces: int | None | Keep = ..., require_face: bool | None = ...,
                blend: str | None = ..., harmonize: bool | float | None = ...,
                return_details: Literal[False] = ...) -> Image.Image: ...

    @overload
    def stylize(self, image: ImageSource, *, faces: Sequence[Face] | None = ...,
                face_weights: Sequence[float] | None = ..., strength: float | None = ...,
                max_faces: int | None | Keep = ..., require_face: bool | None = ...,
                blend: str | None = ..., harmonize: bool | float | None = ...,
                return_details: Literal[True]) -> StylizeResult: ...

    @_serialised
    def stylize(
        self,
        image: ImageSource,
        *,
        faces: Sequence[Face] | None = None,
        face_weights: Sequence[float] | None = None,
        strength: float | None = None,
        max_faces: int | None | Keep = KEEP,
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
            faces: stylize these faces (landmarks in the pixels of the image as read, i.e.
                EXIF-oriented) instead of running the detector; ``require_face`` and the
                no-face warning then do not apply. With ``max_faces``, the largest
                (``Face.size``) are kept; the details keep the given order. Faces are pasted
                smallest first either way.
            face_weights: one number in ``[0, 1]`` per face of ``faces``, multiplying that
                face's blend mask (1 = normal; 0 = the scene only: the face is skipped and not in
                the details). Used for fades in videos.
            strength, require_face, blend, harmonize: override the constructor's options for
                this call (``None`` = keep).
            max_faces: override (default: the constructor's; ``None`` = all faces).
            return_details: return a :class:`StylizeResult` instead of just the image.

        Returns:
            The stylized image, of the same size as the (EXIF-oriented) input: a PIL image when
            given a PIL image, a path, bytes or a file object; a ``uint8`` array when given an
            array — RGB ``(H, W, 3)``, or RGBA ``(H, W, 4)`` / mode ``"RGBA"`` with the input's
            alpha re-attached when the input had transparency or was an ``(H, W, 4)`` array.

        Raises:
            InvalidImageError: the input is not a readable image.
            NoFaceError: no face found and ``require_face`` is set.
            ConfigError: an invalid option (``faces``/``face_weights`` of the wrong type,
                length or range included).
        """
        t_start = time.perf_counter()
        opts = self._options(strength, max_faces, blend, harmonize)
        need_face = self.require_face if require_face is None else bool(require_face)
        given = None if faces is None else validate_faces(faces, face_weights)
        if given is None and face_weights is not None:
            raise ConfigError("face_weights: needs faces= (one weight per given face)")
        timings: dict[str, float] = {}

        src = read_input(image)
        t = time.perf_counter()
        timings["read"] = t - t_start

        rendered = _Rendered(composite=src.photo.copy(), background=src.photo, details=[])
        if opts.strength > 0.0 or return_details:
            looked = self.face_model is not None and opts.max_faces != 0
            if given is not None:
                found, weights = pick_faces(*given, opts.max_faces) if looked else ([], [])
            else:
                found = self.detect(src.photo, opts.max_faces) if looked else []
                weights = [1.0] * len(found)
                if looked and not found:
                    if need_face:
                        raise NoFaceError("no face found", path=src.label)
                    log.warning("%s: no face found; only the scene is stylized", src.label)
            timings["detect"] = time.perf_counter() - t
            rendered = self._render([src.photo], [found], [weights], opts, timings)[0]
        elif need_face and given is None and self.face_model is not None and opts.max_faces != 0:
            # strength 0 returns the photo, but require_face still means "fail without a face"
            if not self.detect(src.photo, opts.max_faces):
                raise NoFaceError("no face found", path=src.label)
            timings["detect"] = time.perf_counter() - t
        # mix with the input's own colour values (for RGBA: straight, not composited)
        styled = straight_colours(rendered.composite, src)
        final = finish(mix(src.straight, styled, opts.strength), src.alpha, src.as_array)
        timings["total"] = time.perf_counter() - t_start
        if not return_details:
            return final
        return StylizeResult(image=final, faces=rendered.details, background=rendered.background,
                             photo=src.photo, alpha=src.alpha, strength=opts.strength, timings=timings)

    @_serialised
    def stylize_batch(
        self,
        images: Sequence[ImageSource],
        *,
        faces: Sequence[Sequence[Face]],
        face_weights: Sequence[Sequence[float]] | None = None,
        strength: float | None = None,
        max_faces: int | None | Keep = KEEP,
        blend: str | None = None,
        harmonize: bool | float | None = None,
        face_batch: int | None = None,
    ) -> list[np.ndarray]:
        """Stylize several images with given faces; the crops of all images go through the
        face model together.

        Each output equals ``stylize(images[i], faces=faces[i], face_weights=face_weights[i],
        ...)`` as an array, up to float rounding: the face model normalises per sample, but
        CPU kernels for another batch size round differently (~1e-6), which can move a crop
        value at a .5 edge by 1 level and the output by 1-2 levels on a few pixels. The scene
        model runs per image (images may differ in size; large ones are tiled).

        Args:
            images: images as :meth:`stylize` reads them (video frames: ``(H, W, 3)`` uint8 RGB).
            faces: per image, its faces (see :meth:`stylize`); no detection is run.
            face_weights: per image, one number in ``[0, 1]`` per face (``None`` = all ones).
            strength, max_faces, blend, harmonize: as in :meth:`stylize`.
            face_batch: most crops per face-model call (``None`` = all in one call).

        Returns:
            One ``uint8`` array per image: ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA for inputs
            with transparency and ``(H, W, 4)`` arrays.

        Raises:
            ConfigError: an invalid option, or ``faces``/``face_weights`` not one per image.
            InvalidImageError: an input is not a readable image.
        """
        opts = self._options(strength, max_faces, blend, harmonize)
        if face_batch is not None and (isinstance(face_batch, bool) or not isinstance(face_batch, int)
                                       or face_batch < 1):
            raise ConfigError(f"face_batch: expected None or an integer >= 1, got {face_batch!r}")
        if isinstance(images, (str, bytes, np.ndarray)) or not isinstance(images, Sequence):
            raise ConfigError(f"images: expected a sequence of images, got {type(images).__name__}")
        if isinstance(faces, (str, bytes)) or not isinstance(faces, Sequence) or len(faces) != len(images):
            raise ConfigError(f"faces: expected one sequence of faces per image ({len(images)}), got "
                              f"{len(faces) if isinstance(faces, Sequence) else type(faces).__name__}")
        if face_weights is not None and (isinstance(face_weights, (str, bytes))
                                         or not isinstance(face_weights, Sequence)
                                         or len(face_weights) != len(images)):
            raise ConfigError(f"face_weights: expected None or one sequence of weights per image "
                              f"({len(images)})")
        given = [validate_faces(fs, None if face_weights is None else face_weights[i], name=f"faces[{i}]")
                 for i, fs in enumerate(faces)]
        sources = [read_input(im) for im in images]
        if opts.strength == 0.0:
            return [finish(src.straight.copy(), src.alpha, True) for src in sources]  # type: ignore[misc]
        looked = self.face_model is not None and opts.max_faces != 0
        picked = [pick_faces(fs, ws, opts.max_faces) if looked else ([], []) for fs, ws in given]
        rendered = self._render([src.photo for src in sources], [fs for fs, _ in picked],
                                [ws for _, ws in picked], opts, {}, face_batch)
        return [finish(mix(src.straight, straight_colours(r.composite, src), opts.strength),  # type: ignore[misc]
                       src.alpha, True)
                for src, r in zip(sources, rendered)]

    __call__ = stylize


@dataclass(eq=False)
class _Rendered:
    """One photo through the stages at full style: ``composite`` and ``background`` (H, W, 3)
    uint8 RGB, and the details of each pasted face."""

    composite: np.ndarray
    background: np.ndarray
    details: list[FaceDetails]


def _check_crops(crops: Sequence[np.ndarray]) -> None:
    """Raise :class:`InvalidImageError` unless ``crops`` is a sequence of ``(S, S, 3)`` uint8
    arrays with one ``S``."""
    if isinstance(crops, np.ndarray) or not isinstance(crops, Sequence):
        raise InvalidImageError(f"stylize_crops: expected a list of (S, S, 3) uint8 RGB crops, "
                                f"got {type(crops).__name__}")
    size = None
    for i, crop in enumerate(crops):
        if not isinstance(crop, np.ndarray):
            raise InvalidImageError(f"stylize_crops: crop {i} is a {type(crop).__name__}, expected an "
                                    f"(S, S, 3) uint8 RGB array")
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] \
                or crop.shape[0] == 0:
            raise InvalidImageError(f"stylize_crops: crop {i} has dtype {crop.dtype} and shape {crop.shape}, "
                                    f"expected an (S, S, 3) uint8 RGB array")
        if size is None:
            size = crop.shape[0]
        elif crop.shape[0] != size:
            raise InvalidImageError(f"stylize_crops: crop {i} is {crop.shape[0]}x{crop.shape[0]} and crop 0 "
                                    f"{size}x{size}; all crops of one call must have the same size")


def _weighted(layer: FaceLayer, weight: float) -> FaceLayer:
    """The layer with its blend mask multiplied by ``weight`` (the same layer at 1)."""
    if weight >= 1.0:
        return layer
    return replace(layer, mask=(layer.mask * np.float32(weight)).astype(np.float32))
