"""A trained reward run as a function: (prompt turns, answer) -> one score per answer.

The scores are those the reward task trains and evaluates: the prompt and the answer rendered with
the reward model's own chat template (:func:`tuneloop.objectives.reward.reply_ids`), the one-output
head read at the last real token. Answers come in as text, so the policy's tokenizer need not be the
reward model's.
"""

from __future__ import annotations

from pathlib import Path

from tuneloop.errors import ConfigError
from tuneloop.objectives.reward import reply_ids
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_tuned_model


class RewardScorer:
    """Scores answers with a reward model; build it with :meth:`from_run`."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @classmethod
    def from_run(cls, run_dir: str | Path, setting: str = "ppo.reward_run", batch_size: int = 16) -> "RewardScorer":
        """The reward model trained in ``run_dir``, its adapter merged in for speed. ConfigError naming
        ``setting`` when the folder is not a finished run of task reward."""
        run = check_reward_run(run_dir, setting)
        model, tokenizer = load_tuned_model(run.path)
        if hasattr(model, "merge_and_unload") and run.method().mergeable:
            model = model.merge_and_unload()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return cls(model, tokenizer, batch_size)

    def scores(self, prompts: list[list[dict]], answers: list[str]):
        """A float32 tensor ``[len(answers)]``: the reward of each answer to its prompt (chat turns)."""
        import torch

        sequences = [reply_ids(self.tokenizer, turns, answer) for turns, answer in zip(prompts, answers)]
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        found = torch.zeros(len(sequences))
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                input_ids, attention_mask = right_padded([sequences[i] for i in chunk], self.model.config.pad_token_id)
                device = self.model.device
                logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
                found[chunk] = logits.squeeze(-1).float().cpu()
        return found


def check_reward_run(run_dir: str | Path, setting: str) -> RunDir:
    """The run folder at ``run_dir`` when it is a finished reward run, else ConfigError naming ``setting``."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{setting}: {path} is not a tuneloop run folder (no config.yaml); train one with task: reward")
    run = RunDir(path)
    task = run.config().task
    if task != "reward":
        raise ConfigError(
            f"{setting}: {path} is a run of task {task!r}, not a reward model; give a finished run of task reward "
            "(tuneloop train with task: reward on preference pairs)"
        )
    artifact = run.method().artifact
    if not (path / artifact).is_dir():
        raise ConfigError(f"{setting}: {path} has no trained {artifact}/ yet (the reward run did not finish)")
    return run


def right_padded(sequences: list[list[int]], pad_token_id: int):
    """(input_ids, attention_mask), each ``[len(sequences), longest]``, padded on the right."""
    import torch

    longest = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask
