"""A finished run folder: its layout, and the base and tuned models it describes."""
