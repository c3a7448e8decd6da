"""Replay rows scored by the KL divergence from the base model: the fused loss equals the plain maths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tuneloop.config import load_config
from tuneloop.methods import method_settings
from tuneloop.data.schema import Example
from tuneloop.methods import apply_method
from tuneloop.models.load import load_causal_lm
from tuneloop.losses import label_loss as loss_module
from tuneloop.losses.label_loss import summed_label_loss
from tuneloop.losses.distill import for_distillation
from tuneloop.text.tokenize import IGNORE, PackedRow, collate_packed, tokenize_chat


def chat(tokenizer, question: str, answer: str, distill: bool = False):
    example = Example("f", 1, messages=({"role": "user", "content": question}, {"role": "assistant", "content": answer}))
    tokenized = tokenize_chat(tokenizer, example)
    return for_distillation(tokenized) if distill else tokenized


@pytest.fixture
def lora_model(tiny_model_dir):
    """A tiny LoRA model whose adapter already moves it away from the base (lora_B starts at zero)."""
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    torch.manual_seed(0)
    model = apply_method(model, method_settings("lora", r=4, alpha=8.0, dropout=0.0), "CAUSAL_LM")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return model, tokenizer


def batch_of(tokenizer, *rows):
    batch = collate_packed([PackedRow.from_examples(row) for row in rows], tokenizer.pad_token_id)
    batch.pop("real_tokens")
    return batch


def reference_loss(model, batch):
    """Cross-entropy on task tokens + KL(base || tuned) on replay tokens, from the full batch's logits."""
    ids, positions, labels, marks = batch["input_ids"], batch["position_ids"], batch["labels"], batch["distill_mask"]
    logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits[:, :-1].float()
    with model.disable_adapter(), torch.no_grad():
        base = model(input_ids=ids, position_ids=positions, use_cache=False).logits[:, :-1].float()
    targets, soft = labels[:, 1:], marks[:, 1:]
    hard = targets != -100
    ce = F.cross_entropy(logits[hard & ~soft], targets[hard & ~soft], reduction="sum")
    kl = F.kl_div(logits[hard & soft].log_softmax(-1), base[hard & soft].log_softmax(-1), reduction="sum", log_target=True)
    return ce + kl, int(hard.sum())


def loss_and_grads(model, batch, fn):
    model.zero_grad()
    loss, count = fn(model, batch)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach(), count, grads


@pytest.mark.parametrize("fused", [True, False], ids=["fused-head", "plain-logits"])
def test_replay_tokens_take_the_kl_from_the_base_and_task_tokens_their_cross_entropy(lora_model, fused, monkeypatch):
    model, tokenizer = lora_model
    if not fused:
        monkeypatch.setattr(loss_module, "fusable_head", lambda model: None)
    task_rows = [chat(tokenizer, "colour of the sky?", "blue and wide"), chat(tokenizer, "a colour, please", "green")]
    replay_rows = [chat(tokenizer, "name a fruit", "an apple, red", distill=True), chat(tokenizer, "say hi", "hello there", distill=True)]
    # Replay examples after and before task examples, in two packed rows of different lengths.
    batch = batch_of(tokenizer, [task_rows[0], replay_rows[0]], [replay_rows[1], task_rows[1]])
    assert batch["distill_mask"].dtype == torch.bool and int(batch["distill_mask"].sum()) == sum(map(len, replay_rows))
    ours, count, our_grads = loss_and_grads(model, batch, summed_label_loss)
    expected, expected_count, expected_grads = loss_and_grads(model, batch, reference_loss)
    assert count == expected_count == sum(r.label_count for r in task_rows + replay_rows)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(our_grads, expected_grads, rtol=1e-4, atol=1e-6)


def test_the_kl_is_zero_while_the_adapter_leaves_the_base_unchanged(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    model = apply_method(model, method_settings("lora", r=4, alpha=8.0, dropout=0.0), "CAUSAL_LM")  # lora_B = 0
    batch = batch_of(tokenizer, [chat(tokenizer, "name a fruit", "an apple, red", distill=True)])
    loss, count = summed_label_loss(model, batch)
    assert count > 0 and abs(float(loss.detach())) < 1e-4
    plain = {key: value for key, value in batch.items() if key != "distill_mask"}
    assert float(summed_label_loss(model, plain)[0]) > 1.0  # the same tokens' cross-entropy is not


def test_rows_without_a_distilled_example_carry_no_mask_and_padding_is_never_marked(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir))
    plain = PackedRow.from_examples([chat(tokenizer, "q", "a")])
    marked = PackedRow.from_examples([chat(tokenizer, "a longer question here", "and its answer", distill=True)])
    assert plain.distill_mask == [] and all(marked.distill_mask)
    assert "distill_mask" not in collate_packed([plain], tokenizer.pad_token_id)
    batch = collate_packed([plain, marked], tokenizer.pad_token_id)
    assert batch["distill_mask"].shape == batch["input_ids"].shape
    assert not batch["distill_mask"][0].any() and int(batch["distill_mask"][1].sum()) == len(marked)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method.name": "full"}, "method 'full' has none to switch off"),
        ({"data.replay_model": "another-model"}, "distils the run's own base model"),
    ],
)
def test_kl_replay_needs_an_adapter_over_the_runs_own_base(overrides, message):
    from tuneloop.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(None, {"model.name": "base", "data.replay_fraction": 0.2, "data.replay_loss": "kl", **overrides})


def test_kl_settings_are_accepted_for_an_adapter_method_and_ignored_while_replay_is_off():
    assert load_config(None, {"data.replay_fraction": 0.2, "data.replay_loss": "kl", "method.name": "dora"}).data.replay_loss == "kl"
    assert load_config(None, {"data.replay_loss": "kl", "method.name": "full"}).method.name == "full"


def test_a_distilled_example_scores_every_token_after_its_first_the_prompts_too(tiny_model_dir):
    _, tokenizer = load_causal_lm(str(tiny_model_dir))
    plain = chat(tokenizer, "name a fruit", "an apple")
    marked = for_distillation(plain)
    assert marked.distill and marked.input_ids == plain.input_ids
    assert marked.labels[0] == IGNORE and marked.labels[1:] == plain.input_ids[1:]
    assert plain.label_count < marked.label_count == len(plain) - 1


@pytest.mark.parametrize(
    ("accelerate_yaml", "refused"),
    [
        ("distributed_type: FSDP\n", "FSDP"),
        ("distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\n", "DeepSpeed ZeRO-3"),
        ("distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n", None),
        ("distributed_type: MULTI_GPU\n", None),
    ],
)
def test_kl_replay_is_refused_where_parameters_are_sharded(tmp_path, accelerate_yaml, refused):
    from tuneloop.errors import ConfigError
    from tuneloop.losses.distill import check_unsharded

    path = tmp_path / "accelerate.yaml"
    path.write_text(accelerate_yaml)
    config = load_config(None, {"data.replay_fraction": 0.2, "data.replay_loss": "kl", "train.accelerate_config": str(path)})
    if refused is None:
        check_unsharded(config)
    else:
        with pytest.raises(ConfigError, match=f"cannot train under {refused}"):
            check_unsharded(config)
    check_unsharded(load_config(None, {"data.replay_fraction": 0.2, "train.accelerate_config": str(path)}))  # token replay: fine


def test_kl_replay_is_refused_inside_a_sharded_accelerate_launch(monkeypatch):
    from tuneloop.errors import ConfigError
    from tuneloop.losses.distill import check_unsharded

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="cannot train under FSDP"):
        check_unsharded(load_config(None, {"data.replay_fraction": 0.2, "data.replay_loss": "kl"}))


def test_curriculum_scores_a_distilled_example_by_its_kl_from_the_base(tiny_model_dir):
    from tuneloop.train.curriculum import difficulty_by_loss

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    model = apply_method(model, method_settings("lora", r=4, alpha=8.0, dropout=0.0), "CAUSAL_LM")  # the base, still
    rows = [chat(tokenizer, "name a fruit", "an apple, red"), chat(tokenizer, "name a fruit", "an apple, red", distill=True)]
    plain, distilled = difficulty_by_loss(model, rows, pack_length=256)
    assert plain > 1.0 and abs(distilled) < 1e-5  # its cross-entropy would be as high as the plain row's
