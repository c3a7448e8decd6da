"""Method details specific to encoder-decoders (the method contract itself covers T5 in tests/unit/methods)."""

from __future__ import annotations

from tuneloop.methods import METHODS, apply_method, method_settings
from tuneloop.objectives.seq2seq import SEQ2SEQ


def method_config(name: str):
    wanted = dict(r=4, alpha=8.0, num_virtual_tokens=4, trainable_layers=1, bottleneck=8)
    return method_settings(name, **{k: v for k, v in wanted.items() if k in METHODS[name].settings.model_fields})


def load_t5(model_dir):
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(model_dir)


def test_adapter_wraps_both_output_projections_of_every_encoder_and_decoder_block(tiny_t5_dir):
    from tuneloop.methods.bottleneck_layer import BottleneckAdapter

    model = apply_method(load_t5(tiny_t5_dir), method_config("adapter"), SEQ2SEQ.peft_task_type)
    wrapped = sorted(name for name, module in model.named_modules() if isinstance(module, BottleneckAdapter))
    assert wrapped == sorted(
        [f"encoder.block.{i}.layer.{j}" for i in range(2) for j in ("0.SelfAttention.o", "1.DenseReluDense.wo")]
        + [f"decoder.block.{i}.layer.{j}" for i in range(2) for j in ("0.SelfAttention.o", "2.DenseReluDense.wo")]
    )


def test_adapter_wraps_encoder_and_decoder_blocks_of_bart():
    from transformers import BartConfig, BartForConditionalGeneration

    from tuneloop.methods.bottleneck import default_targets

    config = BartConfig(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32)  # fmt: skip
    assert default_targets(BartForConditionalGeneration(config)) == [
        f"model.{stack}.layers.0.{name}" for stack in ("encoder", "decoder") for name in ("self_attn.out_proj", "fc2")
    ]


def test_freeze_trains_the_last_block_of_encoder_and_decoder_and_their_final_norms(tiny_t5_dir):
    model = apply_method(load_t5(tiny_t5_dir), method_config("freeze"), SEQ2SEQ.peft_task_type)
    trainable = {name.split(".layer.")[0] if ".block." in name else name for name, p in model.named_parameters() if p.requires_grad}
    untied_head = {"lm_head.weight"} & {name for name, _ in model.named_parameters()}
    assert trainable == {"encoder.block.1", "encoder.final_layer_norm.weight", "decoder.block.1", "decoder.final_layer_norm.weight"} | untied_head
