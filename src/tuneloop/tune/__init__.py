"""``tuneloop tune``: Optuna search over a search space declared in the config (see :mod:`.space`)."""
