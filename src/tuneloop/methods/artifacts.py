"""How each kind of method writes what it trained, and how it is put back on a base model.

peft methods: ``adapter/`` in PEFT format (``peft.PeftModel.from_pretrained`` loads it).
Bottleneck adapters: ``adapter/`` with our config + safetensors. Full and freeze: ``model/``,
a complete safetensors model folder that plain transformers loads.
"""

from __future__ import annotations

from pathlib import Path

from tuneloop.methods.bottleneck import load_bottleneck, save_bottleneck


def save_peft_adapter(model, folder: Path) -> None:
    model.save_pretrained(folder)


def load_peft_adapter(base_model, folder: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(folder))


def save_bottleneck_artifact(model, folder: Path) -> None:
    save_bottleneck(model, folder)


def load_bottleneck_artifact(base_model, folder: Path):
    return load_bottleneck(base_model, folder)


def save_full_model(model, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)


def load_full_model(base_model, folder: Path):
    """The run's own full weights replace the base (same class, same config family)."""
    return type(base_model).from_pretrained(str(folder))
