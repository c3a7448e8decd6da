"""A new method is one module plus one registration: registered into METHODS alone (no other edit),
it gets its settings, flags-free validation and the whole method contract of test_method_contract."""

from __future__ import annotations

from typing import Literal

from unit.methods.test_method_contract import check_method_contract, tiny_dirs  # noqa: F401  (tiny_dirs is a fixture)
from tuneloop.methods import METHODS, Method, get_method, method_settings
from tuneloop.methods.artifacts import load_full_model, save_full_model
from tuneloop.methods.settings import MethodSettings


class NormSettings(MethodSettings):
    name: Literal["norms"] = "norms"


def build_norms(model, settings, task_type: str = "CAUSAL_LM"):
    """Train only the normalisation layers' weights (a toy method, for this test)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("norm" in name)
    return model


def expected_norm_params(model, settings) -> int:
    return sum(parameter.numel() for name, parameter in model.named_parameters() if "norm" in name)


TOY = Method(build_norms, NormSettings, expected_norm_params, save=save_full_model, load=load_full_model, artifact="model", learning_rate=1e-2)


def test_a_method_registered_alone_keeps_the_contract(monkeypatch, tiny_dirs, tmp_path):  # noqa: F811
    monkeypatch.setitem(METHODS, "norms", TOY)
    assert get_method("norms") is TOY and method_settings("norms") == NormSettings()
    check_method_contract("norms", "sft", tiny_dirs, tmp_path)
