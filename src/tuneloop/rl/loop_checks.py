"""What a task with a training loop of its own (ppo, grpo) cannot honour, refused before anything is written."""

from __future__ import annotations

from tuneloop.errors import ConfigError


def check_loop_settings(task_name: str, config) -> None:
    """Refuse the settings a task's own loop cannot honour, rather than ignore them."""
    if config.train.nproc > 1:
        raise ConfigError(f"train.nproc: task {task_name} trains in one process (its loop samples and scores in turn); use --nproc 1")
    if config.train.curriculum != "none":
        raise ConfigError(f"train.curriculum: task {task_name} samples its own answers; a curriculum over training rows does not apply")
    if config.data.replay_fraction > 0:
        raise ConfigError(
            f"data.replay_fraction: task {task_name} learns from its reward model, not from answers to replay; "
            f"forgetting is held back by the KL penalty to the reference instead (set it to 0)"
        )
