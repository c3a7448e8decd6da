"""Counters for ``/metrics`` in the Prometheus text format (no client library needed for this)."""

from __future__ import annotations

import threading
from collections import Counter


class ServerMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (endpoint, model, status) -> count
        self.tokens: Counter = Counter()  # (model, kind) -> tokens
        self.latency_sum: Counter = Counter()  # model -> seconds
        self.latency_count: Counter = Counter()

    def record(self, endpoint: str, model: str, status: int, seconds: float = 0.0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            self.requests[(endpoint, model, str(status))] += 1
            if status == 200:
                self.tokens[(model, "prompt")] += prompt_tokens
                self.tokens[(model, "completion")] += completion_tokens
                self.latency_sum[model] += seconds
                self.latency_count[model] += 1

    def render(self, engine) -> str:
        lines = ["# HELP tuneloop_requests_total Requests by endpoint, model and HTTP status.", "# TYPE tuneloop_requests_total counter"]
        with self._lock:
            for (endpoint, model, status), count in sorted(self.requests.items()):
                lines.append(f'tuneloop_requests_total{{endpoint="{endpoint}",model="{_label(model)}",status="{status}"}} {count}')
            lines += ["# HELP tuneloop_tokens_total Tokens processed, by model and kind.", "# TYPE tuneloop_tokens_total counter"]
            for (model, kind), count in sorted(self.tokens.items()):
                lines.append(f'tuneloop_tokens_total{{model="{_label(model)}",kind="{kind}"}} {count}')
            lines += ["# HELP tuneloop_request_seconds Time to answer a request.", "# TYPE tuneloop_request_seconds summary"]
            for model in sorted(self.latency_count):
                lines.append(f'tuneloop_request_seconds_sum{{model="{_label(model)}"}} {self.latency_sum[model]:.6f}')
                lines.append(f'tuneloop_request_seconds_count{{model="{_label(model)}"}} {self.latency_count[model]}')
        lines += [
            "# HELP tuneloop_prefills_total Forward passes over newly admitted prompts.", "# TYPE tuneloop_prefills_total counter",
            f"tuneloop_prefills_total {engine.stats.prefills}",
            "# HELP tuneloop_decode_steps_total Decode passes, each one token for every running request.", "# TYPE tuneloop_decode_steps_total counter",
            f"tuneloop_decode_steps_total {engine.stats.steps}",
            "# HELP tuneloop_decode_rows_total Running requests summed over decode passes (divided by steps: mean batch).", "# TYPE tuneloop_decode_rows_total counter",
            f"tuneloop_decode_rows_total {engine.stats.row_steps}",
            "# HELP tuneloop_engine_busy_seconds_total Time the engine spent in forward passes and sampling.", "# TYPE tuneloop_engine_busy_seconds_total counter",
            f"tuneloop_engine_busy_seconds_total {engine.stats.busy_seconds:.6f}",
            "# HELP tuneloop_adapters_loaded Adapters held on the base model.", "# TYPE tuneloop_adapters_loaded gauge",
            f"tuneloop_adapters_loaded {len(engine.adapters)}",
        ]  # fmt: skip
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
