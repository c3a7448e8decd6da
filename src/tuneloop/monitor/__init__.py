"""Production monitoring: input drift against the training prompts, and the negative-feedback rate."""
