"""What Linux says about the CPU: the fields of the first processor in ``/proc/cpuinfo``.

One reader for the library (:func:`facetoon.runtime.cpu_has_fast_bf16` needs the x86 feature
flags), the benchmarks (machine lines) and ``scripts/ship_weights.py`` (the model card's
machine). Imports nothing heavy (no torch), so benchmark scripts can use it before torch loads.

    >>> fields = cpu_fields()          # {} where /proc/cpuinfo cannot be read
    >>> name = fields.get("model name", "")
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CPUINFO", "cpu_fields", "cpu_flags"]

CPUINFO = Path("/proc/cpuinfo")


def cpu_fields(path: str | Path = CPUINFO) -> dict[str, str]:
    """``{field: value}`` of the first processor block of ``path`` (stripped strings).

    Empty where the file is missing or unreadable (other systems). A field repeated inside the
    block keeps its first value.
    """
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags(path: str | Path = CPUINFO) -> frozenset[str] | None:
    """The x86 ``flags`` field of ``path`` as a set; ``None`` where there is no such field."""
    flags = cpu_fields(path).get("flags")
    return None if flags is None else frozenset(flags.split())
