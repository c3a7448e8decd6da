"""Bottleneck adapters (Houlsby et al., 2019), our own: the ``adapters`` package pins transformers 4.

In every transformer block the attention output projection and the feed-forward output projection
are wrapped so that, for hidden width ``d`` and bottleneck width ``b``::

    y   = base(x)                 # [batch, seq, d]   the frozen projection
    h   = gelu(down(y))           # [batch, seq, b]   down: d -> b  (d*b weights + b biases)
    out = y + up(h)               # [batch, seq, d]   up:   b -> d  (b*d weights + d biases)

``up`` starts at zero, so a freshly wrapped model computes exactly what the base model did.
Trainable parameters per wrapped module: ``2*d*b + b + d``; everything else is frozen.
Saved as ``adapter_config.json`` (method, ``bottleneck``, wrapped module names) plus
``adapter_model.safetensors`` (only the trainable down/up weights, plus the head for SEQ_CLS).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneloop.errors import ConfigError, ModelError
from tuneloop.methods.formulas import linear_layer_names, linear_shape, module_matches
from tuneloop.methods.settings import TargetedSettings

# BottleneckAdapter (a torch module) is imported where a model is wrapped, so that reading the
# method registry (``tuneloop --help``, config validation) does not load torch.

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CLASSIFICATION_HEADS = ("classifier", "score")
# (attention output, feed-forward output) relative to one block, per architecture family.
BLOCK_OUTPUT_PROJECTIONS = (
    ("self_attn.o_proj", "mlp.down_proj"),  # Llama, Mistral, Qwen, SmolLM
    ("attention.output.dense", "output.dense"),  # BERT, RoBERTa, MiniLM
    ("attn.c_proj", "mlp.c_proj"),  # GPT-2
    ("layer.0.SelfAttention.o", "layer.1.DenseReluDense.wo"),  # T5 encoder block
    ("layer.0.SelfAttention.o", "layer.2.DenseReluDense.wo"),  # T5 decoder block (layer.1 is cross-attention)
    ("self_attn.out_proj", "fc2"),  # BART, Marian, Pegasus (encoder and decoder blocks)
)


class BottleneckSettings(TargetedSettings):
    name: Literal["adapter"] = "adapter"
    bottleneck: int = Field(64, gt=0, description="adapter: bottleneck width of each down/up projection.")


def build_adapter(model, cfg, task_type: str = "CAUSAL_LM"):
    model = add_bottlenecks(model, bottleneck_targets(model, cfg.target_modules), cfg.bottleneck)
    if task_type == "SEQ_CLS":  # a fresh classification head must learn too (peft does the same)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(parameter.requires_grad or name.split(".")[0] in CLASSIFICATION_HEADS)
    return model


def bottleneck_targets(model, target_modules) -> list[str]:
    """Names of the linear layers to wrap: an explicit list/regex, or each block's output projections."""
    if target_modules == "all-linear":
        names = default_targets(model)
    else:
        names = [n for n, m in model.named_modules() if linear_shape(m) and module_matches(n, target_modules)]
    if not names:
        wanted = "attention/feed-forward output projections" if target_modules == "all-linear" else repr(target_modules)
        raise ConfigError(
            f"method.target_modules: adapter found no {wanted} in {type(model).__name__}; "
            f"linear modules that exist: {', '.join(linear_layer_names(model))}"
        )
    return names


def default_targets(model) -> list[str]:
    """Both output projections of every block, in every list of blocks (an encoder-decoder has two)."""
    import torch

    targets = []
    for blocks_name, blocks in model.named_modules():
        if isinstance(blocks, torch.nn.ModuleList) and len(blocks):
            projections = block_output_projections(blocks[0])
            targets += [f"{blocks_name}.{index}.{name}" for index in range(len(blocks)) for name in projections]
    return targets


def block_output_projections(block) -> tuple[str, ...]:
    """The first known (attention output, feed-forward output) pair inside ``block``, else ()."""
    in_block = {name for name, _ in block.named_modules()}
    return next((pair for pair in BLOCK_OUTPUT_PROJECTIONS if all(name in in_block for name in pair)), ())


def add_bottlenecks(model, targets: list[str], bottleneck: int):
    """Freeze the model, then wrap each target module (the new adapters are the only trainable part)."""
    from tuneloop.methods.bottleneck_layer import BottleneckAdapter

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, BottleneckAdapter(getattr(parent, child), bottleneck))
    return model


def adapter_state_dict(model) -> dict:
    """What training changed: the down/up weights (and a classification head, if trained)."""
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


def save_bottleneck(model, folder) -> Path:
    from safetensors.torch import save_file

    from tuneloop.methods.bottleneck_layer import BottleneckAdapter

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wrapped = {name: m for name, m in model.named_modules() if isinstance(m, BottleneckAdapter)}
    bottleneck = next(iter(wrapped.values())).down.out_features
    config = {"tuneloop_method": "adapter", "bottleneck": bottleneck, "targets": list(wrapped)}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file({k: v.detach().contiguous().cpu() for k, v in adapter_state_dict(model).items()}, folder / WEIGHTS_FILE)
    return folder


def load_bottleneck(base_model, folder):
    """Re-wrap the saved modules of ``base_model`` and load the adapter weights into them."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(f"{folder}: no {CONFIG_FILE}; not a saved bottleneck adapter")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("tuneloop_method") != "adapter":
        raise ModelError(f"{config_path}: not a bottleneck adapter (tuneloop_method={config.get('tuneloop_method')!r})")
    model = add_bottlenecks(base_model, config["targets"], config["bottleneck"])
    weights = load_file(folder / WEIGHTS_FILE)
    missing = set(adapter_state_dict(model)) - set(weights)
    _, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{folder / WEIGHTS_FILE}: does not fit the model "
            f"(missing {sorted(missing)[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def expected_bottleneck_params(model, cfg) -> int:
    """``2*d*b + b + d`` per wrapped module (down: d*b + b, up: b*d + d)."""
    b = cfg.bottleneck
    widths = [linear_shape(model.get_submodule(name))[1] for name in bottleneck_targets(model, cfg.target_modules)]
    return sum(2 * d * b + b + d for d in widths)
