"""What the request log keeps of a prompt and its answer (``tuneloop serve --log-prompts``).

- ``scrubbed`` (the default): personal data replaced by typed placeholders, as ``data.scrub_pii``
  does to training rows (one placeholder numbering for the prompt and its answer), so the log that
  feeds monitoring and retraining holds no e-mail address, card number or name, yet still reads
  like the traffic and matches what a scrubbed run trained on;
- ``full``: as sent and answered;
- ``none``: neither text (an empty string); token counts, latency and version are still logged,
  but drift monitoring and exporting feedback as training rows have no text to work with.
"""

from __future__ import annotations

import json
import threading
from typing import Callable

from tuneloop.data.pii import PiiDetector, RowScrubber
from tuneloop.errors import ConfigError
from tuneloop.store.requests import logged_conversation

LOG_PROMPTS = ("scrubbed", "full", "none")

LogTexts = Callable[[str, str], tuple[str, str]]  # (logged prompt, answer) -> what the log keeps of them


def request_log_texts(mode: str) -> LogTexts:
    """The function that turns a request's logged prompt (a chat's messages as JSON, or text) and its
    answer into what the log keeps under ``mode``; an unknown mode is refused."""
    if checked_log_mode(mode) == "full":
        return lambda prompt, answer: (prompt, answer)
    if mode == "none":
        return lambda prompt, answer: ("", "")
    detector = PiiDetector()  # loads the NER model now, at start-up, not on the first request
    one_at_a_time = threading.Lock()  # requests finish in pool threads; the detector's cache and pipeline are not shared safely

    def scrubbed(prompt: str, answer: str) -> tuple[str, str]:
        with one_at_a_time:
            return scrubbed_exchange(detector, prompt, answer)

    return scrubbed


def checked_log_mode(mode: str) -> str:
    if mode not in LOG_PROMPTS:
        raise ConfigError(f"--log-prompts {mode!r}: choose one of {', '.join(LOG_PROMPTS)}")
    return mode


def scrubbed_exchange(detector: PiiDetector, prompt: str, answer: str) -> tuple[str, str]:
    """A chat's messages (each turn's content) or a plain prompt, and the answer, scrubbed as one row."""
    row = RowScrubber(detector)
    messages = logged_conversation(prompt)
    if messages is None:
        logged = row.scrub(prompt)
    else:
        logged = json.dumps([{**turn, "content": scrubbed_content(row, turn["content"])} for turn in messages], ensure_ascii=False)
    return logged, row.scrub(answer)


def scrubbed_content(row: RowScrubber, content):
    """A turn's text scrubbed; content that is not text (none, or parts) is logged as it came."""
    return row.scrub(content) if isinstance(content, str) else content
