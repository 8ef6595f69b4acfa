"""Device and precision choices shared by inference and training.

Precision names:

* ``"fp32"``: the reference path.
* ``"fast"``: on CPU, channels_last memory format plus bf16 autocast where the CPU has native
  bf16 (AVX512-BF16 or AMX); on CUDA, fp16 autocast (AMP). Falls back to fp32 elsewhere.
* ``"auto"``: ``"fast"`` where it is supported, else ``"fp32"``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from dataclasses import dataclass
from typing import Any, Iterator, TypeVar, cast

import torch

from .cpuinfo import cpu_flags
from .errors import ConfigError

__all__ = ["Runtime", "resolve_device", "cpu_has_fast_bf16", "resolve_runtime", "to_channels_last",
           "to_contiguous_format"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=torch.nn.Module)

PRECISIONS = ("auto", "fp32", "fast")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; other values as given (validated)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


# x86 features with which oneDNN runs bf16 convolutions natively
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def x86_cpu_flags() -> frozenset[str] | None:
    """The feature flags of an x86 CPU from ``/proc/cpuinfo``; ``None`` on other CPUs or systems."""
    return cpu_flags() if _is_x86() else None


def _onednn_accepts_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX on x86, BF16 on Arm).

    oneDNN also accepts bf16 on x86 CPUs with plain AVX-512 (Skylake to Ice Lake servers, and
    virtual machines that hide the bf16 flags) but emulates it there: the fast path ran 0.45x
    the speed of fp32 on such a CPU (``benchmarks/results/2026-12-07-xeon-no-bf16-2core.md``).
    On x86 the CPU flags must therefore list ``avx512_bf16`` or ``amx_bf16``; where they cannot be
    read, the answer is no (fp32 is always correct).
    """
    onednn_bf16 = _onednn_accepts_bf16()
    if not _is_x86():
        return onednn_bf16
    flags = x86_cpu_flags()
    return onednn_bf16 and flags is not None and any(flag in flags for flag in NATIVE_BF16_FLAGS)


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision.

    ``autocast_dtype`` is ``None`` for fp32; ``channels_last`` says whether models and inputs
    should use that memory format.
    """

    device: torch.device
    precision: str  # "fp32" or "fast" after resolution
    autocast_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Autocast context for the forward passes (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def prepare_module(self, module: M) -> M:
        """``module`` moved to the device with its floating-point parameters and buffers in float32
        and, where :attr:`channels_last`, converted to that memory format.

        In place (``nn.Module.to``): the same module is returned, so a caller's module changes (an
        fp16, bf16 or float64 module becomes float32). The inputs of :meth:`prepare_input` are
        float32 and lower precision comes from :meth:`autocast`, so the weights must be float32.
        """
        module = module.to(device=self.device, dtype=torch.float32)
        if self.channels_last:
            module = to_channels_last(module)
        return module

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """``torch.inference_mode`` plus autocast."""
        with torch.inference_mode(), self.autocast():
            yield


def resolve_runtime(device: str | torch.device | None = "auto", precision: str = "auto") -> Runtime:
    """Turn user-facing ``device``/``precision`` options into a :class:`Runtime`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = resolve_device(device)
    if dev.type == "cuda":
        supported = True
        dtype = torch.float16
    elif dev.type == "cpu":
        supported = cpu_has_fast_bf16()
        dtype = torch.bfloat16
    else:
        supported, dtype = False, None
    if precision == "fast" and not supported:
        log.warning("fast precision is not supported on %s; using fp32", dev)
    fast = precision in ("fast", "auto") and supported
    return Runtime(
        device=dev,
        precision="fast" if fast else "fp32",
        autocast_dtype=dtype if fast else None,
        channels_last=fast and dev.type == "cpu",
    )


def to_channels_last(module: M) -> M:
    """``module.to(memory_format=torch.channels_last)`` (returns ``module`` itself, converted in place).

    ``nn.Module.to`` accepts ``memory_format`` at runtime, but torch's type stubs omit it.
    """
    return cast(M, cast(Any, module).to(memory_format=torch.channels_last))


def to_contiguous_format(module: M) -> M:
    """The inverse of :func:`to_channels_last`: ``module.to(memory_format=torch.contiguous_format)``, in place."""
    return cast(M, cast(Any, module).to(memory_format=torch.contiguous_format))
