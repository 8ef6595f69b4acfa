"""Video stylization: PyAV I/O, audio copy, timestamps, rotation, errors, partial files, CLI.

Clips are made here with PyAV: the astronaut's face (examples/astronaut.png) — or selfies of
../shared — panned across a background, x264-encoded, with an AAC sine soundtrack. Models are
small randomly initialised ones (no shipped weights needed): geometry, timing and audio are
what is checked.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from torch import nn

import facetoon
from facetoon.errors import OutputError, VideoError
from facetoon.face import detect_faces
from facetoon.face.align import alignment_matrix
from facetoon.face.geometry import apply_affine, invert_affine
from facetoon.video import (
    FaceTracker,
    VideoReader,
    VideoWriter,
    partial_path,
    probe_video,
    process_video,
    stylize_video,
)
from facetoon.video.synthetic import FaceSprite, make_background, make_clip, read_audio_packets

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.png"
ASTRONAUT_FACE = (177.1, 81.6, 273.1, 177.6)


# --------------------------------------------------------------------------- helpers and fixtures


def decode(path: Path) -> tuple[list[np.ndarray], list[float], Fraction]:
    """All frames (RGB) and their times (seconds) with our reader, and the stream time base."""
    with VideoReader(path, audio=False) as r:
        frames = list(r)
        return [f.image for f in frames], [f.time for f in frames], r.info.time_base


def stream_pts(path: Path) -> list[float]:
    """Frame times in seconds straight from PyAV (independent of our reader)."""
    with av.open(os.fspath(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def sprite() -> FaceSprite:
    return FaceSprite.from_photo(ASTRONAUT, ASTRONAUT_FACE, height=130)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, sprite: FaceSprite):
    """64 frames, 320x240, 24 fps, one moving face, AAC sine audio."""
    path = tmp_path_factory.mktemp("clips") / "pan.mp4"
    return make_clip(path, [sprite], n_frames=64, fps=24, paths=[((10, 60), (170, 40))], noise=3.0)


@pytest.fixture(scope="module")
def stylizer() -> facetoon.Stylizer:
    """A Stylizer with small random models: a light U-GAT-IT at 64 px and a 3x3 conv scene model."""
    from facetoon.models.ugatit import Generator

    torch.manual_seed(0)
    scene = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())
    face = Generator(ngf=8, n_res=1, img_size=64, light=True)
    return facetoon.Stylizer(face_model=face, background_model=scene, face_size=64, precision="fp32")


def invert(image: np.ndarray, faces: object) -> np.ndarray:
    return 255 - image


# --------------------------------------------------------------------------- reading


def test_reader_gives_upright_rgb_frames_with_source_timing(clip) -> None:
    info = probe_video(clip.path)
    assert (info.width, info.height, info.rotation) == (320, 240, 0)
    assert info.fps == 24 and info.frames == 64 and info.codec == "h264"
    assert [a.codec for a in info.audio] == ["aac"]
    assert info.duration == pytest.approx(64 / 24, abs=1e-3)
    clip2 = make_clip(clip.path.with_name("kept.mp4"), [], n_frames=6, keep_frames=True, audio=False)
    frames, times, _ = decode(clip2.path)
    assert times == pytest.approx([p * 1 / 1200 for p in clip2.pts])
    for got, drawn in zip(frames, clip2.frames):
        assert got.dtype == np.uint8 and got.shape == (240, 320, 3)
        assert psnr(got, drawn) > 30  # right colours (matrix, range), right channel order


# --------------------------------------------------------------------------- the full pipeline


def test_stylized_video_keeps_size_rate_timing_and_audio(clip, stylizer, tmp_path: Path) -> None:
    out = tmp_path / "anime.mp4"
    res = stylize_video(clip.path, out, stylizer=stylizer, progress=False, batch_size=4)
    assert res.path == out and res.complete and res.frames == 64
    assert res.faces == 1 and res.detections >= 64 // 5
    src, dst = probe_video(clip.path), probe_video(out)
    assert (dst.width, dst.height) == (src.width, src.height)
    assert dst.fps == src.fps == 24
    assert dst.frames == 64
    assert dst.duration == pytest.approx(src.duration, abs=1e-3)
    assert stream_pts(out) == stream_pts(clip.path)
    # the audio packets are the source's, byte for byte, at the same times
    a, b = read_audio_packets(clip.path), read_audio_packets(out)
    assert len(a) > 100 and a == b
    # it went through the Stylizer: the scene model everywhere, a stylized face where the face is
    src_frames, _, _ = decode(clip.path)
    out_frames, _, _ = decode(out)
    for k in (0, 40):
        scene = stylizer.stylize_background(src_frames[k])
        x, y = clip.positions[k, 0]
        w, h = clip.sizes[0]
        face_box = (slice(int(y + 0.3 * h), int(y + 0.7 * h)), slice(int(x + 0.3 * w), int(x + 0.7 * w)))
        far = np.ones((240, 320), bool)
        far[max(0, int(y) - 30):int(y + h) + 30, max(0, int(x) - 30):int(x + w) + 30] = False
        assert psnr(out_frames[k][far], scene[far]) > 32
        diff = np.abs(out_frames[k][face_box].astype(int) - scene[face_box].astype(int)).mean()
        assert diff > 8, diff


def test_frames_go_through_stylizer_stylize_batch(clip, stylizer) -> None:
    """StylizerFrames is Stylizer.stylize_batch with the tracker's faces and opacities: each frame
    equals Stylizer.stylize with those faces and weights; all crops of a batch in one call."""
    from facetoon.video import StylizerFrames, TrackedFace

    frames, _, _ = decode(clip.path)
    images = [frames[k] for k in (0, 20, 40)]
    found = [stylizer.detect(img) for img in images]
    assert [len(f) for f in found] == [1, 1, 1]
    opacity = [1.0, 0.4, 0.0]
    tracked = [[TrackedFace(track_id=0, face=f[0], opacity=o, detected=True, measured=f[0].landmarks)]
               for f, o in zip(found, opacity)]
    engine = StylizerFrames(stylizer, strength=0.9)
    calls: list[int] = []
    hook = stylizer.face_model.register_forward_hook(lambda m, x, y: calls.append(x[0].shape[0]))
    try:
        outs = engine.stylize_batch(images, tracked)
    finally:
        hook.remove()
    assert calls == [2]  # the opacity-0 face is not stylized
    for img, f, o, out in zip(images, found, opacity, outs):
        alone = stylizer.stylize(img, faces=f, face_weights=[o], strength=0.9)
        # batch size changes the face model's float rounding (~1e-6): a crop value at a .5 edge
        # moves 1 level, and after resampling, harmonisation and two roundings up to 2 levels
        diff = np.abs(out.astype(int) - alone.astype(int))
        assert diff.max() <= 2 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).sum())
    # opacity 0: the scene only
    assert np.array_equal(outs[2], stylizer.stylize(images[2], faces=[], strength=0.9))
    full = stylizer.stylize(images[1], faces=found[1], strength=0.9)
    assert not np.array_equal(outs[1], full)


def test_stylizer_frames_options_keep_or_override_the_stylizer() -> None:
    """``max_faces`` left out or ``KEEP``: the Stylizer's own; ``None``: all faces; others checked
    by the pipeline's validators (the old string ``"keep"`` is no value)."""
    from types import SimpleNamespace

    from facetoon.errors import ConfigError
    from facetoon.pipeline.options import KEEP
    from facetoon.video import StylizerFrames

    st: Any = SimpleNamespace(strength=0.7, max_faces=3, blend="soft", harmonize=0.5, face_model=object())
    for engine in (StylizerFrames(st), StylizerFrames(st, max_faces=KEEP)):
        assert (engine.strength, engine.max_faces, engine.blend, engine.harmonize) == (0.7, 3, "soft", 0.5)
    engine = StylizerFrames(st, strength=0.2, max_faces=None, blend="hard", harmonize=False)
    assert (engine.strength, engine.max_faces, engine.blend, engine.harmonize) == (0.2, None, "hard", 0.0)
    assert StylizerFrames(st, max_faces=0).uses_faces is False
    for bad in ("keep", -1, 1.5, True):
        with pytest.raises(ConfigError, match="max_faces"):
            StylizerFrames(st, max_faces=bad)


def test_import_facetoon_video_stays_light() -> None:
    """The module docstring's promise (numpy only), which keeps ``KEEP`` out of the signatures."""
    import subprocess
    import sys

    code = ("import sys, facetoon.video\n"
            "print(','.join(m for m in ('torch', 'cv2', 'av', 'dlib') if m in sys.modules) or '-')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert out.stdout.strip() == "-"


def test_strength_zero_gives_back_the_source(clip, stylizer, tmp_path: Path) -> None:
    out = tmp_path / "same.mp4"
    stylize_video(clip.path, out, stylizer=stylizer, strength=0.0, progress=False)
    a, _, _ = decode(clip.path)
    b, _, _ = decode(out)
    assert len(a) == len(b) == 64
    assert min(psnr(x, y) for x, y in zip(a, b)) > 38  # colour conversion round trip + CRF 18


def test_video_without_face(stylizer, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "empty.mp4", [], n_frames=24, background=make_background(320, 240, seed=3))
    out = tmp_path / "empty_anime.mp4"
    res = stylize_video(clip.path, out, stylizer=stylizer, progress=False)
    assert res.frames == 24 and res.faces == 0
    src, _, _ = decode(clip.path)
    got, _, _ = decode(out)
    for k in (0, 23):
        assert psnr(got[k], stylizer.stylize_background(src[k])) > 32
    assert read_audio_packets(out) == read_audio_packets(clip.path)


# --------------------------------------------------------------------------- timing and rotation


def test_variable_frame_rate_keeps_its_timestamps(sprite: FaceSprite, tmp_path: Path) -> None:
    gaps = [1 / 24, 1 / 24, 1 / 12, 1 / 30, 1 / 8, 1 / 24]  # irregular intervals
    times = np.cumsum([0.0] + [gaps[i % len(gaps)] for i in range(29)]).tolist()
    clip = make_clip(tmp_path / "vfr.mp4", [sprite], n_frames=30, times=times)
    out = tmp_path / "vfr_out.mp4"
    res = stylize_video(clip.path, out, stylize_frame=invert, progress=False)
    assert res.frames == 30
    src_t, out_t = stream_pts(clip.path), stream_pts(out)
    assert out_t == src_t
    assert src_t == pytest.approx([t - times[0] for t in times], abs=1e-3)
    assert probe_video(out).time_base == probe_video(clip.path).time_base
    assert read_audio_packets(out) == read_audio_packets(clip.path)


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_metadata_is_applied(sprite: FaceSprite, tmp_path: Path, rotation: int) -> None:
    clip = make_clip(tmp_path / f"rot{rotation}.mp4", [sprite], n_frames=8, rotation=rotation,
                     keep_frames=True)
    info = probe_video(clip.path)
    assert info.rotation == rotation and (info.coded_width, info.coded_height) == (240, 320)
    assert (info.width, info.height) == (320, 240)
    out = tmp_path / f"rot{rotation}_out.mp4"
    stylize_video(clip.path, out, stylize_frame=lambda im, f: im, progress=False)
    with av.open(os.fspath(out)) as c:
        first = next(c.decode(video=0))
        assert (first.width, first.height, first.rotation) == (320, 240, 0)  # upright, no metadata
    frames, _, _ = decode(out)
    assert all(psnr(got, drawn) > 30 for got, drawn in zip(frames, clip.frames))
    # and the face is found on the upright frames
    assert detect_faces(frames[4])


# --------------------------------------------------------------------------- previews


def test_start_and_duration_preview(clip, tmp_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    res = stylize_video(clip.path, out, stylize_frame=invert, start=1.0, duration=1.0, progress=False)
    assert res.frames == 24
    times = stream_pts(out)
    assert times[0] == 0.0 and times == pytest.approx([i / 24 for i in range(24)], abs=1e-4)
    src = read_audio_packets(clip.path)
    got = read_audio_packets(out)
    expected = [(t - 1.0, b) for t, b in src if t < 2.0 and t + 1024 / 44100 > 1.0]
    assert [b for _, b in got] == [b for _, b in expected]
    assert [t for t, _ in got] == pytest.approx([t for t, _ in expected], abs=1e-4)


# --------------------------------------------------------------------------- errors and interruption


def test_bad_inputs_raise_video_error(clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="file not found"):
        stylize_video(tmp_path / "missing.mp4", out, stylize_frame=invert, progress=False)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoError, match="not a readable video") as e:
        stylize_video(text, out, stylize_frame=invert, progress=False)
    assert "\n" not in str(e.value) and str(text) in str(e.value)
    # a truncated file whose index is at the end cannot even be opened
    data = clip.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as e:
        stylize_video(cut, out, stylize_frame=invert, progress=False)
    assert str(cut) in str(e.value)
    # audio only
    audio_only = tmp_path / "sound.m4a"
    with av.open(os.fspath(clip.path)) as src, av.open(os.fspath(audio_only), "w", format="mp4") as dst:
        s = dst.add_stream_from_template(src.streams.audio[0])
        for p in src.demux(src.streams.audio[0]):
            if p.dts is not None:
                p.stream = s
                dst.mux(p)
    with pytest.raises(VideoError, match="no video stream"):
        stylize_video(audio_only, out, stylize_frame=invert, progress=False)
    assert not out.exists() and not partial_path(out).exists()
    # a song with cover art: its one-picture "video stream" is not a video
    song = tmp_path / "song.m4a"
    with av.open(os.fspath(clip.path)) as src, av.open(os.fspath(song), "w", format="mp4") as dst:
        s = dst.add_stream_from_template(src.streams.audio[0])
        cover = dst.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts = 0
        for p in [*cover.encode(picture), *cover.encode(None)]:
            dst.mux(p)
        for p in src.demux(src.streams.audio[0]):
            if p.dts is not None:
                p.stream = s
                dst.mux(p)
    with av.open(os.fspath(song)) as c:
        assert [st.type for st in c.streams] == ["audio", "video"]
    with pytest.raises(VideoError, match="only a cover picture"):
        stylize_video(song, out, stylize_frame=invert, progress=False)
    assert not out.exists() and not partial_path(out).exists()


def test_matroska_whose_soundtrack_runs_longer_is_complete(sprite: FaceSprite, tmp_path: Path) -> None:
    """Matroska declares no frame count and its container duration covers the audio: a 1 s video
    with 3 s of sound is complete (the video stream's own DURATION tag bounds its frames)."""
    clip = make_clip(tmp_path / "long_sound.mkv", [sprite], n_frames=24, audio_seconds=3.0)
    with av.open(os.fspath(clip.path)) as c:
        assert c.streams.video[0].frames == 0 and c.duration / av.time_base > 2.9
    res = stylize_video(clip.path, tmp_path / "out.mkv", stylize_frame=invert, progress=False)
    assert res.complete and res.frames == 24
    assert sum(len(p) for _, p in read_audio_packets(res.path)) == sum(len(p) for _, p in read_audio_packets(clip.path))


def test_truncated_stream_keeps_a_playable_partial(clip, tmp_path: Path) -> None:
    """Index first (faststart), then the data cut in the middle: the frames before the cut are
    written to a playable .partial file and a VideoError says where it stopped."""
    fast = tmp_path / "fast.mp4"
    with av.open(os.fspath(clip.path)) as src, \
            av.open(os.fspath(fast), "w", options={"movflags": "+faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for p in src.demux():
            if p.dts is not None:
                p.stream = streams[p.stream_index]
                dst.mux(p)
    data = fast.read_bytes()
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "cut_out.mp4"
    with pytest.raises(VideoError, match="truncated") as e:
        stylize_video(cut, out, stylize_frame=invert, progress=False)
    partial = partial_path(out)
    assert str(partial) in str(e.value) and "\n" not in str(e.value)
    assert not out.exists() and partial.exists()
    n = len(stream_pts(partial))
    assert 10 < n < 64
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_interrupt_leaves_a_playable_partial_file(clip, tmp_path: Path) -> None:
    calls = {"n": 0}

    def stop_at_30(image: np.ndarray, faces: object) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        return 255 - image

    out = tmp_path / "stopped.mp4"
    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip.path, out, stylize_frame=stop_at_30, batch_size=4, progress=False)
    assert not out.exists()
    partial = partial_path(out)
    assert partial.name == "stopped.partial.mp4"
    # frames 0-27 were stylized (7 batches of 4) before the 8th batch was interrupted
    assert len(stream_pts(partial)) == 28
    src, _, _ = decode(clip.path)
    got, _, _ = decode(partial)
    assert psnr(got[27], 255 - src[27]) > 35
    audio = read_audio_packets(partial)
    assert audio and audio == read_audio_packets(clip.path)[: len(audio)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_error_in_a_frame_is_a_video_error_naming_the_progress(clip, tmp_path: Path) -> None:
    calls = {"n": 0}

    def broken(image: np.ndarray, faces: object) -> np.ndarray:
        if calls["n"] >= 10:
            raise RuntimeError("model exploded")
        calls["n"] += 1
        return image

    out = tmp_path / "broken.mp4"
    with pytest.raises(VideoError, match="RuntimeError: model exploded") as e:
        stylize_video(clip.path, out, stylize_frame=broken, batch_size=2, progress=False)
    msg = str(e.value)
    assert "after 10 of 64 frames" in msg and str(partial_path(out)) in msg
    assert len(stream_pts(partial_path(out))) == 10


def test_output_checks(clip, tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        stylize_video(clip.path, clip.path, stylize_frame=invert, progress=False)
    with pytest.raises(VideoError, match="unsupported output extension"):
        stylize_video(clip.path, tmp_path / "x.gif", stylize_frame=invert, progress=False)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep")
    with pytest.raises(OutputError):
        stylize_video(clip.path, existing, stylize_frame=invert, overwrite=False, progress=False)
    assert existing.read_bytes() == b"keep"
    # the input is what an interrupted run would replace with its partial file
    source = tmp_path / "x.partial.mp4"
    shutil.copy(clip.path, source)
    with pytest.raises(OutputError, match="partial file"):
        stylize_video(source, tmp_path / "x.mp4", stylize_frame=invert, progress=False)
    assert source.read_bytes() == clip.path.read_bytes() and not (tmp_path / "x.mp4").exists()


def test_output_appearing_while_encoding_keeps_the_work(clip, tmp_path: Path) -> None:
    """overwrite=False and another program creates the output meanwhile: that file stays, and the
    finished video is kept as the partial file instead of being deleted."""
    frames, _, tb = decode(clip.path)
    out = tmp_path / "race.mp4"
    w = VideoWriter(out, width=320, height=240, fps=24, time_base=tb, preset="ultrafast", overwrite=False)
    for i, f in enumerate(frames[:6]):
        w.write(f, i * int(1 / (24 * tb)))
    out.write_bytes(b"someone else's")
    with pytest.raises(OutputError, match="kept as") as e:
        w.close()
    assert str(partial_path(out)) in str(e.value)
    assert out.read_bytes() == b"someone else's"
    assert len(stream_pts(partial_path(out))) == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_appearing_at_the_last_moment_is_not_replaced(
        clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """overwrite=False and the output appears during close itself — after any existence check,
    just before the finished file takes its name: the move is atomic (a hard link), so that file's
    bytes stay and the work is kept as the partial file."""
    frames, _, tb = decode(clip.path)
    out = tmp_path / "late.mp4"
    w = VideoWriter(out, width=320, height=240, fps=24, time_base=tb, preset="ultrafast", overwrite=False)
    for i, f in enumerate(frames[:6]):
        w.write(f, i * int(1 / (24 * tb)))
    assert not out.exists()
    fsync = os.fsync

    def fsync_then_race(fd: int) -> None:  # close syncs the finished file right before moving it
        fsync(fd)
        if not out.exists():
            out.write_bytes(b"written by another program")

    monkeypatch.setattr(os, "fsync", fsync_then_race)
    with pytest.raises(OutputError, match="kept as") as e:
        w.close()
    monkeypatch.undo()
    assert out.read_bytes() == b"written by another program"
    assert e.value.path == str(out) and str(partial_path(out)) in str(e.value)
    assert len(stream_pts(partial_path(out))) == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_option_errors_leave_nothing_behind(clip, stylizer, tmp_path: Path) -> None:
    from facetoon.errors import ConfigError

    out = tmp_path / "x.mp4"
    for kwargs in ({"detect_every": 0}, {"batch_size": 0}, {"smoothing": 2.0}, {"audio": "aac"},
                   {"crf": 99}, {"codec": "no-such-codec"}, {"require_face": True}):
        with pytest.raises(ConfigError):
            stylize_video(clip.path, out, stylizer=stylizer, progress=False, **kwargs)
    with pytest.raises(ConfigError, match="face_size"):
        stylize_video(clip.path, out, stylizer=stylizer, face_size=128, progress=False)
    with pytest.raises(ConfigError, match="stylize_frame"):
        stylize_video(clip.path, out, stylizer=stylizer, stylize_frame=invert, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_audio_the_container_cannot_hold(sprite: FaceSprite, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "pcm.mkv", [sprite], n_frames=12, audio_codec="pcm_s16le")
    with pytest.raises(VideoError, match="pcm_s16le audio cannot be copied into a webm"):
        stylize_video(clip.path, tmp_path / "out.webm", stylize_frame=invert, progress=False)
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []
    res = stylize_video(clip.path, tmp_path / "out.webm", stylize_frame=invert, audio="none", progress=False)
    info = probe_video(res.path)
    assert info.codec == "vp9" and info.audio == () and res.frames == 12
    # Matroska holds PCM: copied as is
    res = stylize_video(clip.path, tmp_path / "out.mkv", stylize_frame=invert, progress=False)
    assert read_audio_packets(res.path) == read_audio_packets(clip.path)


def test_avi_output_keeps_the_frame_rate_and_the_audio(clip, tmp_path: Path) -> None:
    """AVI is constant-rate: written in the source's time base (ticks much finer than 1/24 s)
    FFmpeg would store one frame per tick as the rate, and an empty frame for every tick between two."""
    import av

    res = stylize_video(clip.path, tmp_path / "out.avi", stylize_frame=invert, progress=False)
    assert res.complete and res.frames == 64
    with av.open(str(res.path)) as c:
        v = c.streams.video[0]
        assert v.average_rate == 24 and v.frames == 64
        assert sum(1 for _ in c.decode(v)) == 64
    src, dst = probe_video(clip.path), probe_video(res.path)
    assert dst.fps == 24 and dst.duration == pytest.approx(src.duration, abs=0.05)
    assert [len(p) for _, p in read_audio_packets(res.path)] == [len(p) for _, p in read_audio_packets(clip.path)]
    frames, _, _ = decode(res.path)
    source, _, _ = decode(clip.path)
    assert psnr(frames[30], 255 - source[30]) > 30  # the frames are the stylized ones, in order


def test_writer_codecs_and_quality(clip, tmp_path: Path) -> None:
    frames, _, tb = decode(clip.path)
    sizes = {}
    for crf in (18, 35):
        out = tmp_path / f"crf{crf}.mp4"
        with VideoWriter(out, width=320, height=240, fps=24, time_base=tb, crf=crf, preset="veryfast") as w:
            for i, f in enumerate(frames[:16]):
                w.write(f, i * int(1 / (24 * tb)))
        sizes[crf] = out.stat().st_size
    assert sizes[35] < sizes[18]
    out = tmp_path / "hevc.mkv"
    with VideoWriter(out, width=320, height=240, fps=24, time_base=tb, codec="hevc", preset="ultrafast") as w:
        for i, f in enumerate(frames[:4]):
            w.write(f, i * 800)
    assert probe_video(out).codec == "hevc"


# --------------------------------------------------------------------------- stable faces on real video


class Recorder:
    """A FrameStylizer that runs the real detector and records the tracked faces.

    ``noise``: landmark noise added to each detection, as a fraction of the face size
    (simulates a detector's jitter on real footage; the same noise for the same frame).
    """

    def __init__(self, noise: float = 0.0, cache: dict | None = None) -> None:
        self.faces: list[list] = []
        self.noise = noise
        self.cache = {} if cache is None else cache

    def detect(self, image: np.ndarray) -> list:
        key = image[::5, ::5].tobytes()
        if key not in self.cache:
            faces = detect_faces(image)
            rng = np.random.default_rng(len(self.cache))
            self.cache[key] = [
                replace(f, landmarks=f.landmarks + rng.normal(0, self.noise * f.size, f.landmarks.shape))
                for f in faces]
        return self.cache[key]

    def stylize_batch(self, images, faces):
        self.faces += [list(f) for f in faces]
        return [np.array(i) for i in images]


def run_recorder(path: Path, out: Path, rec: Recorder, detect_every: int, **tracker: object) -> list[list]:
    with VideoReader(path) as r:
        w = VideoWriter(out, width=r.info.width, height=r.info.height, fps=r.info.fps,
                        time_base=r.info.time_base, preset="ultrafast")
        process_video(r, w, rec, FaceTracker(**tracker), detect_every=detect_every, progress=False)
    return rec.faces


def test_smoothing_lowers_crop_jitter_on_a_video(sprite: FaceSprite, tmp_path: Path) -> None:
    """Real detections on a real (encoded, noisy) clip of a face that pans then stops, plus
    detector-like landmark noise: the aligned crop's position, compared with the true motion,
    jitters less with the default smoothing (tracking + One-Euro) than with raw detections."""
    clip = make_clip(tmp_path / "jit.mp4", [sprite], n_frames=72, paths=[((20, 60), (180, 40))], noise=4.0,
                     hold=0.4, audio=False)
    cache: dict = {}

    def jitter(faces: list[list]) -> float:
        assert all(len(f) == 1 for f in faces)
        m = [alignment_matrix(f[0].face, 256) for f in faces]
        centres = np.array([apply_affine(invert_affine(x), np.array([[127.5, 127.5]]))[0] for x in m])
        res = centres - clip.positions[:, 0]
        return float(np.sqrt(np.mean(np.sum(np.diff(res, axis=0) ** 2, axis=1))))

    raw = jitter(run_recorder(clip.path, tmp_path / "a.mp4", Recorder(0.015, cache), 1, smoothing=0.0,
                              detection_gain=1.0))
    euro = jitter(run_recorder(clip.path, tmp_path / "b.mp4", Recorder(0.015, cache), 1, smoothing=0.5,
                               detection_gain=1.0))
    default = jitter(run_recorder(clip.path, tmp_path / "c.mp4", Recorder(0.015, cache), 5))
    assert euro < 0.8 * raw, (raw, euro)
    assert default < 0.5 * raw, (raw, default)


def test_two_faces_tracked_and_a_late_face_fades_in(selfies: list[Path], tmp_path: Path) -> None:
    a = FaceSprite.from_photo(selfies[0], (64, 64, 192, 192), margin=0.3, height=110)
    b = FaceSprite.from_photo(selfies[1], (64, 64, 192, 192), margin=0.3, height=110)
    clip = make_clip(tmp_path / "two.mp4", [a, b], size=(480, 270), n_frames=40,
                     paths=[((10, 80), (90, 70)), ((360, 90), (300, 80))], visible=[(0, 40), (17, 40)],
                     audio=False)
    faces = run_recorder(clip.path, tmp_path / "two_out.mp4", Recorder(), 5)
    assert len(faces[0]) == 1 and len(faces[-1]) == 2
    late = [next((f for f in fs if f.face.landmarks[:, 0].mean() > 240), None) for fs in faces]
    first = next(i for i, f in enumerate(late) if f is not None)
    assert 17 <= first <= 25  # found at the next detection after it appears
    ramp = [late[i].opacity for i in range(first, first + 7)]  # type: ignore[union-attr]
    assert ramp[0] < 0.5 and ramp == sorted(ramp) and ramp[-1] == 1.0
    ids = {f.track_id for fs in faces for f in fs}
    assert len(ids) == 2


# --------------------------------------------------------------------------- command line


def test_cli_video_names_the_option_of_wrong_weights(clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As `facetoon stylize`: weights of the wrong kind get the command line's own one-line message."""
    from facetoon.cli import main
    from facetoon.models.serialization import save_pretrained
    from facetoon.models.ugatit import Generator

    weights = save_pretrained(Generator(ngf=8, n_res=1, img_size=64, light=True), tmp_path / "face")
    code = main(["video", str(clip.path), "-o", str(tmp_path / "out.mp4"), "--background-weights", str(weights),
                 "--duration", "0.5", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "--face-weights" in err and "background_weights" not in err and "[command line:" not in err, err
    assert not (tmp_path / "out.mp4").exists()


def test_cli_video(clip, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import facetoon.cli._stylizer_args as stylizer_args
    import facetoon.cli.video as cli_video
    from facetoon.cli import main
    from facetoon.models.serialization import save_pretrained
    from facetoon.models.ugatit import Generator

    built = []  # the Stylizer's options are made once, by the check before the models load
    options = stylizer_args.stylizer_options
    for module in (stylizer_args, cli_video):
        monkeypatch.setattr(module, "stylizer_options", lambda args: built.append(args) or options(args))
    torch.manual_seed(0)
    weights = save_pretrained(Generator(ngf=8, n_res=1, img_size=64, light=True), tmp_path / "face")
    out = tmp_path / "cli.mp4"
    code = main(["video", str(clip.path), "-o", str(out), "--face-weights", str(weights),
                 "--background", "none", "--duration", "0.5", "--no-progress", "--precision", "fp32"])
    assert code == 0 and len(built) == 1
    assert len(stream_pts(out)) == 12
    assert "wrote" in capsys.readouterr().out
    code = main(["video", str(tmp_path / "nothing.mp4"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "file not found" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("options, message", [
    (["-o", "{tmp}/out.gif"], "unsupported output extension '.gif'"),
    (["--codec", "no-such-codec"], "--codec: no encoder 'no-such-codec'"),
    (["--crf", "99"], "--crf: expected a number in 0..63"),
    (["--preset", "fastest"], "--preset: the libx264 encoder rejects 'fastest'"),
    (["--start=-1"], "--start: expected seconds >= 0"),
    (["--start", "10"], "--start: 10 s is at or after the end of the video (2.67 s)"),
    (["--duration", "0"], "--duration: expected seconds > 0"),
    (["--duration=-1"], "--duration: expected seconds > 0, got -1.0"),
    (["-o", "{tmp}"], "is a folder; expected an output file name"),
    (["--codec", "vp9", "--preset", "ultrafast"], "--preset: the libvpx-vp9 encoder takes no preset"),
    (["--codec", "av1", "--preset", "ultrafast"], "--preset: the libsvtav1 encoder rejects 'ultrafast'"),
    (["-o", "{tmp}/v5.mov", "--codec", "vp9", "--no-audio"], "--codec: vp9 video cannot be stored in a .mov"),
    (["--no-overwrite", "-o", "{tmp}/exists.mp4"], "output file already exists"),
    (["--detect-every", "0"], "--detect-every: expected an integer >= 1"),
    (["--batch-size", "0"], "--batch-size: expected an integer in 1..256"),
    (["-o", "{clip}"], "refusing to overwrite the input video"),
    (["--smoothing", "2"], "--smoothing: expected a number in [0, 1], got 2.0"),
    (["--fade-frames=-1"], "--fade-frames: expected an integer >= 0"),
    (["--min-face-size=-3"], "--min-face-size must be > 0 (pixels), got -3"),
])
def test_cli_video_checks_the_options_before_loading_models(
        clip, tmp_path: Path, capfd: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    """Every bad input or output option fails at once, in one line (captured at the file
    descriptor: an encoder printing its own error would show): the face weights given do not
    exist, so an error about them would mean the models were loaded first."""
    from facetoon.cli import main

    (tmp_path / "exists.mp4").write_bytes(b"keep")
    options = [o.replace("{tmp}", str(tmp_path)).replace("{clip}", str(clip.path)) for o in options]
    before = clip.path.read_bytes()
    code = main(["video", str(clip.path), "-o", str(tmp_path / "out.mp4"), *options,
                 "--face-weights", str(tmp_path / "no-weights"), "--background", "none", "--no-progress"])
    err = capfd.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert "no-weights" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4"]
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep" and clip.path.read_bytes() == before


def test_cli_video_refuses_a_still_image(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A photo is not a 1-frame video: one line pointing to facetoon stylize, before any model
    loads (the face weights named do not exist)."""
    from PIL import Image

    from facetoon.cli import main

    photo = tmp_path / "selfie.jpg"
    Image.open(ASTRONAUT).convert("RGB").save(photo)
    code = main(["video", str(photo), "-o", str(tmp_path / "v1.mp4"), "--face-weights",
                 str(tmp_path / "no-weights"), "--no-progress"])
    err = capfd.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "still image" in err and "facetoon stylize" in err and "no-weights" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["selfie.jpg"]


def test_cli_video_default_output_keeps_a_writable_container(tmp_path: Path) -> None:
    """The help of -o says what default_output does: the input's extension when writable."""
    import argparse

    from facetoon.cli.video import default_output, register

    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    help_text = " ".join(sub.choices["video"].format_help().split())
    assert "IN-stem_facetoon.mp4" not in help_text and "the input's extension" in help_text
    assert default_output(tmp_path / "a.mkv") == tmp_path / "a_facetoon.mkv"
    assert default_output(tmp_path / "a.flv") == tmp_path / "a_facetoon.mp4"
