"""Stable faces over video frames: tracks, optical-flow propagation, One-Euro smoothing, fades.

    >>> tracker = FaceTracker(smoothing=0.5)
    >>> for i, frame in enumerate(frames):                          # doctest: +SKIP
    ...     found = detect_faces(frame) if i % 5 == 0 else None      # detect every 5th frame
    ...     for tf in tracker.update(frame, t=i / fps, detections=found):
    ...         tf.face, tf.opacity                                   # smoothed Face, 0..1

How a frame is handled by :meth:`FaceTracker.update`:

1. **Propagate.** Each track's landmarks are carried from the previous frame to this one by
   the motion of feature points inside the face box (pyramidal Lucas-Kanade optical flow,
   checked forward and backward, then a similarity transform fitted with RANSAC). A track
   whose points cannot be followed (the face left the frame, a cut) is *lost*: its landmarks
   freeze and it fades out. With ``flow=False`` landmarks are simply carried forward.
2. **Associate** (frames with detections only). Detections are matched to tracks greedily by
   box overlap (IoU), or by centre distance for small boxes that moved; a matched track takes
   the detector's landmarks as its measurement; a detection without a track starts one; a
   track without a detection counts a miss.
3. **Smooth.** Each track's landmarks go through its own :class:`OneEuroFilter`, in units of
   the face size so the behaviour does not depend on the resolution: still faces are smoothed
   strongly (low cut-off), moving faces follow with little lag (the cut-off rises with speed,
   whether the face pans, grows or rolls).
   A measurement more than one face size away from the filter's state (a cut) resets it.
4. **Fade.** A new track's opacity rises from 0 to 1 over ``fade_frames`` frames (faces found
   on the very first frame start at 1: there is nothing to fade from); a track
   that is lost or missed by more than ``max_missed`` detections in a row fades out the same
   way and is then dropped. The pipeline multiplies the face's blend mask by the opacity.

Coordinates are ``(x, y)`` image pixels (pixel centres at integers), as in :mod:`facetoon.face`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..face.landmarks import named_points
from ..face.types import Face

__all__ = ["FaceTracker", "OneEuroFilter", "TrackedFace", "smoothing_params"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- One-Euro filter


def _alpha(dt: float, cutoff: float) -> float:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` Hz over ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def _rms_speed(velocity: np.ndarray, points: np.ndarray) -> float:
    """RMS over the points of their speed, ``sqrt(mean_i |v_i|^2)``, for their motion as a whole.

    ``velocity`` (per-point derivatives) is first projected (least squares) on the motions of
    ``points`` as a whole: translation, rotation and uniform scaling about their centroid; the
    RMS of the projected per-point speeds is returned. A face that pans, zooms or rolls moves
    (almost) like that, so this is the RMS of its points' speeds; the rest is mostly detector
    jitter of single landmarks, which an RMS would not average out (a still face would lose its
    smoothing, the more so the more landmarks). Not the norm of the *mean* velocity either: that
    is about 0 when the points move apart (zoom) or around (roll) and the filter would lag.

    Both ``(N, 2)``; points of another dimension: the plain RMS of the per-point speeds.
    """
    v = velocity.reshape(-1, velocity.shape[-1])
    if v.shape[-1] != 2:
        return float(np.sqrt(np.mean(np.sum(v * v, axis=1))))
    q = points.reshape(-1, 2) - points.reshape(-1, 2).mean(axis=0)
    mean = v.mean(axis=0)
    speed2 = float(mean @ mean)  # translation
    spread = float(np.sum(q * q))
    if spread > 0.0:  # the translation, scaling (q) and rotation (q turned 90 deg) fields are orthogonal
        grow = float(np.sum(v * q))
        turn = float(np.sum(v[:, 1] * q[:, 0] - v[:, 0] * q[:, 1]))
        speed2 += (grow * grow + turn * turn) / (spread * len(q))
    return math.sqrt(speed2)


class OneEuroFilter:
    """One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) for a set of 2-D points.

    A low-pass filter whose cut-off frequency rises with the signal's speed:
    ``cutoff = min_cutoff + beta * speed``. Slow or still signals are smoothed strongly
    (jitter removed); fast ones pass with little lag. Time steps may vary (VFR video).

    Here the signal is an ``(N, 2)`` array of points; one cut-off is shared by all points (so
    the shape is not distorted), computed from the RMS speed of the points divided by
    ``scale`` (pass the face size: speeds are then in face sizes per second). The speed is that
    of the points' motion as a whole — translation, rotation, scaling (see :func:`_rms_speed`):
    a face that pans, grows (zoom) or rolls raises the cut-off alike, while the independent
    jitter of single landmarks does not.
    The derivative itself is low-passed per point, as in the paper.

    Args:
        min_cutoff: cut-off frequency at rest, in Hz (lower = smoother, more lag).
        beta: cut-off increase per unit of speed (``Hz / (scale per second)``; higher = less lag
            when moving).
        d_cutoff: cut-off of the low-pass on the speed estimate, in Hz.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if not min_cutoff > 0 or not d_cutoff > 0 or not beta >= 0:
            raise ConfigError(f"OneEuroFilter: need min_cutoff > 0, d_cutoff > 0, beta >= 0; got "
                              f"{min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next value passes unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    @property
    def value(self) -> np.ndarray | None:
        """The last filtered value (``None`` before the first call)."""
        return None if self._x is None else self._x.copy()

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """Filter the measurement ``x`` (``(N, 2)`` float) taken at time ``t`` (seconds)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._dx is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if dt <= 0:  # repeated timestamp: treat as one millisecond
            dt = 1e-3
        self._t = float(t)
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(dt, self.d_cutoff) * (dx - self._dx)
        speed = _rms_speed(self._dx, self._x) / max(scale, 1e-9)
        cutoff = self.min_cutoff + self.beta * speed
        self._x = self._x + _alpha(dt, cutoff) * (x - self._x)
        return self._x.copy()


def smoothing_params(smoothing: float) -> tuple[float, float] | None:
    """``(min_cutoff Hz, beta)`` of the One-Euro filter for a smoothing strength in ``[0, 1]``.

    0 disables smoothing (``None``); 0.5 (the default) is a cut-off of 1 Hz at rest; each
    quarter step scales the cut-off by about 2.8 (0.25: 2.8 Hz, 0.75: 0.35 Hz, 1: 0.125 Hz).
    ``beta`` makes the cut-off rise by 20 Hz per face size per second of motion, so a moving
    face is followed with little lag.
    """
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing <= 1.0:
        raise ConfigError(f"smoothing: expected a number in [0, 1], got {smoothing!r}")
    if smoothing == 0:
        return None
    return 8.0 ** (1.0 - 2.0 * float(smoothing)), 20.0


# --------------------------------------------------------------------------- tracks


@dataclass(eq=False)
class TrackedFace:
    """A face of one frame as the tracker sees it.

    Attributes:
        track_id: identity of the face across frames (0, 1, 2... in order of appearance).
        face: the :class:`~facetoon.face.Face` with **smoothed** landmarks (and the named points
            derived from them), in this frame's pixels: feed it to the alignment.
        opacity: in ``[0, 1]``; how much of the stylized face to blend in (fades).
        detected: the detector measured this face on this frame (else: propagated).
        measured: ``(N, 2)`` landmarks before smoothing (detection or flow), image pixels.
    """

    track_id: int
    face: Face
    opacity: float
    detected: bool
    measured: np.ndarray


@dataclass(eq=False)
class _Track:
    track_id: int
    landmarks: np.ndarray  # raw measurement (N, 2), image pixels
    center: np.ndarray  # centre of the detector box (2,)
    half: np.ndarray  # half width/height of the detector box (2,)
    size: float
    scheme: str
    backend: str
    score: float
    filter: OneEuroFilter | None
    opacity: float = 0.0
    missed: int = 0
    lost: bool = False
    detected: bool = True
    smoothed: np.ndarray | None = None
    features: np.ndarray | None = field(default=None, repr=False)  # (K, 1, 2) float32 flow points

    def box(self) -> tuple[float, float, float, float]:
        (cx, cy), (hw, hh) = self.center, self.half
        return (float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


class FaceTracker:
    """Face tracks over the frames of a video (see the module docstring).

    Args:
        smoothing: strength in ``[0, 1]`` (0 = raw landmarks), see :func:`smoothing_params`.
        min_cutoff, beta: set the One-Euro parameters directly (override ``smoothing``).
        d_cutoff: cut-off of the speed estimate (Hz).
        fade_frames: frames over which a face fades in or out (0 = pop).
        max_missed: detections in a row a track may miss before it fades out.
        flow: propagate landmarks between detections with optical flow (else carry forward).
        match_iou: least box overlap for a detection to continue a track.
        detection_gain: with flow, how far a detection pulls the flow-propagated landmarks
            towards itself (1 = replace them; the default 0.5 halves the detector's own jitter
            while flow drift is still corrected within a few detections). Detections further
            than a quarter of the face size from the prediction replace it.

    Raises:
        ConfigError: an invalid option.
    """

    def __init__(
        self,
        *,
        smoothing: float = 0.5,
        min_cutoff: float | None = None,
        beta: float | None = None,
        d_cutoff: float = 1.0,
        fade_frames: int = 6,
        max_missed: int = 1,
        flow: bool = True,
        match_iou: float = 0.2,
        detection_gain: float = 0.5,
    ) -> None:
        params = smoothing_params(smoothing)
        if min_cutoff is not None or beta is not None:
            base = params or (1.0, 0.0)
            params = (base[0] if min_cutoff is None else float(min_cutoff),
                      base[1] if beta is None else float(beta))
        if params is not None:
            OneEuroFilter(params[0], params[1], d_cutoff)  # validates
        self._params = params
        self.d_cutoff = float(d_cutoff)
        if isinstance(fade_frames, bool) or not isinstance(fade_frames, int) or fade_frames < 0:
            raise ConfigError(f"fade_frames: expected an integer >= 0, got {fade_frames!r}")
        if isinstance(max_missed, bool) or not isinstance(max_missed, int) or max_missed < 0:
            raise ConfigError(f"max_missed: expected an integer >= 0, got {max_missed!r}")
        if isinstance(detection_gain, bool) or not isinstance(detection_gain, (int, float)) \
                or not 0.0 < detection_gain <= 1.0:
            raise ConfigError(f"detection_gain: expected a number in (0, 1], got {detection_gain!r}")
        self.detection_gain = float(detection_gain)
        if not 0.0 < match_iou <= 1.0:
            raise ConfigError(f"match_iou: expected a number in (0, 1], got {match_iou!r}")
        self.fade_frames = fade_frames
        self.max_missed = max_missed
        self.flow = bool(flow)
        self.match_iou = float(match_iou)
        self.reset()

    def reset(self) -> None:
        """Drop every track (e.g. after a seek)."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._prev_gray: np.ndarray | None = None
        #: tracks created so far
        self.tracks_started = 0
        self._frames = 0
        #: set when a track was lost by the flow: detecting on the next frame helps
        self.wants_detection = True

    @property
    def active(self) -> int:
        """Number of current tracks (fading ones included)."""
        return len(self._tracks)

    # ----------------------------------------------------------------- the update

    def update(self, image: np.ndarray, t: float,
               detections: Sequence[Face] | None = None) -> list[TrackedFace]:
        """Advance to a new frame.

        Args:
            image: the frame, ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` gray); only used for flow.
            t: its time in seconds (increasing; steps may vary).
            detections: the faces the detector found on this frame, or ``None`` when the
                detector did not run on it.

        Returns:
            The faces to stylize on this frame, largest first (opacity > 0 only).
        """
        self.wants_detection = False
        gray = _gray(image) if self.flow else None
        predicted = gray is not None and self._prev_gray is not None and self._prev_gray.shape == gray.shape
        if predicted and gray is not None and self._prev_gray is not None:
            for track in self._tracks:
                if not track.lost:
                    self._propagate(track, self._prev_gray, gray)
        for track in self._tracks:
            track.detected = False
        if detections is not None:
            self._associate(list(detections), predicted)
            self.wants_detection = False  # just detected
        out: list[TrackedFace] = []
        step = 1.0 if self.fade_frames == 0 else 1.0 / self.fade_frames
        kept: list[_Track] = []
        for track in self._tracks:
            visible = not track.lost and track.missed <= self.max_missed
            track.opacity = min(1.0, track.opacity + step) if visible else max(0.0, track.opacity - step)
            if not visible and track.opacity <= 0.0:
                log.debug("track %d ended", track.track_id)
                continue
            kept.append(track)
            smoothed = self._smooth(track, t)
            out.append(TrackedFace(track_id=track.track_id, face=self._face(track, smoothed),
                                   opacity=track.opacity, detected=track.detected,
                                   measured=track.landmarks.copy()))
            if gray is not None and not track.lost:
                track.features = self._features(gray, track)
        self._tracks = kept
        self._prev_gray = gray
        self._frames += 1
        out.sort(key=lambda tf: -tf.face.size)
        return out

    # ----------------------------------------------------------------- steps

    def _propagate(self, track: _Track, prev: np.ndarray, gray: np.ndarray) -> None:
        """Move the track's landmarks and box by the optical flow of its feature points."""
        import cv2

        pts = track.features
        if pts is None or len(pts) < 4:
            track.lost = True
            self.wants_detection = True
            return
        win = int(np.clip(round(track.size / 6), 9, 31)) | 1
        lk = {"winSize": (win, win), "maxLevel": 3,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
        flow: Any = cv2.calcOpticalFlowPyrLK
        nxt, st1, _ = flow(prev, gray, pts, None, **lk)
        back, st2, _ = flow(gray, prev, nxt, None, **lk)
        tol = max(0.5, 0.01 * track.size)
        fb = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < tol)
        h, w = gray.shape[:2]
        q = nxt.reshape(-1, 2)
        good &= (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
        if good.sum() < max(4, len(pts) // 4):
            track.lost = True
            self.wants_detection = True
            log.debug("track %d lost by the flow (%d of %d points)", track.track_id, int(good.sum()),
                      len(pts))
            return
        src, dst = pts.reshape(-1, 2)[good], q[good]
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                           ransacReprojThreshold=max(1.0, 2 * tol), maxIters=200,
                                           confidence=0.99)
        if m is None:
            track.lost = True
            self.wants_detection = True
            return
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        track.landmarks = track.landmarks @ m[:, :2].T + m[:, 2]
        track.center = m[:, :2] @ track.center + m[:, 2]
        track.half = track.half * scale
        track.size *= scale

    def _associate(self, detections: list[Face], predicted: bool) -> None:
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            tb = track.box()
            for di, det in enumerate(detections):
                iou = _iou(tb, det.box)
                dc = np.hypot((det.box[0] + det.box[2]) / 2 - track.center[0],
                              (det.box[1] + det.box[3]) / 2 - track.center[1])
                # a lost track's box stayed where the flow lost it: accept a wider move
                near = dc < (1.0 if track.lost else 0.4) * max(track.size, det.size or 1.0)
                if iou >= self.match_iou or near:
                    pairs.append((iou + (0.01 if near else 0.0), ti, di))
        pairs.sort(reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            self._measure(self._tracks[ti], detections[di], predicted)
        for ti, track in enumerate(self._tracks):
            if ti not in used_t:
                track.missed += 1
        for di, det in enumerate(detections):
            if di not in used_d:
                self._start(det)

    def _measure(self, track: _Track, det: Face, predicted: bool) -> None:
        lm = np.asarray(det.landmarks, dtype=np.float64)
        if lm.shape != track.landmarks.shape:  # another landmark model: start over
            track.filter = self._new_filter()
            track.scheme = det.scheme
            predicted = False
        g = self.detection_gain
        if predicted and g < 1.0 and not track.lost:
            gap = float(np.sqrt(np.mean(np.sum((lm - track.landmarks) ** 2, axis=1))))
            if gap < 0.25 * track.size:  # fuse with the flow prediction
                lm = track.landmarks + g * (lm - track.landmarks)
        track.landmarks = lm.copy()
        x0, y0, x1, y1 = det.box
        track.center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        track.half = np.array([(x1 - x0) / 2, (y1 - y0) / 2])
        track.size = float(det.size or max(x1 - x0, y1 - y0))
        track.score = float(det.score)
        track.missed = 0
        track.lost = False
        track.detected = True

    def _start(self, det: Face) -> None:
        x0, y0, x1, y1 = det.box
        track = _Track(
            track_id=self._next_id,
            landmarks=np.asarray(det.landmarks, dtype=np.float64).copy(),
            center=np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
            half=np.array([(x1 - x0) / 2, (y1 - y0) / 2]),
            size=float(det.size or max(x1 - x0, y1 - y0)),
            scheme=det.scheme,
            backend=det.backend,
            score=float(det.score),
            filter=self._new_filter(),
            # faces already there on the first frame are shown at once; later ones fade in
            opacity=1.0 if self._frames == 0 else 0.0,
        )
        self._next_id += 1
        self.tracks_started += 1
        self._tracks.append(track)
        log.debug("track %d started at %s", track.track_id, det)

    def _new_filter(self) -> OneEuroFilter | None:
        if self._params is None:
            return None
        return OneEuroFilter(self._params[0], self._params[1], self.d_cutoff)

    def _smooth(self, track: _Track, t: float) -> np.ndarray:
        if track.filter is None:
            track.smoothed = track.landmarks.copy()
            return track.smoothed
        state = track.filter.value
        if state is not None and state.shape == track.landmarks.shape:
            jump = float(np.linalg.norm(state.mean(axis=0) - track.landmarks.mean(axis=0)))
            if jump > track.size:  # a cut or a re-identification far away: no smoothing across it
                track.filter.reset()
        track.smoothed = track.filter(track.landmarks, t, scale=track.size)
        return track.smoothed

    def _face(self, track: _Track, landmarks: np.ndarray) -> Face:
        shift = landmarks.mean(axis=0) - track.landmarks.mean(axis=0)
        cx, cy = track.center + shift
        hw, hh = track.half
        try:
            points, estimated = named_points(landmarks, track.scheme)
        except ValueError:  # a layout without named points (custom backends)
            points, estimated = {}, frozenset()
        return Face(box=(float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh)), landmarks=landmarks,
                    score=track.score, points=points, estimated=estimated, scheme=track.scheme,
                    size=float(track.size), backend=track.backend)

    def _features(self, gray: np.ndarray, track: _Track) -> np.ndarray | None:
        """Corners to follow inside the face box (plus the landmarks themselves)."""
        import cv2

        h, w = gray.shape[:2]
        cx, cy = track.center
        hw, hh = 0.9 * track.half
        x0, y0 = int(max(0, math.floor(cx - hw))), int(max(0, math.floor(cy - hh)))
        x1, y1 = int(min(w, math.ceil(cx + hw))), int(min(h, math.ceil(cy + hh)))
        lm = track.landmarks.astype(np.float32).reshape(-1, 1, 2)
        inside = (lm[:, 0, 0] >= 0) & (lm[:, 0, 0] <= w - 1) & (lm[:, 0, 1] >= 0) & (lm[:, 0, 1] <= h - 1)
        lm = lm[inside]
        if x1 - x0 < 8 or y1 - y0 < 8:
            return lm if len(lm) else None
        roi = gray[y0:y1, x0:x1]
        corners = cv2.goodFeaturesToTrack(roi, maxCorners=60, qualityLevel=0.01,
                                          minDistance=max(2.0, track.size / 16), blockSize=5)
        if corners is None:
            return lm if len(lm) else None
        corners = corners.astype(np.float32) + np.array([x0, y0], dtype=np.float32)
        return np.concatenate([corners, lm], axis=0)
