"""Video: stylize clips frame by frame with stable faces, keeping timing and sound.

    >>> import facetoon
    >>> result = facetoon.stylize_video("clip.mp4", "anime.mp4", precision="fast")   # doctest: +SKIP
    >>> result.frames, result.throughput                                           # doctest: +SKIP

Modules:

* :mod:`facetoon.video.reader` — PyAV decoding: upright RGB frames, source timestamps, audio
  packets passed through;
* :mod:`facetoon.video.writer` — PyAV encoding (H.264 by default), audio remuxed unchanged,
  atomic output and playable ``.partial`` files;
* :mod:`facetoon.video.tracking` — face tracks, optical-flow propagation between detections,
  One-Euro landmark smoothing, fade in/out;
* :mod:`facetoon.video.pipeline` — the threaded frame loop and :func:`stylize_video`.

Importing this package loads numpy only; PyAV, OpenCV and torch are imported when used.
"""

from __future__ import annotations

from .pipeline import FrameStylizer, StylizerFrames, VideoResult, check_video_job, process_video, stylize_video
from .reader import DecodedFrame, VideoInfo, VideoReader, probe_video
from .tracking import FaceTracker, OneEuroFilter, TrackedFace, smoothing_params
from .writer import VideoWriter, partial_path

__all__ = [
    "DecodedFrame",
    "FaceTracker",
    "FrameStylizer",
    "OneEuroFilter",
    "StylizerFrames",
    "TrackedFace",
    "VideoInfo",
    "VideoReader",
    "VideoResult",
    "VideoWriter",
    "check_video_job",
    "partial_path",
    "probe_video",
    "process_video",
    "smoothing_params",
    "stylize_video",
]
