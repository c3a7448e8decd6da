"""The precision a run trains in: ``train.precision``, with ``auto`` resolved for this machine.

``auto`` is bf16 autocast (weights and optimiser state stay fp32) where the hardware computes bf16
natively: a GPU that supports it, or a CPU with AMX-BF16 or AVX512-BF16, where a bf16 matmul runs
faster than fp32's. Elsewhere (an AVX2-only CPU) bf16 is emulated and far slower, so ``auto`` is fp32
there, and an explicit ``bf16`` is warned about with its cost measured on the spot. The choice and the
reason are printed at the start of a run and recorded in ``train.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

# /proc/cpuinfo flags of the instruction sets that compute bf16 natively, best first.
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


class Precision(NamedTuple):
    name: str  # fp32, bf16 or fp16
    why: str

    def trainer_flags(self) -> dict:
        """transformers' TrainingArguments flags for it (autocast; the weights stay fp32)."""
        return {"bf16": self.name == "bf16", "fp16": self.name == "fp16"}

    def record(self) -> dict:
        return {"name": self.name, "why": self.why}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: no flags to read
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def native_bf16_instructions(flags: set[str] | None = None) -> str | None:
    """The CPU's native bf16 instruction set (``AMX-BF16``, ``AVX512-BF16``), or None."""
    flags = cpu_flags() if flags is None else flags
    return next((name for flag, name in NATIVE_BF16_FLAGS.items() if flag in flags), None)


def choose_precision(requested: str, flags: set[str] | None = None) -> Precision:
    """``requested`` (train.precision) as this machine runs it, with the reason."""
    import torch

    if requested != "auto":
        return Precision(requested, "train.precision")
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: the GPU computes bf16 natively")
        return Precision("fp32", "auto: the GPU has no bf16")
    native = native_bf16_instructions(flags)
    if native:
        return Precision("bf16", f"auto: the CPU computes bf16 natively ({native})")
    return Precision("fp32", "auto: the CPU has no native bf16 (no AMX-BF16 or AVX512-BF16), where bf16 would be emulated")


def bf16_slowdown(size: int = 256, repeats: int = 20) -> float:
    """How many times slower a bf16 matmul is than an fp32 one here (a probe of well under a second)."""
    import torch

    def seconds(dtype) -> float:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        return time.perf_counter() - started

    return seconds(torch.bfloat16) / max(seconds(torch.float32), 1e-9)


def bf16_warning(precision: Precision, flags: set[str] | None = None) -> str | None:
    """A warning when bf16 was asked for on a CPU that only emulates it, with the cost measured now."""
    import torch

    if precision.name != "bf16" or torch.cuda.is_available() or native_bf16_instructions(flags):
        return None
    return (
        f"train.precision bf16: this CPU has no native bf16 (no AMX-BF16 or AVX512-BF16); a bf16 matmul ran "
        f"{bf16_slowdown():.1f}x slower than fp32 just now. --precision auto trains in fp32 here."
    )
