"""Benchmark the background stylizer: end-to-end seconds per image (uint8 RGB in, uint8 RGB out).

    python benchmarks/bench_background.py                      # the README table
    python benchmarks/bench_background.py --sizes 512x512 --repeats 2 --models animegan-v2

Models: AnimeGANv2 (random-init weights: speed does not depend on the values) and CartoonGAN
(the official Hayao weights from ../shared when present, else random init). Input: the
../shared four-faces photo resized to each size (random pixels when absent). For each model,
size and precision the stylizer is built once, run once to warm up (oneDNN primitive creation),
then timed ``--repeats`` times; the table shows the median and the minimum.

Columns: wall-clock seconds (median, min), the CPU seconds this process used per image (all
threads; median), and ``other load``: the cores used by *other* processes during the measurement.
On a shared machine wall time is only meaningful when ``other load`` is near 0; with
``--threads 1`` the CPU seconds stay a fair measure of the work under contention (a quiet 2-core
run takes about half of them). ``GMACs`` is the model's multiply-accumulates for the input it
runs on (the image padded to the model's size multiple, or scaled by ``--internal-scale``;
conv and linear layers, see ``_common.count_macs``), ``GMAC/s`` that divided by the median wall
time and ``GMAC/CPU-s`` by the median CPU seconds (the rate per busy core, which contention
changes much less). The first lines describe the machine (CPU, ISA features, whether bf16 is
native, torch threads, load): the figures depend on them.

``--peak-memory`` instead runs every configuration in a fresh subprocess and reports its peak
resident memory (``ru_maxrss``). ``--profile`` prints the torch profiler's op table of one run
of each configuration. ``--no-thp`` runs without transparent huge pages. The precision
``compiled`` is the reference model under ``torch.compile`` (inductor, frozen weights) with
channels-last + bf16 autocast, for comparison with the fused ``fast`` graph (its warm-up time,
the compilation, is printed).
"""

from __future__ import annotations

import os
import sys

# before torch allocates: huge pages for big buffers (``--no-thp`` measures without them)
_THP = "0" if "--no-thp" in sys.argv else os.environ.get("THP_MEM_ALLOC_ENABLE", "1")
os.environ["THP_MEM_ALLOC_ENABLE"] = _THP

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _common import SHARED, OtherLoad, count_macs, machine_summary  # noqa: E402


def _photo(width: int, height: int) -> np.ndarray:
    """The four-faces photo of ../shared resized to ``width`` x ``height`` (random pixels when absent)."""
    path = SHARED / "fixtures" / "four_faces.jpg"
    if path.is_file():
        import cv2

        from facetoon.io import read_image

        return cv2.resize(read_image(path), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _model(name: str):
    """The scene model ``name`` and a label for its weights."""
    import torch

    torch.manual_seed(0)
    if name == "animegan-v2":
        from facetoon.models.animegan import Generator

        return Generator("v2").eval(), "random init"
    path = SHARED / "models" / "cartoongan" / "Hayao_net_G_float.pth"
    if path.is_file():
        from facetoon.convert.cartoongan import load_official_cartoongan

        return load_official_cartoongan(path), "official Hayao"
    from facetoon.models.cartoongan import Generator

    return Generator().eval(), "random init"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="animegan-v2,cartoongan")
    parser.add_argument("--sizes", default="512x512,1920x1080", help="WIDTHxHEIGHT list")
    parser.add_argument("--precisions", default="fp32,fast")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--internal-scale", type=float, default=None,
                        help="also time the optional guided-filter speed mode at this scale (e.g. 0.5)")
    parser.add_argument("--save", type=Path, default=None,
                        help="folder for the outputs at the largest size (side-by-side quality check)")
    parser.add_argument("--retain-memory", action="store_true",
                        help="BackgroundStylizer(retain_memory=True): keep freed memory mapped "
                        "(process-wide)")
    parser.add_argument("--peak-memory", action="store_true",
                        help="report the peak resident memory of each configuration (one subprocess each)")
    parser.add_argument("--profile", action="store_true",
                        help="print the op profile of one run per configuration")
    parser.add_argument("--no-thp", action="store_true", help="without transparent huge pages")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.peak_memory:
        return _peak_memory(args)

    import torch

    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print(machine_summary())
    print(f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}, "
          f"retain memory: {args.retain_memory}, {args.repeats} timed run(s) after one warm-up")
    print()
    print("| model | weights | size | precision | wall s (median) | wall s (min) | CPU s "
          "| other load (cores) | GMACs | GMAC/s | GMAC/CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    outputs: dict[tuple[str, int, int, str, float], np.ndarray] = {}
    for name in args.models.split(","):
        model, weights = _model(name)
        modes: list[tuple[str, float]] = [(p, 1.0) for p in args.precisions.split(",")]
        if args.internal_scale:
            modes += [(p, args.internal_scale) for p in args.precisions.split(",")]
        for w, h in sizes:
            image = _photo(w, h)
            for precision, scale in modes:
                stylizer = _stylizer(model, precision, scale, args.retain_memory)
                t0 = time.perf_counter()
                out = stylizer(image)  # warm-up
                if precision == "compiled":
                    print(f"(compiled: first call incl. compilation {time.perf_counter() - t0:.1f} s)")
                times, cpu, other = [], [], []
                for _ in range(args.repeats):
                    with OtherLoad() as load:
                        c0, t0 = time.process_time(), time.perf_counter()
                        out = stylizer(image)
                        times.append(time.perf_counter() - t0)
                        cpu.append(time.process_time() - c0)
                    other.append(load.cores)
                gmacs = _gmacs(model, stylizer, w, h, scale)
                if args.profile:
                    _profile(stylizer, image)
                outputs[(name, w, h, precision, scale)] = out
                label = precision if scale == 1.0 else f"{precision}, internal x{scale:g} + guided filter"
                wall, busy = statistics.median(times), statistics.median(cpu)
                print(f"| {name} | {weights} | {w}x{h} | {label} | {wall:.2f} | {min(times):.2f} "
                      f"| {busy:.2f} | {statistics.median(other):.2f} | {gmacs:.1f} | {gmacs / wall:.1f} "
                      f"| {gmacs / max(busy, 1e-9):.1f} |", flush=True)
                if args.save is not None and (w, h) == max(sizes):
                    from facetoon.io import write_image

                    args.save.mkdir(parents=True, exist_ok=True)
                    tag = f"{name}_{w}x{h}_{precision}" + ("" if scale == 1.0 else f"_x{scale:g}")
                    write_image(out, args.save / f"{tag}.png")
    if args.internal_scale:
        print()
        print("| model | size | precision | speed mode vs full resolution: PSNR dB | mean abs diff |")
        print("|---|---|---|---|---|")
        for (name, w, h, precision, scale), out in outputs.items():
            full = outputs.get((name, w, h, precision, 1.0))
            if scale == 1.0 or full is None:
                continue
            diff = out.astype(np.float64) - full
            psnr = 10 * np.log10(255.0**2 / max(float(np.mean(diff**2)), 1e-12))
            print(f"| {name} | {w}x{h} | {precision} | {psnr:.1f} | {np.abs(diff).mean():.1f} |")
    return 0


def _gmacs(model, stylizer, width: int, height: int, scale: float) -> float:
    """Billions of multiply-accumulates of one whole-image run of ``model`` as ``stylizer`` feeds it.

    The image is scaled by ``scale`` and padded to the model's size multiple, as the stylizer
    does; images above its tile budget are run in overlapping tiles (more work, not counted).
    """
    import torch

    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    m = stylizer.multiple
    th = max(math.ceil(height / m) * m, stylizer.min_size)
    tw = max(math.ceil(width / m) * m, stylizer.min_size)
    return count_macs(model, torch.zeros(1, 3, th, tw)) / 1e9


def _stylizer(model, precision: str, scale: float, retain: bool):
    """A BackgroundStylizer of ``model`` (``compiled``: torch.compile of the reference model)."""
    import torch

    from facetoon.background import BackgroundStylizer

    if precision != "compiled":
        return BackgroundStylizer(model, precision=precision, internal_scale=scale, retain_memory=retain)
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    stylizer = BackgroundStylizer(model, precision="fp32", internal_scale=scale, retain_memory=retain)
    stylizer._net = torch.compile(model.to(memory_format=torch.channels_last))
    stylizer._autocast = torch.bfloat16
    return stylizer


def _profile(stylizer, image: np.ndarray) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        stylizer(image)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print("    profile (self CPU time): " + ", ".join(
        f"{e.key.replace('aten::', '')} {e.self_cpu_time_total / 1e6:.2f} s "
        f"({100 * e.self_cpu_time_total / total:.0f}%)" for e in events[:7]))


def _child(args: argparse.Namespace) -> int:
    import resource

    import torch

    from facetoon.background import BackgroundStylizer

    torch.set_num_threads(args.threads)
    name, size, precision = args.child.split(":")
    w, h = (int(v) for v in size.split("x"))
    model, _ = _model(name)
    image = _photo(w, h)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stylizer = BackgroundStylizer(model, precision=precision, retain_memory=args.retain_memory)
    for _ in range(2):  # a repeated call shows the memory a long-running process keeps
        stylizer(image)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{peak / 1024:.0f} {before / 1024:.0f}")
    return 0


def _peak_memory(args: argparse.Namespace) -> int:
    import subprocess

    import torch

    torch.set_num_threads(args.threads)
    print(machine_summary())
    print()
    print("| model | size | precision | peak RSS MB | before the run MB |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        for size in args.sizes.split(","):
            for precision in args.precisions.split(","):
                extra = ["--retain-memory"] if args.retain_memory else []
                res = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), *extra,
                                      "--child", f"{name}:{size}:{precision}"],
                                     capture_output=True, text=True, check=True)
                peak, before = res.stdout.split()[-2:]
                print(f"| {name} | {size} | {precision} | {peak} | {before} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
