"""The reward task's pieces: the Bradley–Terry loss by hand and against TRL's RewardTrainer, its
tokenising against TRL's, the scores, and the data it refuses."""

from __future__ import annotations

import math

import pytest
import torch

from tuneloop.config import load_config
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits
from tuneloop.errors import ConfigError, DataError
from tuneloop.objectives import get_task
from tuneloop.objectives.reward import REWARD, TokenizedPair, bradley_terry_loss, pairwise_scores

PAIRS = [
    ("Ticket 12: the dashboard is down.", "Thank you, we are on it (ticket 12).", "Not our problem."),
    ("Ticket 7: refund please.", "Sorry for the trouble; refund for ticket 7 is on its way.", "No."),
    ("Ticket 3: login fails after password reset, please help!", "Thanks for writing in.", "Read the docs."),
]


def examples() -> list[Example]:
    return [Example("pairs.jsonl", line, prompt=p, chosen=c, rejected=r) for line, (p, c, r) in enumerate(PAIRS, 1)]


@pytest.fixture(scope="module")
def tiny_reward(tiny_model_dir):
    config = load_config(None, {"model.name": str(tiny_model_dir), "task": "reward", "data.format": "pairs"})
    torch.manual_seed(0)
    return REWARD.load_model(config.model, None), REWARD.load_tokenizer(config.model)


def test_the_loss_is_minus_log_sigmoid_of_the_margin_by_hand():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0, 30.0]), torch.tensor([0.0, 0.0, 1.0, -30.0])
    expected = [math.log(1 + math.exp(-2.0)), math.log(2.0), math.log(1 + math.exp(2.0)), math.log1p(math.exp(-60.0))]
    assert bradley_terry_loss(chosen, rejected).tolist() == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_scores_count_a_tie_as_wrong_and_average_the_margin():
    scores = pairwise_scores([1.0, -0.5, 0.0])
    assert scores["pairwise_accuracy"] == pytest.approx(1 / 3)
    assert scores["reward_margin"] == pytest.approx(1 / 6)
    assert scores["loss"] == pytest.approx((math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.5)) + math.log(2.0)) / 3)


def test_the_head_has_one_output_and_knows_the_pad_token(tiny_reward):
    model, tokenizer = tiny_reward
    assert model.config.num_labels == 1 and model.score.out_features == 1
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_batches_put_the_chosen_sequences_first_and_count_both_sides(tiny_reward):
    _, tokenizer = tiny_reward
    pairs = [REWARD.tokenize(tokenizer, example, None) for example in examples()]
    rows = REWARD.batch_rows(pairs, packs=False, pack_length=128, seed=0)
    batch = REWARD.collate(rows, tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 2 * len(pairs)
    longest_first = sorted(pairs, key=len, reverse=True)
    for index, pair in enumerate(longest_first):
        assert batch["input_ids"][index, : len(pair.chosen_ids)].tolist() == pair.chosen_ids
        assert batch["input_ids"][len(pairs) + index, : len(pair.rejected_ids)].tolist() == pair.rejected_ids
    assert int(batch["real_tokens"]) == int(batch["attention_mask"].sum()) == sum(len(r) for r in rows)
    assert len(pairs[0]) == max(len(pairs[0].chosen_ids), len(pairs[0].rejected_ids))  # what data.max_length bounds


def trl_reward_trainer(model, tokenizer, tmp_path):
    """TRL's own RewardTrainer on the same model, fed the same pairs in TRL's conversational shape."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    rows = [
        {"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
         "rejected": [{"role": "assistant", "content": r}]}
        for p, c, r in PAIRS
    ]  # fmt: skip
    args = RewardConfig(output_dir=str(tmp_path), report_to="none", bf16=False, use_cpu=True, pad_to_multiple_of=None, dataset_num_proc=None)
    return RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)


def test_tokens_loss_and_batch_are_trls(tiny_reward, tmp_path):
    """Same ids as TRL's tokenising, same batch as its collator, same loss as ``RewardTrainer.compute_loss``."""
    model, tokenizer = tiny_reward
    trainer = trl_reward_trainer(model, tokenizer, tmp_path)
    ours = [REWARD.tokenize(tokenizer, example, None) for example in examples()]
    theirs = [TokenizedPair(row["chosen_ids"], row["rejected_ids"]) for row in trainer.train_dataset]
    assert ours == theirs

    batch = REWARD.collate(REWARD.batch_rows(ours, False, 128, 0), tokenizer.pad_token_id)
    trl_batch = trainer.data_collator([{"chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids} for p in sorted(ours, key=len, reverse=True)])
    assert torch.equal(batch["input_ids"], trl_batch["input_ids"]) and torch.equal(batch["attention_mask"], trl_batch["attention_mask"])

    model.train()
    summed, pairs = REWARD.summed_loss(model, batch)
    trl_loss = trainer.compute_loss(model, {key: trl_batch[key] for key in ("input_ids", "attention_mask")})
    assert pairs == len(PAIRS)
    assert float(summed.detach() / pairs) == pytest.approx(float(trl_loss.detach()), rel=1e-6)
    assert 0 < float(trl_loss.detach()) < 5


def test_a_non_pairs_format_is_refused():
    config = load_config(None, {"task": "reward", "data.format": "chat"})
    with pytest.raises(ConfigError, match="data.format 'chat' does not fit task 'reward'; it reads: pairs"):
        get_task("reward").check_config(config)


def test_fewer_than_two_training_pairs_are_refused():
    one, two, three = examples()
    with pytest.raises(DataError, match="training split holds 1 preference pair"):
        REWARD.check_splits(Splits(train=[one], val=[two], test=[three]))
    REWARD.check_splits(Splits(train=[one, two], val=[], test=[three]))


def test_it_predicts_scores_and_generates_nothing():
    from tuneloop.evaluate.suites import SUITES

    config = load_config(None, {"task": "reward", "data.format": "pairs"})
    names = ("few_shot", "forgetting", "alignment", "privacy", "hallucination", "bias")
    few_shot, forgetting, alignment, privacy, hallucination, bias = (SUITES[name].applies(REWARD, config) for name in names)
    assert "few-shot applies to sft, qa" in few_shot
    assert forgetting == alignment == "not measured: task 'reward' predicts a reward score per reply and does not generate text"
    assert "task 'reward' has none" in privacy
    assert hallucination == "not measured: task 'reward' does not generate text with a causal language model"
    assert bias == "not measured: task 'reward' predicts a reward score per reply; the counterfactual needs answers or labels to compare"


def test_a_conversational_prompt_is_rendered_with_its_turns(tiny_reward):
    _, tokenizer = tiny_reward
    text = Example("p.jsonl", 1, prompt="Where is my refund?", chosen="Ticket 12: it left today.", rejected="Dunno.")
    turns = Example("p.jsonl", 2, messages=({"role": "user", "content": "Where is my refund?"},), chosen=text.chosen, rejected=text.rejected)
    assert REWARD.tokenize(tokenizer, turns, None) == REWARD.tokenize(tokenizer, text, None)  # one user turn = the text prompt
    system = Example("p.jsonl", 3, messages=({"role": "system", "content": "Answer as Northwind support."}, *turns.messages), chosen=text.chosen, rejected=text.rejected)
    rendered = tokenizer.decode(REWARD.tokenize(tokenizer, system, None).chosen_ids)
    assert "Answer as Northwind support." in rendered and "Ticket 12: it left today." in rendered
