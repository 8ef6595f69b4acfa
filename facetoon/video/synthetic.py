"""Synthetic test clips: real face photos panned across a background, with a sine soundtrack.

Used by the tests and by ``benchmarks/bench_video.py``; handy to try the video path without a
camera file. The ground truth (where each face is on each frame) is returned with the clip, so
tracking and smoothing can be measured against the true motion.

    >>> from facetoon.video.synthetic import FaceSprite, make_clip
    >>> sprite = FaceSprite.from_photo("examples/astronaut.png", box=(177, 82, 273, 178))
    >>> clip = make_clip("pan.mp4", [sprite], size=(320, 240), n_frames=72)     # doctest: +SKIP
    >>> clip.positions[:, 0]    # (n_frames, 2) top-left of the face sprite, frame pixels

Frames are drawn with sub-pixel positions (bicubic warp) and encoded with libx264 (CRF 20), so
they carry real compression noise. Audio: a 440 Hz sine, AAC, 44.1 kHz mono.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FaceSprite", "SyntheticClip", "make_background", "make_clip", "read_audio_packets"]

#: time base of the synthetic clips' frame timestamps (divisible by 24, 25, 30, 48, 50, 60 fps)
TIME_BASE = Fraction(1, 1200)


@dataclass(frozen=True, eq=False)
class FaceSprite:
    """A face cut from a photo with a soft elliptical alpha.

    Attributes:
        image: ``(h, w, 3)`` uint8 RGB.
        alpha: ``(h, w)`` float32 in ``[0, 1]``.
    """

    image: np.ndarray
    alpha: np.ndarray

    @classmethod
    def from_photo(cls, photo: Any, box: tuple[float, float, float, float], margin: float = 0.45,
                   height: int | None = None) -> FaceSprite:
        """Cut the face in ``box`` (``x0, y0, x1, y1``) out of ``photo`` with ``margin`` x its size around.

        ``height``: resize the cut to this many pixels tall.
        """
        import cv2

        from ..io import read_image

        img = read_image(photo)
        x0, y0, x1, y1 = box
        s = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w, half_h = s * (0.5 + margin), s * (0.5 + margin * 1.2)
        ax0, ay0 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
        ax1, ay1 = int(min(img.shape[1], cx + half_w)), int(min(img.shape[0], cy + half_h))
        cut = np.ascontiguousarray(img[ay0:ay1, ax0:ax1])
        if height is not None:
            k = height / cut.shape[0]
            cut = cv2.resize(cut, (max(1, round(cut.shape[1] * k)), height), interpolation=cv2.INTER_AREA)
        h, w = cut.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.sqrt(((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2)
        alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0).astype(np.float32)
        return cls(image=cut, alpha=alpha)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(eq=False)
class SyntheticClip:
    """A clip written by :func:`make_clip` and its ground truth.

    Attributes:
        path: the file.
        width, height: upright frame size.
        fps: nominal frame rate.
        pts: timestamps of the frames in :data:`TIME_BASE` units as given to the encoder.
        positions: ``(n_frames, n_faces, 2)`` float64 top-left of each sprite on each frame
            (upright frame pixels); NaN where the face is not shown.
        sizes: ``(width, height)`` of each sprite.
        frames: the upright RGB frames as drawn (before compression), if kept.
    """

    path: Path
    width: int
    height: int
    fps: int
    pts: list[int]
    positions: np.ndarray
    sizes: list[tuple[int, int]] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def n_frames(self) -> int:
        return len(self.pts)


def make_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful ``(height, width, 3)`` uint8 RGB scene with some texture."""
    import cv2

    rng = np.random.default_rng(seed)
    low = rng.uniform(40, 220, size=(4, 6, 3)).astype(np.float32)
    base = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(rng.normal(0, 18, size=(height, width, 3)).astype(np.float32), (0, 0), 2.0)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _paste(canvas: np.ndarray, sprite: FaceSprite, x: float, y: float) -> None:
    """Alpha-composite ``sprite`` with its top-left at sub-pixel ``(x, y)`` (in place)."""
    import cv2

    h, w = canvas.shape[:2]
    m = np.array([[1.0, 0.0, x], [0.0, 1.0, y]])
    img = cv2.warpAffine(sprite.image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(sprite.alpha, m, (w, h), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT)[..., None]
    canvas[:] = np.clip(canvas * (1 - a) + img.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)


def make_clip(
    path: str | os.PathLike[str],
    sprites: Sequence[FaceSprite],
    *,
    size: tuple[int, int] = (320, 240),
    n_frames: int = 72,
    fps: int = 24,
    paths: Sequence[tuple[tuple[float, float], tuple[float, float]]] | None = None,
    visible: Sequence[tuple[int, int]] | None = None,
    background: np.ndarray | None = None,
    times: Sequence[float] | None = None,
    rotation: int = 0,
    audio: bool = True,
    audio_codec: str = "aac",
    audio_seconds: float | None = None,
    keep_frames: bool = False,
    crf: int = 20,
    hold: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> SyntheticClip:
    """Write a clip of ``sprites`` moving in straight lines across a background.

    Args:
        path: output file (``.mp4``, ``.mkv``...).
        sprites: the faces.
        size: upright ``(width, height)``.
        n_frames: frames.
        fps: nominal frame rate.
        paths: per sprite, start and end top-left position in pixels (default: left to right
            through the middle).
        visible: per sprite, ``[first, last)`` frames on which it is drawn.
        background: ``(height, width, 3)`` uint8 RGB (default :func:`make_background`).
        times: frame times in seconds for a variable frame rate (default ``i / fps``); rounded
            to :data:`TIME_BASE`.
        rotation: store the frames rotated and set this display rotation (counter-clockwise
            degrees, multiple of 90), like a phone does; the upright clip is what plays.
        audio: add a 440 Hz sine soundtrack of the clip's length (``audio_codec``: ``"aac"``,
            ``"pcm_s16le"``, ``"libopus"``...); ``audio_seconds``: its length if not the clip's
            (e.g. a soundtrack that runs on after the last frame).
        keep_frames: keep the drawn upright frames in the result.
        crf: x264 quality.
        hold: fraction of the clip at the end during which the faces stay still at their end
            positions (a moving part, then a still part).
        noise: standard deviation of Gaussian sensor noise added to every frame (0-255 levels).
        seed: seed of the noise.
    """
    import av

    width, height = size
    bg = make_background(width, height) if background is None else background
    if paths is None:
        paths = [((-0.1 * width, 0.5 * height - s.size[1] / 2),
                  (0.9 * width - s.size[0], 0.5 * height - s.size[1] / 2)) for s in sprites]
    if visible is None:
        visible = [(0, n_frames)] * len(sprites)
    if times is None:
        times = [i / fps for i in range(n_frames)]
    pts = [int(round(t / TIME_BASE)) for t in times]
    if any(b <= a for a, b in zip(pts, pts[1:])):
        raise ValueError("frame times must increase by at least one time-base tick")
    positions = np.full((n_frames, len(sprites), 2), np.nan)
    k = rotation // 90 % 4
    sw, sh = (height, width) if k % 2 else (width, height)
    out = av.open(os.fspath(path), "w")
    try:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = sw, sh, "yuv420p"
        vs.codec_context.time_base = TIME_BASE
        vs.time_base = TIME_BASE
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        if rotation:
            vs.set_display_rotation(rotation)
        astream: Any = None
        if audio:
            astream = out.add_stream(audio_codec, rate=44100)
            astream.layout = "mono"
        kept: list[np.ndarray] = []
        rng = np.random.default_rng(seed)
        moving = max(1.0, (n_frames - 1) * (1.0 - hold))
        for i in range(n_frames):
            canvas = bg.copy()
            u = min(1.0, i / moving)
            for j, (sprite, ((x0, y0), (x1, y1)), (a, b)) in enumerate(zip(sprites, paths, visible)):
                if not a <= i < b:
                    continue
                x = x0 + (x1 - x0) * u
                y = y0 + (y1 - y0) * u + 3.0 * math.sin(2 * math.pi * u)
                positions[i, j] = (x, y)
                _paste(canvas, sprite, x, y)
            if noise > 0:
                canvas = np.clip(canvas + rng.normal(0.0, noise, canvas.shape), 0, 255).astype(np.uint8)
            if keep_frames:
                kept.append(canvas.copy())
            stored = np.ascontiguousarray(np.rot90(canvas, k=-k)) if k else canvas
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = pts[i]
            frame.time_base = TIME_BASE
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if astream is not None:
            _encode_sine(out, astream, times[-1] + 1.0 / fps if audio_seconds is None else audio_seconds)
    finally:
        out.close()
    return SyntheticClip(path=Path(path), width=width, height=height, fps=fps, pts=pts, positions=positions,
                         sizes=[s.size for s in sprites], frames=kept)


def _encode_sine(out: Any, stream: Any, seconds: float) -> None:
    import av

    rate = 44100
    total = int(round(seconds * rate))
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    chunk = stream.codec_context.frame_size or 1024
    for s in range(0, total, chunk):
        k = np.arange(s, min(s + chunk, total))
        x = 0.3 * np.sin(2 * np.pi * 440.0 * k / rate)
        data: np.ndarray = (x * 32767).astype(np.int16)[None] if fmt.startswith("s16") \
            else x.astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = s
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def read_audio_packets(path: str | os.PathLike[str]) -> list[tuple[float, bytes]]:
    """``(time in seconds, payload bytes)`` of every audio packet of the first audio stream."""
    import av

    with av.open(os.fspath(path)) as c:
        if not c.streams.audio:
            return []
        s = c.streams.audio[0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.size and p.pts is not None]
