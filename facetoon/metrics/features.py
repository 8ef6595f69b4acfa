"""Pooled 1280-d MobileNetV2 features of images, for KID.

Preprocessing (the quality-bar definition): every image becomes RGB uint8, is resized to
224 x 224 with PIL's bicubic filter (antialiased when shrinking) and rounded back to uint8; the
network sees ``(q - 128) / 128``. The features are the ``MobilenetV2/Logits/AvgPool`` output.

Two backends compute them from the same 224 x 224 uint8 pixels:

* ``"litert"`` — the quantised TFLite model run by ``ai-edge-litert``: the reference definition.
  Its features are on the model's uint8 grid (steps of 6/255).
* ``"torch"`` — the float PyTorch port :class:`facetoon.models.mobilenet_v2.MobileNetV2Features`,
  batched; no TFLite runtime needed once converted (see ``cache``).

Inputs accepted by :func:`extract_features` and :class:`FeatureExtractor`:

* a sequence of image paths, PIL images (both converted as :func:`facetoon.io.read_image` does:
  EXIF orientation applied, transparency composited over white, 16-bit scaled) or (H, W, 3) /
  (H, W) uint8 RGB arrays;
* an (N, H, W, 3) uint8 RGB array, or one (H, W, 3) uint8 RGB image (what
  :func:`facetoon.io.to_image` returns for a batch of one);
* a float torch tensor (N, 3, H, W) or (3, H, W), or a sequence of them, RGB in **[-1, 1]**
  (facetoon's generator output convention), rounded to uint8 first as if saved to a PNG. Values
  outside [-1, 1] raise :class:`InvalidImageError`; a tensor without any negative value is logged
  as likely [0, 1] images (pass ``2 * x - 1``);
* a U-GAT-IT generator's ``(image, cam_logit, heatmap)`` output: its image, as
  :class:`facetoon.pipeline.Stylizer` reads it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, InvalidImageError, WeightsError
from ..io import list_images, read_image

__all__ = [
    "BACKENDS",
    "FEATURE_DIM",
    "IMAGE_SIZE",
    "FeatureExtractor",
    "extract_features",
    "get_extractor",
    "list_images",
    "to_model_input",
]

log = logging.getLogger(__name__)

BACKENDS = ("litert", "torch")
FEATURE_DIM = 1280
IMAGE_SIZE = 224


def to_model_input(image: Any) -> np.ndarray:
    """One image (path, PIL image or (H, W, 3)/(H, W) uint8 RGB array) -> (224, 224, 3) uint8 RGB.

    Paths and PIL images are converted by :func:`facetoon.io.read_image` (EXIF orientation,
    alpha over white, 16-bit scaled), so a file and the PIL image opened from it give the same pixels.
    """
    if isinstance(image, (str, os.PathLike, Image.Image)):
        pil = Image.fromarray(read_image(image))  # RGB uint8 as read_image reads it, typed errors
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise InvalidImageError(f"image arrays must be uint8 RGB, got dtype {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidImageError(f"image arrays must be (H, W, 3) RGB, got shape {image.shape}")
        pil = Image.fromarray(np.ascontiguousarray(image))
    else:
        raise InvalidImageError(
            f"cannot use a {type(image).__name__} as an image (expected a path, a PIL image or an "
            "(H, W, 3) uint8 RGB array; tensors as (N, 3, H, W) in [-1, 1] or a list of (3, H, W))")
    if pil.width < 2 or pil.height < 2:
        raise InvalidImageError(f"image is too small ({pil.width} x {pil.height})")
    if pil.size != (IMAGE_SIZE, IMAGE_SIZE):
        pil = pil.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(pil, dtype=np.uint8)


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


# values this far outside [-1, 1] (half a uint8 level) are refused rather than clamped
_RANGE_TOLERANCE = 1.0 / 255.0
_TENSOR_FORMS = ("image tensors must be float (N, 3, H, W) or (3, H, W) RGB in [-1, 1] (for a U-GAT-IT "
                 "generator's (image, cam_logit, heatmap) output pass output[0])")


def _tensors_to_uint8(tensors: Sequence[Any]) -> list[np.ndarray]:
    """Float tensors, each (N, 3, H, W) or (3, H, W) RGB in [-1, 1] -> their images as (H, W, 3)
    uint8 RGB, ``round((v + 1) * 127.5)`` as :func:`facetoon.io.to_image` (and a saved PNG) has them.

    Raises :class:`InvalidImageError` for another shape or dtype, NaN/inf, or values outside
    [-1, 1]; logs one warning when no value at all is negative (most likely [0, 1] images).
    """
    import torch

    images: list[np.ndarray] = []
    low = math.inf
    for t in tensors:
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise InvalidImageError(f"{_TENSOR_FORMS}, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise InvalidImageError(f"{_TENSOR_FORMS}, got dtype {t.dtype}")
        x = t.detach().to("cpu", torch.float32)
        if x.numel():
            if not bool(torch.isfinite(x).all()):
                raise InvalidImageError("image tensor contains NaN or infinite values")
            lo, hi = float(x.min()), float(x.max())
            if lo < -1.0 - _RANGE_TOLERANCE or hi > 1.0 + _RANGE_TOLERANCE:
                raise InvalidImageError(
                    f"image tensor values must lie in [-1, 1], got [{lo:.4g}, {hi:.4g}] "
                    "(for [0, 1] images pass 2 * x - 1; for 0..255 pass x / 127.5 - 1)")
            low = min(low, lo)
        q = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
        images.extend(q.permute(0, 2, 3, 1).numpy())
    if 0.0 <= low < math.inf:
        log.warning("image tensors have no negative value (min %.3g): [0, 1] images? "
                    "expected [-1, 1]: pass 2 * x - 1", low)
    return images


def _is_ugatit_output(x: Any) -> bool:
    """A U-GAT-IT generator's ``(image (B, 3, H, W), cam_logit (B, 1), heatmap)`` tuple."""
    return (isinstance(x, (tuple, list)) and len(x) == 3 and all(_is_torch_tensor(t) for t in x)
            and x[0].ndim == 4 and x[1].ndim == 2)


def _iter_images(images: Any) -> tuple[int, Iterator[Any]]:
    """(count, iterator of single images) for every accepted input form (module docstring)."""
    if _is_ugatit_output(images):  # as the Stylizer reads a face model's output
        images = images[0]
    if _is_torch_tensor(images):
        arrays = _tensors_to_uint8([images])
        return len(arrays), iter(arrays)
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and images.shape[2] == 3:  # one (H, W, 3) image, e.g. from to_image
            return 1, iter([images])
        if images.ndim != 4:
            raise InvalidImageError(
                "an image array must be an (N, H, W, 3) uint8 batch or one (H, W, 3) uint8 image, "
                f"got shape {images.shape}")
        return len(images), iter(images)
    if isinstance(images, (str, os.PathLike)):
        raise InvalidImageError(
            "pass a sequence of image paths (or use list_images for a folder)", path=images)
    if not isinstance(images, Sequence):
        images = list(images)
    if any(_is_torch_tensor(x) for x in images):
        if not all(_is_torch_tensor(x) for x in images):
            raise InvalidImageError("a sequence of images must not mix tensors with other image forms")
        arrays = _tensors_to_uint8(images)
        return len(arrays), iter(arrays)
    return len(images), iter(images)


def _batches(items: Iterator[Any], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(to_model_input(item))
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


class FeatureExtractor:
    """Pooled MobileNetV2 features with one backend; create once, call many times.

    Args:
        backend: "litert" (quantised TFLite reference) or "torch" (float PyTorch port).
        model_path: the TFLite file; default :func:`facetoon.models.mobilenet_v2.default_tflite_path`.
        num_threads: CPU threads of the TFLite interpreter (None: its default); the torch backend
            uses torch's own setting.
        device: torch device of the torch backend.
        cache: optional safetensors path where the torch backend caches the converted network.
    """

    def __init__(
        self,
        backend: str = "litert",
        model_path: str | os.PathLike[str] | None = None,
        *,
        num_threads: int | None = None,
        device: str = "cpu",
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        from ..models.mobilenet_v2 import default_tflite_path

        self.backend = backend
        self.model_path = Path(model_path) if model_path is not None else default_tflite_path()
        if not self.model_path.is_file():
            raise WeightsError(
                "MobileNetV2 TFLite model not found (pass its path or set FACETOON_MOBILENET_V2)",
                path=self.model_path,
            )
        self.device = device
        if backend == "litert":
            self._init_litert(num_threads)
        else:
            import torch

            from ..models.mobilenet_v2 import MobileNetV2Features
            from ..runtime import to_channels_last

            model = MobileNetV2Features.from_tflite(self.model_path, cache=cache).to(device)
            if torch.device(device).type == "cpu":  # channels_last: ~1.5-2x faster on CPU
                model = to_channels_last(model)
            self._model = model

    def _init_litert(self, num_threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings():
            # preserving tensors lets us read the AvgPool output, an intermediate tensor
            warnings.simplefilter("ignore", UserWarning)
            try:
                interp = Interpreter(
                    model_path=str(self.model_path),
                    num_threads=num_threads,
                    experimental_preserve_all_tensors=True,
                )
            except (ValueError, RuntimeError) as exc:
                raise WeightsError(f"not a readable TFLite model ({str(exc).splitlines()[0]})",
                                   path=self.model_path) from None
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        pools = [op for op in interp._get_ops_details() if op["op_name"] == "AVERAGE_POOL_2D"]  # noqa: SLF001
        shape_ok = tuple(inp["shape"]) == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and inp["dtype"] == np.uint8
        if not shape_ok or len(pools) != 1:
            raise WeightsError("not the uint8 MobileNetV2 224 model (input or AvgPool differ)",
                               path=self.model_path)
        self._pool_index = int(pools[0]["outputs"][0])
        pool = next(d for d in interp.get_tensor_details() if d["index"] == self._pool_index)
        self._pool_scale, self._pool_zero = float(pool["quantization"][0]), int(pool["quantization"][1])
        self._input_index = int(inp["index"])
        self._interp = interp

    def from_uint8(self, batch: np.ndarray) -> np.ndarray:
        """(B, 224, 224, 3) uint8 RGB -> (B, 1280) float32 pooled features."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise InvalidImageError(f"expected (B, 224, 224, 3) uint8, got {batch.dtype} {batch.shape}")
        if self.backend == "litert":
            out = np.empty((len(batch), FEATURE_DIM), dtype=np.float32)
            for i, img in enumerate(batch):
                self._interp.set_tensor(self._input_index, img[None])
                self._interp.invoke()
                q = self._interp.get_tensor(self._pool_index).reshape(-1)
                out[i] = (q.astype(np.float32) - self._pool_zero) * self._pool_scale
            return out
        import torch

        # NHWC uint8 viewed as NCHW is already channels_last in memory
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return self._model(self._model.normalize_uint8(x)).float().cpu().numpy()

    def __call__(self, images: Any, *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Images (see the module docstring; tensors RGB in [-1, 1]) -> (N, 1280) float32 features,
        in input order (N = 1 for a single (H, W, 3) array or (3, H, W) tensor)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        count, items = _iter_images(images)
        out = np.empty((count, FEATURE_DIM), dtype=np.float32)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=count, desc=f"MobileNetV2 features ({self.backend})", unit="img", leave=False)
        done = 0
        for batch in _batches(items, batch_size):
            out[done:done + len(batch)] = self.from_uint8(batch)
            done += len(batch)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out


@functools.lru_cache(maxsize=4)
def _cached_extractor(backend: str, model_path: str | None) -> FeatureExtractor:
    return FeatureExtractor(backend, model_path)


def get_extractor(
    backend: str = "litert", model_path: str | os.PathLike[str] | None = None
) -> FeatureExtractor:
    """A process-wide shared :class:`FeatureExtractor` for ``(backend, model_path)``."""
    return _cached_extractor(backend, None if model_path is None else str(model_path))


def extract_features(
    images: Any,
    backend: str = "litert",
    *,
    model_path: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """(N, 1280) float32 pooled MobileNetV2 features of ``images`` (paths, PIL images, uint8 RGB
    arrays, or float RGB tensors (N, 3, H, W) in [-1, 1]: see the module docstring), resized to
    224 x 224 bicubic as uint8 first.
    """
    return get_extractor(backend, model_path)(images, batch_size=batch_size, progress=progress)
