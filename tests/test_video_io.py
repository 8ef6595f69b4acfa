"""Video reading and writing details: stream-copy trims (MP4 edit lists), colour tags, HDR transfer
characteristics, encoder quality settings.

Clips are real files made here with PyAV (libx264, 10-bit libx265 for HDR; AAC sound where the
audio matters).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facetoon.errors import ConfigError, OutputError, VideoError
from facetoon.video import VideoReader, VideoWriter, partial_path, probe_video, stylize_video
from facetoon.video.synthetic import make_clip, read_audio_packets
from facetoon.video.writer import check_output, crf_quantiser


def invert(image: np.ndarray, faces: object) -> np.ndarray:
    return 255 - image


def keep(image: np.ndarray, faces: object) -> np.ndarray:
    return image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def trim_by_stream_copy(src: Path, dst: Path, at: float, faststart: bool = False) -> Path:
    """What ``ffmpeg -ss AT -i SRC -c copy DST`` does: the video packets from the keyframe before
    ``at`` on, moved back by ``at`` (the MP4 muxer writes an edit list that skips the ones before
    0), the audio from ``at`` on."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(os.fspath(src)) as i, av.open(os.fspath(dst), "w", options=options) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        video = i.streams.video[0]
        i.seek(int(at / video.time_base), stream=video, backward=True)
        for p in i.demux():
            if p.dts is None:
                continue
            shift = int(round(at / p.time_base))
            if p.stream.type == "audio" and p.pts < shift:
                continue
            p.pts -= shift
            p.dts -= shift
            p.stream = streams[p.stream_index]
            o.mux(p)
    return dst


# --------------------------------------------------------------------------- stream-copy trims


def test_stream_copy_trimmed_mp4_is_complete(tmp_path: Path) -> None:
    """A 96-frame clip trimmed at 1.5 s by stream copy: the header still counts 96 frames (the
    edit list skips 36), the stream lasts 2.5 s = 60 frames, and those 60 are the whole video."""
    src = make_clip(tmp_path / "in.mp4", [], n_frames=96, fps=24)
    trimmed = trim_by_stream_copy(src.path, tmp_path / "trimmed.mp4", 1.5)
    info = probe_video(trimmed)
    assert info.frames == 96 and info.duration == pytest.approx(2.5)  # the edit list is there
    with VideoReader(trimmed, audio=False) as r:
        times = [f.time for f in r]
    assert times == pytest.approx([i / 24 for i in range(60)])
    out = tmp_path / "out.mp4"
    res = stylize_video(trimmed, out, stylize_frame=invert, progress=False)
    assert res.complete and res.path == out and res.frames == 60
    assert read_audio_packets(out) == read_audio_packets(trimmed)


def test_truncated_trimmed_mp4_is_still_truncated(tmp_path: Path) -> None:
    """The duration, which replaces the frame count as the yardstick, still catches a cut file."""
    src = make_clip(tmp_path / "in.mp4", [], n_frames=96, fps=24)
    trimmed = trim_by_stream_copy(src.path, tmp_path / "trimmed.mp4", 1.5, faststart=True)
    data = trimmed.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="truncated or damaged: the data ends at") as e:
        stylize_video(cut, out, stylize_frame=invert, progress=False)
    assert "\n" not in str(e.value) and partial_path(out).exists()


def _damage_packets(src: Path, dst: Path, which: range) -> None:
    """A copy of ``src`` whose video packets ``which`` (in file order) are overwritten with 0xFF."""
    data = bytearray(src.read_bytes())
    with av.open(str(src)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    for i in which:
        pos, size = packets[i]
        data[pos:pos + size] = b"\xff" * size
    dst.write_bytes(bytes(data))


def test_a_damaged_packet_is_skipped_and_the_rest_of_the_video_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One damaged H.264 packet used to end the read (VideoError after frame 38 of 96, output lost);
    the decoder recovers at the next packet, so only that frame is missing. Damage throughout is
    still an error."""
    import logging

    src = make_clip(tmp_path / "in.mp4", [], size=(96, 64), n_frames=96, fps=24, audio=False, noise=8)
    _damage_packets(src.path, tmp_path / "one.mp4", range(40, 41))
    with caplog.at_level(logging.WARNING, logger="facetoon.video.reader"):
        with VideoReader(tmp_path / "one.mp4") as reader:
            frames = [f.index for f in reader]
            assert reader.bad_packets == 1
    assert len(frames) == 95 and "skipped a damaged video packet" in caplog.text
    out = stylize_video(tmp_path / "one.mp4", tmp_path / "out.mp4", stylize_frame=invert, progress=False)
    assert out.frames == 95 and (tmp_path / "out.mp4").is_file()
    _damage_packets(src.path, tmp_path / "many.mp4", range(10, 90))
    with pytest.raises(VideoError, match="corrupt or truncated video data"):
        with VideoReader(tmp_path / "many.mp4") as reader:
            list(reader)


def test_partial_output_of_a_damaged_video_has_its_sound_up_to_its_last_frame(tmp_path: Path) -> None:
    """Audio stored behind its video (here 0.5 s MP4 fragments: their video, then their audio, as
    camera files interleave in chunks), then damage that ends the read: the audio read after the
    last good frame used to be dropped, so the .partial file went silent 0.3 s before its video
    ended. Now it has the source's sound up to the end of its last frame."""
    src = make_clip(tmp_path / "in.mp4", [], size=(96, 64), n_frames=96, fps=24, noise=8)
    chunked = tmp_path / "chunked.mp4"
    with av.open(os.fspath(src.path)) as i, av.open(os.fspath(chunked), "w", options={
            "movflags": "frag_keyframe+empty_moov", "frag_duration": "500000"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is not None:
                p.stream = streams[p.stream_index]
                o.mux(p)
    _damage_packets(chunked, tmp_path / "bad.mp4", range(44, 96))  # from 1.83 s (packets 36-47: 1.5-2 s)
    with VideoReader(tmp_path / "bad.mp4") as reader:
        frames = []
        with pytest.raises(VideoError, match="corrupt or truncated video data"):
            frames.extend(reader)
        end = frames[-1].time + 1 / 24
        assert reader.trailing_audio and all(p.pts * p.time_base < end for p in reader.trailing_audio)
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="corrupt or truncated video data"):
        stylize_video(tmp_path / "bad.mp4", out, stylize_frame=keep, progress=False)
    with av.open(os.fspath(partial_path(out))) as c:
        video_end = max(float(f.pts * f.time_base) for f in c.decode(video=0)) + 1 / 24
    audio = read_audio_packets(partial_path(out))
    assert audio == read_audio_packets(chunked)[: len(audio)]
    assert video_end - 0.03 < audio[-1][0] < video_end  # AAC packets: 1024 samples, 23 ms


# --------------------------------------------------------------------------- colour matrices

BANDS = [(200, 60, 30), (30, 160, 220), (90, 200, 70)]


def make_tagged_clip(path: Path, matrix: str, tags: tuple[int, int, int]) -> Path:
    """An HD (96x720) clip of three colour bands, converted with ``matrix`` and tagged ``tags``
    (FFmpeg's colorspace, primaries, transfer) as a camera would."""
    image = np.zeros((720, 96, 3), np.uint8)
    for i, colour in enumerate(BANDS):
        image[240 * i:240 * (i + 1)] = colour
    with av.open(os.fspath(path), "w") as out:
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 96, 720, "yuv420p"
        v.options = {"crf": "10", "preset": "ultrafast"}
        cc = v.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = tags
        cc.color_range = 1  # limited
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range="MPEG")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    return path


def band_colours(path: Path) -> np.ndarray:
    with VideoReader(path, audio=False) as r:
        image = next(iter(r)).image
    return np.array([image[240 * i + 120, 48] for i in range(3)], dtype=int)


def frame_tags(path: Path) -> tuple[int, int, int]:
    with av.open(os.fspath(path)) as c:
        f = next(c.decode(video=0))
        return int(f.colorspace), int(f.color_primaries), int(f.color_trc)


@pytest.mark.parametrize("matrix, tags", [
    ("itu601", (6, 6, 6)),     # SMPTE 170M: FFmpeg's tag 6, PyAV's converter constant 5
    ("bt2020", (9, 9, 14)),
    ("fcc", (4, 4, 4)),
])
def test_colour_matrix_tags_are_read_and_written(tmp_path: Path, matrix: str,
                                                 tags: tuple[int, int, int]) -> None:
    """The frame's tag picks the matrix (not the HD guess, BT.709), and the output is tagged with
    the matrix it was converted with: colours survive decoding and a round trip."""
    src = make_tagged_clip(tmp_path / f"{matrix}.mp4", matrix, tags)
    assert frame_tags(src) == tags
    assert probe_video(src).colorspace == matrix
    assert np.abs(band_colours(src) - BANDS).max() <= 3
    out = tmp_path / f"{matrix}_out.mp4"
    stylize_video(src, out, stylize_frame=keep, progress=False)
    assert frame_tags(out) == tags
    assert np.abs(band_colours(out) - BANDS).max() <= 5


def test_unknown_colour_matrix_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colorspace: expected one of"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=64, fps=24, time_base=Fraction(1, 24),
                    colorspace="ycgco")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- transfer characteristics (HDR)

PQ_WARNING = "HDR video (PQ / SMPTE ST 2084 transfer)"


def make_10bit_clip(path: Path, tags: tuple[int, int, int], n_frames: int = 8) -> Path:
    """A 64x48 10-bit HEVC clip (yuv420p10le, as phones record HDR) of ``n_frames`` grey-blue frames,
    converted with the BT.2020 matrix and tagged ``tags`` (colorspace, primaries, transfer), limited
    range; the tags are checked to read back from the file."""
    with av.open(os.fspath(path), "w") as out:
        v = out.add_stream("libx265", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p10le"
        v.options = {"crf": "20", "preset": "ultrafast", "x265-params": "log-level=error"}
        cc = v.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = tags
        cc.color_range = 1  # limited
        for i in range(n_frames):
            image = np.full((48, 64, 3), (60 + 10 * i, 120, 180), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(format="yuv420p10le", dst_colorspace="bt2020", dst_color_range="MPEG")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    assert frame_tags(path) == tags
    return path


@pytest.mark.parametrize("tags, name", [
    ((1, 1, 1), "bt709"),
    ((9, 9, 14), "bt2020-10"),
    ((9, 9, 16), "pq"),
    ((9, 9, 18), "hlg"),
    ((9, 9, 2), "unknown"),   # untagged transfer
])
def test_the_transfer_characteristic_is_read_by_name(tmp_path: Path, tags: tuple[int, int, int],
                                                     name: str) -> None:
    src = make_10bit_clip(tmp_path / "in.mp4", tags)
    info = probe_video(src)
    assert info.transfer == name
    assert info.colorspace == ("itu709" if tags[0] == 1 else "bt2020")


def test_a_pq_source_is_stylized_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """HDR PQ frames are stylized untouched (no tone mapping in this FFmpeg: no zscale), with one
    warning per file that says so and gives an ffmpeg command converting the clip to SDR; the
    job's up-front check (as the CLI runs it) and the job itself open the file twice. HLG and
    SDR sources get no warning."""
    import logging

    from facetoon.video import check_video_job

    pq = make_10bit_clip(tmp_path / "pq.mp4", (9, 9, 16))
    with caplog.at_level(logging.WARNING, logger="facetoon.video.reader"):
        check_video_job(pq, tmp_path / "pq_out.mp4")
        res = stylize_video(pq, tmp_path / "pq_out.mp4", stylize_frame=keep, progress=False)
    assert res.complete and res.frames == 8
    warnings = [r.getMessage() for r in caplog.records
                if PQ_WARNING in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert str(pq) in warnings[0] and "\n" not in warnings[0]
    assert "zscale=t=linear" in warnings[0] and "tonemap=tonemap=hable" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facetoon.video.reader"):
        for tags in ((9, 9, 18), (9, 9, 14)):
            src = make_10bit_clip(tmp_path / f"trc{tags[2]}.mp4", tags)
            stylize_video(src, tmp_path / f"trc{tags[2]}_out.mp4", stylize_frame=keep, progress=False)
    assert PQ_WARNING not in caplog.text and "HDR" not in caplog.text


def test_an_hlg_source_keeps_its_transfer_tag(tmp_path: Path) -> None:
    """HLG is stylized as SDR (it is made to look right so) and its values stay HLG-coded: the
    output is tagged HLG (18), not BT.2020 SDR (14); the matrix and primaries stay BT.2020. SDR
    sources keep their tags: BT.2020 SDR (9, 9, 14), and an untagged clip gets today's (BT.601
    at 320x240)."""
    hlg = make_10bit_clip(tmp_path / "hlg.mp4", (9, 9, 18))
    out = tmp_path / "hlg_out.mp4"
    stylize_video(hlg, out, stylize_frame=keep, progress=False)
    assert frame_tags(out) == (9, 9, 18)
    assert probe_video(out).transfer == "hlg"
    sdr = make_10bit_clip(tmp_path / "sdr2020.mp4", (9, 9, 14))
    stylize_video(sdr, tmp_path / "sdr2020_out.mp4", stylize_frame=keep, progress=False)
    assert frame_tags(tmp_path / "sdr2020_out.mp4") == (9, 9, 14)
    plain = make_clip(tmp_path / "plain.mp4", [], n_frames=6, fps=24, audio=False).path
    assert probe_video(plain).transfer == "unknown"
    stylize_video(plain, tmp_path / "plain_out.mp4", stylize_frame=keep, progress=False)
    assert frame_tags(tmp_path / "plain_out.mp4") == (6, 6, 6)


def test_the_transfer_argument_is_checked(tmp_path: Path) -> None:
    """The writer's transfer is a name of VideoInfo.transfer (None or "unknown": the standard's)."""
    for bad in ("hdr10", "smpte2084", 16):
        with pytest.raises(ConfigError, match="transfer: expected None or one of"):
            check_output(tmp_path / "x.mp4", width=64, height=48, colorspace="bt2020", transfer=bad)
    with pytest.raises(ConfigError, match="transfer: expected None or one of"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, fps=24, time_base=Fraction(1, 24), transfer="hdr")
    assert list(tmp_path.iterdir()) == []
    for transfer, trc in (("pq", 16), ("unknown", 14), (None, 14)):
        out = tmp_path / f"{transfer}.mp4"
        with VideoWriter(out, width=64, height=48, fps=24, time_base=Fraction(1, 24), colorspace="bt2020",
                         transfer=transfer) as w:
            w.write(np.full((48, 64, 3), 90, np.uint8), 0)
        assert frame_tags(out) == (9, 9, trc)


# --------------------------------------------------------------------------- encoder settings


def test_crf_quantiser_mapping() -> None:
    assert [crf_quantiser(c) for c in (0, 12, 18, 24, 30, 35, 36, 51, 63)] == [2, 2, 4, 8, 16, 29, 31, 31, 31]


@pytest.mark.parametrize("codec", ["mpeg4", "mpeg2video"])
def test_crf_sets_the_quantiser_of_mpeg_encoders(tmp_path: Path, codec: str) -> None:
    """No crf option in FFmpeg's MPEG encoders: a fixed quantiser stands for it, so a lower crf
    gives a larger file closer to the source."""
    clip = make_clip(tmp_path / "src.mp4", [], n_frames=8, audio=False, keep_frames=True, noise=3.0)
    sizes, quality = {}, {}
    for crf in (0, 18, 30, 51):
        out = tmp_path / f"{codec}_{crf}.mkv"
        with VideoWriter(out, width=320, height=240, fps=24, time_base=Fraction(1, 24),
                         codec=codec, crf=crf) as w:
            for i, f in enumerate(clip.frames):
                w.write(f, i)
        sizes[crf] = out.stat().st_size
        with VideoReader(out) as r:
            quality[crf] = min(psnr(f.image, g) for f, g in zip(r, clip.frames))
    assert sizes[0] > sizes[18] > sizes[30] > sizes[51], sizes
    assert quality[0] > quality[18] > quality[30] > quality[51], quality
    assert quality[18] > 32, quality


def test_a_preset_the_encoder_rejects_fails_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with pytest.raises(ConfigError, match="preset: the libx264 encoder rejects 'fastest'") as e:
        VideoWriter(out, width=64, height=64, fps=24, time_base=Fraction(1, 24),
                    preset="fastest")
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
    # the check alone writes nothing either, and names the encoder's settings it cannot take
    with pytest.raises(ConfigError, match="rejects its settings"):
        check_output(out, width=64, height=64, options={"tune": "bogus"})
    with pytest.raises(ConfigError, match="cannot encode yuv444p frames"):
        check_output(out, width=63, height=64, codec="mpeg4")
    plan = check_output(out, width=64, height=64, codec="mpeg4", crf=18)
    assert (plan.encoder, plan.pix_fmt, plan.options) == ("mpeg4", "yuv420p", {"qmin": "4", "qmax": "4"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting, message", [
    ({"crf": 99}, "crf: expected a number in 0..63"),
    ({"preset": "fastest"}, "preset: the libx264 encoder rejects 'fastest'"),
    ({"batch_size": 0}, "batch_size: expected an integer in 1..256"),
])
def test_stylize_video_checks_settings_before_loading_a_model(tmp_path: Path, setting: dict, message: str) -> None:
    """The face weights named do not exist: an error about them would mean the model loaded first."""
    from facetoon.video import check_video_job

    src = make_clip(tmp_path / "in.mp4", [], n_frames=8, fps=24).path
    out = tmp_path / "out.mp4"
    with pytest.raises(ConfigError, match=message):
        stylize_video(src, out, face_model=str(tmp_path / "no-weights"), progress=False, **setting)
    with pytest.raises(ConfigError, match=message):
        check_video_job(src, out, **setting)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    check_video_job(src, out)  # the defaults pass


# --------------------------------------------------------------------------- what the muxer takes


def test_a_codec_the_container_cannot_mux_is_refused_up_front(tmp_path: Path) -> None:
    """FFmpeg's mov muxer lists VP9 and AV1 among its codecs but refuses them when it writes the
    header ("only supported in MP4"): a real header is written in memory, so the combination is a
    ConfigError before anything is written, naming the containers that do take the codec."""
    for codec, family in (("vp9", "vp9"), ("av1", "av1")):
        with pytest.raises(ConfigError, match=f"codec: {family} video cannot be stored in a .mov file") as e:
            check_output(tmp_path / "x.mov", width=64, height=64, codec=codec)
        assert ".mp4" in str(e.value) and ".mkv" in str(e.value) and "\n" not in str(e.value)
        assert check_output(tmp_path / "x.mp4", width=64, height=64, codec=codec).encoder  # MP4 takes it
    src = make_clip(tmp_path / "in.mp4", [], n_frames=6, fps=24, audio=False).path
    with pytest.raises(ConfigError, match="vp9 video cannot be stored"):
        stylize_video(src, tmp_path / "v5.mov", stylize_frame=keep, codec="vp9", audio="none", progress=False)
    # audio the mov muxer lists but refuses as well (FLAC is MP4-only there): the source's audio
    flac = make_clip(tmp_path / "flac.mkv", [], n_frames=6, fps=24, audio_codec="flac").path
    with pytest.raises(VideoError, match="flac audio cannot be copied into a mov file"):
        stylize_video(flac, tmp_path / "out.mov", stylize_frame=keep, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flac.mkv", "in.mp4"]


def test_the_output_checks_open_the_encoder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When all is well, one header written in memory with the video stream and the audio copy
    checks the encoder too (it used to be opened alone, then with the video, then with each audio
    stream), and stylize_video's writer takes the plan of its up-front check instead of checking
    again."""
    import facetoon.video.writer as writer

    opened: list[str] = []
    for name in ("_opening_error", "_muxing_error"):  # the functions that open an encoder
        monkeypatch.setattr(writer, name, lambda *a, _n=name, _f=getattr(writer, name), **k:
                            opened.append(_n) or _f(*a, **k))
    src = make_clip(tmp_path / "in.mp4", [], n_frames=6, fps=24).path
    res = stylize_video(src, tmp_path / "out.mp4", stylize_frame=keep, progress=False)
    assert res.complete and read_audio_packets(res.path) == read_audio_packets(src)
    assert opened == ["_muxing_error"]
    # given a plan, the writer still refuses an output that appeared since (overwrite=False)
    (tmp_path / "taken.mp4").write_bytes(b"keep")
    plan = check_output(tmp_path / "x.mp4", width=64, height=64)
    with pytest.raises(OutputError, match="output file already exists"):
        VideoWriter(tmp_path / "taken.mp4", width=64, height=64, fps=24, time_base=Fraction(1, 24),
                    overwrite=False, plan=plan)


def test_a_failed_flush_is_an_error_that_keeps_the_partial(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the muxer still refuse the stream when the encoder is flushed (here: the up-front
    check switched off), the job fails with a VideoError and the partial file is kept; it is not
    reported as written."""
    import facetoon.video.writer as writer

    monkeypatch.setattr(writer, "_check_muxing", lambda *a, **k: None, raising=False)
    src = make_clip(tmp_path / "in.mp4", [], n_frames=6, fps=24, audio=False).path
    out = tmp_path / "v5.mov"
    with pytest.raises(VideoError, match="flushing the encoder failed") as e:
        stylize_video(src, out, stylize_frame=keep, codec="vp9", audio="none", progress=False)
    assert str(partial_path(out)) in str(e.value) and "\n" not in str(e.value)
    assert not out.exists() and partial_path(out).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_svt_av1_keeps_quiet(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """SVT-AV1 prints some 80 ``Svt[info]`` lines per encoder by itself: only its errors remain."""
    out = tmp_path / "x.mkv"
    with VideoWriter(out, width=64, height=64, fps=24, time_base=Fraction(1, 24), codec="av1") as w:
        for i in range(3):
            w.write(np.full((64, 64, 3), 40 * i, np.uint8), i)
    err = capfd.readouterr().err
    assert "Svt[" not in err, err[:500]
    with av.open(os.fspath(out)) as c:
        assert c.streams.video[0].codec_context.codec.canonical_name == "av1" and len(list(c.decode(video=0))) == 3


# --------------------------------------------------------------------------- presets


def test_a_preset_the_encoder_does_not_take_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with pytest.raises(ConfigError, match="preset: the libvpx-vp9 encoder takes no preset") as e:
        check_output(out, width=64, height=64, codec="vp9", preset="ultrafast")
    assert "ultrafast" in str(e.value) and "0-13" in str(e.value)  # where presets do apply
    with pytest.raises(ConfigError, match="preset: the mpeg4 encoder takes no preset"):
        check_output(out, width=64, height=64, codec="mpeg4", preset="fast")
    with pytest.raises(ConfigError, match=r"preset: the libsvtav1 encoder rejects 'ultrafast' \(SVT-AV1 "
                                          r"presets: 0-13\)"):
        check_output(out, width=64, height=64, codec="av1", preset="ultrafast")
    # the defaults (no preset) suit every encoder, and a preset the encoder takes passes
    assert check_output(out, width=64, height=64, codec="vp9").options.get("preset") is None
    assert check_output(out, width=64, height=64, codec="av1", preset="10").options["preset"] == "10"
    assert check_output(out, width=64, height=64, preset="fast").options["preset"] == "fast"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- inputs and outputs


def test_start_and_duration_are_config_errors_stating_the_rule(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", [], n_frames=6, fps=24, audio=False).path
    for setting, message in (({"duration": -1}, "duration: expected seconds > 0, got -1"),
                             ({"duration": 0}, "duration: expected seconds > 0, got 0"),
                             ({"start": -1}, "start: expected seconds >= 0, got -1"),
                             ({"start": float("nan")}, "start: expected seconds >= 0, got nan")):
        with pytest.raises(ConfigError, match=message):
            stylize_video(src, tmp_path / "out.mp4", stylize_frame=keep, progress=False, **setting)
        with pytest.raises(ConfigError, match=message):
            VideoReader(src, **setting)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_an_output_folder_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder; expected an output file name") as e:
        check_output(tmp_path, width=64, height=64)
    assert "extension" not in str(e.value)
    (tmp_path / "clips.mp4").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path / "clips.mp4", width=64, height=64)


def _still(path: Path, frames: int = 1) -> Path:
    from PIL import Image

    images = [Image.fromarray(np.full((48, 64, 3), 100 * i, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=frames > 1, append_images=images[1:], duration=100, loop=0)
    return path


@pytest.mark.parametrize("name", ["selfie.jpg", "selfie.png", "selfie.webp", "selfie.gif", "selfie.bmp",
                                  "selfie_renamed.mp4"])
def test_a_still_image_is_not_a_video(tmp_path: Path, name: str) -> None:
    image = tmp_path / name
    if name.endswith(".mp4"):  # a JPEG under a video's name
        _still(tmp_path / "x.jpg").rename(image)
    else:
        _still(image)
    with pytest.raises(VideoError, match="a still image .*not a video.*facetoon stylize") as e:
        stylize_video(image, tmp_path / "v1.mp4", stylize_frame=keep, progress=False)
    assert "\n" not in str(e.value) and str(image) in str(e.value)
    assert not (tmp_path / "v1.mp4").exists()


def test_animations_gif_and_png_are_videos_animated_webp_is_refused(tmp_path: Path) -> None:
    """Animated GIF and APNG are decoded frame by frame like any video; this FFmpeg's WebP decoder
    reads still images only, so an animated WebP is refused by name rather than as corrupt data."""
    for name in ("anim.gif", "anim.png"):
        res = stylize_video(_still(tmp_path / name, frames=3), tmp_path / f"{name}.mp4",
                            stylize_frame=invert, progress=False)
        assert res.complete and res.frames == 3
    webp = _still(tmp_path / "anim.webp", frames=3)
    with pytest.raises(VideoError, match="an animated WebP"):
        stylize_video(webp, tmp_path / "webp.mp4", stylize_frame=keep, progress=False)


def test_an_av1_source_is_reported_as_av1_and_kept_by_codec_source(tmp_path: Path) -> None:
    """FFmpeg decodes AV1 with libdav1d; the reader reports the codec family ("av1"), so
    codec="source" re-encodes AV1 (it fell back to H.264 while the decoder's name was reported)."""
    from facetoon.video.writer import resolve_codec

    src = tmp_path / "av1.mkv"
    with VideoWriter(src, width=64, height=48, fps=24, time_base=Fraction(1, 24), codec="av1") as w:
        for i in range(3):
            w.write(np.full((48, 64, 3), 40 * i, np.uint8), i)
    info = probe_video(src)
    assert info.codec == "av1"
    assert resolve_codec("source", "matroska", info.codec) == "libsvtav1"


def test_a_plan_of_other_settings_is_not_used(tmp_path: Path) -> None:
    """VideoWriter(plan=...) skips its checks only for the settings the plan was made for: other
    ones are checked (a bad colorspace is a ConfigError, not a KeyError) and honoured."""
    plan = check_output(tmp_path / "a.mp4", width=64, height=48)
    tb = Fraction(1, 24)
    with pytest.raises(ConfigError, match="colorspace"):
        VideoWriter(tmp_path / "b.mp4", width=64, height=48, fps=24, time_base=tb, plan=plan, colorspace="bogus")
    with pytest.raises(ConfigError, match="crf"):
        VideoWriter(tmp_path / "b.mp4", width=64, height=48, fps=24, time_base=tb, plan=plan, crf=99)
    w = VideoWriter(tmp_path / "c.mp4", width=64, height=48, fps=24, time_base=tb, plan=plan, codec="mpeg4")
    assert w.encoder == "mpeg4"
    w.abort(keep_partial=False)
    w = VideoWriter(tmp_path / "a.mp4", width=64, height=48, fps=24, time_base=tb, plan=plan)
    assert w.encoder == "libx264"
    w.abort(keep_partial=False)
