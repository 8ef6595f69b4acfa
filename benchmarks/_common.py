"""What every benchmark needs: paths, the machine it runs on, the load of other processes, the
default models, and multiply-accumulate counts.

The scripts import it as ``from _common import ...``: Python puts a script's own folder first on
``sys.path``, so this works for ``python benchmarks/bench_x.py`` from any working directory (the
subprocesses the scripts start run the same way). Importing this module does not import torch
(``bench_background.py`` sets an environment variable that must precede torch's first
allocation); the functions that need torch import it when called.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the checkout's facetoon even when it is not installed
    sys.path.insert(0, str(REPO))
from facetoon.cpuinfo import cpu_fields as cpu_info  # noqa: E402  (the first processor's fields)

SHARED = Path(os.environ.get("FACETOON_SHARED", REPO.parent / "shared"))
ASTRONAUT = REPO / "examples" / "astronaut.png"

# the x86 features that decide which kernels oneDNN runs: fp32 FMA width, and native bf16
ISA_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

__all__ = [
    "REPO", "SHARED", "ASTRONAUT", "ISA_FEATURES", "cpu_info", "cpu_model", "isa_flags",
    "load_average", "format_load", "OtherLoad", "other_load", "machine_summary", "default_models",
    "count_macs", "CaseFailed", "run_case_subprocess", "other_load_note",
]


# ---------------------------------------------------------------------------------------------
# the machine


def cpu_model() -> str:
    """The CPU's model name, with its x86 family / model / clock when known."""
    info = cpu_info()
    name = info.get("model name") or info.get("Model") or platform.processor() or platform.machine()
    details = []
    if "cpu family" in info and "model" in info:
        details.append(f"family {info['cpu family']} model {info['model']}")
    if "cpu MHz" in info:
        try:
            details.append(f"{float(info['cpu MHz']) / 1000:.2f} GHz reported")
        except ValueError:
            pass
    return f"{name} ({', '.join(details)})" if details else (name or "unknown CPU")


def isa_flags() -> dict[str, bool] | None:
    """Presence of each of :data:`ISA_FEATURES`, or ``None`` when the CPU flags are unknown."""
    flags = cpu_info().get("flags")
    if flags is None:
        return None
    present = set(flags.split())
    return {name: name in present for name in ISA_FEATURES}


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load average, or ``None`` where the OS has none."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def format_load() -> str:
    """The load average as ``"1.02 0.87 0.60"`` (``"n/a"`` where unknown)."""
    load = load_average()
    return "n/a" if load is None else " ".join(f"{v:.2f}" for v in load)


def _other_ticks() -> dict[int, int] | None:
    """CPU ticks (user + system) used so far by every process but this one; ``None`` without /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    if not os.path.exists("/proc/self/stat"):
        return None
    ticks, me = {}, os.getpid()
    for p in names:
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:  # exited meanwhile
            continue
        fields = s[s.rindex(")") + 2:].split()  # the command name may hold spaces
        ticks[int(p)] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


class OtherLoad:
    """Cores used by the other processes of the machine over an interval (from ``/proc``).

        with OtherLoad() as other:
            work()
        print(other.cores)  # 1.9: other jobs kept about two cores busy meanwhile

    ``cores`` is NaN where ``/proc`` is missing. Child processes count as "other"; processes
    that exit during the interval are missed, those that start during it count from zero.
    """

    def __init__(self) -> None:
        self.cores = math.nan
        self.start()

    def start(self) -> None:
        """Begin (again) an interval."""
        self._before = _other_ticks()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        """End the interval; returns (and stores in ``cores``) the cores the others used."""
        seconds = time.perf_counter() - self._t0
        after = _other_ticks()
        if self._before is None or after is None or seconds <= 0:
            self.cores = math.nan
        else:
            used = sum(t - self._before.get(pid, 0) for pid, t in after.items())
            self.cores = used / os.sysconf("SC_CLK_TCK") / seconds
        return self.cores

    def __enter__(self) -> OtherLoad:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def other_load(seconds: float = 0.5) -> float:
    """Cores used by other processes over the next ``seconds`` (this process sleeps meanwhile)."""
    probe = OtherLoad()
    time.sleep(seconds)
    return probe.stop()


def machine_summary(probe_seconds: float = 0.5) -> str:
    """Two lines on the machine: CPU, ISA features, facetoon's fast path, torch, current load.

    Call it after ``torch.set_num_threads`` so that it shows the threads the benchmark uses.
    ``probe_seconds > 0`` samples the cores other processes use for that long.
    """
    import torch

    from facetoon.runtime import cpu_has_fast_bf16

    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    cpus = f"{cores} logical CPUs" + (f" ({usable} usable)" if usable != cores else "")
    flags = isa_flags()
    if flags is None:
        isa = "ISA flags unknown"
    else:
        have = [k for k, v in flags.items() if v]
        lack = [k for k, v in flags.items() if not v]
        isa = "ISA: " + (" ".join(have) or "none of " + " ".join(ISA_FEATURES))
        isa += f"; no {' '.join(lack)}" if lack and have else ""
    native = cpu_has_fast_bf16()
    fast = ("native (bf16 kernels: 'fast' = channels-last + bf16)" if native
            else "not native (no bf16 kernels: 'fast' runs in fp32)")
    try:
        capability = f", ATen {torch.backends.cpu.get_cpu_capability()} kernels"
    except (AttributeError, RuntimeError):
        capability = ""
    threads = torch.get_num_threads()
    line2 = (f"torch {torch.__version__}{capability}, {threads} thread{'s' if threads != 1 else ''}; "
             f"facetoon fast path {fast}; load average {format_load()}")
    if probe_seconds > 0:
        others = other_load(probe_seconds)
        if not math.isnan(others):
            line2 += f"; other processes {others:.2f} cores"
    return f"CPU: {cpu_model()}, {cpus}; {isa}\n{line2}"


# ---------------------------------------------------------------------------------------------
# models


def default_models(face_weights: Any = None, background_weights: Any = None,
                   seed: int = 0) -> tuple[Any, Any, str]:
    """Face and scene model specs for :class:`facetoon.Stylizer`, and a label saying what they are.

    The given weights win; else the shipped defaults (``weights/ugatit-selfie2anime``, returned
    by name; ``weights/animegan-anime``, returned as ``"animegan"``); where those do not exist,
    random-init stand-ins with the default architectures (light U-GAT-IT generator, ngf 32,
    128 px; AnimeGANv2), seeded with ``seed`` - run time does not depend on the weights' values.
    A ``background_weights`` path is returned as is (an AnimeGAN weights folder).
    """
    import torch

    from facetoon.models import create_model
    from facetoon.models.serialization import weights_dir
    from facetoon.pipeline import DEFAULT_BACKGROUND_WEIGHTS, DEFAULT_FACE_WEIGHTS

    torch.manual_seed(seed)
    labels = []
    if face_weights:
        face: Any = face_weights
        labels.append(f"face {face_weights}")
    elif (weights_dir() / DEFAULT_FACE_WEIGHTS / "config.json").is_file():
        face = DEFAULT_FACE_WEIGHTS
        labels.append(f"face {DEFAULT_FACE_WEIGHTS}")
    else:
        face = create_model("ugatit_generator", light=True, ngf=32, img_size=128)
        labels.append("face: random-init stand-in (light U-GAT-IT, ngf 32, 128 px)")
    if background_weights:
        scene: Any = background_weights
        labels.append(f"scene {background_weights}")
    elif (weights_dir() / DEFAULT_BACKGROUND_WEIGHTS / "config.json").is_file():
        scene = "animegan"
        labels.append(f"scene {DEFAULT_BACKGROUND_WEIGHTS}")
    else:
        scene = create_model("animegan", version="v2")
        labels.append("scene: random-init stand-in (AnimeGANv2)")
    return face, scene, "; ".join(labels)


def _layer_macs(module: Any, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-accumulates of one call of a conv / transposed conv / linear layer."""
    from torch import nn

    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        # every input value is scattered to (out_channels / groups) * kernel outputs
        return inputs[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        # every output value gathers (in_channels / groups) * kernel inputs; depthwise: groups = in
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_macs(model: Any, *inputs: Any, meta: bool = True) -> int:
    """Multiply-accumulates of one ``model(*inputs)`` call, summed over its conv, transposed conv
    and linear layers (forward hooks; grouped and depthwise convs included).

    Counted: ``nn.Conv{1,2,3}d`` (``out.numel() * in_channels / groups * kernel``),
    ``nn.ConvTranspose{1,2,3}d`` (``in.numel() * out_channels / groups * kernel``) and
    ``nn.Linear`` (``out.numel() * in_features``), once per call. Not counted: biases,
    normalisation layers, activations, resizes, pooling, element-wise arithmetic, and convs
    called functionally (``F.conv2d``) - for these generators the layers counted hold nearly
    all the arithmetic. The count covers the whole batch.

    With ``meta`` (default) a copy of the model runs on PyTorch's meta device: shapes only, no
    arithmetic and no memory, so a 1080p count costs milliseconds; models that cannot run there
    are run for real (under ``no_grad``) instead.
    """
    import copy

    import torch
    from torch import nn

    counted = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d, nn.Linear)
    total = 0

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        total += _layer_macs(module, args, output)

    def run(net: nn.Module, args: tuple[Any, ...]) -> int:
        nonlocal total
        total = 0
        handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, counted)]
        try:
            with torch.no_grad():
                net(*args)
        finally:
            for h in handles:
                h.remove()
        return total

    if meta:
        try:
            ghost = copy.deepcopy(model).to("meta")
            return run(ghost, tuple(x.to("meta") if torch.is_tensor(x) else x for x in inputs))
        except (RuntimeError, NotImplementedError, TypeError, ValueError):
            pass  # an op without a meta kernel, a tensor made on the CPU inside forward, ...
    return run(model, inputs)


# ---------------------------------------------------------------------------------------------
# one case per process

class CaseFailed(RuntimeError):
    """A benchmark case's subprocess exited non-zero; ``stderr`` holds what it printed."""

    def __init__(self, cmd: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"case {' '.join(cmd[1:])} exited with {returncode}")
        self.stderr = stderr


def run_case_subprocess(script: str | Path, case_args: list[str]) -> dict[str, Any]:
    """Run ``python SCRIPT --case ...CASE_ARGS`` in a fresh interpreter and return the JSON object
    it prints on its last stdout line.

    A fresh process per case gives each case its own peak memory (``ru_maxrss``), cold caches and
    process-wide settings (e.g. glibc's memory retention). This checkout's facetoon is on its
    ``PYTHONPATH``; the working directory is the repository. Raises :class:`CaseFailed`.
    """
    cmd = [sys.executable, str(script), *case_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise CaseFailed(cmd, proc.returncode, proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def other_load_note(results: list[dict[str, Any]], bound: str, threshold: float = 0.3) -> str | None:
    """The warning to print when another process used more than ``threshold`` cores during any
    case (each result's ``other_load``); ``bound`` says which way that biases the figures."""
    loads = [r["other_load"] for r in results if not math.isnan(r.get("other_load", math.nan))]
    if max(loads, default=0.0) <= threshold:
        return None
    return (f"NOTE: other processes used the CPU meanwhile (other load); these figures are {bound} - "
            "re-measure on a quiet machine.")
