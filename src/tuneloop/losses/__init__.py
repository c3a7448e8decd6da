"""Training losses: per-label cross-entropy (fused with the LM head), KL to the base model,
and the pieces of PPO (``ppo.py``)."""
