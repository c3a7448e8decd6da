"""The precision a run trains in: ``train.precision``, with ``auto`` resolved for this machine.

``auto`` is bf16 autocast (weights and optimiser state stay fp32) where the hardware computes bf16
natively and it pays: a GPU that supports it; a CPU with AMX-BF16 or AVX512-BF16 when a short probe,
a matmul at the model's width, runs at least ``PAYS`` times as fast in bf16 as in fp32 (at a width of 64
it does not: autocast's casts then cost more than the matmuls save). Elsewhere (an AVX2-only CPU) bf16
is emulated and far slower, so ``auto`` is fp32 there, and an explicit ``bf16`` is warned about with its
cost measured on the spot. The choice and the reason are printed and recorded in ``train.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

# /proc/cpuinfo flags of the instruction sets that compute bf16 natively, best first.
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


PAYS = 1.5  # the bf16 speed-up at the model's width from which auto trains in bf16 on a CPU
PROBE_TOKENS = 512  # rows of the probe's matmul: about a training step's tokens in one linear layer


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


def choose_precision(requested: str, flags: set[str] | None = None, width: int | None = None) -> Precision:
    """``requested`` (train.precision) as this machine runs it, with the reason; ``width``: the model's
    hidden size, for the CPU probe (None: native bf16 is enough)."""
    import torch

    if requested != "auto":
        return Precision(requested, "train.precision")
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: the GPU computes bf16 natively")
        return Precision("fp32", "auto: the GPU has no bf16")
    native = native_bf16_instructions(flags)
    if not native:
        return Precision("fp32", "auto: the CPU has no native bf16 (no AMX-BF16 or AVX512-BF16), where bf16 would be emulated")
    if width is None:
        return Precision("bf16", f"auto: the CPU computes bf16 natively ({native})")
    return cpu_choice(native, width, bf16_speedup(width))


def cpu_choice(native: str, width: int, speedup: float) -> Precision:
    """bf16 when the probe at the model's width found it at least ``PAYS`` times as fast as fp32."""
    measured = f"a bf16 matmul at this model's width ({width}) ran {speedup:.1f}x as fast as fp32"
    if speedup >= PAYS:
        return Precision("bf16", f"auto: the CPU computes bf16 natively ({native}) and {measured}")
    return Precision("fp32", f"auto: the CPU computes bf16 natively ({native}), but {measured}, less than autocast's casts cost")


def bf16_speedup(width: int, tokens: int = PROBE_TOKENS, repeats: int = 10) -> float:
    """fp32 time over bf16 time of a ``tokens x width`` by ``width x width`` matmul here (best of three)."""
    return matmul_seconds(torch_dtype("fp32"), width, tokens, repeats) / max(matmul_seconds(torch_dtype("bf16"), width, tokens, repeats), 1e-9)


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]


def matmul_seconds(dtype, width: int, tokens: int, repeats: int) -> float:
    import torch

    a, b = torch.randn(tokens, width, dtype=dtype), torch.randn(width, width, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - started)
    return best


def model_width(model) -> int | None:
    """The model's hidden size (``d_model`` for T5-style configs), None when its config names neither."""
    config = getattr(model, "config", None)
    return getattr(config, "hidden_size", None) or getattr(config, "d_model", None)


def bf16_warning(precision: Precision, flags: set[str] | None = None) -> str | None:
    """A warning when bf16 was asked for on a CPU that only emulates it, with the cost measured now."""
    import torch

    if precision.name != "bf16" or torch.cuda.is_available() or native_bf16_instructions(flags):
        return None
    return (
        f"train.precision bf16: this CPU has no native bf16 (no AMX-BF16 or AVX512-BF16); a bf16 matmul ran "
        f"{1 / bf16_speedup(256):.1f}x slower than fp32 just now. --precision auto trains in fp32 here."
    )
