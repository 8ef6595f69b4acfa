"""U-GAT-IT training speed, fp32 against the CPU fast path, and generator inference time.

    python benchmarks/bench_ugatit.py [--configs 128x32x1 128x32x4 256x64x1] [--warmup 1] [--steps 3]
                                      [--threads 2] [--shared ../shared] [--infer-runs 10]

Each configuration ``SIZExNGFxBATCH`` builds a :class:`facetoon.train.ugatit.UGATITTrainer`
(light generators, four discriminators with ``ndf = ngf`` and the paper's 7 / 5 layers (``--critic-layers``), all
paper losses) twice from the same seed, once with ``precision="fp32"`` and once with
``precision="fast"`` (channels_last + bf16 autocast), and times its ``train_step`` on the same
batches of real selfie2anime images (synthetic images if ``../shared`` is absent): the median
over ``--steps`` steps after ``--warmup`` steps. It prints the losses of both paths over these
first steps side by side (same seed, same data), then generator inference (light, ngf 64,
256 px, batch 1, eval mode, median of ``--infer-runs``) in fp32 and fast, and a Markdown table.

The output starts with the machine (``_common.machine_summary``: CPU, ISA features, whether
bf16 is native - without it "fast" runs in fp32 -, torch threads, load). ``other load`` is the
cores used by other processes during the timed steps: on a shared machine the figures are only
indicative. The inference rows give the generator's multiply-accumulates at 256 px (``GMACs``,
conv and linear layers) and the rate achieved (``GMAC/s``), to compare with what the CPU can do.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import SHARED, OtherLoad, count_macs, format_load, machine_summary


def _log(msg: str) -> None:
    """Progress to stderr (the results go to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def _synthetic_data(root: Path, n: int = 8) -> Path:
    """Two domains of random smooth images, for machines without ../shared."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for i in range(n):
            small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(root / domain / f"{i}.png")
    return root


def _parse(spec: str) -> tuple[int, int, int]:
    """``"128x32x4"`` -> ``(size, ngf, batch)``."""
    size, ngf, batch = (int(v) for v in spec.lower().split("x"))
    return size, ngf, batch


def bench_training(data: Path, size: int, ngf: int, batch: int, precision: str, warmup: int, steps: int,
                   scratch: Path, critic_layers: tuple[int, int] = (7, 5)
                   ) -> tuple[list[float], list[dict[str, float]], str, float]:
    """Step times after the warm-up, the losses of every step, the resolved precision, and the
    cores other processes used during the timed steps."""
    import torch

    from facetoon.train.ugatit import UGATITConfig, UGATITTrainer

    cfg = UGATITConfig(img_size=size, ngf=ngf, ndf=ngf, light=True, batch_size=batch, precision=precision,
                       device="cpu", holdout=0, kid_images=0, iterations=1_000_000, seed=0,
                       n_layers_global=critic_layers[0], n_layers_local=critic_layers[1])
    trainer = UGATITTrainer(cfg, data, scratch / f"{size}_{ngf}_{batch}_{precision}")
    times: list[float] = []
    losses: list[dict[str, float]] = []
    other = OtherLoad()
    for step in range(warmup + steps):
        if step == warmup:
            other.start()
        # the samples an uninterrupted run would see at this step (rank 0 of 1)
        items = [trainer.dataset[step * batch + j] for j in range(batch)]
        batch_t = (torch.stack([a for a, _ in items]), torch.stack([b for _, b in items]))
        t0 = time.perf_counter()
        losses.append(trainer.train_step(batch_t))
        dt = time.perf_counter() - t0
        trainer.step += 1
        _log(f"  {size}px ngf{ngf} b{batch} {precision}: step {step + 1} {dt:.2f} s")
        if step >= warmup:
            times.append(dt)
    other.stop()
    resolved = trainer.runtime.precision
    trainer.close()
    return times, losses, resolved, other.cores


def bench_inference(runs: int) -> tuple[dict[str, float], float]:
    """Median seconds per generator call for each precision (``"fast (unsupported: fp32)"`` when it
    fell back), and the generator's GMACs at 256 px.

    Rows: ``fp32`` (the reference module), ``fast`` (the reference module, channels-last under bf16
    autocast) and ``fast (fused)`` (:func:`facetoon.models.ugatit_fast.fuse_for_inference`: the
    inference graph the stylize pipeline runs on the CPU fast path; in fp32 where bf16 is not
    native, named ``"fast (fused, unsupported: fp32)"``)."""
    from collections.abc import Callable

    import torch

    from facetoon.models.ugatit import Generator
    from facetoon.models.ugatit_fast import fuse_for_inference
    from facetoon.runtime import resolve_runtime

    torch.manual_seed(0)
    out: dict[str, float] = {}
    x0 = torch.rand(1, 3, 256, 256) * 2 - 1
    gmacs = count_macs(Generator(ngf=64, n_res=4, img_size=256, light=True).eval(), x0) / 1e9

    def median_time(call: Callable[[], object]) -> float:
        times = []
        for i in range(runs + 2):
            t0 = time.perf_counter()
            call()
            if i >= 2:  # two warm-up runs
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    for precision in ("fp32", "fast", "fast (fused)"):
        rt = resolve_runtime("cpu", precision.split()[0])
        unsupported = rt.precision != precision.split()[0]
        if precision == "fast (fused)":
            fused = fuse_for_inference(Generator(ngf=64, n_res=4, img_size=256, light=True).eval(),
                                       torch.float32 if unsupported else torch.bfloat16)
            with torch.inference_mode():
                sec = median_time(lambda: fused(x0))
            name = "fast (fused, unsupported: fp32)" if unsupported else precision
        else:
            gen = rt.prepare_module(Generator(ngf=64, n_res=4, img_size=256, light=True).eval())
            x = rt.prepare_input(x0)
            with rt.inference():
                sec = median_time(lambda: gen(x))
            name = f"{precision} (unsupported: {rt.precision})" if unsupported else precision
        out[name] = sec
        _log(f"  inference 256px ngf64 light {name}: {sec * 1000:.0f} ms")
    return out, gmacs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["128x32x1", "128x32x4", "256x64x1"],
                        help="SIZExNGFxBATCH training configurations (light generator, ndf = ngf)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps, median reported (default 3)")
    parser.add_argument("--infer-runs", type=int, default=10, help="timed inference runs (default 10)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--critic-layers", type=int, nargs=2, default=[7, 5], metavar=("GLOBAL", "LOCAL"),
                        help="discriminator layers (default: the paper's 7 5; the default face model's "
                             "128 px run uses 6 5)")
    args = parser.parse_args()
    layers = (args.critic_layers[0], args.critic_layers[1])

    import torch

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(machine_summary(), flush=True)
    data = args.shared / "data" / "selfie2anime"
    with tempfile.TemporaryDirectory(prefix="bench-ugatit-") as tmp:
        scratch = Path(tmp)
        if (data / "trainA").is_dir() and (data / "trainB").is_dir():
            source = "real selfie2anime images"
        else:
            data, source = _synthetic_data(scratch / "data"), "synthetic images (../shared absent)"
        _log(f"data: {source}")
        rows = []
        loss_tables = []
        for spec in args.configs:
            size, ngf, batch = _parse(spec)
            t32, l32, _, o32 = bench_training(data, size, ngf, batch, "fp32", args.warmup, args.steps,
                                              scratch, layers)
            tfa, lfa, resolved, ofa = bench_training(data, size, ngf, batch, "fast", args.warmup, args.steps,
                                                     scratch, layers)
            m32, mfa = statistics.median(t32), statistics.median(tfa)
            rows.append((size, ngf, batch, m32, mfa, resolved, o32, ofa))
            loss_tables.append((spec, l32, lfa))
        infer, gmacs = bench_inference(args.infer_runs)

    print(f"\ndata: {source}; load average (1/5/15 min) after the run: {format_load()}")
    print(f"median of {args.steps} steps after {args.warmup} warm-up step(s); light generators, ndf = ngf, "
          f"discriminators with {layers[0]} / {layers[1]} layers\n")
    print("| image size, ngf, batch | fp32 s/step | fast s/step | speed-up | fp32 img/s | fast img/s "
          "| other load fp32 / fast (cores) |")
    print("|---|---|---|---|---|---|---|")
    for size, ngf, batch, m32, mfa, resolved, o32, ofa in rows:
        note = "" if resolved == "fast" else " (fast unsupported: fp32)"
        print(f"| {size} px, ngf {ngf}, batch {batch} | {m32:.2f} | {mfa:.2f}{note} | {m32 / mfa:.2f}x "
              f"| {batch / m32:.2f} | {batch / mfa:.2f} | {o32:.2f} / {ofa:.2f} |")
    print("\n| generator inference, 256 px, light, ngf 64, batch 1 | ms | GMACs | GMAC/s |")
    print("|---|---|---|---|")
    for name, sec in infer.items():
        print(f"| {name} | {sec * 1000:.0f} | {gmacs:.1f} | {gmacs / sec:.1f} |")
    print("\nLosses over the first steps, same seed and data (fp32 / fast):\n")
    print("| config | step | d_total fp32 | d_total fast | g_total fp32 | g_total fast "
          "| g_cam fp32 | g_cam fast |")
    print("|---|---|---|---|---|---|---|---|")
    for spec, l32, lfa in loss_tables:
        for i, (a, b) in enumerate(zip(l32, lfa)):
            cam32, camfa = a["g_cam_a"] + a["g_cam_b"], b["g_cam_a"] + b["g_cam_b"]
            print(f"| {spec} | {i + 1} | {a['d_total']:.4f} | {b['d_total']:.4f} | {a['g_total']:.2f} "
                  f"| {b['g_total']:.2f} | {cam32:.4f} | {camfa:.4f} |")


if __name__ == "__main__":
    main()
