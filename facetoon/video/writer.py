"""Write a video with PyAV: encode RGB frames at the source's timestamps, remux audio packets.

    >>> from facetoon.video.writer import VideoWriter
    >>> with VideoWriter("out.mp4", width=640, height=360, fps=30, time_base=Fraction(1, 15360),
    ...                  audio=reader.audio_streams) as w:           # doctest: +SKIP
    ...     w.mux_audio(packet)                                      # untouched audio packet
    ...     w.write(rgb, pts)                                        # (H, W, 3) uint8 RGB

Codecs (``codec=``): ``"auto"`` is H.264 (libx264) for every container but WebM, which gets
VP9; ``"h264"``, ``"hevc"`` (libx265), ``"vp9"`` (libvpx-vp9), ``"av1"`` (SVT-AV1),
``"mpeg4"`` or any FFmpeg encoder name. Quality is ``crf`` (constant rate factor: lower is
better; 18 is visually lossless for H.264, the default) and ``preset``, the encoder's speed preset:
x264/x265 ``"ultrafast"`` ... ``"placebo"`` (their default ``"medium"``), SVT-AV1 ``"0"``-``"13"``;
``None`` (the default) leaves the encoder's own, and an encoder without presets (VP9, MPEG-4)
refuses one. The MPEG-1/2/4 encoders have no crf: they get a fixed quantiser ``q``
(2 best ... 31) from it, ``q = 4 * 2 ** ((crf - 18) / 6)`` rounded and clipped, which doubles
with every +6 as x264's quantiser step does (crf <= 12: 2; 18: 4; 24: 8; 30: 16; >= 36: 31).
Other encoders ignore ``crf``. The encoder is opened once on a small frame before anything is
written, so an option it rejects (a misspelt ``preset``) or does not know is a
:class:`~facetoon.errors.ConfigError` up front (:func:`check_output`). So is a codec the container
lists but cannot store: :func:`check_output` also writes the container's header, in memory, with
the video stream and the audio to copy (FFmpeg's MOV muxer lists VP9, AV1 and FLAC but refuses
them when writing; its MP4 muxer takes them). The encoders' own chatter is kept to errors: x265's
``log-level``, and SVT-AV1's ``SVT_LOG`` environment variable set to 1 (errors) unless it is set
already; SVT-AV1 reads it once per process, when its first encoder opens. Pixel format:
``yuv420p`` (plays everywhere), or ``yuv444p`` when the width or height is odd (4:2:0 needs even
sizes). Frames are converted to YUV with the source's colour matrix and tagged with it (matrix,
primaries and transfer of that standard, e.g. BT.2020: 9, 9, 14), limited range; ``transfer``
replaces the standard's transfer with the source's (:attr:`VideoInfo.transfer`: an HLG source's
output is tagged HLG, 18, as its values stay HLG-coded).

Timestamps: frames are encoded with the ``pts`` they are given, in ``time_base`` (the source's
stream time base), so variable frame rates survive. MP4/MOV keep the time base exactly;
Matroska/WebM store milliseconds. AVI has a constant frame rate set by its time base (FFmpeg
writes an empty frame for every tick between two frames), so there the stream's time base is
``1 / fps`` and each frame's ``pts`` is rounded to a frame index.

Audio: the source's audio streams are added as copies (``add_stream_from_template``, no
decoder, no encoder) and their packets are remuxed as they are. A codec the output container
cannot hold (e.g. PCM in WebM, FLAC in MOV) is a :class:`~facetoon.errors.VideoError` before
anything is written, with the fix (another extension, or no audio).

Atomicity: the file is written under a hidden temporary name in the output folder.
:meth:`VideoWriter.close` finalises it and moves it to the output name; :meth:`VideoWriter.abort`
finalises what was written so far (a playable file) and moves it to ``<name>.partial<ext>``
(``out.mp4`` -> ``out.partial.mp4``), or deletes it. Should flushing the encoder or writing the
container's index fail in :meth:`VideoWriter.close`, that is a :class:`~facetoon.errors.VideoError`
naming the ``.partial`` file, which keeps what was written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .._fileutil import link_no_clobber
from ..errors import ConfigError, OutputError, VideoError, first_line
from .reader import TRANSFER_NAMES, codec_name

__all__ = ["CONTAINERS", "OutputPlan", "VideoWriter", "check_output", "partial_path", "resolve_codec"]

log = logging.getLogger(__name__)

#: output extension -> FFmpeg muxer
CONTAINERS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}
# friendly names -> encoder
_ENCODERS: dict[str, str] = {
    "h264": "libx264",
    "avc": "libx264",
    "hevc": "libx265",
    "h265": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
}
# source codec family -> encoder, for codec="source"
_SOURCE_FAMILY: dict[str, str] = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9",
                                  "av1": "libsvtav1"}
# FFmpeg's MPEG-family encoders: a fixed quantiser (qmin = qmax) stands for crf
_QUANTISER_ENCODERS = frozenset({"mpeg4", "mpeg1video", "mpeg2video"})
# colour matrix (the reader's names, PyAV's converter's) -> FFmpeg tags written with it:
# (AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic)
_COLOUR_TAGS: dict[str, tuple[int, int, int]] = {
    "itu709": (1, 1, 1),        # BT.709
    "itu601": (6, 6, 6),        # SMPTE 170M (BT.601)
    "smpte170m": (6, 6, 6),
    "smpte240m": (7, 7, 7),
    "fcc": (4, 4, 4),           # FCC matrix, BT.470M primaries, gamma 2.2
    "bt2020": (9, 9, 14),       # BT.2020 non-constant luminance, BT.2020 primaries and transfer
}
# transfer characteristic name (VideoInfo.transfer) -> FFmpeg tag (AVColorTransferCharacteristic)
_TRANSFER_TAGS: dict[str, int] = {name: tag for tag, name in TRANSFER_NAMES.items()}
# x264's and x265's preset names (both libraries' documented list); checked before the encoder
# opens, as x264 prints its own error to the terminal when it parses an unknown one
_X26X_PRESET_NAMES = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                      "veryslow", "placebo")
_X26X_PRESETS = ", ".join(_X26X_PRESET_NAMES)
_PRESETS_HINT = f"presets: h264/hevc {_X26X_PRESETS}; av1 0-13"
# one extension per muxer (the first listed), for the containers named as alternatives
_EXTENSION_OF: dict[str, str] = {
    fmt: next(e for e, f in CONTAINERS.items() if f == fmt) for fmt in dict.fromkeys(CONTAINERS.values())
}


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an interrupted run leaves its playable partial output: ``out.mp4`` -> ``out.partial.mp4``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.partial{p.suffix}")


def _quiet_encoder(encoder: str) -> None:
    """Keep SVT-AV1 to its errors (it prints some 80 ``Svt[info]`` lines per encoder otherwise).

    SVT-AV1 has no option for it: it reads the ``SVT_LOG`` environment variable (1 = errors) once,
    when its first encoder opens in the process; a value set by the user is left as it is.
    """
    if encoder == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")


def _container_of(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise VideoError(f"unsupported output extension {path.suffix or '(none)'!r}; use one of "
                         f"{', '.join(CONTAINERS)}", path=path)
    return fmt


def resolve_codec(codec: str, container: str, source_codec: str | None = None) -> str:
    """The FFmpeg encoder name for ``codec`` (``"auto"``, ``"source"``, a family or an encoder name).

    Raises:
        ConfigError: no such encoder in this FFmpeg build, or the container cannot hold it.
    """
    import av

    if not isinstance(codec, str) or not codec:
        raise ConfigError(f"codec: expected a codec name, got {codec!r}")
    name = codec.lower()
    default = "libvpx-vp9" if container == "webm" else "libx264"
    if name == "auto":
        name = default
    elif name == "source":
        name = _SOURCE_FAMILY.get(source_codec or "", default)
        if container == "webm" and name not in ("libvpx-vp9", "libsvtav1"):
            name = default
    name = _ENCODERS.get(name, name)
    try:
        enc = av.Codec(name, "w")
    except (av.FFmpegError, ValueError, KeyError):
        raise ConfigError(f"codec: no encoder {codec!r} in this FFmpeg build (try h264, hevc, vp9, av1 or "
                          "mpeg4)") from None
    if enc.type != "video":
        raise ConfigError(f"codec: {codec!r} is not a video codec")
    try:
        with contextlib.closing(av.open(os.devnull, "w", format=container)) as probe:
            supported = probe.supported_codecs
    except av.FFmpegError:  # pragma: no cover - every listed container opens
        supported = set()
    family = getattr(enc, "canonical_name", enc.name)
    if supported and family not in supported:
        raise ConfigError(f"codec: {family} video cannot be stored in a {container} file")
    return enc.name


def crf_quantiser(crf: float) -> int:
    """The fixed quantiser (2-31) that stands for ``crf`` with the MPEG-1/2/4 encoders (see the module
    docstring)."""
    return int(min(31, max(2, round(4 * 2 ** ((crf - 18) / 6)))))


def _encoder_options(encoder: str, crf: float | None, preset: str | None,
                     options: Mapping[str, str] | None) -> dict[str, str]:
    """The FFmpeg options of ``encoder`` for a crf, a preset and extra options."""
    opts: dict[str, str] = {}
    if encoder in ("libx264", "libx265"):
        if crf is not None:
            opts["crf"] = f"{crf:g}"
        if preset:
            opts["preset"] = str(preset)
        if encoder == "libx265":
            opts["x265-params"] = "log-level=error"
    elif encoder == "libvpx-vp9":
        opts.update({"crf": f"{31 if crf is None else crf:g}", "b": "0", "row-mt": "1",
                     "deadline": "good", "cpu-used": "4"})
    elif encoder == "libsvtav1":
        if crf is not None:
            opts["crf"] = f"{crf:g}"
    elif encoder in _QUANTISER_ENCODERS:
        if crf is not None:
            q = str(crf_quantiser(crf))
            opts.update({"qmin": q, "qmax": q})
    elif crf is not None:
        log.debug("crf is not used by the %s encoder", encoder)
    if preset and encoder not in ("libx264", "libx265"):
        opts["preset"] = str(preset)  # refused by _check_encoder where the encoder has none
    opts.update({str(k): str(val) for k, val in (options or {}).items()})
    return opts


def _opening_error(encoder: str, pix_fmt: str, size: tuple[int, int], opts: Mapping[str, str],
                   unused: list[str] | None = None) -> str | None:
    """Why ``encoder`` does not open on ``size`` ``pix_fmt`` frames with ``opts`` (``None``: it opens).

    ``unused``: filled with the options the opened encoder did not take (it has no such option).
    """
    import av

    try:
        cc: Any = av.CodecContext.create(encoder, "w")
        cc.width, cc.height, cc.pix_fmt = size[0], size[1], pix_fmt
        cc.time_base, cc.framerate = Fraction(1, 24), Fraction(24)
        cc.options = dict(opts)
        cc.open()
    except av.FFmpegError as exc:
        return str(exc.strerror or first_line(exc))
    except ValueError as exc:  # e.g. an unknown pixel format
        return first_line(exc)
    if unused is not None:
        unused.extend(cc.options)  # what avcodec_open2 left in the dictionary
    return None


def _check_encoder(encoder: str, pix_fmt: str, opts: Mapping[str, str], size: tuple[int, int]) -> None:
    """Open the encoder as it will be used: an option it rejects fails here, naming the culprit.

    The frames are at most 256 x 256 (the frame size does not change which options are valid, and
    some encoders take 100 MB to open at 1080p), with the parity of ``size``.
    """
    small = _probe_size(size)
    unused: list[str] = []
    error = _opening_error(encoder, pix_fmt, small, opts, unused)
    if error is None:
        if "preset" in unused:
            raise ConfigError(f"preset: the {encoder} encoder takes no preset, got {opts['preset']!r}; leave "
                              f"it out ({_PRESETS_HINT})")
        if unused:
            raise ConfigError(f"the {encoder} encoder has no option {', '.join(sorted(unused))}")
        return
    if "preset" in opts and _opening_error(encoder, pix_fmt, small, {k: v for k, v in opts.items()
                                                                     if k != "preset"}) is None:
        hint = f" (x264/x265 presets: {_X26X_PRESETS})" if encoder in ("libx264", "libx265") else \
            " (SVT-AV1 presets: 0-13)" if encoder == "libsvtav1" else ""
        raise ConfigError(f"preset: the {encoder} encoder rejects {opts['preset']!r}{hint}")
    if _opening_error(encoder, pix_fmt, small, {}) is None:
        given = ", ".join(f"{k}={v}" for k, v in opts.items())
        raise ConfigError(f"the {encoder} encoder rejects its settings {given} ({error})")
    odd = " (4:4:4 for the odd frame size {}x{})".format(*size) if size[0] % 2 or size[1] % 2 else ""
    raise ConfigError(f"codec: the {encoder} encoder cannot encode {pix_fmt} frames{odd} ({error}); "
                      "try h264")


def _probe_size(size: tuple[int, int]) -> tuple[int, int]:
    """The frame size encoders are tried on: at most 256 x 256, with the parity of ``size``."""
    return (min(size[0], 256 + size[0] % 2), min(size[1], 256 + size[1] % 2))


def _muxing_error(container: str, encoder: str, pix_fmt: str, size: tuple[int, int],
                  opts: Mapping[str, str], audio: Sequence[Any] = (), unused: list[str] | None = None) -> str | None:
    """Why a ``container`` file cannot start with this video stream and these audio copies: its
    header is written into memory (``None``: it can).

    ``unused``: filled, when it can, with the options the encoder did not take (as by
    :func:`_opening_error`: writing the header opens the encoder).
    """
    import av

    out: Any = av.open(io.BytesIO(), "w", format=container)
    try:
        v = out.add_stream(encoder, rate=24)
        v.width, v.height, v.pix_fmt = size[0], size[1], pix_fmt
        v.options = dict(opts)
        for s in audio:
            out.add_stream_from_template(s)
        out.start_encoding()  # opens the encoder and writes the header: where a muxer refuses a codec
        if unused is not None:
            unused.extend(v.codec_context.options)  # what avcodec_open2 left in the dictionary
    except av.FFmpegError as exc:
        return str(exc.strerror or first_line(exc))
    except ValueError as exc:  # PyAV's own refusal of a codec the container does not list
        return first_line(exc)
    finally:
        with contextlib.suppress(Exception):
            out.close()
    return None


def _check_muxing(path: Path, container: str, encoder: str, pix_fmt: str, size: tuple[int, int],
                  opts: Mapping[str, str], audio: Sequence[Any], muxes: bool = False) -> None:
    """Refuse a video codec or an audio copy that the container cannot hold.

    Besides the codecs a muxer does not list, some that it lists are refused only when it writes
    the header (MOV: VP9, AV1 and FLAC are MP4-only), so the header is written, into memory: for
    the video stream, then for each audio copy. ``muxes``: a header with all of them was written
    already, so only the audio codecs the muxer does not list are left to refuse.

    Raises:
        ConfigError: the video codec (the file would not start, or end up empty).
        VideoError: the source's audio, which is copied as is.
    """
    import av

    small = _probe_size(size)

    def takers(streams: Sequence[Any] = ()) -> str:
        """The other extensions whose container takes the video stream and ``streams``."""
        ok = [ext for fmt, ext in _EXTENSION_OF.items()
              if fmt != container and _muxing_error(fmt, encoder, pix_fmt, small, opts, streams) is None]
        return " or ".join(filter(None, [", ".join(ok[:-1]), *ok[-1:]]))

    if not muxes and _muxing_error(container, encoder, pix_fmt, small, opts) is not None:
        family = getattr(av.Codec(encoder, "w"), "canonical_name", encoder)
        others = takers()
        raise ConfigError(f"codec: {family} video cannot be stored in a {path.suffix.lower()} file (FFmpeg's "
                          f"{container} muxer refuses it); use {others + ', or ' if others else ''}another codec")
    if not audio:
        return
    with contextlib.closing(av.open(os.devnull, "w", format=container)) as probe:
        listed = probe.supported_codecs
    for s in audio:
        name = codec_name(s.codec_context)
        if (listed and name not in listed) or (
                not muxes and _muxing_error(container, encoder, pix_fmt, small, opts, [s])):
            others = takers([s])
            raise VideoError(f"the source's {name} audio cannot be copied into a {container} file without "
                             f"re-encoding; write {others or '.mkv'} instead, or drop the audio (audio='none' "
                             "/ --no-audio)", path=path)


@dataclass(frozen=True)
class OutputPlan:
    """What :func:`check_output` settled: the muxer, the encoder, its pixel format and options;
    ``request``: the settings it checked (a :class:`VideoWriter` uses the plan only for the same)."""

    container: str
    encoder: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    request: tuple[Any, ...] = ()


def _request(path: Path, *settings: Any, audio: Sequence[Any], options: Mapping[str, str] | None) -> tuple[Any, ...]:
    """The settings of a :func:`check_output` call, comparable (see :attr:`OutputPlan.request`)."""
    return (str(path), *settings, tuple(id(s) for s in audio), tuple(sorted((options or {}).items())))


def check_output(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    codec: str = "auto",
    crf: float | None = 18,
    preset: str | None = None,
    pix_fmt: str | None = None,
    colorspace: str = "itu709",
    transfer: str | None = None,
    audio: Sequence[Any] = (),
    source_codec: str | None = None,
    options: Mapping[str, str] | None = None,
    overwrite: bool = True,
) -> OutputPlan:
    """Check the settings of a :class:`VideoWriter` (same arguments) without writing anything.

    The output path (a file name with a known extension, not a folder), an existing output,
    ``crf``, ``colorspace``, ``transfer``, the codec, the encoder itself, opened on a small frame
    with its options, and the container: its header is written in memory with that video stream
    and the audio streams to copy.

    Raises:
        VideoError: bad extension, or an audio codec the container cannot hold.
        ConfigError: bad codec (none such, or one the container cannot hold), crf, colorspace,
            transfer, preset (also one given to an encoder without presets) or encoder options.
        OutputError: ``path`` is a folder, or exists and ``overwrite`` is off.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError("is a folder; expected an output file name (e.g. out.mp4)", path=path)
    container = _container_of(path)
    if not overwrite and path.exists():
        raise OutputError("output file already exists (overwrite is off)", path=path)
    if crf is not None and (isinstance(crf, bool) or not isinstance(crf, (int, float))
                            or not 0 <= crf <= 63):
        raise ConfigError(f"crf: expected a number in 0..63, got {crf!r}")
    if colorspace not in _COLOUR_TAGS:
        raise ConfigError(f"colorspace: expected one of {', '.join(_COLOUR_TAGS)}, got {colorspace!r}")
    if transfer is not None and (not isinstance(transfer, str)
                                 or transfer != "unknown" and transfer not in _TRANSFER_TAGS):
        raise ConfigError(f"transfer: expected None or one of {', '.join(_TRANSFER_TAGS)}, got {transfer!r}")
    encoder = resolve_codec(codec, container, source_codec)
    _quiet_encoder(encoder)
    pix_fmt_given = pix_fmt
    if pix_fmt is None:
        pix_fmt = "yuv420p" if int(width) % 2 == 0 and int(height) % 2 == 0 else "yuv444p"
    if preset is not None and (isinstance(preset, bool) or not isinstance(preset, (str, int))):
        raise ConfigError(f"preset: expected a preset name or number, got {preset!r}")
    opts = _encoder_options(encoder, crf, preset, options)
    if encoder in ("libx264", "libx265") and opts.get("preset", "medium") not in _X26X_PRESET_NAMES:
        raise ConfigError(f"preset: the {encoder} encoder rejects {opts['preset']!r} (x264/x265 presets: "
                          f"{_X26X_PRESETS})")
    size = (int(width), int(height))
    # the header written in memory with the video stream and the audio copies opens the encoder as
    # it will be used: if that works and the encoder took every option, it is the only opening;
    # else the encoder, then each stream, is tried alone, for an error that names the culprit
    unused: list[str] = []
    muxes = _muxing_error(container, encoder, pix_fmt, _probe_size(size), opts, audio, unused) is None
    if not muxes or unused:
        _check_encoder(encoder, pix_fmt, opts, size)
    # before creating any file: codecs the container cannot hold, the audio to copy included
    _check_muxing(path, container, encoder, pix_fmt, size, opts, audio, muxes)
    return OutputPlan(container=container, encoder=encoder, pix_fmt=pix_fmt, options=opts,
                      request=_request(path, width, height, codec, crf, preset, pix_fmt_given, colorspace, transfer,
                                       source_codec, audio=audio, options=options))


class VideoWriter:
    """Encode frames to a video file (see the module docstring).

    Args:
        path: output file; the container follows the extension (``.mp4``, ``.mov``, ``.mkv``,
            ``.webm``, ``.avi``). Missing folders are created.
        width, height: frame size in pixels.
        fps: nominal frame rate (written as the stream's rate; the timestamps rule).
        time_base: unit of the ``pts`` given to :meth:`write` (seconds per tick).
        codec: see the module docstring.
        crf: constant rate factor (x264/x265: 0-51, VP9/AV1: 0-63); ``None`` = the encoder's
            default.
        preset: the encoder's speed preset: x264/x265 ``"ultrafast"`` ... ``"placebo"``, SVT-AV1
            ``"0"``-``"13"``; ``None`` = the encoder's default (x264/x265: ``"medium"``); VP9
            and MPEG-4 take none (:class:`ConfigError` if one is given).
        pix_fmt: pixel format; ``None`` = ``yuv420p``, or ``yuv444p`` for odd sizes.
        colorspace: colour matrix of the output (``"itu709"``, ``"itu601"``, ``"smpte170m"``,
            ``"smpte240m"``, ``"fcc"``, ``"bt2020"``: :attr:`VideoInfo.colorspace` of the source).
        transfer: transfer characteristic the output is tagged with (``"hlg"``, ``"pq"``,
            ``"bt709"``...: :attr:`VideoInfo.transfer` of the source); ``None`` or ``"unknown"``:
            that of ``colorspace``'s standard. A tag only: the values are not converted.
        audio: source audio streams (``av`` streams) to copy.
        source_codec: the source's video codec name (for ``codec="source"``).
        options: extra encoder options (``{"tune": "film"}``...), strings.
        threads: encoder threads (0 = the encoder's choice).
        overwrite: replace an existing output (``False``: :class:`OutputError` if it exists).
        plan: what :func:`check_output` returned for these same settings: its checks are not run
            again (``None``: they are run here).

    Raises:
        VideoError: bad extension, or an audio codec the container cannot hold.
        ConfigError: bad codec, crf, colorspace, transfer, preset or encoder options, or a codec the
            container cannot hold (see :func:`check_output`).
        OutputError: the output cannot be created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: Fraction | float | int,
        time_base: Fraction,
        codec: str = "auto",
        crf: float | None = 18,
        preset: str | None = None,
        pix_fmt: str | None = None,
        colorspace: str = "itu709",
        transfer: str | None = None,
        audio: Sequence[Any] = (),
        source_codec: str | None = None,
        options: Mapping[str, str] | None = None,
        threads: int = 0,
        overwrite: bool = True,
        plan: OutputPlan | None = None,
    ) -> None:
        import av

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        audio = list(audio)
        if plan is not None and plan.request != _request(self.path, width, height, codec, crf, preset, pix_fmt,
                                                         colorspace, transfer, source_codec, audio=audio,
                                                         options=options):
            log.debug("%s: the plan given is of other settings: checked again", self.path)
            plan = None
        if plan is None:
            plan = check_output(self.path, width=self.width, height=self.height, codec=codec, crf=crf,
                                preset=preset, pix_fmt=pix_fmt, colorspace=colorspace, transfer=transfer,
                                audio=audio, source_codec=source_codec, options=options, overwrite=overwrite)
        elif not overwrite and self.path.exists():  # it may have appeared since the plan was made
            raise OutputError("output file already exists (overwrite is off)", path=self.path)
        self.container_format, self.encoder, self.pix_fmt = plan.container, plan.encoder, plan.pix_fmt
        if pix_fmt is None and self.pix_fmt == "yuv444p":
            log.warning("%s: odd frame size %dx%d; encoding 4:4:4 (yuv444p), which some players do "
                        "not support", self.path, self.width, self.height)
        self.colorspace = colorspace
        self.transfer = None if transfer == "unknown" else transfer
        self.time_base = Fraction(time_base)
        # the encoded stream's time base; write() rescales pts from time_base to it
        self._rate = Fraction(fps).limit_denominator(1_000_000) if fps else Fraction(30)
        self._stream_time_base = 1 / self._rate if self.container_format == "avi" else self.time_base
        self.overwrite = overwrite
        self.frames_written = 0
        self.last_pts: int | None = None
        self._closed = False

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder: {exc.strerror or exc}",
                              path=self.path) from None
        self.tmp_path = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.tmp{self.path.suffix}")
        try:
            self._out = av.open(os.fspath(self.tmp_path), "w", format=self.container_format)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write: {exc}", path=self.path) from None
        try:
            self._setup_video(plan.options, threads)
            self._audio_map: dict[int, Any] = {}
            for s in audio:
                self._audio_map[s.index] = self._out.add_stream_from_template(s)
        except BaseException:
            with contextlib.suppress(Exception):
                self._out.close()
            self.tmp_path.unlink(missing_ok=True)
            raise

    def _setup_video(self, options: dict[str, str], threads: int) -> None:
        from av.video.reformatter import ColorRange

        v: Any = self._out.add_stream(self.encoder, rate=self._rate)
        v.width, v.height, v.pix_fmt = self.width, self.height, self.pix_fmt
        v.time_base = self._stream_time_base
        v.codec_context.time_base = self._stream_time_base
        if threads:
            v.codec_context.thread_count = int(threads)
        v.options = dict(options)
        # tagged with the matrix the frames are converted with (write()), and its standard's
        # primaries and transfer (or the source's transfer: the values keep its coding)
        cc: Any = v.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = _COLOUR_TAGS[self.colorspace]
        if self.transfer is not None:
            cc.color_trc = _TRANSFER_TAGS[self.transfer]
        cc.color_range = ColorRange.MPEG
        self._video: Any = v

    # ----------------------------------------------------------------- writing

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one ``(H, W, 3)`` uint8 RGB frame at ``pts`` (``time_base`` units, increasing)."""
        import av

        expected = (self.height, self.width, 3)
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != expected:
            got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
            raise VideoError(f"frame {self.frames_written}: expected a {expected} uint8 RGB array, got {got}",
                             path=self.path)
        pts = int(pts)
        if self._stream_time_base != self.time_base:
            pts = round(pts * self.time_base / self._stream_time_base)
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # encoders need strictly increasing timestamps
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self.colorspace, dst_color_range="MPEG")
        frame.pts = pts
        frame.time_base = self._stream_time_base
        try:
            for packet in self._video.encode(frame):
                self._out.mux(packet)
        except av.FFmpegError as exc:
            raise VideoError(f"encoding frame {self.frames_written} failed: {exc}", path=self.path) from None
        self.last_pts = pts
        self.frames_written += 1

    def mux_audio(self, packet: Any, shift: float = 0.0) -> bool:
        """Remux one source audio packet unchanged (timestamps moved back by ``shift`` seconds).

        Returns ``False`` (and drops it) when the packet's stream is not copied.
        """
        import av

        stream = self._audio_map.get(packet.stream_index) if packet.stream is not None else None
        if stream is None:
            return False
        if shift:
            ticks = int(round(shift / packet.time_base))
            if packet.pts is not None:
                packet.pts -= ticks
            if packet.dts is not None:
                packet.dts -= ticks
        packet.stream = stream
        try:
            self._out.mux(packet)
        except av.FFmpegError as exc:
            raise VideoError(f"writing an audio packet failed: {exc}", path=self.path) from None
        return True

    # ----------------------------------------------------------------- finishing

    def _finalize(self) -> None:
        """Flush the encoder and write the container's index (the file becomes playable).

        Raises:
            VideoError: the encoder's last packets or the index could not be written (the file
                is closed all the same).
        """
        import av

        if self._closed:
            return
        self._closed = True
        problem = None
        try:
            if self.frames_written:
                for packet in self._video.encode(None):
                    self._out.mux(packet)
        except av.FFmpegError as exc:
            problem = f"flushing the encoder failed ({exc.strerror or first_line(exc)})"
        try:
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            problem = problem or f"finishing the file failed ({exc.strerror or first_line(exc)})"
        if problem:
            raise VideoError(problem, path=self.path)

    def _keep_partial(self) -> Path | None:
        """Move the temporary file to :func:`partial_path` (``None``: nothing kept)."""
        if self.frames_written == 0:
            self.tmp_path.unlink(missing_ok=True)
            return None
        target = partial_path(self.path)
        try:
            os.replace(self.tmp_path, target)
        except OSError:
            self.tmp_path.unlink(missing_ok=True)
            return None
        return target

    def close(self) -> Path:
        """Finish the file and move it to :attr:`path`; returns the path.

        With ``overwrite=False`` the move never replaces a file that another program created at
        :attr:`path` while this one was encoding (the move is atomic, see
        :func:`facetoon._fileutil.link_no_clobber`): the finished video is then kept as
        :func:`partial_path` and :class:`OutputError` is raised, naming it.

        Raises:
            VideoError: no frame was written, or flushing the encoder or writing the index failed:
                what was written is then kept as :func:`partial_path`, which the message names.
        """
        try:
            self._finalize()
        except VideoError as exc:
            kept = self._keep_partial()
            where = f"partial output: {kept}" if kept is not None else "no output kept"
            raise VideoError(f"{exc.reason}; {where}", path=self.path) from None
        except BaseException:
            self.tmp_path.unlink(missing_ok=True)
            raise
        if self.frames_written == 0:
            self.tmp_path.unlink(missing_ok=True)
            raise VideoError("no frame was written", path=self.path)
        try:
            with open(self.tmp_path, "rb+") as f:  # on disk before it takes the output's name
                os.fsync(f.fileno())
            if self.overwrite:
                os.replace(self.tmp_path, self.path)
            else:
                link_no_clobber(self.tmp_path, self.path)
        except OutputError:  # the output appeared while encoding: it stays, the work is kept apart
            kept = partial_path(self.path)
            try:
                os.replace(self.tmp_path, kept)
            except OSError:
                kept = self.tmp_path
            raise OutputError(f"the output file appeared while encoding (overwrite is off); the finished "
                              f"video is kept as {kept}", path=self.path) from None
        except OSError as exc:
            self.tmp_path.unlink(missing_ok=True)
            raise OutputError(f"cannot write: {exc.strerror or exc}", path=self.path) from None
        log.debug("wrote %s: %d frames, %s", self.path, self.frames_written, self.encoder)
        return self.path

    def abort(self, keep_partial: bool = True) -> Path | None:
        """Stop early: finalise what was written and move it to :func:`partial_path` (or delete it).

        Returns the partial file, or ``None`` when nothing was kept (no frame written, or
        ``keep_partial=False``).
        """
        try:
            self._finalize()
        except VideoError as exc:  # kept all the same: what was written is there
            if keep_partial and self.frames_written:
                log.warning("%s; the partial file may not play", exc)
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.debug("finalising the partial file failed", exc_info=True)
            keep_partial = False
        if not keep_partial:
            self.tmp_path.unlink(missing_ok=True)
            return None
        return self._keep_partial()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()
