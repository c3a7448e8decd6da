"""The contract every fine-tuning method in ``METHODS`` keeps, checked on the tiny Llama.

A method trains (loss falls on a fixed toy batch), touches only its own parameters (frozen ones
stay bit-identical), trains as many parameters as its formula says, and survives save -> load,
for every task the method applies to: causal LM (tiny Llama), classification (tiny BERT),
seq2seq (tiny T5) and a reward model (tiny Llama with a one-output head, Bradley–Terry loss).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import peft
import pytest
import torch
from packaging.version import Version

from tuneloop.errors import ConfigError
from tuneloop.methods import METHODS, apply_method, method_settings

STEPS = 6
# Prompt-style methods move few, far-from-the-output parameters: they need bigger steps.
LEARNING_RATES = {"full": 1e-3, "freeze": 2e-3, "ia3": 1e-1, "prompt": 1e-1, "prefix": 3e-2, "ptuning": 1e-2}
# The fresh classification head trains beside the prompt; a step of 1e-1 overshoots it.
TASK_LEARNING_RATES = {("prompt", "classify"): 1e-2}
PEFT_METHODS = {"lora", "dora", "rslora", "ia3", "prefix", "prompt", "ptuning"}


SMALL = dict(r=4, alpha=8.0, num_virtual_tokens=4, trainable_layers=1, bottleneck=8)


def method_config(name: str, **overrides):
    """The method's own settings, small enough for the tiny models."""
    own = METHODS[name].settings.model_fields
    return method_settings(name, **{**{k: v for k, v in SMALL.items() if k in own}, **overrides})


def load_tiny(model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)  # adapter initialisations
    return AutoModelForCausalLM.from_pretrained(model_dir)


def toy_batch() -> torch.Tensor:
    """Four fixed 16-token sequences with a simple arithmetic pattern to memorise."""
    return torch.tensor([[10 + (7 * row + 3 * col) % 50 for col in range(16)] for row in range(4)])


def expected_trainable(name: str, base, cfg) -> int:
    """The method's own formula (its registry entry) on the unwrapped model."""
    return METHODS[name].trainable_params(base, cfg)


def batch_loss(model, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def causal_batch() -> dict:
    return {"input_ids": toy_batch(), "labels": toy_batch()}


def classification_batch() -> dict:
    return {"input_ids": toy_batch(), "labels": torch.tensor([0, 1, 0, 1])}


def reward_batch() -> dict:
    """Two fixed preference pairs in TRL's layout: the chosen sequences, then the rejected ones."""
    return {"input_ids": toy_batch(), "attention_mask": torch.ones_like(toy_batch())}


def reward_loss(model, batch: dict) -> torch.Tensor:
    from tuneloop.objectives.reward import REWARD

    summed, pairs = REWARD.summed_loss(model, batch)
    return summed / pairs


def seq2seq_batch() -> dict:
    """Four fixed source -> target pairs with a simple arithmetic pattern to memorise."""
    from tuneloop.objectives.seq2seq import SEQ2SEQ, Seq2SeqExample

    rows = [
        Seq2SeqExample([10 + (7 * row + 3 * col) % 50 for col in range(8)], [10 + (5 * row + 2 * col) % 40 for col in range(6)])
        for row in range(4)
    ]
    batch = SEQ2SEQ.collate(rows, pad_token_id=0)
    batch.pop("real_tokens")
    return batch


@dataclass(frozen=True)
class TaskCase:
    """How one task's model is built, trained and scored in the contract test."""

    task_type: str
    make: Callable  # (tiny model dirs) -> fresh base model, identically seeded on every call
    batch: Callable  # () -> the fixed toy batch: keyword arguments of the model's forward, labels included
    head: str | None = None  # module a fresh task head lives in (trained by every method)
    loss: Callable = batch_loss  # (model, batch) -> the loss to train


def causal_lm(dirs):
    return load_tiny(dirs["llama"])


def bert_classifier(dirs):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(dirs["bert"], num_labels=2)


def llama_reward_model(dirs):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(dirs["llama"], num_labels=1)


def t5(dirs):
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(0)
    return AutoModelForSeq2SeqLM.from_pretrained(dirs["t5"])


TASK_CASES = {
    "sft": TaskCase("CAUSAL_LM", causal_lm, causal_batch),
    "classify": TaskCase("SEQ_CLS", bert_classifier, classification_batch, head="classifier"),
    "seq2seq": TaskCase("SEQ_2_SEQ_LM", t5, seq2seq_batch),
    "reward": TaskCase("SEQ_CLS", llama_reward_model, reward_batch, head="score", loss=reward_loss),
}
# (method, task) pairs that cannot apply: the builder must say so with a ConfigError. peft before
# 0.22 hands prefix keys/values as past_key_values, which transformers 5's BERT and its Llama with a
# classification head do not take; peft 0.22 prefix-tunes them, and then the whole contract applies.
PEFT_PREFIXES_CLASSIFIERS = Version(peft.__version__) >= Version("0.22")
NOT_APPLICABLE = set() if PEFT_PREFIXES_CLASSIFIERS else {("prefix", "classify"), ("prefix", "reward")}


@pytest.fixture(scope="module")
def tiny_dirs(tiny_model_dir, tiny_bert_dir, tiny_t5_dir):
    return {"llama": tiny_model_dir, "bert": tiny_bert_dir, "t5": tiny_t5_dir}


def expected_with_head(name: str, base, cfg, case: TaskCase) -> int:
    """The method's formula on the backbone, plus the fresh head every method must train."""
    if case.head is None or name in ("full", "freeze"):  # these count the head as part of the model
        return expected_trainable(name, base, cfg)
    head = getattr(base, case.head)
    setattr(base, case.head, torch.nn.Identity())  # the head is trained whole, not adapted
    try:
        backbone = expected_trainable(name, base, cfg)
    finally:
        setattr(base, case.head, head)
    return backbone + sum(p.numel() for p in head.parameters())


def train(model, batch: dict, learning_rate: float, loss=batch_loss) -> tuple[float, float]:
    """A few AdamW steps (no weight decay, so untouched parameters stay put); loss before and after."""
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    with torch.no_grad():
        first = loss(model, batch).item()
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss(model, batch).backward()
        optimizer.step()
    with torch.no_grad():
        return first, loss(model, batch).item()


def save_and_reload(name: str, model, fresh_base, folder):
    """Through the registry's own save/load, exactly as a run stores and reloads it."""
    method = METHODS[name]
    method.save(model, folder)
    return method.load(fresh_base, folder)


@torch.no_grad()
def logits(model, batch: torch.Tensor | dict) -> torch.Tensor:
    inputs = batch if isinstance(batch, dict) else {"input_ids": batch}
    return model.eval()(**inputs).logits


@pytest.mark.parametrize("task", sorted(TASK_CASES))
@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_contract(name, task, tiny_dirs, tmp_path):
    check_method_contract(name, task, tiny_dirs, tmp_path)


def check_method_contract(name: str, task: str, tiny_dirs: dict, tmp_path) -> None:
    """Every promise of a registered method, on one task's tiny model (any method in METHODS, also one
    registered by a test)."""
    case, cfg = TASK_CASES[task], method_config(name)
    batch = case.batch()
    base = case.make(tiny_dirs)
    if (name, task) in NOT_APPLICABLE:
        with pytest.raises(ConfigError, match="does not apply"):
            apply_method(base, cfg, case.task_type)
        return
    expected = expected_with_head(name, base, cfg, case)  # before wrapping: some methods wrap in place
    model = apply_method(base, cfg, case.task_type)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and (name == "full" or len(trainable) < len(before)), "a method trains something, not all"
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected

    learning_rate = TASK_LEARNING_RATES.get((name, task), LEARNING_RATES.get(name, 1e-2))
    first, last = train(model, batch, learning_rate, case.loss)
    assert last < first, f"{name}/{task}: loss {first:.4f} -> {last:.4f}"
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed - trainable == set(), "frozen parameters moved"
    assert trainable - changed == set(), "trainable parameters did not move"

    reloaded = save_and_reload(name, model, case.make(tiny_dirs), tmp_path / "saved")
    assert torch.equal(logits(model, batch), logits(reloaded, batch))


def test_freeze_trains_last_block_and_final_norm_not_tied_embeddings(tiny_model_dir):
    model = apply_method(load_tiny(tiny_model_dir), method_config("freeze"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "model.norm.weight" in trainable and "model.embed_tokens.weight" not in trainable
    assert all(n.startswith("model.layers.1.") for n in trainable - {"model.norm.weight"})
    assert not model.get_output_embeddings().weight.requires_grad  # tied to the embeddings


def test_adapter_at_step_zero_is_the_base_model(tiny_model_dir):
    batch = toy_batch()
    base_logits = logits(load_tiny(tiny_model_dir), batch)
    adapted = apply_method(load_tiny(tiny_model_dir), method_config("adapter"))
    assert torch.equal(logits(adapted, batch), base_logits)


@pytest.mark.parametrize("name", ["ia3", "adapter"])
def test_explicit_target_list_is_used(name, tiny_model_dir):
    cfg = method_config(name, target_modules=["v_proj", "down_proj"])
    base = load_tiny(tiny_model_dir)
    expected = expected_trainable(name, base, cfg)
    model = apply_method(base, cfg)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert {n.split(".")[-3] for n in names} == {"v_proj", "down_proj"}
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


@pytest.mark.parametrize("name", ["lora", "ia3", "adapter"])
def test_unmatched_target_modules_list_the_existing_ones(name, tiny_model_dir):
    with pytest.raises(ConfigError, match="target_modules") as caught:
        apply_method(load_tiny(tiny_model_dir), method_config(name, target_modules=["nope_proj"]))
    assert "nope_proj" in str(caught.value)
    assert all(existing in str(caught.value) for existing in ("q_proj", "o_proj", "down_proj"))


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=400
    )
    return BertForSequenceClassification(config)


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=400, bos_token_id=0, eos_token_id=0))


@pytest.mark.parametrize(
    "make, task_type, projections",
    [
        (tiny_bert, "SEQ_CLS", ("attention.output.dense", "output.dense")),
        (tiny_gpt2, "CAUSAL_LM", ("attn.c_proj", "mlp.c_proj")),
    ],
)
def test_adapter_finds_the_block_projections_of_other_architectures(make, task_type, projections):
    from tuneloop.methods.bottleneck_layer import BottleneckAdapter

    batch = toy_batch()
    base_logits = logits(make(), batch)
    model = apply_method(make(), method_config("adapter"), task_type=task_type)
    wrapped = [name for name, module in model.named_modules() if isinstance(module, BottleneckAdapter)]
    in_block = sorted(re.sub(r"^.*\.\d+\.", "", name) for name in wrapped)  # name relative to its block
    assert in_block == sorted(projections * 2)
    assert torch.equal(logits(model, batch), base_logits)
    head_trained = any(p.requires_grad for p in getattr(model, "classifier", torch.nn.Identity()).parameters())
    assert head_trained == (task_type == "SEQ_CLS")


@pytest.mark.skipif(PEFT_PREFIXES_CLASSIFIERS, reason="this peft prefix-tunes BERT: test_method_contract[prefix-classify] checks it")
def test_prefix_on_bert_is_a_config_error_naming_alternatives():
    # peft 0.21 checks BERT's forward for past_key_values (renamed `cache` in transformers 5) and fails.
    with pytest.raises(ConfigError, match="prefix tuning does not apply") as caught:
        apply_method(tiny_bert(), method_config("prefix"), task_type="SEQ_CLS")
    assert "'prompt'" in str(caught.value) and "'ptuning'" in str(caught.value)
    # ... and the suggested alternative does work there.
    model = apply_method(tiny_bert(), method_config("prompt"), task_type="SEQ_CLS")
    loss = model(input_ids=toy_batch(), labels=torch.tensor([0, 1, 0, 1])).loss
    assert torch.isfinite(loss)
