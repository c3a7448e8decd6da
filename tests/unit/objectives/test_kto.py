"""The kto task's pieces: the KTO loss by hand and against TRL's KTOTrainer (same tokens, same batch, same
reference with the adapter off), the scores, and what it refuses."""

from __future__ import annotations

import math

import pytest
import torch

from tuneloop.config import load_config
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError
from tuneloop.methods import apply_method, method_settings
from tuneloop.objectives.dpo import completion_log_probs
from tuneloop.objectives.kto import KTO, TokenizedRating, kto_losses, rating_scores

RATINGS = [
    ("Ticket 12: the dashboard is down.", "Thank you, we are on it (ticket 12).", True),
    ("Ticket 7: refund please.", "No.", False),
    ("Ticket 3: login fails after password reset, please help!", "Thanks for writing in.", True),
    ("Ticket 9: exports time out.", "Read the docs yourself, this is obvious.", False),
]
BETA = 0.3


def examples() -> list[Example]:
    return [Example("ratings.jsonl", line, prompt=p, completion=c, good=g) for line, (p, c, g) in enumerate(RATINGS, 1)]


def kto_config(model_dir="tiny", **overrides):
    return load_config(None, {"model.name": str(model_dir), "task": "kto", "data.format": "ratings", "kto.beta": BETA, **overrides})


def randomise_lora_b(model, scale: float = 0.5):
    """Random B matrices, so the policy differs from its reference (a fresh LoRA adapter changes nothing)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, scale)
    return model


def test_the_loss_by_hand():
    logratios, good = torch.tensor([2.0, 2.0, -1.0]), torch.tensor([True, False, False])
    losses = kto_losses(logratios, good, torch.tensor(0.5), beta=1.0, desirable_weight=2.0, undesirable_weight=0.5)
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert losses.tolist() == pytest.approx([2 * (1 - sigmoid(1.5)), 0.5 * (1 - sigmoid(-1.5)), 0.5 * (1 - sigmoid(1.5))], rel=1e-6)


def test_scores_count_zero_as_wrong_and_a_tie_as_half():
    scores = rating_scores([1.0, 0.0, -2.0, 0.0], [True, True, False, False])
    assert scores["rating_accuracy"] == pytest.approx(0.5)
    assert scores["reward_auc"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert scores["good_reward"] == pytest.approx(0.5) and scores["bad_reward"] == pytest.approx(-1.0)
    assert rating_scores([0.0, 0.0], [True, False])["reward_auc"] == 0.5  # the base: every reward 0


def trl_kto_trainer(model, tokenizer, tmp_path):
    """TRL's own KTOTrainer adding a new LoRA adapter to the base ``model``, its reference that adapter switched off."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import KTOConfig, KTOTrainer

    rows = [
        {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}], "label": g}
        for p, c, g in RATINGS
    ]  # fmt: skip
    args = KTOConfig(
        output_dir=str(tmp_path), report_to="none", bf16=False, use_cpu=True, beta=BETA, max_length=None,
        per_device_train_batch_size=len(RATINGS), dataset_num_proc=None,
    )  # fmt: skip
    adapter = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    return KTOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=adapter)


def test_tokens_batch_and_loss_are_trls(tiny_model_dir, tmp_path):
    """Same ids as TRL's tokenising, same batch as its collator (KL answers rotated by one), same loss."""
    config = kto_config(tiny_model_dir)
    tokenizer = KTO.load_tokenizer(config.model)
    torch.manual_seed(0)
    trainer = trl_kto_trainer(KTO.load_model(config.model, None), tokenizer, tmp_path)
    model = trainer.model
    assert "ref" not in model.peft_config
    ours = [KTO.tokenize(tokenizer, example, None) for example in examples()]
    theirs = [TokenizedRating(row["prompt_ids"], row["completion_ids"], row["label"]) for row in trainer.train_dataset]
    assert ours == theirs

    batch = KTO.collate(ours, tokenizer.pad_token_id)  # in file order: TRL rotates the KL answers in that order
    trl_batch = trainer.data_collator(list(trainer.train_dataset))
    for key in ("input_ids", "attention_mask", "completion_mask", "KL_input_ids", "KL_attention_mask", "KL_completion_mask", "label"):
        assert torch.equal(batch[key], trl_batch[key]), key

    # A random adapter lowers every answer's log-probability, so its KL estimate is clamped to 0; a few steps
    # raising the log-probability of every answer make it positive. The loss must be TRL's in both cases.
    torch.manual_seed(0)
    randomise_lora_b(model)
    model.train()
    kls = [compare_with_trl(model, trainer, config, batch, trl_batch)]
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        optimiser.zero_grad()
        (-completion_log_probs(model, batch).sum()).backward()
        optimiser.step()
    kls.append(compare_with_trl(model, trainer, config, batch, trl_batch))
    assert kls[0] == 0 and kls[1] > 0, kls


def compare_with_trl(model, trainer, config, batch, trl_batch) -> float:
    """Our loss equals ``KTOTrainer.compute_loss`` on the same batch; returns the KL estimate TRL logged."""
    summed, rows = KTO.loss_function(config)(model, batch)
    trl_loss = trainer.compute_loss(model, dict(trl_batch))
    assert rows == len(RATINGS)
    assert float(summed.detach() / rows) == pytest.approx(float(trl_loss.detach()), abs=1e-5)
    assert abs(float(trl_loss.detach()) - 0.5) > 1e-3  # the adapter moved the policy off its reference
    return trainer._metrics["train"]["kl"][-1]


def test_score_of_the_base_is_all_zero_rewards(tiny_model_dir):
    config = kto_config(tiny_model_dir)
    tokenizer = KTO.load_tokenizer(config.model)
    torch.manual_seed(0)
    tuned = randomise_lora_b(apply_method(KTO.load_model(config.model, None), method_settings("lora", r=4), "CAUSAL_LM"))
    scores = KTO.score(tuned, tokenizer, examples(), config, None, packs=False)
    assert len(scores["predictions"]) == len(RATINGS) and scores["scores"]["good_reward"] != 0
    base = KTO.score(KTO.load_model(config.model, None), tokenizer, examples(), config, None, packs=False)["scores"]
    assert base["rating_accuracy"] == 0 and base["reward_auc"] == 0.5 and base["good_reward"] == base["bad_reward"] == 0


def test_only_switchable_methods_and_ratings_are_accepted():
    with pytest.raises(ConfigError, match=r"method 'prefix' has none to switch off \(use one of lora, dora, rslora, ia3\)"):
        KTO.check_config(kto_config(**{"method.name": "prefix"}))
    with pytest.raises(ConfigError, match="data.format 'pairs' does not fit task 'kto'; it reads: ratings"):
        KTO.check_config(kto_config(**{"data.format": "pairs"}))


def test_the_kto_section_is_refused_for_another_task():
    with pytest.raises(ConfigError, match="kto.undesirable_weight set, but task is 'dpo'"):
        load_config(None, {"task": "dpo", "kto.undesirable_weight": 2.0})
