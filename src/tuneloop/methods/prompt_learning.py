"""Prompt-learning methods through peft: learned virtual tokens, the base model untouched.

* ``prompt``  - ``num_virtual_tokens x hidden`` embeddings prepended to the input (random init).
* ``ptuning`` - the same embeddings produced by a small MLP encoder (P-tuning).
* ``prefix``  - learned keys and values prepended in every attention layer (prefix tuning); it
  needs a model whose forward accepts ``past_key_values``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneloop.errors import ConfigError
from tuneloop.methods.settings import MethodSettings


class PromptLearningSettings(MethodSettings):
    name: Literal["prefix", "prompt", "ptuning"]
    num_virtual_tokens: int = Field(16, gt=0, description="Prefix / prompt / p-tuning: learned virtual tokens.")


def build_prefix(model, cfg, task_type: str = "CAUSAL_LM"):
    from peft import PrefixTuningConfig, get_peft_model

    peft_config = PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, task_type=task_type)
    peft_model = get_peft_model(model, peft_config)
    check_prefixes_fit(peft_model)
    return peft_model


def build_prompt(model, cfg, task_type: str = "CAUSAL_LM"):
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

    peft_config = PromptTuningConfig(
        num_virtual_tokens=cfg.num_virtual_tokens, prompt_tuning_init=PromptTuningInit.RANDOM, task_type=task_type
    )
    return get_peft_model(model, peft_config)


def build_ptuning(model, cfg, task_type: str = "CAUSAL_LM"):
    from peft import PromptEncoderConfig, get_peft_model

    peft_config = PromptEncoderConfig(num_virtual_tokens=cfg.num_virtual_tokens, task_type=task_type)
    return get_peft_model(model, peft_config)


def check_prefixes_fit(peft_model) -> None:
    """Run one token through the model: peft wraps any model but fails at the first forward of one
    that cannot take prefixes (its forward has no ``past_key_values``, e.g. BERT in transformers 5)."""
    import torch

    probe = torch.zeros((1, 1), dtype=torch.long, device=next(peft_model.parameters()).device)
    inputs = {"input_ids": probe}
    if getattr(peft_model.config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = probe  # an encoder-decoder needs a decoder step to run at all
    try:
        with torch.no_grad():
            peft_model(**inputs)
    except ValueError as err:
        if "past key values" not in str(err):
            raise
        architecture = type(peft_model.get_base_model()).__name__
        raise ConfigError(
            f"method.name: prefix tuning does not apply to {architecture}: it cannot take the learned "
            "keys/values that prefix tuning prepends to every attention layer (no past_key_values); "
            "use method.name 'prompt' or 'ptuning' (learned input tokens) instead"
        ) from None


def expected_prompt_params(model, cfg) -> int:
    """Prompt tuning: one ``hidden``-wide embedding per virtual token, for the encoder and again for
    the decoder of an encoder-decoder (peft prompts both)."""
    return virtual_token_rows(model, cfg) * model.get_input_embeddings().embedding_dim


def virtual_token_rows(model, cfg) -> int:
    """peft learns the virtual tokens once per transformer stack: twice for an encoder-decoder."""
    return (2 if getattr(model.config, "is_encoder_decoder", False) else 1) * cfg.num_virtual_tokens


def expected_prefix_params(model, cfg) -> int:
    """Prefix tuning: per virtual token, a key and a value for each of the model's ``num_layers`` (an
    encoder-decoder learns one prefix set, not one per stack). A key is as wide as the attention's
    key heads: ``hidden / heads * key_value_heads`` under grouped-query attention, else ``hidden``."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or config.num_layers
    width = model.get_input_embeddings().embedding_dim
    key_value_heads = getattr(config, "num_key_value_heads", None)
    if key_value_heads:
        width = width // config.num_attention_heads * key_value_heads
    return cfg.num_virtual_tokens * layers * 2 * width


def expected_ptuning_params(model, cfg) -> int:
    """P-tuning: the prompt embeddings plus peft's MLP encoder ``d -> d -> d -> d`` (three biased linears)."""
    width = model.get_input_embeddings().embedding_dim
    return virtual_token_rows(model, cfg) * width + 3 * (width * width + width)
