"""Tasks (training objectives): a name -> :class:`~tuneloop.objectives.base.Task` mapping.

A task owns what differs between, say, chat SFT and classification: which data formats it
reads, which model class it trains, how an example becomes token ids and labels, how a batch is
collated and scored, and how the held-out test is judged. The recipe around it (config, run
folder, method, Trainer, callbacks, saving, base-vs-tuned report) is shared.

Each task lives in its own module, imported only when used; adding one is a module plus a line here.
"""

from __future__ import annotations

import importlib

from tuneloop.errors import ConfigError

TASKS: dict[str, str] = {
    "sft": "tuneloop.objectives.causal:SFT",
    "qa": "tuneloop.objectives.causal:QA",
    "cpt": "tuneloop.objectives.causal:CPT",
    "classify": "tuneloop.objectives.classify:CLASSIFY",
    "seq2seq": "tuneloop.objectives.seq2seq:SEQ2SEQ",
    "reward": "tuneloop.objectives.reward:REWARD",
    "dpo": "tuneloop.objectives.dpo:DPO",
    "kto": "tuneloop.objectives.kto:KTO",
    "orpo": "tuneloop.objectives.orpo:ORPO",
    # Tasks whose training loop samples answers and scores them with another run live in rl/, above runs/.
    "ppo": "tuneloop.rl.ppo:PPO",
    "grpo": "tuneloop.rl.grpo:GRPO",
}


def get_task(name: str):
    """The task object registered under ``name``."""
    try:
        module_name, _, attribute = TASKS[name].partition(":")
    except KeyError:
        raise ConfigError(f"task: unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
    return getattr(importlib.import_module(module_name), attribute)
