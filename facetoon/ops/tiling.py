"""Tiled inference: run an image-to-image network on overlapping tiles and blend them seamlessly.

Convention: images are ``(B, C, H, W)`` tensors; a tile is a window ``[y0, y0 + th) x [x0, x0 + tw)``
in pixel coordinates, origin top-left. The network ``fn`` maps a ``(B, C, th, tw)`` tile to a
``(B, C', th, tw)`` output of the same spatial size.

Blending: every tile gets a separable weight ``wy(y) * wx(x)``. Along an axis, a tile's weight is
1 except where it overlaps a neighbour: there it hands over to the neighbour along a raised
cosine centred in the overlap, so that the pixels next to a tile's own border (where the
network's padding makes its output unreliable) get zero weight. The neighbour's weight is
exactly one minus this, so the weights form a partition of unity (they sum to 1 at every pixel)
and the transition is C1-smooth: no seam line can appear, only a gradual hand-over between two
predictions of the same pixels.

Normalisation layers: networks that normalise with statistics of the whole feature map
(instance norm, layer norm = ``GroupNorm(1, C)``) would see different statistics in every tile.
:class:`NormStatsCache` records those statistics on one pass over a downscaled copy of the whole
image and replays them while the tiles run, so every tile is normalised like the whole image.
While it records or replays, it patches the norm layers of the model it was given: two callers
that share one model instance must not tile at the same time. :func:`model_lock` hands out one
re-entrant lock per model instance for that.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "tile_starts",
    "axis_weights",
    "plan_tiles",
    "TilePlan",
    "tiled_apply",
    "NormStatsCache",
    "model_lock",
    "normalisation_modules",
    "downscale_to",
]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with >= ``overlap`` overlap.

    The first tile starts at 0, the last ends at ``length``; starts are spread evenly, so actual
    overlaps are at least ``overlap`` (and equal up to rounding).
    """
    if tile <= 0 or overlap < 0:
        raise ConfigError(f"tile must be > 0 and overlap >= 0, got tile={tile}, overlap={overlap}")
    if tile >= length:
        return [0]
    if overlap >= tile:
        raise ConfigError(f"tile overlap ({overlap}) must be smaller than the tile ({tile})")
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _ramp(n: int, width: int) -> Tensor:
    """Rising weights over an overlap of ``n`` pixels: 0, then a raised cosine over ``width`` pixels
    centred in the overlap, then 1 (the transition is as far as possible from both tiles' borders)."""
    width = max(1, min(width, n))
    start = (n - width) / 2.0
    t = torch.arange(n, dtype=torch.float64)
    u = ((t + 0.5 - start) / width).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * u)


def axis_weights(starts: list[int], tile: int, ramp: int) -> list[Tensor]:
    """1-D blending weights of each tile along one axis (length ``tile`` each); they sum to 1 on every pixel.

    In each overlap the hand-over from one tile to the next is a raised cosine ``ramp`` pixels
    wide, centred in the overlap; outside it a tile's weight is exactly 0 or 1.
    """
    weights = [torch.ones(tile, dtype=torch.float64) for _ in starts]
    for i in range(len(starts) - 1):
        a, b = starts[i], starts[i + 1]
        n = a + tile - b  # overlap of tile i and tile i + 1
        if n <= 0:
            raise ConfigError(f"tiles at {a} and {b} do not overlap")
        up = _ramp(n, ramp)
        weights[i + 1][:n] *= up
        weights[i][tile - n:] *= 1.0 - up
    return weights


@dataclass(frozen=True)
class TilePlan:
    """Tile size and start offsets for an ``height x width`` image."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    overlap: int = 0

    @property
    def n_tiles(self) -> int:
        return len(self.ys) * len(self.xs)


def plan_tiles(height: int, width: int, max_pixels: int, overlap: int, multiple: int = 1) -> TilePlan:
    """Choose tiles of at most ``max_pixels`` pixels, sides multiples of ``multiple``, as square as fits.

    ``height`` and ``width`` must already be multiples of ``multiple``.
    """
    if height * width <= max_pixels:
        return TilePlan(height, width, height, width, (0,), (0,), overlap)
    side = int(math.isqrt(max_pixels))
    th = min(height, side)
    tw = min(width, max_pixels // th)
    th, tw = (th // multiple) * multiple, (tw // multiple) * multiple
    # only a side that is split needs room for the overlap on both ends
    if any(size <= 0 or (size < whole and 2 * overlap > size) for size, whole in ((th, height), (tw, width))):
        raise ConfigError(
            f"tiles of {th}x{tw} pixels (from max_pixels_per_tile={max_pixels}) are too small "
            f"for tile_overlap={overlap}; raise the budget or lower the overlap")
    return TilePlan(height, width, th, tw, tuple(tile_starts(height, th, overlap)),
                    tuple(tile_starts(width, tw, overlap)), overlap)


def tiled_apply(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    plan: TilePlan,
    guard: int = 0,
    out_dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Run ``fn`` on every tile of ``x`` ``(B, C, H, W)`` and blend the outputs (see module doc).

    Returns ``(B, C', H, W)`` in ``out_dtype``. In every overlap the hand-over between tiles is a
    raised cosine ``plan.overlap - 2 * guard`` pixels wide, centred in the overlap, so at least
    ``guard`` pixels next to an inner tile border get zero weight.
    """
    if plan.n_tiles == 1:
        return fn(x).to(out_dtype)
    ramp = max(1, plan.overlap - 2 * guard)
    wy = axis_weights(list(plan.ys), plan.tile_h, ramp)
    wx = axis_weights(list(plan.xs), plan.tile_w, ramp)
    out: Tensor | None = None
    norm = torch.zeros(plan.height, plan.width, dtype=torch.float64)
    for iy, y0 in enumerate(plan.ys):
        for ix, x0 in enumerate(plan.xs):
            tile = x[..., y0:y0 + plan.tile_h, x0:x0 + plan.tile_w]
            y = fn(tile)
            if out is None:
                out = torch.zeros(*y.shape[:-2], plan.height, plan.width, dtype=out_dtype, device=y.device)
            w2 = wy[iy][:, None] * wx[ix][None, :]
            weight = w2.to(dtype=out_dtype, device=y.device)
            out[..., y0:y0 + plan.tile_h, x0:x0 + plan.tile_w] += y.to(out_dtype) * weight
            norm[y0:y0 + plan.tile_h, x0:x0 + plan.tile_w] += w2
    assert out is not None
    if not torch.allclose(norm, torch.ones_like(norm), atol=1e-6):  # pragma: no cover - invariant
        raise RuntimeError("tile weights do not sum to one; tiling plan is inconsistent")
    return out


# ---------------------------------------------------------------------------------------------
# normalisation statistics shared across tiles


def _stats_groupnorm(m: nn.GroupNorm, x: Tensor) -> tuple[Tensor, Tensor]:
    xf = x.float().reshape(x.shape[0], m.num_groups, -1)
    var, mean = torch.var_mean(xf, dim=2, correction=0)
    return mean, var


def _apply_groupnorm(m: nn.GroupNorm, x: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
    mean, var = stats
    b, c = x.shape[:2]
    g = m.num_groups
    rstd = torch.rsqrt(var + m.eps)  # (B, G)
    scale = rstd.repeat_interleave(c // g, dim=1)  # (B, C)
    shift = -(mean * rstd).repeat_interleave(c // g, dim=1)
    if m.affine:
        scale = scale * m.weight.float()
        shift = shift * m.weight.float() + m.bias.float()
    return (x.float() * scale[:, :, None, None] + shift[:, :, None, None]).to(x.dtype)


def _stats_instancenorm(m: nn.InstanceNorm2d, x: Tensor) -> tuple[Tensor, Tensor]:
    var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0)
    return mean, var


def _apply_instancenorm(m: nn.InstanceNorm2d, x: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
    mean, var = stats
    rstd = torch.rsqrt(var + m.eps)
    scale, shift = rstd, -mean * rstd
    if m.affine:
        scale = scale * m.weight.float()
        shift = shift * m.weight.float() + m.bias.float()
    return (x.float() * scale[:, :, None, None] + shift[:, :, None, None]).to(x.dtype)


def normalisation_modules(model: nn.Module) -> list[nn.Module]:
    """Modules of ``model`` whose statistics depend on the whole feature map.

    ``nn.GroupNorm``, ``nn.InstanceNorm2d`` and any module with ``compute_stats(x)`` and
    ``apply_stats(x, stats)`` methods (facetoon's own norm layers).
    """
    return [m for m in model.modules()
            if isinstance(m, (nn.GroupNorm, nn.InstanceNorm2d))
            or (callable(getattr(m, "compute_stats", None)) and callable(getattr(m, "apply_stats", None)))]


def _stats_fns(m: nn.Module) -> tuple[Callable, Callable]:
    if isinstance(m, nn.GroupNorm):
        return (lambda x: _stats_groupnorm(m, x)), (lambda x, s: _apply_groupnorm(m, x, s))
    if isinstance(m, nn.InstanceNorm2d):
        return (lambda x: _stats_instancenorm(m, x)), (lambda x, s: _apply_instancenorm(m, x, s))
    return m.compute_stats, m.apply_stats  # type: ignore[return-value]


_MODEL_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The one re-entrant lock of ``model`` (this instance), the same for every caller.

    Hold it around a whole :class:`NormStatsCache` record-and-replay sequence (and any other
    forward of ``model`` that may overlap one): the cache patches ``model``'s norm layers, so
    a second thread running the same instance meanwhile would use the wrong statistics. Models
    that are different instances never share a lock; the entry goes when the model is freed.
    """
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


class NormStatsCache:
    """Record normalisation statistics on one forward pass, then reuse them on later passes.

    >>> cache = NormStatsCache(model)          # doctest: +SKIP
    >>> with cache.recording():                # doctest: +SKIP
    ...     model(small_whole_image)
    >>> with cache.replaying():                # doctest: +SKIP
    ...     tiles = [model(t) for t in tiles_of_big_image]

    Not thread-safe on its own: hold :func:`model_lock` of ``model`` around the two passes.
    Each normalisation module must run exactly once per forward pass (true of facetoon's models).
    The batch size of the replayed passes must equal that of the recorded pass. A model that
    manages its own statistics (methods ``record_norm_stats()`` and ``replay_norm_stats()``
    returning context managers, like the fused AnimeGAN inference module) is delegated to.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.delegate = callable(getattr(model, "record_norm_stats", None)) and \
            callable(getattr(model, "replay_norm_stats", None))
        self.modules = [] if self.delegate else normalisation_modules(model)
        self.stats: dict[int, object] = {}

    @contextmanager
    def _patched(self, make: Callable[[nn.Module, int], Callable[[Tensor], Tensor]]) -> Iterator[None]:
        for i, m in enumerate(self.modules):
            m.forward = make(m, i)  # instance attribute shadows the class
        try:
            yield
        finally:
            for m in self.modules:
                if "forward" in m.__dict__:
                    del m.forward

    def recording(self) -> AbstractContextManager[None]:
        if self.delegate:
            return self.model.record_norm_stats()  # type: ignore[operator]
        self.stats = {}

        def make(m: nn.Module, i: int) -> Callable[[Tensor], Tensor]:
            compute, apply = _stats_fns(m)

            def forward(x: Tensor) -> Tensor:
                s = compute(x)
                self.stats[i] = s
                return apply(x, s)
            return forward

        return self._patched(make)

    def replaying(self) -> AbstractContextManager[None]:
        if self.delegate:
            return self.model.replay_norm_stats()  # type: ignore[operator]
        if len(self.stats) != len(self.modules):
            raise RuntimeError("NormStatsCache.replaying() before a complete recording pass")

        def make(m: nn.Module, i: int) -> Callable[[Tensor], Tensor]:
            _, apply = _stats_fns(m)
            return lambda x: apply(x, self.stats[i])

        return self._patched(make)


def downscale_to(x: Tensor, max_pixels: int, multiple: int = 1) -> Tensor:
    """Area-downscale ``(B, C, H, W)`` so that ``H * W <= max_pixels`` (sides multiples of ``multiple``)."""
    h, w = x.shape[-2:]
    if h * w <= max_pixels:
        return x
    s = math.sqrt(max_pixels / (h * w))
    nh = max(multiple, int(h * s) // multiple * multiple)
    nw = max(multiple, int(w * s) // multiple * multiple)
    return F.interpolate(x, size=(nh, nw), mode="area")
