"""Reinforcement learning from a reward model: the tasks whose training loop samples answers from the
policy and scores them with another run (``ppo``; ``grpo`` through TRL), and the reward model as a
function of (prompt, answer).

This layer sits above ``train/`` (it reuses the recipe's loading and saving) and ``runs/`` (it reads
the reward run), below ``evaluate/``. The tasks registry (``objectives.TASKS``) names its tasks by
module path, as it names every task, so the lower layers never import it.
"""
