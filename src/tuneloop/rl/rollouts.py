"""Rollouts: answers sampled from the policy, and the per-token log-probabilities and values of them.

A batch of rollouts is one tensor of token ids per row: the prompt, left-padded so every answer
starts at the same column, then the sampled answer, cut after its end-of-sequence token. The
per-token tensors (``logprobs``, ``values``, ``mask``) are ``[rows, columns - 1]``: position ``t``
scores token ``t + 1`` from the state after token ``t``, and ``mask`` is 1 exactly on answer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollouts:
    """Sampled answers to a batch of prompts."""

    input_ids: torch.Tensor  # [rows, columns]: left-padded prompt, then the answer, right-padded
    attention_mask: torch.Tensor  # [rows, columns]: 1 on prompt and answer tokens
    mask: torch.Tensor  # [rows, columns - 1]: 1 where position t scores an answer token (t + 1)
    answers: list[str]  # the answers as text (special tokens dropped)

    @property
    def answer_tokens(self) -> int:
        return int(self.mask.sum())

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def span(self, index: torch.Tensor) -> tuple[int, int]:
        """``(first, last)``: the token columns rows ``index`` use; their per-token columns are ``first .. last - 1``."""
        used = self.attention_mask[index].any(dim=0).nonzero()
        return int(used.min()), int(used.max()) + 1

    def rows(self, index: torch.Tensor) -> "Rollouts":
        """The rollouts of rows ``index`` (a minibatch), trimmed to the columns they use (:meth:`span`)."""
        first, last = self.span(index)
        return Rollouts(
            self.input_ids[index, first:last], self.attention_mask[index, first:last], self.mask[index, first : last - 1],
            [self.answers[i] for i in index.tolist()],
        )  # fmt: skip


def sample_rollouts(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int, temperature: float) -> Rollouts:
    """Answers sampled from ``model`` at ``temperature`` (no top-k/top-p: the policy's own distribution),
    one per prompt (token ids rendered with the chat template and the generation prompt)."""
    longest = max(len(ids) for ids in prompt_ids)
    pad = tokenizer.pad_token_id
    prompts = torch.full((len(prompt_ids), longest), pad, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompts)
    for row, ids in enumerate(prompt_ids):
        prompts[row, longest - len(ids) :] = torch.tensor(ids)
        prompt_mask[row, longest - len(ids) :] = 1
    with torch.no_grad():
        generated = model.generate(
            input_ids=prompts.to(model.device), attention_mask=prompt_mask.to(model.device),
            max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
            pad_token_id=pad, eos_token_id=tokenizer.eos_token_id,
        ).cpu()  # fmt: skip
    answers = generated[:, longest:]
    answer_mask = through_first_eos(answers, tokenizer.eos_token_id)
    attention_mask = torch.cat([prompt_mask, answer_mask], dim=1)
    input_ids = torch.where(attention_mask.bool(), generated, pad)
    mask = torch.cat([torch.zeros_like(prompt_mask), answer_mask], dim=1)[:, 1:]
    texts = tokenizer.batch_decode(torch.where(answer_mask.bool(), answers, pad), skip_special_tokens=True)
    return Rollouts(input_ids, attention_mask, mask, [text.strip() for text in texts])


def through_first_eos(tokens: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """``[rows, columns]`` 0/1: each row's tokens up to and including its first end-of-sequence token."""
    is_eos = (tokens == eos_token_id).long()
    before = is_eos.cumsum(dim=1) - is_eos  # end-of-sequence tokens strictly before each position
    return (before == 0).long()


def token_logprobs_and_values(model, value_head, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log π of each next token, the value head's estimate at each state), both ``[rows, columns - 1]``
    in fp32; values is None without a value head (the reference model)."""
    device = model.device
    attention_mask = rollouts.attention_mask.to(device)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # left padding: positions count real tokens
    input_ids = rollouts.input_ids.to(device)
    outputs = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        output_hidden_states=value_head is not None, use_cache=False,
    )  # fmt: skip
    logprobs = outputs.logits[:, :-1].float().log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    if value_head is None:
        return logprobs, None
    values = value_head(outputs.hidden_states[-1][:, :-1].detach().float()).squeeze(-1)
    return logprobs, values
