"""The dpo task's pieces: the DPO sigmoid loss by hand and against TRL's DPOTrainer (same tokens, same
batch, same reference with the adapter off), the scores, and what it refuses."""

from __future__ import annotations

import math

import pytest
import torch

from tuneloop.config import load_config
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits
from tuneloop.errors import ConfigError, DataError
from tuneloop.methods import apply_method, method_settings
from tuneloop.objectives import get_task
from tuneloop.objectives.dpo import DPO, TokenizedDpoPair, dpo_sigmoid_loss, log_ratios, preference_scores

PAIRS = [
    ("Ticket 12: the dashboard is down.", "Thank you, we are on it (ticket 12).", "Not our problem."),
    ("Ticket 7: refund please.", "Sorry for the trouble; refund for ticket 7 is on its way.", "No."),
    ("Ticket 3: login fails after password reset, please help!", "Thanks for writing in.", "Read the docs."),
]
BETA = 0.3


def examples() -> list[Example]:
    return [Example("pairs.jsonl", line, prompt=p, chosen=c, rejected=r) for line, (p, c, r) in enumerate(PAIRS, 1)]


def dpo_config(model_dir="tiny", **overrides):
    return load_config(None, {"model.name": str(model_dir), "task": "dpo", "data.format": "pairs", "dpo.beta": BETA, **overrides})


def randomise_lora_b(model):
    """Random B matrices, so the policy differs from its reference (a fresh LoRA adapter changes nothing)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir):
    """The tiny Llama with a LoRA adapter that moved it off its base."""
    config = dpo_config(tiny_model_dir)
    torch.manual_seed(0)
    model = apply_method(DPO.load_model(config.model, None), method_settings("lora", r=4), "CAUSAL_LM")
    return randomise_lora_b(model), DPO.load_tokenizer(config.model)


def test_the_loss_is_minus_log_sigmoid_of_beta_times_the_log_ratio_margin_by_hand():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0, 300.0]), torch.tensor([0.0, 0.0, 1.0, -300.0])
    expected = [math.log1p(math.exp(-1.0)), math.log(2.0), math.log1p(math.exp(1.0)), math.log1p(math.exp(-300.0))]
    assert dpo_sigmoid_loss(chosen, rejected, beta=0.5).tolist() == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_scores_count_a_tie_as_wrong():
    scores = preference_scores([1.0, -0.5, 0.0], chosen_ratios=[2.0, 0.0, 1.0], own_margins=[3.0, -1.0, 2.0])
    assert scores["preference_accuracy"] == pytest.approx(1 / 3)
    assert scores["reward_margin"] == pytest.approx(1 / 6)
    assert scores["chosen_logratio"] == pytest.approx(1.0)
    assert scores["logprob_accuracy"] == pytest.approx(2 / 3)
    assert scores["loss"] == pytest.approx((math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.5)) + math.log(2.0)) / 3)


def trl_dpo_trainer(model, tokenizer, tmp_path):
    """TRL's own DPOTrainer adding a new LoRA adapter to the base ``model`` and, given no ref_model, taking the
    reference from the model with that adapter switched off (as tuneloop does); fed the same pairs."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    rows = [
        {"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
         "rejected": [{"role": "assistant", "content": r}]}
        for p, c, r in PAIRS
    ]  # fmt: skip
    args = DPOConfig(
        output_dir=str(tmp_path), report_to="none", bf16=False, use_cpu=True, beta=BETA, loss_type=["sigmoid"],
        max_length=None, pad_to_multiple_of=None, dataset_num_proc=None,
    )  # fmt: skip
    adapter = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    return DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=adapter)


def test_tokens_batch_and_loss_are_trls(tiny_policy, tiny_model_dir, tmp_path):
    """Same ids as TRL's tokenising, same batch as its collator, same loss as ``DPOTrainer.compute_loss``."""
    _, tokenizer = tiny_policy
    torch.manual_seed(0)
    trainer = trl_dpo_trainer(DPO.load_model(dpo_config(tiny_model_dir).model, None), tokenizer, tmp_path)
    model = randomise_lora_b(trainer.model)
    assert "ref" not in model.peft_config  # a new adapter: TRL's reference is the model with it switched off
    ours = [DPO.tokenize(tokenizer, example, None) for example in examples()]
    theirs = [TokenizedDpoPair(row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) for row in trainer.train_dataset]
    assert ours == theirs

    rows = DPO.batch_rows(ours, False, 128, 0)
    batch = DPO.collate(rows, tokenizer.pad_token_id)
    trl_batch = trainer.data_collator([{"prompt_ids": r.prompt_ids, "chosen_ids": r.chosen_ids, "rejected_ids": r.rejected_ids} for r in rows])
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(batch[key], trl_batch[key]), key
    assert int(batch["real_tokens"]) == int(batch["attention_mask"].sum()) == sum(len(r) for r in rows)
    pairs_as_rows = DPO.collate(sorted(ours, key=len, reverse=True), tokenizer.pad_token_id)  # a curriculum's unpacked rows
    assert all(torch.equal(pairs_as_rows[key], batch[key]) for key in batch)

    model.train()
    summed, pairs = DPO.loss_function(dpo_config())(model, batch)
    trl_loss = trainer.compute_loss(model, {key: trl_batch[key] for key in ("input_ids", "attention_mask", "completion_mask")})
    assert pairs == len(PAIRS)
    assert float(summed.detach() / pairs) == pytest.approx(float(trl_loss.detach()), abs=1e-5)
    assert abs(float(trl_loss.detach()) - math.log(2)) > 1e-3  # the adapter moved the policy off its reference
    assert model.training


def test_the_reference_is_the_model_with_its_adapter_off(tiny_policy):
    model, tokenizer = tiny_policy
    batch = DPO.collate(DPO.batch_rows([DPO.tokenize(tokenizer, e, None) for e in examples()], False, 128, 0), tokenizer.pad_token_id)
    with torch.no_grad():
        chosen, rejected = log_ratios(model, batch)
        with model.disable_adapter():
            unchanged = log_ratios(model, batch)  # adapter off: the policy is its own reference
    assert chosen.abs().max() > 1e-3
    assert torch.equal(unchanged[0], torch.zeros_like(chosen)) and torch.equal(unchanged[1], torch.zeros_like(rejected))


def test_score_of_the_adapter_model_and_of_its_base(tiny_policy, tiny_model_dir):
    model, tokenizer = tiny_policy
    config = dpo_config(tiny_model_dir)
    tuned = DPO.score(model, tokenizer, examples(), config, None, packs=False)
    assert len(tuned["predictions"]) == len(PAIRS) and tuned["scores"]["chosen_logratio"] != 0
    base = DPO.score(DPO.load_model(config.model, None), tokenizer, examples(), config, None, packs=False)
    assert base["scores"]["preference_accuracy"] == 0 and base["scores"]["reward_margin"] == 0  # the base is its own reference
    assert base["scores"]["loss"] == pytest.approx(math.log(2))


def test_only_switchable_methods_are_accepted():
    with pytest.raises(ConfigError, match=r"method 'full' has none to switch off \(use one of lora, dora, rslora, ia3\)"):
        DPO.check_config(dpo_config(**{"method.name": "full"}))
    DPO.check_config(dpo_config(**{"method.name": "ia3"}))


def test_a_non_pairs_format_is_refused():
    config = load_config(None, {"task": "dpo", "data.format": "chat"})
    with pytest.raises(ConfigError, match="data.format 'chat' does not fit task 'dpo'; it reads: pairs"):
        get_task("dpo").check_config(config)


def test_the_dpo_section_is_refused_for_another_task():
    with pytest.raises(ConfigError, match="dpo.beta set, but task is 'sft'"):
        load_config(None, {"task": "sft", "dpo.beta": 0.5})
    assert load_config(None, {"task": "sft"}).dpo.beta == 0.1  # the defaults are fine (every run's config.yaml holds them)


def test_fewer_than_two_training_pairs_are_refused():
    one, two, three = examples()
    with pytest.raises(DataError, match="training split holds 1 preference pair"):
        DPO.check_splits(Splits(train=[one], val=[two], test=[three]))
