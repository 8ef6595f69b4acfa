"""``facetoon video IN [-o OUT]``: stylize a video with stable faces, keeping its sound.

    facetoon video clip.mp4 -o clip_anime.mp4
    facetoon video clip.mp4 -o preview.mp4 --start 12 --duration 3        # a quick preview
    facetoon video clip.mov -o out.mkv --codec hevc --crf 20 --precision fast
    facetoon video clip.mp4 --background cartoongan --background-weights Hayao_net_G_float.pth

The output keeps the resolution (upright), frame rate, timestamps and the audio (copied, not
re-encoded). Ctrl-C or an error keeps the frames done so far in a playable
``OUT-stem.partial.ext`` file. Model and stylization options are those of ``facetoon stylize``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._stylizer_args import add_stylizer_arguments, command_line_error, make_stylizer, stylizer_options

__all__ = ["register", "run_video", "default_output", "check_video_options"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "video", help="stylize a video (stable faces, audio kept)",
        description="Stylize a video frame by frame: faces by the face model with tracked, smoothed "
                    "landmarks, the scene by the scene model; resolution, frame timing and audio kept.",
        epilog="Example: facetoon video clip.mp4 -o clip_anime.mp4 --start 5 --duration 2",
    )
    p.add_argument("input", metavar="IN", help="input video file")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output file: .mp4, .m4v, .mov, .mkv, .webm or .avi (default: IN-stem_facetoon.EXT "
                        "beside IN, EXT the input's extension if it is one of these, else .mp4)")
    p.add_argument("--no-overwrite", action="store_true", help="fail if the output exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = p.add_argument_group("video")
    v.add_argument("--codec", default="auto",
                   help="auto (H.264; VP9 for .webm), source (the input's codec family), h264, hevc, vp9, "
                        "av1, mpeg4 or an FFmpeg encoder name")
    v.add_argument("--crf", type=float, default=18.0,
                   help="quality: constant rate factor, lower is better "
                        "(default 18, visually lossless for H.264)")
    v.add_argument("--preset", default=None,
                   help="encoder speed preset: h264/hevc ultrafast ... placebo (default medium), av1 0-13; "
                        "vp9 and mpeg4 take none")
    v.add_argument("--start", type=float, default=None, metavar="SECONDS", help="start at this time")
    v.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="only this many seconds")
    v.add_argument("--no-audio", action="store_true", help="drop the audio (default: copied unchanged)")
    v.add_argument("--detect-every", type=int, default=5, metavar="N",
                   help="run the face detector on every N-th frame, track in between (default 5)")
    v.add_argument("--smoothing", type=float, default=0.5,
                   help="landmark smoothing 0..1 (0 = off; default 0.5)")
    v.add_argument("--fade-frames", type=int, default=6,
                   help="frames over which faces fade in and out (default 6)")
    v.add_argument("--batch-size", type=int, default=4, help="frames per model batch (default 4)")
    add_stylizer_arguments(p)
    p.set_defaults(func=run_video)


def default_output(src: Path) -> Path:
    """``IN-stem_facetoon.ext`` beside the input (``.mp4`` unless the input's container is writable)."""
    from ..video.writer import CONTAINERS

    ext = src.suffix.lower() if src.suffix.lower() in CONTAINERS else ".mp4"
    return src.with_name(f"{src.stem}_facetoon{ext}")


def check_video_options(src: Path, dst: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Check the input and every video option as :func:`~facetoon.video.stylize_video` will, before
    a model loads; returns the Stylizer's options (:func:`stylizer_options`, checked with them).

    Raises:
        VideoError, ConfigError, OutputError: as :func:`~facetoon.video.check_video_job`; a setting
            at fault is named by its option (``--crf: ...``).
    """
    from ..errors import ConfigError, VideoError
    from ..video import check_video_job
    from ..video.tracking import FaceTracker

    opts = stylizer_options(args)  # checks --min-face-size, --background-scale
    try:
        FaceTracker(smoothing=args.smoothing, fade_frames=args.fade_frames)
        check_video_job(src, dst, codec=args.codec, crf=args.crf, preset=args.preset,
                        detect_every=args.detect_every, batch_size=args.batch_size, start=args.start,
                        duration=args.duration, audio="none" if args.no_audio else "copy",
                        overwrite=not args.no_overwrite)
    except (ConfigError, VideoError) as exc:
        # the library's messages name its parameters ("crf: ..."): here they are options
        name = exc.reason.split(":", 1)[0]
        if name in _OPTION_OF:
            raise type(exc)(f"{_OPTION_OF[name]}{exc.reason[len(name):]}", path=exc.path) from None
        raise
    return opts


# parameter of stylize_video -> its option here
_OPTION_OF = {"codec": "--codec", "crf": "--crf", "preset": "--preset", "start": "--start",
              "duration": "--duration", "detect_every": "--detect-every", "batch_size": "--batch-size",
              "smoothing": "--smoothing", "fade_frames": "--fade-frames"}


def run_video(args: argparse.Namespace) -> int:
    """Handler of ``facetoon video``; returns the exit status."""
    import logging

    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..errors import WeightsError
    from ..video import stylize_video

    src = Path(args.input)
    dst = Path(args.output) if args.output else default_output(src)
    opts = check_video_options(src, dst, args)  # a bad input or output option fails before the models load
    try:
        stylizer = make_stylizer(args, opts)
    except WeightsError as exc:
        raise command_line_error(exc) from None
    quiet = bool(getattr(args, "quiet", False))
    with logging_redirect_tqdm(loggers=[logging.getLogger("facetoon")]):
        res = stylize_video(
            src, dst, stylizer=stylizer, codec=args.codec, crf=args.crf, preset=args.preset,
            detect_every=args.detect_every, smoothing=args.smoothing, fade_frames=args.fade_frames,
            batch_size=args.batch_size, start=args.start, duration=args.duration,
            audio="none" if args.no_audio else "copy", progress=not (quiet or args.no_progress),
            overwrite=not args.no_overwrite,
        )
    print(f"facetoon video: wrote {res.path} ({res.frames} frames, {res.width}x{res.height}, "
          f"{res.duration:.2f} s) in {res.seconds:.1f} s ({res.throughput:.2f} frames/s)", file=sys.stdout)
    return 0
