"""The video frame loop: decode, track, stylize and encode in overlapping threads.

    >>> import facetoon
    >>> facetoon.stylize_video("clip.mp4", "anime.mp4")                       # doctest: +SKIP
    >>> facetoon.stylize_video("clip.mp4", "preview.mp4", start=12, duration=3,
    ...                        precision="fast", detect_every=5)             # doctest: +SKIP

Four stages connected by bounded queues (so memory stays flat and every stage works at once):

1. **decode** (thread): :class:`~facetoon.video.reader.VideoReader` -> upright RGB frames with
   their timestamps and the audio packets that precede them;
2. **track** (thread): the detector runs on every ``detect_every``-th frame (and on the frame
   after a face was lost); :class:`~facetoon.video.tracking.FaceTracker` carries, smooths and
   fades the faces in between;
3. **stylize** (calling thread): frames go in batches of ``batch_size`` through the frame
   stylizer — for a facetoon :class:`~facetoon.pipeline.Stylizer` the face crops of the whole
   batch go through the face model in one call;
4. **encode** (thread): :class:`~facetoon.video.writer.VideoWriter` encodes each frame at its
   source timestamp and remuxes the audio packets untouched.

Torch, OpenCV, dlib and FFmpeg release the GIL in their heavy parts, so the threads overlap.

Interruption: on Ctrl-C or an error the frames already stylized are written, the container is
finalised — a playable file — and moved to ``<name>.partial<ext>``; a warning says how far it
got, and the exception is raised again (errors other than facetoon's own become a
:class:`~facetoon.errors.VideoError` naming the frame).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._fileutil import same_file
from ..errors import ConfigError, FacetoonError, OutputError, VideoError
from ..face.types import Face
from .reader import DecodedFrame, VideoReader
from .tracking import FaceTracker, TrackedFace
from .writer import OutputPlan, VideoWriter, check_output, partial_path

if TYPE_CHECKING:
    from ..pipeline import Stylizer
    from ..pipeline.options import Keep

__all__ = ["FrameStylizer", "StylizerFrames", "VideoResult", "check_video_job", "process_video", "stylize_video"]

log = logging.getLogger(__name__)

# per-call options of Stylizer.stylize that apply to every frame
_CALL_OPTIONS = frozenset({"strength", "max_faces", "blend", "harmonize"})
# photo-only options
_NOT_FOR_VIDEO = frozenset({"return_details", "require_face"})
_POLL = 0.1  # seconds between checks of the stop flag while waiting on a queue


class _Omitted:
    """Default of an option left out. (The public sentinel, :data:`facetoon.pipeline.options.KEEP`,
    cannot be a default here: importing :mod:`facetoon.pipeline` loads torch, and importing
    :mod:`facetoon.video` must not.)"""


_OMITTED = _Omitted()


class FrameStylizer(Protocol):
    """What the frame loop needs from a stylizer.

    ``detect(image)`` returns the faces of an ``(H, W, 3)`` uint8 RGB frame, largest first.
    ``stylize_batch(images, faces)`` stylizes frames given their (tracked, smoothed) faces and
    returns ``(H, W, 3)`` uint8 RGB frames of the same size, one per input.
    """

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def stylize_batch(self, images: Sequence[np.ndarray],
                      faces: Sequence[Sequence[TrackedFace]]) -> list[np.ndarray]: ...


class _CallableFrames:
    """A ``stylize_frame(image, faces) -> image`` callable as a :class:`FrameStylizer`."""

    def __init__(self, fn: Callable[[np.ndarray, Sequence[TrackedFace]], np.ndarray],
                 detect: Callable[[np.ndarray], list[Face]] | None) -> None:
        self._fn = fn
        self._detect = detect

    def detect(self, image: np.ndarray) -> list[Face]:
        return [] if self._detect is None else list(self._detect(image))

    def stylize_batch(self, images: Sequence[np.ndarray],
                      faces: Sequence[Sequence[TrackedFace]]) -> list[np.ndarray]:
        return [np.asarray(self._fn(img, fs)) for img, fs in zip(images, faces)]


class StylizerFrames:
    """A facetoon :class:`~facetoon.pipeline.Stylizer` driven with tracked faces.

    Detection is the Stylizer's own (:meth:`Stylizer.detect`, with its false-positive guard and
    ``max_faces``). Stylization is :meth:`Stylizer.stylize_batch`: the same stages as
    ``Stylizer.stylize`` for a photo, with the tracker's faces (smoothed landmarks) given instead
    of fresh detections and each face's opacity (fades) as its blend weight; the crops of all
    frames of a batch go through the face model together.

    Args:
        stylizer: the Stylizer (its models are used as loaded).
        strength, max_faces, blend, harmonize: per-call overrides, as in ``Stylizer.stylize``:
            ``None`` — for ``max_faces``, :data:`~facetoon.pipeline.options.KEEP` — or left out
            keeps the Stylizer's own (``max_faces=None`` means all faces).
        face_batch: most face crops per face-model call.

    Raises:
        ConfigError: an invalid option.
    """

    def __init__(self, stylizer: Stylizer, *, strength: float | None = None,
                 max_faces: int | None | Keep | _Omitted = _OMITTED,
                 blend: str | None = None, harmonize: bool | float | None = None,
                 face_batch: int = 8) -> None:
        from ..pipeline.options import KEEP, CallOptions, resolve_call_options

        self.stylizer = stylizer
        own = CallOptions(stylizer.strength, stylizer.max_faces, stylizer.blend, stylizer.harmonize)
        opts = resolve_call_options(own, strength, KEEP if isinstance(max_faces, _Omitted) else max_faces,
                                    blend, harmonize)
        self.strength, self.max_faces, self.blend, self.harmonize = \
            opts.strength, opts.max_faces, opts.blend, opts.harmonize
        self.face_batch = max(1, int(face_batch))

    @property
    def uses_faces(self) -> bool:
        """Whether faces matter (a face model, a non-zero strength, faces allowed)."""
        return self.stylizer.face_model is not None and self.strength > 0 and self.max_faces != 0

    def detect(self, image: np.ndarray) -> list[Face]:
        if not self.uses_faces:
            return []
        return self.stylizer.detect(image, self.max_faces)

    def stylize_batch(self, images: Sequence[np.ndarray],
                      faces: Sequence[Sequence[TrackedFace]]) -> list[np.ndarray]:
        return self.stylizer.stylize_batch(
            images, faces=[[tf.face for tf in fs] for fs in faces],
            face_weights=[[tf.opacity for tf in fs] for fs in faces], strength=self.strength,
            max_faces=self.max_faces, blend=self.blend, harmonize=self.harmonize, face_batch=self.face_batch)


# --------------------------------------------------------------------------- result


@dataclass
class VideoResult:
    """What :func:`stylize_video` did.

    Attributes:
        path: the output file (the ``.partial`` file when ``complete`` is false).
        frames: frames written.
        width, height: output frame size.
        duration: seconds of video written (last timestamp - first + one frame).
        fps: the source's average frame rate.
        seconds: wall-clock time of the run.
        faces: face tracks started (distinct faces seen, roughly).
        detections: frames the detector ran on.
        timings: busy seconds per stage (``decode``, ``track``, ``stylize``, ``encode``); they
            overlap, so their sum exceeds ``seconds`` when the threads work in parallel.
        complete: the whole requested range was written.
    """

    path: Path
    frames: int
    width: int
    height: int
    duration: float
    fps: float
    seconds: float
    faces: int = 0
    detections: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    complete: bool = True

    @property
    def throughput(self) -> float:
        """Frames per second of wall-clock time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- the loop


class _Stop(Exception):
    """Raised inside a worker when the run is being stopped."""


class _Run:
    """Shared state of one run: stop flag, first error, stage timings."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.error_stage = ""
        self.timings = {"decode": 0.0, "track": 0.0, "stylize": 0.0, "encode": 0.0}
        self.lock = threading.Lock()

    def fail(self, stage: str, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error, self.error_stage = exc, stage
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue


_END = object()


@dataclass
class _Counts:
    """Progress of one run (written by the encode and track threads)."""

    written: int = 0
    detections: int = 0
    first_time: float | None = None
    last_time: float | None = None


def process_video(
    reader: VideoReader,
    writer: VideoWriter,
    frames: FrameStylizer,
    tracker: FaceTracker,
    *,
    detect_every: int = 5,
    batch_size: int = 4,
    progress: bool = True,
    shift_time: bool = False,
) -> VideoResult:
    """Run the threaded frame loop from ``reader`` to ``writer`` (see the module docstring).

    The writer is closed (complete output) or aborted (``.partial`` output) here.

    Args:
        reader, writer: open source and destination.
        frames: the frame stylizer (:class:`StylizerFrames` or any :class:`FrameStylizer`).
        tracker: a fresh :class:`FaceTracker`.
        detect_every: run the detector on every N-th frame (1 = every frame).
        batch_size: frames per :meth:`FrameStylizer.stylize_batch` call.
        progress: show a tqdm bar (frames done, rate, ETA) on stderr.
        shift_time: start the output at time 0 (used for ``start > 0`` previews): video and
            audio timestamps move back by the first frame's time.
    """
    try:
        _check_loop_options(detect_every, batch_size)
    except ConfigError:
        writer.abort(keep_partial=False)
        raise
    run = _Run()
    q_frames: queue.Queue[Any] = queue.Queue(maxsize=batch_size + 2)
    q_tracked: queue.Queue[Any] = queue.Queue(maxsize=2 * batch_size)
    q_out: queue.Queue[Any] = queue.Queue(maxsize=2 * batch_size)
    info = reader.info
    total = _expected_frames(reader)
    state = _Counts()
    bar = _progress_bar(total, progress, os.path.basename(os.fspath(writer.path)))
    t0 = time.perf_counter()

    def decode() -> None:
        try:
            it = iter(reader)
            while True:
                t = time.perf_counter()
                item = next(it, None)
                run.timings["decode"] += time.perf_counter() - t
                if item is None:
                    break
                run.put(q_frames, item)
            run.put(q_frames, _END)
        except _Stop:
            pass
        except FacetoonError as exc:
            # bad data (truncated, corrupt): the frames decoded so far still go through and are
            # written, then the error is raised
            with run.lock:
                if run.error is None:
                    run.error, run.error_stage = exc, "decode"
            try:
                run.put(q_frames, _END)
            except _Stop:
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            run.fail("decode", exc)

    def track() -> None:
        try:
            due = 0
            while True:
                item = run.get(q_frames)
                if item is _END:
                    run.put(q_tracked, _END)
                    return
                t = time.perf_counter()
                found = None
                if due <= 0 or tracker.wants_detection:
                    found = frames.detect(item.image)
                    state.detections += 1
                    due = detect_every
                due -= 1
                faces = tracker.update(item.image, item.time, found)
                run.timings["track"] += time.perf_counter() - t
                run.put(q_tracked, (item, faces))
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001
            run.fail("track", exc)

    def encode() -> None:
        shift = 0.0
        try:
            while True:
                try:
                    item = q_out.get(timeout=_POLL)
                except queue.Empty:
                    if run.error is not None and run.error_stage == "encode":
                        return
                    continue
                if item is _END:
                    t = time.perf_counter()
                    # the audio after the last frame; not after an interrupt or a failure, where
                    # frames between the last one written and the end are missing
                    for packet in () if run.stop.is_set() else reader.trailing_audio:
                        writer.mux_audio(packet, shift)
                    run.timings["encode"] += time.perf_counter() - t
                    return
                frame, image = item
                t = time.perf_counter()
                if state.first_time is None:
                    state.first_time = frame.time
                    if shift_time:
                        shift = frame.time
                for packet in frame.audio:
                    writer.mux_audio(packet, shift)
                pts = frame.pts - (round(shift / info.time_base) if shift else 0)
                writer.write(image, pts)
                state.written += 1
                state.last_time = frame.time
                run.timings["encode"] += time.perf_counter() - t
                if bar is not None:
                    bar.update(1)
        except BaseException as exc:  # noqa: BLE001
            run.fail("encode", exc)

    workers = [threading.Thread(target=decode, name="facetoon-decode", daemon=True),
               threading.Thread(target=track, name="facetoon-track", daemon=True)]
    encoder = threading.Thread(target=encode, name="facetoon-encode", daemon=True)
    for th in (*workers, encoder):
        th.start()

    interrupted: BaseException | None = None
    try:
        done = False
        while not done:
            batch: list[tuple[DecodedFrame, list[TrackedFace]]] = []
            while len(batch) < batch_size:
                item = run.get(q_tracked)
                if item is _END:
                    done = True
                    break
                batch.append(item)
            if batch:
                t = time.perf_counter()
                outs = frames.stylize_batch([f.image for f, _ in batch], [fs for _, fs in batch])
                run.timings["stylize"] += time.perf_counter() - t
                if len(outs) != len(batch):
                    raise VideoError(f"the frame stylizer returned {len(outs)} frames for {len(batch)}")
                for (f, _), out in zip(batch, outs):
                    out = np.asarray(out)
                    if out.shape != f.image.shape or out.dtype != np.uint8:
                        raise VideoError(f"the frame stylizer returned {out.dtype} {out.shape} for frame "
                                         f"{f.index}, expected uint8 {f.image.shape}")
                    _put_out(run, q_out, (f, out), encoder)
        _put_out(run, q_out, _END, encoder)
    except _Stop:
        pass
    except BaseException as exc:  # noqa: BLE001 - Ctrl-C included; re-raised below
        interrupted = exc
    finally:
        if interrupted is not None or run.stop.is_set():
            run.stop.set()  # upstream stops; the encoder still drains what was stylized
            with _suppress_interrupts():
                if encoder.is_alive() and not (run.error is not None and run.error_stage == "encode"):
                    _put_final(q_out, encoder)
        for th in workers:
            th.join(timeout=5.0)
        encoder.join()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    written = state.written
    error = interrupted or run.error
    duration = _written_duration(state, info)
    if error is None:
        path = writer.close()
        log.info("wrote %s: %d frames in %.1f s (%.2f frames/s)", path, written, seconds,
                 written / seconds if seconds else 0.0)
        return VideoResult(path=path, frames=written, width=info.width, height=info.height, duration=duration,
                           fps=float(info.fps), seconds=seconds, faces=tracker.tracks_started,
                           detections=state.detections, timings=dict(run.timings))
    partial = writer.abort()
    where = f"{written} of {total or '?'} frames ({duration:.2f} s)"
    kept = f"partial output: {partial}" if partial is not None else "no output kept"
    if isinstance(error, KeyboardInterrupt):
        log.warning("%s: interrupted after %s; %s", reader.path, where, kept)
        raise error
    stage = "" if interrupted is not None else f" in the {run.error_stage} stage"
    log.error("%s: stopped%s after %s; %s", reader.path, stage, where, kept)
    if isinstance(error, VideoError):
        raise VideoError(f"{error.reason}; {kept}", path=error.path) from None
    if isinstance(error, FacetoonError):
        raise error
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    raise VideoError(f"failed{stage} after {where} with {type(error).__name__}: {first}; {kept}",
                     path=reader.path) from error


def _put_out(run: _Run, q: queue.Queue[Any], item: Any, encoder: threading.Thread) -> None:
    while True:
        if run.stop.is_set():
            raise _Stop
        if not encoder.is_alive():
            raise _Stop
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def _put_final(q: queue.Queue[Any], encoder: threading.Thread) -> None:
    """Queue the end marker for the encoder (after an interruption), waiting while it drains."""
    while encoder.is_alive():
        try:
            q.put(_END, timeout=_POLL)
            return
        except queue.Full:
            continue


class _suppress_interrupts:
    """Let a second Ctrl-C during cleanup not abandon the partial file half-written."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is KeyboardInterrupt


def _expected_frames(reader: VideoReader) -> int:
    info = reader.info
    total = info.expected_frames
    if reader.start or reader.duration is not None:
        fps = float(info.fps) if info.fps else 0.0
        length = info.duration if info.duration is not None else (total / fps if fps else 0.0)
        remaining = max(0.0, length - reader.start)
        span = remaining if reader.duration is None else min(reader.duration, remaining)
        total = int(math.ceil(span * fps - 1e-6)) if fps else 0
    return total


def _written_duration(state: _Counts, info: Any) -> float:
    if state.first_time is None or state.last_time is None:
        return 0.0
    step = 1.0 / float(info.fps) if info.fps else 0.0
    return float(state.last_time - state.first_time) + step


def _progress_bar(total: int, enabled: bool, name: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total or None, unit="frame", desc=name, dynamic_ncols=True, leave=True)


# --------------------------------------------------------------------------- public entry point


def _check_loop_options(detect_every: int, batch_size: int) -> None:
    if isinstance(detect_every, bool) or not isinstance(detect_every, int) or detect_every < 1:
        raise ConfigError(f"detect_every: expected an integer >= 1, got {detect_every!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 256:
        raise ConfigError(f"batch_size: expected an integer in 1..256, got {batch_size!r}")


def _open_checked(src: Path, dst: Path, *, codec: str, crf: float | None, preset: str | None,
                  start: float | None, duration: float | None, audio: str, overwrite: bool,
                  detect_every: int, batch_size: int) -> tuple[VideoReader, OutputPlan]:
    """The source opened, once every setting of the job has been checked (no model, no file written),
    and the output's :class:`~facetoon.video.writer.OutputPlan`."""
    if audio not in ("copy", "none"):
        raise ConfigError(f"audio: expected 'copy' or 'none', got {audio!r}")
    _check_loop_options(detect_every, batch_size)
    for target in (dst, partial_path(dst)):  # an interrupted run writes the latter
        if same_file(src, target):
            raise OutputError("refusing to overwrite the input video"
                              + ("" if target == dst else f" (with the partial file {target.name})"),
                              path=dst)
    reader = VideoReader(src, start=start, duration=duration, audio=audio == "copy")
    try:
        info = reader.info
        plan = check_output(dst, width=info.width, height=info.height, codec=codec, crf=crf, preset=preset,
                            colorspace=info.colorspace, transfer=info.transfer, audio=reader.audio_streams,
                            source_codec=info.codec, overwrite=overwrite)
    except BaseException:
        reader.close()
        raise
    return reader, plan


def check_video_job(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    codec: str = "auto",
    crf: float | None = 18,
    preset: str | None = None,
    detect_every: int = 5,
    batch_size: int = 4,
    start: float | None = None,
    duration: float | None = None,
    audio: str = "copy",
    overwrite: bool = True,
) -> None:
    """Check the settings of a :func:`stylize_video` job (same arguments) without loading a model
    or writing anything: the input (opened with ``start``/``duration``), ``dst`` against the input,
    the loop options and every output setting, the encoder's included (:func:`~facetoon.video.
    writer.check_output`). :func:`stylize_video` runs the same checks before it loads a model.

    Raises:
        VideoError, ConfigError, OutputError: as :func:`stylize_video`; the message starts with
            the parameter's name where one is at fault (``"crf: ..."``).
    """
    reader, _ = _open_checked(Path(src), Path(dst), codec=codec, crf=crf, preset=preset, start=start,
                              duration=duration, audio=audio, overwrite=overwrite, detect_every=detect_every,
                              batch_size=batch_size)
    reader.close()


def stylize_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    stylizer: Stylizer | None = None,
    stylize_frame: Callable[[np.ndarray, Sequence[TrackedFace]], np.ndarray] | None = None,
    codec: str = "auto",
    crf: float | None = 18,
    preset: str | None = None,
    detect_every: int = 5,
    smoothing: float = 0.5,
    fade_frames: int = 6,
    batch_size: int = 4,
    start: float | None = None,
    duration: float | None = None,
    audio: str = "copy",
    progress: bool = True,
    overwrite: bool = True,
    **options: Any,
) -> VideoResult:
    """Stylize a video file frame by frame through a :class:`~facetoon.pipeline.Stylizer`.

    The output has the source's resolution (upright: rotation metadata is applied to the
    pixels and not written again), frame rate and frame timestamps (variable frame rates
    included), and the source's audio streams copied packet for packet (no re-encoding).

    Args:
        src: the input video file.
        dst: the output file; ``.mp4`` (default choice), ``.mov``, ``.mkv``, ``.webm`` or ``.avi``.
        stylizer: a ready :class:`~facetoon.pipeline.Stylizer` (models already loaded); by
            default one is built from ``options`` (cached like :func:`facetoon.stylize`'s).
        stylize_frame: instead of a Stylizer, any ``fn(frame, faces) -> frame`` on ``(H, W, 3)``
            uint8 RGB frames and the tracked faces (no detector is run: ``faces`` is empty).
        codec: ``"auto"`` (H.264; VP9 for .webm), ``"source"`` (the source's codec family when
            an encoder exists), ``"h264"``, ``"hevc"``, ``"vp9"``, ``"av1"``, ``"mpeg4"`` or an
            FFmpeg encoder name.
        crf: quality, constant rate factor (lower = better and larger; H.264 default 18 is
            visually lossless).
        preset: encoder speed preset: x264/x265 ``"ultrafast"`` ... ``"placebo"``, SVT-AV1
            ``"0"``-``"13"``; ``None`` = the encoder's default (x264/x265: ``"medium"``). VP9 and
            MPEG-4 have none: a preset given with them is a ConfigError.
        detect_every: run the face detector on every N-th frame; faces are tracked with optical
            flow in between (1 = detect on every frame).
        smoothing: landmark smoothing strength in ``[0, 1]`` (0 = off; One-Euro filter).
        fade_frames: frames over which a face that appears or leaves fades in or out.
        batch_size: frames per model batch.
        start: start at this time (seconds) — for previews; the output then starts at 0.
        duration: only this many seconds.
        audio: ``"copy"`` (default: every audio stream, unchanged) or ``"none"``.
        progress: show a progress bar (frames done, rate and ETA) on stderr.
        overwrite: replace an existing ``dst``.
        **options: options of :class:`~facetoon.pipeline.Stylizer` (``face_model``,
            ``background_model``, ``precision``, ``face_size``...) and of
            :meth:`~facetoon.pipeline.Stylizer.stylize` (``strength``, ``max_faces``, ``blend``,
            ``harmonize``).

    Returns:
        A :class:`VideoResult` (frames written, timings, throughput).

    Raises:
        VideoError: the input is missing, not a video (a still image included), corrupt or
            truncated (the frames done are kept in the ``.partial`` file); the audio cannot be
            copied into this container; the encoder's last packets or the file's index could not
            be written (what was written is kept in the ``.partial`` file).
        OutputError: ``dst`` is the input, or cannot be written.
        ConfigError: an invalid option (``start`` < 0, ``duration`` <= 0, a codec the container
            cannot hold, a preset the encoder does not take...).
        KeyboardInterrupt: re-raised after the partial file is written.
    """
    src_path, dst_path = Path(src), Path(dst)
    bad = _NOT_FOR_VIDEO & options.keys()
    if bad:
        raise ConfigError(f"{', '.join(sorted(bad))}: not available for videos")
    tracker = FaceTracker(smoothing=smoothing, fade_frames=fade_frames)

    if stylize_frame is not None and (stylizer is not None or options):
        raise ConfigError("stylize_frame replaces the Stylizer: pass no stylizer and no Stylizer options")
    # the input and every output setting are checked before any model is loaded
    reader, plan = _open_checked(src_path, dst_path, codec=codec, crf=crf, preset=preset, start=start,
                                 duration=duration, audio=audio, overwrite=overwrite,
                                 detect_every=detect_every, batch_size=batch_size)
    try:
        engine = _frame_stylizer(stylizer, stylize_frame, options)
        info = reader.info
        log.info("%s: %dx%d, %.3f fps, %s, %d frame(s)%s, %d audio stream(s)", src_path, info.width,
                 info.height, float(info.fps), info.codec, info.expected_frames,
                 f", rotated {info.rotation} deg" if info.rotation else "", len(info.audio))
        writer = VideoWriter(dst_path, width=info.width, height=info.height, fps=info.fps,
                             time_base=info.time_base, codec=codec, crf=crf, preset=preset,
                             colorspace=info.colorspace, transfer=info.transfer, audio=reader.audio_streams,
                             source_codec=info.codec, overwrite=overwrite, plan=plan)
        return process_video(reader, writer, engine, tracker, detect_every=detect_every,
                             batch_size=batch_size, progress=progress, shift_time=bool(start))
    finally:
        reader.close()


def _frame_stylizer(stylizer: Stylizer | None,
                    stylize_frame: Callable[[np.ndarray, Sequence[TrackedFace]], np.ndarray] | None,
                    options: dict[str, Any]) -> FrameStylizer:
    if stylize_frame is not None:
        return _CallableFrames(stylize_frame, None)
    call = {k: v for k, v in options.items() if k in _CALL_OPTIONS}
    build = {k: v for k, v in options.items() if k not in _CALL_OPTIONS}
    if stylizer is None:
        from ..pipeline import get_stylizer

        stylizer = get_stylizer(**build)
    elif build:
        raise ConfigError(f"{', '.join(sorted(build))}: Stylizer options cannot be combined with "
                          "stylizer=")
    return StylizerFrames(stylizer, **call)


__all__ += ["partial_path"]
