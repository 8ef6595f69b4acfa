"""Stylize the whole scene of a photo with a scene generator (AnimeGAN, CartoonGAN), at any size.

    >>> from facetoon.background import BackgroundStylizer          # doctest: +SKIP
    >>> stylizer = BackgroundStylizer("animegan-anime", precision="fast")  # doctest: +SKIP
    >>> anime = stylizer(photo)   # (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB

How an image is run:

1. It is converted to RGB in [-1, 1] and padded (reflect, bottom/right) to the multiple of H and W
   the architecture needs (``model.size_multiple``: 1 for AnimeGANv2, 4 for AnimeGAN v1 and
   CartoonGAN); the result is cropped back.
2. If it has at most ``max_pixels_per_tile`` pixels (the memory budget), the generator runs on
   the whole image: the result is exactly the model's output.
3. Otherwise it runs on overlapping tiles (see :mod:`facetoon.ops.tiling`) blended with smooth
   weights that sum to one, so no seam can appear. The normalisation layers of these
   generators use whole-image statistics; a first pass over the image downscaled to the budget
   records them and every tile is normalised with them, so the tiles agree in tone.

Precision: ``"fp32"`` runs the model as is. ``"fast"`` runs AnimeGANv2 and CartoonGAN through
their fused inference graphs (:func:`facetoon.models.animegan.fuse_for_inference`,
:func:`facetoon.models.cartoongan.fuse_for_inference`: the same function with fewer passes over
memory) in bfloat16 (native on AVX512-BF16/AMX CPUs; the fused graphs run in float32 on CPUs
without it), and other models with channels-last + bf16 autocast.

Optional speed mode (off by default): ``internal_scale < 1`` runs the generator at a lower
resolution and brings the result back to full size with a fast guided filter (He & Sun, 2015)
guided by the photo's luminance, which restores edges. It is about ``1 / internal_scale**2``
times faster and softer in fine detail; compare side by side before using it.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, InvalidImageError, WeightsError
from .ops.tiling import NormStatsCache, downscale_to, model_lock, plan_tiles, tiled_apply
from .runtime import cpu_has_fast_bf16, to_channels_last

# THP_MEM_ALLOC_ENABLE (transparent huge pages for torch's big CPU buffers) is set by facetoon/__init__.py,
# before torch's first allocation: setting it here, after torch has allocated, would have no effect.

__all__ = ["BackgroundStylizer", "guided_upsample", "retain_freed_memory", "DEFAULT_MAX_PIXELS"]

log = logging.getLogger(__name__)

# Whole-image inference up to a little more than 1920x1080. Peak memory (RSS) at 1920x1080 measured
# with benchmarks/bench_background.py's models: AnimeGANv2 3.8 GB fp32 / 1.2 GB fast, CartoonGAN
# 3.1 GB fp32 / 1.1 GB fast.
DEFAULT_MAX_PIXELS = 2_400_000


_RETAINING = False


def retain_freed_memory() -> bool:
    """Make this process keep freed memory mapped for reuse instead of returning it to the OS.

    Process-wide and permanent (glibc ``mallopt``: no ``mmap`` for big blocks, no heap trimming),
    so use it in processes that stylize many images or frames: every op of a generator
    allocates a fresh output of up to hundreds of MB, and mapping fresh pages (page faults,
    zero-filling by the kernel) is a large part of the run time on some machines, virtual ones
    especially. The price is a resident size that stays near the peak (about twice it, because
    of fragmentation). Returns ``False`` (doing nothing) where glibc is not available.
    """
    global _RETAINING
    if _RETAINING:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _RETAINING = ok
    log.debug("retain freed memory: %s", "on" if ok else "not available")
    return ok


class BackgroundStylizer:
    """Whole-scene stylization: ``stylizer(image)`` maps ``(H, W, 3)`` uint8 RGB to the same shape.

    Args:
        model: a scene generator (RGB ``(B, 3, H, W)`` in [-1, 1] -> same), or a weights folder /
            named weights for :func:`facetoon.models.load_pretrained`.
        device: torch device (``"cpu"``, ``"cuda"``...).
        precision: ``"fp32"`` (reference) or ``"fast"`` (see module docstring).
        max_pixels_per_tile: memory budget in pixels; larger images are tiled.
        tile_overlap: overlap of neighbouring tiles in pixels (> 2 * ``tile_guard``, so at least 1).
        tile_guard: pixels next to an inner tile border that get zero blending weight.
        internal_scale: in (0, 1]; below 1 enables the guided-filter speed mode.
        retain_memory: call :func:`retain_freed_memory` (process-wide; faster repeated calls,
            higher resident memory).

    A module you pass is put in eval mode, moved to ``device`` and cast to float32 in place (an
    fp16, bf16 or float64 module too: ``precision`` chooses the compute precision; with ``"fast"``
    on a CPU with native bf16, a model without a fused graph is also converted to channels_last in
    place); pass a copy if you keep training it. A BackgroundStylizer can be pickled and
    deep-copied (with its model; the copy gets its own lock).

    Thread safety: calls are serialised per model instance (:func:`~facetoon.ops.tiling.model_lock`):
    a tiled call keeps per-call normalisation statistics on the model, so two BackgroundStylizers
    built on one module instance take turns too. For parallel throughput use one
    BackgroundStylizer per thread, each with its own model instance.
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike[str],
        device: str | torch.device = "cpu",
        precision: Literal["fp32", "fast"] = "fp32",
        max_pixels_per_tile: int = DEFAULT_MAX_PIXELS,
        tile_overlap: int = 128,
        tile_guard: int = 32,
        internal_scale: float = 1.0,
        retain_memory: bool = False,
    ) -> None:
        if precision not in ("fp32", "fast"):
            raise ConfigError(f"precision must be 'fp32' or 'fast', got {precision!r}")
        if not isinstance(max_pixels_per_tile, int) or max_pixels_per_tile < 64 * 64:
            raise ConfigError(f"max_pixels_per_tile must be an int >= 4096, got {max_pixels_per_tile!r}")
        # tiles must overlap (by at least 1 px) for the blend to hide their seams; an overlap of 0
        # made touching tiles, which failed on sizes that are multiples of the tile
        if tile_guard < 0 or 2 * tile_guard >= tile_overlap:
            raise ConfigError(f"need tile_overlap > 2 * tile_guard >= 0, got overlap={tile_overlap}, "
                              f"guard={tile_guard}")
        if not 0.0 < internal_scale <= 1.0:
            raise ConfigError(f"internal_scale must be in (0, 1], got {internal_scale!r}")
        if retain_memory:
            retain_freed_memory()
        if not isinstance(model, nn.Module):
            from .models.serialization import export_model_folder, load_pretrained

            model = load_pretrained(export_model_folder(model), archs=("animegan", "cartoongan"))
        self.device = torch.device(device)
        self.precision = precision
        self.max_pixels = max_pixels_per_tile
        self.overlap = tile_overlap
        self.guard = tile_guard
        self.internal_scale = float(internal_scale)
        self.model = model.eval().to(device=self.device, dtype=torch.float32)
        # serialises calls per model instance, shared with every other stylizer of this module:
        # tiled passes keep per-call state on it (recorded norm statistics, patched norm layers)
        self._lock = model_lock(self.model)
        self.multiple = int(getattr(model, "size_multiple", 4))
        self.min_size = int(getattr(model, "min_size", 8))
        self._autocast: torch.dtype | None = None
        self._net: nn.Module = self.model
        if precision == "fast":
            self._net = self._make_fast(self.model)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy support: the lock does not pickle (the copy's model gets its own). Copy
        it while no other thread runs it: a tiled call patches the model's norm layers meanwhile
        (:class:`~facetoon.Stylizer` copies its scene model under the model's lock)."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = model_lock(self.model)

    def _make_fast(self, model: nn.Module) -> nn.Module:
        from .models import animegan, cartoongan

        bf16 = self.device.type == "cuda" or cpu_has_fast_bf16()
        if self.device.type == "cpu":
            dtype = torch.bfloat16 if bf16 else torch.float32
            if isinstance(model, animegan.Generator) and model.version == "v2":
                return animegan.fuse_for_inference(model, dtype)
            if isinstance(model, cartoongan.Generator):
                return cartoongan.fuse_for_inference(model, dtype)
        if not bf16:
            log.warning("no native bf16 on this CPU: 'fast' runs in fp32")
            return model
        self._autocast = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        if self.device.type == "cpu":
            model = to_channels_last(model)
        return model

    # -- tensor level

    def _forward(self, x: Tensor, net: nn.Module) -> Tensor:
        if self._autocast is not None:
            with torch.autocast(self.device.type, dtype=self._autocast):
                return net(x.contiguous(memory_format=torch.channels_last)
                           if self.device.type == "cpu" else x)
        return net(x)

    @torch.inference_mode()
    def stylize_tensor(self, x: Tensor) -> Tensor:
        """RGB ``(B, 3, H, W)`` in [-1, 1] -> RGB ``(B, 3, H, W)`` float32 in [-1, 1], any H, W >= 1.

        A fast-path result that is not finite (a low-precision kernel failing on some shape) is
        recomputed with the float32 reference model, with a warning; never written as black.
        Calls from several threads are serialised.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidImageError(f"expected an RGB tensor (B, 3, H, W), got shape {tuple(x.shape)}")
        with self._lock:
            return self._stylize_checked(x)

    def _stylize_checked(self, x: Tensor) -> Tensor:
        """:meth:`stylize_tensor` under the lock."""
        y = self._stylize(x, self._net)
        if not bool(torch.isfinite(y).all()):
            if self._net is self.model and self._autocast is None:
                raise WeightsError("the scene model produced non-finite values (NaN/inf): its weights are "
                                   "broken")
            log.warning("the fast path gave non-finite values on a %dx%d input; recomputing in fp32",
                        x.shape[-2], x.shape[-1])
            autocast, self._autocast = self._autocast, None
            try:
                y = self._stylize(x, self.model)
            finally:
                self._autocast = autocast
            if not bool(torch.isfinite(y).all()):
                raise WeightsError("the scene model produced non-finite values (NaN/inf): its weights are "
                                   "broken")
        return y

    def _stylize(self, x: Tensor, net: nn.Module) -> Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        th = max(math.ceil(h / m) * m, self.min_size)
        tw = max(math.ceil(w / m) * m, self.min_size)
        if (th, tw) != (h, w):
            mode = "reflect" if th - h < h and tw - w < w else "replicate"
            x = F.pad(x, (0, tw - w, 0, th - h), mode=mode)
        plan = plan_tiles(th, tw, self.max_pixels, self.overlap, m)

        def forward(t: Tensor) -> Tensor:
            return self._forward(t, net)

        if plan.n_tiles == 1:
            y = forward(x).float()
        else:
            log.info("tiling a %dx%d image into %d tiles of %dx%d", th, tw, plan.n_tiles,
                     plan.tile_h, plan.tile_w)
            cache = NormStatsCache(net)
            with cache.recording():
                forward(downscale_to(x, self.max_pixels, m))
            with cache.replaying():
                y = tiled_apply(forward, x, plan, guard=self.guard)
        return y[..., :h, :w]

    # -- image level

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Stylize ``(H, W, 3)`` uint8 RGB; returns a new ``(H, W, 3)`` uint8 RGB array.

        Calls from several threads are serialised (see the class docstring).
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3:
            desc = f"dtype {image.dtype}, shape {image.shape}" if isinstance(image, np.ndarray) \
                else type(image).__name__
            raise InvalidImageError(f"BackgroundStylizer expects an (H, W, 3) uint8 RGB array, got {desc}")
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            raise InvalidImageError(f"BackgroundStylizer got an empty image ({h}x{w})")
        src = image
        if self.internal_scale < 1.0:
            import cv2

            sh, sw = max(1, round(h * self.internal_scale)), max(1, round(w * self.internal_scale))
            src = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        x = _to_tensor(src, self.device)
        y = self.stylize_tensor(x)
        out = _to_uint8(y)
        if self.internal_scale < 1.0:
            out = guided_upsample(out, image)
        return out


def _to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 in [-1, 1], channels-last memory."""
    t = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(127.5).sub_(1.0)


def _to_uint8(y: Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8 by ``round((v + 1) * 127.5)``."""
    z = y[0].permute(1, 2, 0).float().add(1.0).mul_(127.5).round_().clamp_(0, 255)
    return z.to(torch.uint8).cpu().numpy()


def guided_upsample(low: np.ndarray, guide: np.ndarray, radius: int = 2, eps: float = 1e-3) -> np.ndarray:
    """Upsample ``low`` ``(h, w, 3)`` uint8 to the size of ``guide`` ``(H, W, 3)`` uint8 (fast guided filter).

    Per output channel a local linear model ``q = a * I + b`` of the guide's luminance ``I`` is fitted
    at low resolution (box windows of ``radius`` low-res pixels, regulariser ``eps`` on [0, 1]
    values), its coefficients are upsampled bilinearly and applied to the full-resolution guide.
    """
    import cv2

    h, w = guide.shape[:2]
    lh, lw = low.shape[:2]
    gray = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gray_low = cv2.resize(gray, (lw, lh), interpolation=cv2.INTER_AREA)
    p = low.astype(np.float32) / 255.0
    k = (2 * radius + 1, 2 * radius + 1)

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, k, borderType=cv2.BORDER_REFLECT)

    mean_i = box(gray_low)
    var_i = box(gray_low * gray_low) - mean_i * mean_i
    mean_p = box(p)
    cov_ip = box(gray_low[..., None] * p) - mean_i[..., None] * mean_p
    a = cov_ip / (var_i[..., None] + eps)
    b = mean_p - a * mean_i[..., None]
    a = cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR)
    q = a * gray[..., None] + b
    return np.clip(np.rint(q * 255.0), 0, 255).astype(np.uint8)
