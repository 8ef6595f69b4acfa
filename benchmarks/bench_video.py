"""Video throughput of ``facetoon.stylize_video``: frames per second at 640x360 and 1280x720.

    python benchmarks/bench_video.py                         # both sizes, fast path, 24 frames each
    python benchmarks/bench_video.py --sizes 640x360 --frames 48 --precision fp32 fast
    python benchmarks/bench_video.py --scene-scale 0.5       # + the scene model's speed mode

Each case runs in a fresh subprocess: a clip with one face (the astronaut of
``examples/astronaut.png``, about 45% of the frame height, panning across a textured
background, x264, AAC sine soundtrack) is written with :func:`facetoon.video.synthetic.make_clip`,
a Stylizer is built, one warm-up frame is stylized, then the whole clip goes through
``stylize_video`` (decode, detection every 5th frame + tracking, models in batches of 4, H.264
encode at CRF 18 preset medium, audio copy). Reported: frames per second of wall-clock time
(everything included but the model load), and each stage's busy seconds per frame — the stages
run in parallel threads, so ``(decode + track + stylize + encode) / wall`` above 1 is the
overlap gained. "photo path" is ``Stylizer.stylize`` on one frame of the same clip (median of 3
calls, same process): what a naive frame-by-frame loop pays per frame before decoding and
encoding. "CPU s/frame" is the process's CPU time (user + system, all threads) per frame of the
video run: it depends much less on other jobs than wall time does; on an otherwise idle machine
with N cores the frame rate cannot exceed about ``N / CPU s/frame``.

Weights: the shipped defaults when they exist (``weights/ugatit-selfie2anime``,
``weights/animegan-anime``), else random-weight stand-ins with the default architectures (light
U-GAT-IT generator ngf 32 at 128 px; AnimeGANv2): run time does not depend on weight values.
The output starts with the machine (``_common.machine_summary``: CPU, ISA features, whether
bf16 is native - without it "fast" runs in fp32 -, torch threads, load); ``other load`` is the
cores other processes used during the video run: on a busy machine the times are upper bounds
(the rates lower bounds).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from _common import (ASTRONAUT, CaseFailed, OtherLoad, default_models, format_load, machine_summary,
                     other_load_note, run_case_subprocess)

ASTRONAUT_FACE = (177.1, 81.6, 273.1, 177.6)


def run_case(args: argparse.Namespace) -> dict:
    """One case in this process; returns its measurements."""
    import torch

    torch.set_num_threads(args.threads)
    from facetoon.pipeline import Stylizer
    from facetoon.video import VideoReader, stylize_video
    from facetoon.video.synthetic import FaceSprite, make_clip

    w, h = (int(v) for v in args.case.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="facetoon-bench-video-"))
    sprite = FaceSprite.from_photo(ASTRONAUT, ASTRONAUT_FACE, height=int(0.45 * h))
    sw, sh = sprite.size
    clip = make_clip(tmp / "in.mp4", [sprite], size=(w, h), n_frames=args.frames, fps=24,
                     paths=[((0.1 * w, 0.3 * h), (0.9 * w - sw, 0.25 * h))])
    face, scene, label = default_models()
    # as the `facetoon video` command: freed memory kept mapped for reuse (frame after frame)
    options: dict = {"retain_memory": True}
    if args.scene_scale < 1:
        options["internal_scale"] = args.scene_scale
    t = time.perf_counter()
    st = Stylizer(face_model=face, background_model=scene, precision=args.precision,
                  background_options=options)
    load = time.perf_counter() - t
    # warm-up on the first frame (one-time allocations, oneDNN kernel selection), then the photo
    # path on three frames for comparison: Stylizer.stylize (fresh detection every call)
    with VideoReader(clip.path) as reader:
        frames = [f.image for _, f in zip(range(4), reader)]
    st.stylize(frames[0])
    photo = []
    for image in frames[1:]:
        t = time.perf_counter()
        st.stylize(image)
        photo.append(time.perf_counter() - t)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with OtherLoad() as other:
        res = stylize_video(clip.path, tmp / "out.mp4", stylizer=st, detect_every=args.detect_every,
                            batch_size=args.batch_size, progress=False)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    return {
        "case": args.case, "precision": st.runtime.precision, "scene_scale": args.scene_scale,
        "frames": res.frames, "faces": res.faces, "seconds": res.seconds, "fps": res.throughput,
        "timings": res.timings, "load_s": load, "models": label, "threads": args.threads,
        "photo_s": sorted(photo)[len(photo) // 2], "cpu_s_per_frame": cpu / max(1, res.frames),
        "other_load": other.cores,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"])
    p.add_argument("--precision", nargs="+", choices=("fp32", "fast"), default=["fast"])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--scene-scale", type=float, nargs="+", default=[1.0],
                   help="scene model internal scale(s); < 1 is the guided-filter speed mode")
    p.add_argument("--detect-every", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        args.precision = args.precision[0]
        args.scene_scale = args.scene_scale[0]
        print(json.dumps(run_case(args)))
        return 0

    import torch

    torch.set_num_threads(args.threads)  # what the cases use, for the summary
    print(machine_summary(), flush=True)
    results = []
    for prec in args.precision:
        for scale in args.scene_scale:
            for size in args.sizes:
                cmd = ["--case", size, "--precision", prec,
                       "--frames", str(args.frames),
                       "--scene-scale", str(scale), "--detect-every", str(args.detect_every),
                       "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
                try:
                    results.append(run_case_subprocess(__file__, cmd))
                except CaseFailed as exc:
                    print(exc.stderr, file=sys.stderr)
                    return 1
    print(f"Models: {results[0]['models']}")
    print(f"{args.frames} frames per clip, detect every {args.detect_every}, batch {args.batch_size}, "
          f"torch threads {args.threads}, H.264 CRF 18 preset medium, audio copied; "
          f"load average (1/5/15 min) after: {format_load()}")
    note = other_load_note(results, "lower bounds of the speed")
    if note:
        print(note)
    print()
    print("| video | precision | scene scale | frames/s | s/frame | decode | track+detect | models | encode "
          "| overlap | photo path | CPU s/frame | other load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        t, n = r["timings"], r["frames"]
        busy = sum(t.values())
        print(f"| {r['case']} | {r['precision']} | {r['scene_scale']:g} | **{r['fps']:.2f}** "
              f"| {1 / r['fps']:.2f} | {t['decode'] / n:.3f} | {t['track'] / n:.3f} | {t['stylize'] / n:.2f} "
              f"| {t['encode'] / n:.3f} | {busy / r['seconds']:.2f}x | {r['photo_s']:.2f} s "
              f"| {r['cpu_s_per_frame']:.2f} | {r['other_load']:.2f} |")
    if args.json:
        print()
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
