"""The seq2seq task on a tiny random T5: tokens, batches, loss and the model check (a CLI run: tests/integration)."""

from __future__ import annotations

import pytest
import torch

from helpers import write_jsonl
from tuneloop.config import DataConfig, ModelConfig
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError
from tuneloop.objectives.seq2seq import SEQ2SEQ, text_scores
from tuneloop.text.tokenize import IGNORE


def pair(source: str, target: str, system: str | None = None) -> Example:
    turns = [{"role": "user", "content": source}, {"role": "assistant", "content": target}]
    return Example("toy.jsonl", 1, messages=tuple(([{"role": "system", "content": system}] if system else []) + turns))


@pytest.fixture(scope="module")
def t5(tiny_t5_dir):
    """(model config, tokenizer, model) of the tiny T5, loaded the way a run loads it."""
    config = ModelConfig(name=str(tiny_t5_dir))
    torch.manual_seed(0)
    return config, SEQ2SEQ.load_tokenizer(config), SEQ2SEQ.load_model(config, None).eval()


def test_tokenize_puts_source_and_target_on_their_sides_each_ending_with_eos(t5):
    _, tokenizer, _ = t5
    tokenized = SEQ2SEQ.tokenize(tokenizer, pair("red cat", "rouge chat chien grand", system="translate:"), None)
    assert tokenizer.decode(tokenized.input_ids, skip_special_tokens=True) == "translate:\nred cat"
    assert tokenizer.decode(tokenized.labels, skip_special_tokens=True) == "rouge chat chien grand"
    assert tokenized.input_ids[-1] == tokenized.labels[-1] == tokenizer.eos_token_id
    assert len(tokenized) == max(len(tokenized.input_ids), len(tokenized.labels))
    assert tokenized.label_count == len(tokenized.labels)


def test_collate_pads_sources_with_pad_and_targets_with_ignore(t5):
    _, tokenizer, _ = t5
    rows = SEQ2SEQ.batch_rows([SEQ2SEQ.tokenize(tokenizer, pair(s, t), None) for s, t in [("red", "rouge vert bleu"), ("big small dog", "grand")]], False, 0, 0)
    batch = SEQ2SEQ.collate(rows, tokenizer.pad_token_id)
    sources = [len(r.input_ids) for r in rows]
    targets = [len(r.labels) for r in rows]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, max(sources))
    assert batch["labels"].shape == (2, max(targets))
    for index, row in enumerate(rows):
        assert batch["input_ids"][index, sources[index] :].eq(tokenizer.pad_token_id).all()
        assert batch["attention_mask"][index].sum() == sources[index]
        assert batch["labels"][index, : targets[index]].tolist() == list(row.labels)
        assert batch["labels"][index, targets[index] :].eq(IGNORE).all()
    assert int(batch["real_tokens"]) == sum(sources) + sum(targets)


def test_summed_loss_is_the_models_mean_loss_times_the_target_tokens(t5):
    _, tokenizer, model = t5
    rows = [SEQ2SEQ.tokenize(tokenizer, pair(s, t), None) for s, t in [("red cat", "rouge chat"), ("dog", "chien grand petit maison")]]
    batch = SEQ2SEQ.collate(rows, tokenizer.pad_token_id)
    batch.pop("real_tokens")
    with torch.no_grad():
        loss_sum, count = SEQ2SEQ.summed_loss(model, batch)
        mean = model(**batch).loss
    assert count == sum(len(row.labels) for row in rows)
    torch.testing.assert_close(loss_sum, mean * count)


def test_rows_too_long_on_either_side_are_dropped(t5, tmp_path):
    from tuneloop.train.prepare import prepare_dataset

    _, tokenizer, _ = t5
    long_text = " ".join(["red cat big dog"] * 10)
    rows = [{"prompt": f"red {i}", "completion": "rouge"} for i in range(8)]
    rows += [{"prompt": long_text, "completion": "rouge"}, {"prompt": "red", "completion": long_text}]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    prepared = prepare_dataset(DataConfig(path=[str(data)], format="prompt_completion", max_length=16, test_fraction=0.0), tokenizer, SEQ2SEQ)
    assert [row.line for row in prepared.report.dropped] == [9, 10]
    assert all("too long" in row.reason for row in prepared.report.dropped)


def test_check_model_refuses_a_decoder_only_model_before_loading_weights(tiny_model_dir):
    with pytest.raises(ConfigError) as refused:
        SEQ2SEQ.check_model(ModelConfig(name=str(tiny_model_dir)))
    message = str(refused.value)
    assert "task seq2seq needs an encoder-decoder model (T5, BART, ...)" in message
    assert "is a decoder-only llama; use task sft for it" in message and str(tiny_model_dir) in message


def test_check_model_accepts_t5(tiny_t5_dir):
    SEQ2SEQ.check_model(ModelConfig(name=str(tiny_t5_dir)))


def test_text_scores_are_on_a_zero_to_one_scale():
    perfect = text_scores(["rouge chat", "grand chien vert"], ["rouge chat", "grand chien vert"])
    assert perfect == pytest.approx({"chrf": 1.0, "bleu": 1.0, "rouge_l": 1.0, "exact_match": 1.0})
    wrong = text_scores(["bleu", ""], ["rouge chat", "grand chien vert"])
    assert all(0.0 <= value < 0.2 for value in wrong.values())
