"""Text as the models see it: chat templates, tokenising, packing, generation, text metrics."""
