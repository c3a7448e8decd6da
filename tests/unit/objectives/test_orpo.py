"""The orpo task's pieces: the log-odds and the odds-ratio term by hand, the loss against TRL's ORPOTrainer
(same model, same batch, its own forward and loss), the scores, and what it accepts and refuses."""

from __future__ import annotations

import math

import pytest
import torch

from tuneloop.config import load_config
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError
from tuneloop.objectives import get_task
from tuneloop.objectives.dpo import DPO
from tuneloop.objectives.orpo import ORPO, log_odds, odds_ratio_losses, sequence_statistics

PAIRS = [
    ("Ticket 12: the dashboard is down.", "Thank you, we are on it (ticket 12).", "Not our problem."),
    ("Ticket 7: refund please.", "Sorry for the trouble; refund for ticket 7 is on its way.", "No."),
    ("Ticket 3: login fails after password reset, please help!", "Thanks for writing in.", "Read the docs."),
]
BETA = 0.3


def examples() -> list[Example]:
    return [Example("pairs.jsonl", line, prompt=p, chosen=c, rejected=r) for line, (p, c, r) in enumerate(PAIRS, 1)]


def orpo_config(model_dir="tiny", **overrides):
    return load_config(None, {"model.name": str(model_dir), "task": "orpo", "data.format": "pairs", "orpo.beta": BETA, **overrides})


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    config = orpo_config(tiny_model_dir)
    torch.manual_seed(0)
    return ORPO.load_model(config.model, None), ORPO.load_tokenizer(config.model)


def batch_of(tokenizer, pairs=None):
    tokenized = [ORPO.tokenize(tokenizer, example, None) for example in (pairs or examples())]
    return ORPO.collate(ORPO.batch_rows(tokenized, False, 128, 0), tokenizer.pad_token_id)


def test_log_odds_and_the_odds_ratio_term_by_hand():
    p = torch.tensor([0.9, 0.5, 0.1, 1e-6], dtype=torch.float64)
    expected = [math.log(x / (1 - x)) for x in p.tolist()]
    assert log_odds(p.log()).tolist() == pytest.approx(expected, rel=1e-5)
    chosen, rejected = torch.tensor([0.6, 0.2]).log(), torch.tensor([0.2, 0.6]).log()
    odds = [math.log(0.6 / 0.4), math.log(0.2 / 0.8)]
    losses, ratios = odds_ratio_losses(chosen, rejected, beta=0.5)
    assert ratios.tolist() == pytest.approx([odds[0] - odds[1], odds[1] - odds[0]], rel=1e-5)
    assert losses.tolist() == pytest.approx([0.5 * math.log1p(math.exp(-r)) for r in ratios.tolist()], rel=1e-5)


def test_a_reply_of_probability_one_gives_a_finite_loss():
    losses, ratios = odds_ratio_losses(torch.tensor([0.0, 0.0]), torch.tensor([0.0, -1.0]), beta=0.1)
    assert torch.isfinite(losses).all() and torch.isfinite(ratios).all()
    assert ratios[0] == 0 and ratios[1] > 0


def trl_orpo_trainer(model, tokenizer, tmp_path):
    """TRL's own ORPOTrainer on ``model`` (no adapter: ORPO needs no reference), fed the same pairs."""
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    rows = [
        {"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
         "rejected": [{"role": "assistant", "content": r}]}
        for p, c, r in PAIRS
    ]  # fmt: skip
    args = ORPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False, use_cpu=True, beta=BETA, dataset_num_proc=None)
    return ORPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)


def trl_batch(trainer, tokenizer):
    """Our tokens in ORPOTrainer's row layout (prompt + reply ids, labels -100 over the prompt), through its collator."""
    rows = ORPO.batch_rows([ORPO.tokenize(tokenizer, example, None) for example in examples()], False, 128, 0)
    features = []
    for row in rows:
        feature = {"prompt_input_ids": row.prompt_ids, "prompt_attention_mask": [1] * len(row.prompt_ids)}
        for side, reply in (("chosen", row.chosen_ids), ("rejected", row.rejected_ids)):
            feature[f"{side}_input_ids"] = row.prompt_ids + reply
            feature[f"{side}_attention_mask"] = [1] * (len(row.prompt_ids) + len(reply))
            feature[f"{side}_labels"] = [-100] * len(row.prompt_ids) + reply
        features.append(feature)
    return trainer.data_collator(features)


def test_loss_nll_and_log_odds_are_trls(tiny, tiny_model_dir, tmp_path):
    """Same loss as ``ORPOTrainer.compute_loss`` (its concatenated forward, its NLL, its ``odds_ratio_loss``) on
    the same model and the same batch, and the same NLL and mean log-odds ratio as its logged metrics."""
    _, tokenizer = tiny
    torch.manual_seed(0)
    model = ORPO.load_model(orpo_config(tiny_model_dir).model, None)
    trainer = trl_orpo_trainer(model, tokenizer, tmp_path)
    model = trainer.model
    batch = batch_of(tokenizer)
    theirs = trl_batch(trainer, tokenizer)
    model.train()

    summed, pairs = ORPO.loss_function(orpo_config())(model, batch)
    trl_loss = trainer.compute_loss(model, theirs)
    assert pairs == len(PAIRS)
    assert float(summed.detach() / pairs) == pytest.approx(float(trl_loss.detach()), rel=1e-5)

    with torch.no_grad():
        mean_log_probs, nll_sum, tokens = sequence_statistics(model, batch)
        _, metrics = trainer.get_batch_loss_metrics(model, theirs)
    chosen, rejected = mean_log_probs.chunk(2)
    losses, ratios = odds_ratio_losses(chosen, rejected, BETA)
    assert float(nll_sum / tokens) == pytest.approx(metrics["nll_loss"], rel=1e-5)
    assert float(ratios.mean()) == pytest.approx(metrics["log_odds_chosen"], rel=1e-5)  # TRL's name for mean log-odds ratio
    assert float(-losses.mean() / BETA) == pytest.approx(metrics["log_odds_ratio"], rel=1e-5)  # mean log σ(ratio)
    assert float(chosen.mean()) == pytest.approx(metrics["logps/chosen"], rel=1e-5)
    assert float(rejected.mean()) == pytest.approx(metrics["logps/rejected"], rel=1e-5)
    trl_terms, *_ = trainer.odds_ratio_loss(chosen, rejected)  # β log σ(ratio), TRL's sign
    assert torch.allclose(losses, -trl_terms)
    assert abs(float(ratios.mean())) > 1e-4  # the pairs are not all alike to the model


def test_the_batch_is_dpos_and_the_nll_counts_prompt_and_reply(tiny):
    _, tokenizer = tiny
    tokenized = [ORPO.tokenize(tokenizer, example, None) for example in examples()]
    assert tokenized == [DPO.tokenize(tokenizer, example, None) for example in examples()]
    batch = batch_of(tokenizer)
    dpo_batch = DPO.collate(DPO.batch_rows(tokenized, False, 128, 0), tokenizer.pad_token_id)
    assert all(torch.equal(batch[key], dpo_batch[key]) for key in dpo_batch)
    _, _, tokens = sequence_statistics(tiny[0], batch)
    assert int(tokens) == sum(len(pair.prompt_ids) + len(pair.chosen_ids) - 1 for pair in tokenized)


def test_score_of_a_model_without_an_adapter(tiny, tiny_model_dir):
    model, tokenizer = tiny
    config = orpo_config(tiny_model_dir, **{"eval.batch_size": 2})  # two batches: the NLL is token-weighted across them
    result = ORPO.score(model, tokenizer, examples(), config, None, packs=False)
    scores = result["scores"]
    assert set(scores) == {"preference_accuracy", "log_odds_ratio", "chosen_nll", "loss"}
    assert scores["preference_accuracy"] in (0, 1 / 3, 2 / 3, 1)
    with torch.no_grad():
        mean_log_probs, nll_sum, tokens = sequence_statistics(model, batch_of(tokenizer))
    losses, ratios = odds_ratio_losses(*mean_log_probs.chunk(2), BETA)
    assert scores["chosen_nll"] == pytest.approx(float(nll_sum / tokens), rel=1e-5)
    assert scores["loss"] == pytest.approx(float(nll_sum / tokens + losses.mean()), rel=1e-5)
    assert scores["log_odds_ratio"] == pytest.approx(float(ratios.mean()), rel=1e-5)
    assert len(result["predictions"]) == len(PAIRS)
    assert result["predictions"][0].startswith(("chosen preferred (log-odds ratio ", "rejected preferred (log-odds ratio "))


def test_every_method_is_accepted_and_only_pairs():
    for method in ("full", "freeze", "lora", "ia3"):
        ORPO.check_config(orpo_config(**{"method.name": method}))  # no reference model: no adapter needed
    config = load_config(None, {"task": "orpo", "data.format": "chat"})
    with pytest.raises(ConfigError, match="data.format 'chat' does not fit task 'orpo'; it reads: pairs"):
        get_task("orpo").check_config(config)


def test_the_orpo_section_is_refused_for_another_task():
    with pytest.raises(ConfigError, match="orpo.beta set, but task is 'dpo'"):
        load_config(None, {"task": "dpo", "data.format": "pairs", "orpo.beta": 0.5})
    assert load_config(None, {"task": "sft"}).orpo.beta == 0.1  # the defaults are fine (every run's config.yaml holds them)
    assert get_task("orpo") is ORPO and ORPO.default_primary == "preference_accuracy"
