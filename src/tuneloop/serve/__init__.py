"""Serving: an OpenAI-compatible API over one base model with many adapters (see app.py, engine.py)."""
