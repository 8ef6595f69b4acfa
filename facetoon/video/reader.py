"""Read a video with PyAV: upright RGB frames with their source timestamps, and the audio packets.

    >>> from facetoon.video.reader import VideoReader
    >>> with VideoReader("clip.mp4") as reader:                   # doctest: +SKIP
    ...     print(reader.info.width, reader.info.height, reader.info.fps)
    ...     for frame in reader:
    ...         frame.image, frame.pts, frame.time, frame.audio

Frames are ``(H, W, 3)`` uint8 **RGB**, already turned upright: the display matrix of the
stream (side data, or the legacy ``rotate`` tag, which FFmpeg turns into one) is applied, so
a phone video recorded in portrait comes out as a portrait frame. ``VideoInfo.width``/``height``
are the upright (displayed) size; ``VideoInfo.rotation`` says what was applied. Flips in the
display matrix are not applied (they do not occur in camera files).

Colour: the frames are converted to RGB with the source's colour matrix (``VideoInfo.colorspace``);
its transfer characteristic is recorded (``VideoInfo.transfer``) but not undone, so the RGB values
keep the source's coding. That suits SDR and HLG (designed to look right taken as SDR; the
writer keeps its tag). HDR PQ (SMPTE ST 2084, HDR10) frames look dark and flat taken as SDR, and
FFmpeg's tone mapping needs ``zscale`` (libzimg), missing from PyAV's FFmpeg: such a file is read
all the same, with a warning (once per file and process) that gives an ``ffmpeg`` command line
converting it to SDR first.

Timestamps are the source's own: ``frame.pts`` in units of ``VideoInfo.time_base``, so a
variable-frame-rate video keeps its timing when the writer reuses them.

Audio is not decoded: the packets of every audio stream are passed along untouched, each
attached to the first video frame decoded after it (``DecodedFrame.audio``); packets after the
last frame are in :attr:`VideoReader.trailing_audio` once iteration ends (after corrupt data, those
that start before the end of the last good frame). The writer remuxes them, so the sound is
bit-for-bit the source's.

Errors: a missing, unreadable or non-video file raises :class:`~facetoon.errors.VideoError` on
opening. A still image is not a video either: an image demuxer's file (``jpeg_pipe``,
``png_pipe``, ``webp_pipe``, ``image2``...) or a stream of an image codec (JPEG, PNG, GIF...) with a
single frame is refused, pointing to ``facetoon stylize``. Animations are videos: an animated GIF or
PNG (APNG) is read frame by frame at its own timing; an animated WebP is refused by name, as
FFmpeg's WebP decoder reads still images only. Corrupt data raises it during iteration, naming
the frame reached, and so does a file whose data ends early: its last frame (plus one frame's
duration) more than 2% (at least 2 frames) before the video stream's declared duration, or, for
containers that declare no frame count, more than 5% (at least 1 s) before it. The stream's
duration, not its declared frame count, is the yardstick (an MP4 trimmed by stream copy counts
frames its edit list skips); the container's duration also covers the audio, so alone it bounds
nothing, and the frame count is used instead.
The frames before the problem have been yielded by then. A ``start`` at or after the end is a
:class:`~facetoon.errors.VideoError` on opening; a negative ``start`` or a ``duration`` that is not
positive is a :class:`~facetoon.errors.ConfigError`.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, VideoError, first_line

__all__ = ["TRANSFER_NAMES", "AudioInfo", "DecodedFrame", "VideoInfo", "VideoReader", "codec_name",
           "probe_video"]

log = logging.getLogger(__name__)

# a damaged video packet is skipped (the decoder recovers at the next one); this many damaged
# packets in a row end the read with a VideoError
MAX_BAD_PACKETS_IN_A_ROW = 25

# FFmpeg's demuxers of single-image files, besides the "*_pipe" ones (jpeg_pipe, png_pipe...)
_IMAGE_DEMUXERS = frozenset({"image2", "image2pipe"})
# image codecs: a stream of one of them with a single frame is a picture, not a video
_IMAGE_CODECS = frozenset({
    "mjpeg", "jpegls", "jpeg2000", "jpegxl", "png", "apng", "gif", "webp", "bmp", "tiff", "qoi", "ppm",
    "pgm", "pgmyuv", "pbm", "pam", "sgi", "targa", "exr", "dpx", "psd", "radiance_hdr", "pcx", "xbm",
    "xpm", "xwd", "sunrast", "dds", "pgx", "photocd", "phm", "pfm", "vbn", "gem", "pictor", "qdraw",
    "avif", "heif",
})
_IMAGE_NAMES = {"mjpeg": "JPEG", "webp": "WebP", "jpeg2000": "JPEG 2000", "jpegxl": "JPEG XL"}

# colour matrix of frames that do not say: the usual convention (SD: BT.601, HD: BT.709)
_HD_HEIGHT = 720
# FFmpeg's colour-matrix tag of a frame (AVColorSpace) -> the matrix, by the name PyAV's converter
# takes (its own numbering differs: there SMPTE 170M and BT.601 are one value, 5); BT.2020
# constant-luminance gets the non-constant matrix, swscale has no other
_MATRIX_OF_TAG: dict[int, str] = {
    1: "itu709",     # BT.709
    4: "fcc",        # FCC (NTSC 1953)
    5: "itu601",     # BT.470BG (PAL/SECAM BT.601)
    6: "itu601",     # SMPTE 170M (NTSC BT.601)
    7: "smpte240m",  # SMPTE 240M
    9: "bt2020",     # BT.2020 non-constant luminance
    10: "bt2020",    # BT.2020 constant luminance
}
# FFmpeg's transfer characteristic tag of a frame (AVColorTransferCharacteristic) -> its name
# (FFmpeg's own, av_color_transfer_name, but for the HDR ones: "pq", "hlg"); others are "unknown"
TRANSFER_NAMES: dict[int, str] = {
    1: "bt709",
    4: "gamma22",         # BT.470 M
    5: "gamma28",         # BT.470 BG
    6: "smpte170m",       # BT.601
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",   # xvYCC
    12: "bt1361e",
    13: "iec61966-2-1",   # sRGB
    14: "bt2020-10",      # BT.2020 SDR, 10 bits
    15: "bt2020-12",      # BT.2020 SDR, 12 bits
    16: "pq",             # SMPTE ST 2084 (HDR10): FFmpeg's "smpte2084"
    17: "smpte428",
    18: "hlg",            # ARIB STD-B67, hybrid log-gamma: FFmpeg's "arib-std-b67"
}
# the PQ files warned about in this process: (real path, size, modification time)
_PQ_WARNED: set[tuple[str, int, int]] = set()


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream of the source (copied as is to the output)."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    time_base: Fraction


@dataclass(frozen=True)
class VideoInfo:
    """What the source holds.

    Attributes:
        path: the file.
        container: FFmpeg's name of the container format (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``).
        codec: video codec name (``"h264"``, ``"hevc"``, ``"vp9"``...).
        width, height: size of the **upright** frames (after the rotation), in pixels.
        coded_width, coded_height: size of the frames as stored.
        rotation: counter-clockwise degrees (0, 90, 180, 270) applied to make frames upright.
        fps: average frame rate (frames per second, exact fraction).
        time_base: unit of the frame timestamps (seconds per tick).
        start_time: timestamp of the video stream's start, in ``time_base`` units (0 if unknown).
        frames: number of frames the container declares (0 when it does not say).
        duration: duration of the video stream in seconds (``None`` when unknown).
        audio: the audio streams.
        colorspace: FFmpeg colour matrix used to convert the frames to RGB (``"itu601"``...).
        transfer: the source's transfer characteristic, read from its first frame: FFmpeg's
            name (``"bt709"``, ``"smpte170m"``, ``"bt2020-10"``, ``"iec61966-2-1"`` (sRGB)...),
            ``"pq"`` for SMPTE ST 2084 (HDR10), ``"hlg"`` for ARIB STD-B67 (hybrid log-gamma), or
            ``"unknown"`` (untagged). Not undone: the RGB frames keep the source's coding.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    fps: Fraction
    time_base: Fraction
    start_time: int
    frames: int
    duration: float | None
    audio: tuple[AudioInfo, ...] = ()
    colorspace: str = "itu601"
    transfer: str = "unknown"

    @property
    def expected_frames(self) -> int:
        """Frames declared by the container, else estimated from the duration and frame rate."""
        if self.frames > 0:
            return self.frames
        if self.duration and self.fps:
            return max(1, round(self.duration * float(self.fps)))
        return 0


@dataclass(eq=False)
class DecodedFrame:
    """One decoded frame.

    Attributes:
        index: position in the decoded sequence (0 = first frame read).
        image: ``(H, W, 3)`` uint8 RGB, upright.
        pts: presentation timestamp in ``VideoInfo.time_base`` units (the source's own).
        time: ``pts`` in seconds.
        audio: audio packets (``av.Packet``) demuxed before this frame, to be muxed before it.
    """

    index: int
    image: np.ndarray
    pts: int
    time: float
    audio: list[Any] = field(default_factory=list)


def _rotation_of(value: float | int | None) -> int:
    """Nearest multiple of 90 degrees in ``[0, 360)``."""
    if value is None or not math.isfinite(float(value)):
        return 0
    return int(round(float(value) / 90.0)) % 4 * 90


def _colorspace_name(frame: Any, height: int) -> str:
    """Colour matrix of a decoded frame: its own tag, else BT.709 for HD and BT.601 below."""
    try:
        tag = int(frame.colorspace)
    except (AttributeError, TypeError, ValueError):
        tag = 2
    known = _MATRIX_OF_TAG.get(tag)
    if known is not None:
        return known
    return "itu709" if height >= _HD_HEIGHT else "itu601"


def _transfer_name(frame: Any) -> str:
    """Transfer characteristic of a decoded frame, by name (see :attr:`VideoInfo.transfer`)."""
    try:
        tag = int(frame.color_trc)
    except (AttributeError, TypeError, ValueError):
        return "unknown"
    return TRANSFER_NAMES.get(tag, "unknown")


def _warn_hdr(path: Path, transfer: str) -> None:
    """A PQ source: warn, once per file and process, that its frames are not tone mapped."""
    if transfer == "hlg":
        log.debug("%s: HDR video (HLG transfer), read as is: HLG is made to look right taken as SDR", path)
    if transfer != "pq":
        return
    try:
        st = path.stat()
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    except OSError:
        key = (os.path.realpath(path), 0, 0)
    if key in _PQ_WARNED:
        return
    _PQ_WARNED.add(key)
    sdr = path.with_name(f"{path.stem}_sdr.mp4")
    log.warning(
        "%s: HDR video (PQ / SMPTE ST 2084 transfer): its frames are stylized as they are, without tone "
        "mapping; taken as SDR they look dark and flat, so the result will be poor. Convert the clip to "
        "SDR first, e.g.: ffmpeg -i %s -vf \"zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
        "tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p\" -c:v libx264 -crf 18 "
        "-c:a copy %s (an ffmpeg built with libzimg, for zscale)",
        path, shlex.quote(os.fspath(path)), shlex.quote(os.fspath(sdr)))


def _tag_seconds(value: str | None) -> float | None:
    """Seconds of a Matroska ``DURATION`` tag (``"HH:MM:SS.fffffffff"``); ``None`` if absent or malformed."""
    if not value:
        return None
    try:
        h, m, sec = value.strip().split(":")
        seconds = int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _animated_webp(path: Path) -> bool:
    """Whether a WebP file is animated (its extended header, VP8X, has the animation flag)."""
    try:
        with open(path, "rb") as f:
            head = f.read(21)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)


def frame_to_rgb(frame: Any, rotation: int = 0, colorspace: str | None = None) -> np.ndarray:
    """An ``av.VideoFrame`` as an upright ``(H, W, 3)`` uint8 RGB array.

    ``rotation``: counter-clockwise degrees to apply (multiple of 90). ``colorspace``: the
    frame's colour matrix when it carries no tag (default: by height, see :class:`VideoInfo`).
    """
    from av.video.reformatter import ColorRange

    cs = colorspace or _colorspace_name(frame, frame.height)
    full = int(getattr(frame, "color_range", 0) or 0) == int(ColorRange.JPEG) \
        or frame.format.name.startswith("yuvj")
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=cs,
                           src_color_range="JPEG" if full else "MPEG")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    return np.ascontiguousarray(rgb)


def _open(path: Path) -> Any:
    import av

    if not path.exists():
        raise VideoError("file not found", path=path)
    if path.is_dir():
        raise VideoError("is a folder, not a video file", path=path)
    try:
        return av.open(os.fspath(path), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"not a readable video ({first_line(exc)})", path=path) from None


def codec_name(context: Any) -> str:
    """The codec family of a stream's ``av`` codec context (``"av1"``, not the ``"libdav1d"``
    decoder FFmpeg picked for it); the context's own name where PyAV gives no family."""
    codec = getattr(context, "codec", None)
    return str(getattr(codec, "canonical_name", None) or context.name)


class VideoReader:
    """Iterate over the frames of a video file (see the module docstring).

    Args:
        path: the video file.
        start: skip to this time (seconds from the start of the video stream).
        duration: stop after this many seconds (from ``start``).
        audio: pass the audio packets along (``False``: ignore the audio streams).
        threads: decoder threads (0 = FFmpeg's choice).

    Raises:
        VideoError: the file is missing, is not a video (a still image included), or has no
            decodable video stream; ``start`` is at or after the end of the video.
        ConfigError: ``start`` is not a number >= 0, or ``duration`` not a number > 0.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start: float | None = None,
        duration: float | None = None,
        audio: bool = True,
        threads: int = 0,
    ) -> None:
        self.path = Path(path)
        for name, value, rule in (("start", start, ">= 0"), ("duration", duration, "> 0")):
            if value is None:
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < 0 or (name == "duration" and value == 0)):
                raise ConfigError(f"{name}: expected seconds {rule}, got {value!r}")
        self.start = float(start or 0.0)
        self.duration = None if duration is None else float(duration)
        self._container = _open(self.path)
        try:
            self._setup(audio, threads)
        except BaseException:
            self.close()
            raise
        #: audio packets demuxed after the last video frame (filled when iteration ends, also by
        #: corrupt data: then only those starting before the last good frame's end)
        self.trailing_audio: list[Any] = []
        #: frames yielded so far
        self.frames_read = 0
        #: damaged video packets skipped so far (their frames are missing from the output)
        self.bad_packets = 0

    # ----------------------------------------------------------------- opening

    def _setup(self, audio: bool, threads: int) -> None:
        import av

        c = self._container
        # an attached picture (cover art of an audio file, a thumbnail) is a one-frame video stream
        moving = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not moving:
            what = "only a cover picture" if c.streams.video else "no video stream"
            raise VideoError(f"{what} in this file", path=self.path)
        v = moving[0]
        if c.format.name == "webp_pipe" and _animated_webp(self.path):
            raise VideoError("an animated WebP, which FFmpeg cannot decode (its WebP decoder reads still "
                             "images only); convert it to a video or a GIF first", path=self.path)
        if v.codec_context is None or v.codec_context.width <= 0 or v.codec_context.height <= 0:
            raise VideoError("the video stream has no decodable frames (unknown size or codec)",
                             path=self.path)
        self._threads = int(threads)
        self._video = v
        self._audio = [s for s in c.streams.audio if audio and s.codec_context is not None]
        time_base = Fraction(v.time_base or Fraction(1, 90000))
        fps = v.average_rate or v.guessed_rate or v.base_rate
        # the video stream's own duration: its header field, else (Matroska) its DURATION tag; the
        # container's duration also covers the audio, so it does not bound the video's frames
        tagged = _tag_seconds((v.metadata or {}).get("DURATION"))
        own = float(v.duration * time_base) if v.duration else tagged
        self._video_duration_known = own is not None or len(c.streams) == 1
        duration = own if own is not None else (c.duration / av.time_base if c.duration else None)
        audio_info = tuple(AudioInfo(index=s.index, codec=codec_name(s.codec_context), sample_rate=int(s.rate or 0),
                                     channels=int(getattr(s.codec_context, "channels", 0) or 0),
                                     time_base=Fraction(s.time_base or Fraction(1, 1)))
                           for s in self._audio)
        codec = codec_name(v.codec_context)
        fields = dict(path=os.fspath(self.path), container=c.format.name, codec=codec,
                      fps=Fraction(fps) if fps else Fraction(0), time_base=time_base,
                      start_time=int(v.start_time or 0), frames=int(v.frames or 0), duration=duration,
                      audio=audio_info)
        # peek at the first frame: rotation, colour matrix and transfer come with decoded frames
        picture = codec in _IMAGE_CODECS or c.format.name in _IMAGE_DEMUXERS or c.format.name.endswith("_pipe")
        rotation, cw, ch, colorspace, transfer, several = self._peek(second=picture)
        if picture and not several:
            raise VideoError(f"a still image ({_IMAGE_NAMES.get(codec, codec.upper())}), not a video; stylize "
                             "photos with `facetoon stylize` (facetoon.stylize in Python)", path=self.path)
        w, h = (ch, cw) if rotation in (90, 270) else (cw, ch)
        self._rotation = rotation
        self._colorspace = colorspace
        self.info = VideoInfo(width=w, height=h, coded_width=cw, coded_height=ch, rotation=rotation,
                              colorspace=colorspace, transfer=transfer, **fields)
        if self.start > 0 and duration and self.start >= duration:
            raise VideoError(f"start: {self.start:g} s is at or after the end of the video ({duration:.2f} s)",
                             path=self.path)
        _warn_hdr(self.path, transfer)

    def _peek(self, second: bool = False) -> tuple[int, int, int, str, str, bool]:
        """Decode the first frame and reopen the file.

        Returns ``(rotation, coded width, height, colour matrix, transfer, more)``; ``more``: with
        ``second``, whether a second frame follows (always ``True`` without).
        """
        import av

        frame = None
        more = not second
        packets = self._container.demux(self._video)
        try:
            for packet in packets:
                decoded = packet.decode()
                if decoded:
                    frame, more = decoded[0], more or len(decoded) > 1
                    break
        except av.FFmpegError as exc:
            raise VideoError(f"corrupt video data at the first frame ({first_line(exc)})", path=self.path) \
                from None
        if frame is None:
            raise VideoError("no video frame could be decoded (empty or corrupt stream)", path=self.path)
        found = (_rotation_of(frame.rotation), int(frame.width), int(frame.height),
                 _colorspace_name(frame, int(frame.height)), _transfer_name(frame))
        del frame, decoded
        if not more:  # a picture's file: is there a second frame (the end flushes the decoder)?
            try:
                for packet in packets:
                    if packet.decode():
                        more = True
                        break
            except av.FFmpegError:
                more = True  # damaged further on: not a single picture; reading says more
        # start again from a fresh demuxer and decoder (cheaper and safer than seeking back)
        index = self._video.index
        audio = [s.index for s in self._audio]
        self._container.close()
        self._container = _open(self.path)
        self._video = self._container.streams[index]
        self._video.thread_type = "AUTO"
        if self._threads:
            self._video.codec_context.thread_count = self._threads
        self._audio = [self._container.streams[i] for i in audio]
        return (*found, more)

    # ----------------------------------------------------------------- iteration

    @property
    def audio_streams(self) -> list[Any]:
        """The source's audio ``av`` streams whose packets are passed along."""
        return list(self._audio)

    @property
    def video_stream(self) -> Any:
        """The source's ``av`` video stream."""
        return self._video

    @property
    def end_time(self) -> float | None:
        """End of the requested range in seconds (``None`` = the end of the file)."""
        return None if self.duration is None else self.start + self.duration

    def _seek(self) -> None:
        import av

        if self.start <= 0:
            return
        v = self._video
        target = int(self.start / v.time_base) + int(v.start_time or 0)
        try:
            self._container.seek(target, stream=v, backward=True, any_frame=False)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot seek to {self.start:.3f} s ({first_line(exc)})",
                             path=self.path) from None

    def __iter__(self) -> Iterator[DecodedFrame]:
        import av

        v = self._video
        tb = self.info.time_base
        origin = self.info.start_time * tb
        t_start = float(origin) + self.start
        t_end = None if self.end_time is None else float(origin) + self.end_time
        self._seek()
        pending: list[Any] = []
        last_pts: int | None = None
        step = int(round(1 / (self.info.fps * tb))) if self.info.fps else 1
        video_done = False
        trimming = self.start > 0 or self.duration is not None
        index = 0
        bad_in_a_row = 0
        streams = [v, *self._audio]
        try:
            for packet in self._container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is None and packet.pts is None:
                        continue  # a demuxer flush packet
                    if trimming and packet.pts is not None:
                        p_start = float(packet.pts * packet.time_base)
                        p_end = p_start + float((packet.duration or 0) * packet.time_base)
                        if p_start < t_start and p_end <= t_start + 1e-6:
                            continue
                        if t_end is not None and p_start >= t_end - 1e-6:
                            if video_done:
                                break
                            continue
                    pending.append(packet)
                    continue
                if video_done:
                    continue
                try:
                    frames = packet.decode()
                except av.InvalidDataError as exc:
                    self.bad_packets += 1
                    bad_in_a_row += 1
                    if bad_in_a_row >= MAX_BAD_PACKETS_IN_A_ROW:
                        raise
                    log.warning("%s: skipped a damaged video packet after frame %d: %s", self.path, index,
                                first_line(exc))
                    continue
                bad_in_a_row = 0
                for frame in frames:
                    pts = frame.pts
                    if pts is None:
                        pts = (last_pts + step) if last_pts is not None else 0
                    if last_pts is not None and pts <= last_pts:
                        log.debug("%s: non-increasing timestamp %d after %d; shifted", self.path, pts,
                                  last_pts)
                        pts = last_pts + 1
                    t = float(pts * tb)
                    if trimming and t < t_start - 1e-6:
                        continue
                    if t_end is not None and t >= t_end - 1e-6:
                        video_done = True
                        break
                    last_pts = pts
                    image = frame_to_rgb(frame, self._rotation, self._colorspace)
                    item = DecodedFrame(index=index, image=image, pts=int(pts), time=t, audio=pending)
                    pending = []
                    index += 1
                    self.frames_read = index
                    yield item
                if video_done and not self._audio:
                    break
        except av.FFmpegError as exc:
            if last_pts is not None:  # the audio read since the last good frame, up to that frame's end
                end = float((last_pts + step) * tb) - 1e-6
                self.trailing_audio = [p for p in pending
                                       if float((p.dts if p.pts is None else p.pts) * p.time_base) < end]
            at = f"{float(last_pts * tb):.2f} s" if last_pts is not None else "the start"
            raise VideoError(f"corrupt or truncated video data after frame {index} ({at}): "
                             f"{first_line(exc)}",
                             path=self.path) from None
        self.trailing_audio = pending
        if index == 0:
            raise VideoError(f"no frame in the requested range (start {self.start:g} s)", path=self.path)
        if not trimming:
            self._check_complete(index, last_pts)

    def _check_complete(self, decoded: int, last_pts: int | None) -> None:
        """A file that ends well before what its header declares is truncated (or damaged).

        The yardstick is the duration: the last frame's time plus one frame must reach it. The
        declared frame count is used only without a duration, or when the only duration is the
        container's (a soundtrack may run longer): it also counts frames an MP4 edit list tells
        FFmpeg to skip (a stream-copy trim keeps the packets before the cut).
        """
        info = self.info
        declared = info.frames
        tolerance = max(2, declared // 50)  # frames
        if info.duration and last_pts is not None:
            step = 1.0 / float(info.fps) if info.fps else 0.0
            end = float((last_pts - info.start_time) * info.time_base) + step
            # a header that counts its frames is exact: the frame tolerance; else 5 % (at least 1 s)
            slack = tolerance * step if declared and step else max(1.0, 0.05 * info.duration)
            if end >= info.duration - slack - 1e-6:
                return
            if self._video_duration_known:
                raise VideoError(f"truncated or damaged: the data ends at {end:.2f} s of the "
                                 f"{info.duration:.2f} s the file declares", path=self.path)
            if not declared:
                # only the container's duration is known, and another stream may run longer
                log.warning("%s: the video ends at %.2f s, the file at %.2f s (a longer soundtrack, or a "
                            "truncated file)", self.path, end, info.duration)
                return
        if declared and decoded < declared - tolerance:
            raise VideoError(f"truncated or damaged: the data ends after frame {decoded} of the "
                             f"{declared} the file declares", path=self.path)

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Close the file (idempotent)."""
        c = getattr(self, "_container", None)
        if c is not None:
            self._container = None
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a broken file must not mask the real error
                log.debug("error closing %s", self.path, exc_info=True)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = getattr(self, "info", None)
        if i is None:
            return f"VideoReader({os.fspath(self.path)!r})"
        return (f"VideoReader({os.fspath(self.path)!r}, {i.width}x{i.height}, {float(i.fps):.3f} fps, "
                f"{i.codec}, rotation {i.rotation}, {len(i.audio)} audio stream(s))")


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """The :class:`VideoInfo` of a file (opens it, decodes one frame, closes it)."""
    with VideoReader(path) as reader:
        return reader.info
