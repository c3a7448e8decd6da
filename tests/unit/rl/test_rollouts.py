"""Rollouts: the answer mask, minibatch slicing, and per-token log-probs that left padding does not change."""

from __future__ import annotations

import pytest
import torch

from tuneloop.rl.rollouts import Rollouts, sample_rollouts, through_first_eos, token_logprobs_and_values


def test_the_answer_mask_runs_through_the_first_end_of_sequence_token():
    tokens = torch.tensor([[5, 6, 2, 2], [2, 7, 2, 8], [5, 6, 7, 8]])
    assert through_first_eos(tokens, eos_token_id=2).tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]


def test_a_minibatch_keeps_only_the_columns_its_rows_use():
    rollouts = Rollouts(
        input_ids=torch.tensor([[0, 0, 3, 4, 5, 0], [0, 9, 3, 4, 0, 0], [7, 8, 3, 4, 5, 6]]),
        attention_mask=torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]),
        mask=torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 1]]),
        answers=["a", "b", "c"],
    )
    index = torch.tensor([1, 0])
    assert rollouts.span(index) == (1, 5)
    part = rollouts.rows(index)
    assert part.input_ids.tolist() == [[9, 3, 4, 0], [0, 3, 4, 5]]
    assert part.mask.tolist() == [[0, 1, 0], [0, 1, 1]] and part.answers == ["b", "a"]
    assert rollouts.real_tokens == 12 and rollouts.answer_tokens == 6


@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def test_log_probs_of_a_left_padded_row_equal_those_of_the_row_alone(tiny_policy):
    model, tokenizer = tiny_policy
    torch.manual_seed(0)
    rollouts = sample_rollouts(model, tokenizer, [[5, 6, 7, 8, 9, 10, 11], [12, 13]], max_new_tokens=6, temperature=1.0)
    batched, _ = token_logprobs_and_values(model, None, rollouts)
    for row in range(2):
        alone = rollouts.rows(torch.tensor([row]))
        single, _ = token_logprobs_and_values(model, None, alone)
        first, last = rollouts.span(torch.tensor([row]))
        mask = alone.mask[0].bool()
        assert torch.allclose(batched[row, first : last - 1][mask], single[0][mask], atol=1e-5)
        expected = direct_logprobs(model, alone.input_ids[0][alone.attention_mask[0].bool()])
        assert torch.allclose(single[0][mask], expected[-int(mask.sum()) :], atol=1e-5)


def direct_logprobs(model, ids: torch.Tensor) -> torch.Tensor:
    """log p(token t+1 | tokens ≤ t) of one unpadded sequence, the plain way."""
    logits = model(input_ids=ids[None]).logits[0, :-1].float()
    return logits.log_softmax(-1).gather(-1, ids[1:, None]).squeeze(-1)


def test_values_come_from_the_value_head_on_the_state_before_each_token(tiny_policy):
    model, tokenizer = tiny_policy
    torch.manual_seed(0)
    rollouts = sample_rollouts(model, tokenizer, [[5, 6, 7]], max_new_tokens=4, temperature=1.0)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    _, values = token_logprobs_and_values(model, head, rollouts)
    hidden = model(input_ids=rollouts.input_ids, output_hidden_states=True).hidden_states[-1][0, :-1]
    assert torch.allclose(values[0], head(hidden).squeeze(-1), atol=1e-5)
