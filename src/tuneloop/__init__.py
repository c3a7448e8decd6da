"""tuneloop: fine-tune a pre-trained language model into a measurably better specialist."""

__version__ = "0.1.0"
