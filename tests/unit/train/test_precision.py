"""train.precision auto: bf16 where the CPU (or GPU) computes it natively, fp32 elsewhere, with the reason."""

from __future__ import annotations

import pytest
import torch

from tuneloop.train.precision import PAYS, bf16_speedup, bf16_warning, choose_precision, cpu_choice, cpu_flags, native_bf16_instructions

AVX2_ONLY = {"fpu", "sse2", "avx", "avx2", "fma"}
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}
COOPER_LAKE = AVX2_ONLY | {"avx512f", "avx512_bf16"}

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU, auto follows the GPU")


def test_auto_is_bf16_on_a_cpu_with_native_bf16_and_says_which_instructions():
    assert choose_precision("auto", SAPPHIRE_RAPIDS) == ("bf16", "auto: the CPU computes bf16 natively (AMX-BF16)")
    assert choose_precision("auto", COOPER_LAKE).why.endswith("(AVX512-BF16)")


def test_auto_is_fp32_on_an_avx2_only_cpu():
    chosen = choose_precision("auto", AVX2_ONLY)
    assert chosen.name == "fp32" and "no native bf16" in chosen.why
    assert chosen.trainer_flags() == {"bf16": False, "fp16": False}


def test_an_explicit_precision_is_kept():
    assert choose_precision("fp32", SAPPHIRE_RAPIDS) == ("fp32", "train.precision")
    assert choose_precision("bf16", AVX2_ONLY).trainer_flags() == {"bf16": True, "fp16": False}


def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_warned_with_the_measured_cost():
    warning = bf16_warning(choose_precision("bf16", AVX2_ONLY), AVX2_ONLY)
    assert warning.startswith("train.precision bf16: this CPU has no native bf16")
    assert "x slower than fp32 just now" in warning
    assert bf16_warning(choose_precision("bf16", SAPPHIRE_RAPIDS), SAPPHIRE_RAPIDS) is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert native_bf16_instructions(cpu_flags(cpuinfo)) == "AVX512-BF16"
    assert cpu_flags(tmp_path / "missing") == set()


def test_on_a_native_bf16_cpu_auto_follows_the_probe_at_the_models_width():
    assert cpu_choice("AMX-BF16", 576, 7.0) == (
        "bf16", "auto: the CPU computes bf16 natively (AMX-BF16) and a bf16 matmul at this model's width (576) ran 7.0x as fast as fp32")
    narrow = cpu_choice("AMX-BF16", 64, 1.0)
    assert narrow.name == "fp32" and "less than autocast's casts cost" in narrow.why
    assert cpu_choice("AVX512-BF16", 256, PAYS).name == "bf16"


def test_the_probe_measures_a_positive_speedup():
    assert bf16_speedup(32, tokens=16, repeats=2) > 0
