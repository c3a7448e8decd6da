"""Drift statistics on known samples, and `tuneloop monitor` on a store with live traffic."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from helpers import run_cli
from tuneloop.data.schema import Example
from tuneloop.monitor.drift import mean_difference_test, mmd_permutation_test, vocabulary_shift, wilson_interval


def test_mmd_finds_a_shift_and_not_a_resample():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(60, 8, generator=generator), torch.randn(60, 8, generator=generator)
    assert mmd_permutation_test(a, b, permutations=200).p_value > 0.01  # the default alert level
    assert mmd_permutation_test(a, b + 0.8, permutations=200).p_value < 0.01


def test_length_vocabulary_and_rate_statistics():
    assert mean_difference_test([5, 6, 5, 7] * 10, [15, 16, 14, 17] * 10).p_value < 0.01
    shift = vocabulary_shift(["refund my invoice", "login fails"], ["refund my invoice", "bonjour le monde"])
    assert shift["unseen_word_share"] == pytest.approx(3 / 6)
    assert 0 < shift["js_divergence"] < 1
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def ticket_prompts(n: int, seed: int) -> list[str]:
    from tuneloop.demo.tickets import generate_tickets

    return [f"Subject: {t['subject']}\n\n{t['body']}" for t in generate_tickets(n, seed)]


@pytest.fixture
def monitored(tmp_path, monkeypatch):
    """A store with project 'triage' in production, trained on support tickets."""
    from tuneloop.config import dump_config, load_config
    from tuneloop.store.db import connect
    from tuneloop.store.versions import promote, register

    store = tmp_path / "store.sqlite3"
    monkeypatch.setenv("TUNELOOP_STORE", str(store))
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "splits").mkdir()
    rows = [Example("tickets.csv", i + 2, messages=({"role": "user", "content": p}, {"role": "assistant", "content": "{}"}))
            for i, p in enumerate(ticket_prompts(80, seed=1))]  # fmt: skip
    (run / "splits" / "train.jsonl").write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in rows))
    (run / "config.yaml").write_text(dump_config(load_config(None, {"project": "triage", "out": str(run)})))
    (run / "data.json").write_text(json.dumps({"dataset_hash": "0" * 64}))
    conn = connect(store)
    register(conn, run)
    promote(conn, "triage:v1", "release")
    yield conn
    conn.close()


def log_traffic(conn, prompts: list[str]) -> list[str]:
    from tuneloop.store.requests import log_request

    return [
        log_request(conn, model="triage@production", prompt=json.dumps([{"role": "user", "content": p}]), response="{}", latency_ms=5.0, version_id="triage:v1")
        for p in prompts
    ]


def monitor(tmp_path):
    return run_cli("monitor", "triage", "--out", str(tmp_path / "monitor"))


def test_monitor_is_quiet_on_traffic_like_the_training_data(monitored, tmp_path):
    log_traffic(monitored, ticket_prompts(40, seed=7))
    result = monitor(tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "monitor" / "monitor.json").read_text())
    assert report["alerts"] == [] and report["checks"]["input_drift"]["p_value"] > 0.01
    assert (tmp_path / "monitor" / "drift.png").stat().st_size > 0


def test_monitor_alerts_on_drifted_prompts_and_bad_feedback(monitored, tmp_path):
    from tuneloop.store.feedback import record_rating

    drifted = [f"Recipe {i}: how long should I roast {veg} at {180 + i} degrees with garlic and thyme?" for i, veg in
               enumerate(["potatoes", "carrots", "parsnips", "beetroot", "pumpkin"] * 8)]  # fmt: skip
    for request_id in log_traffic(monitored, drifted)[:20]:
        record_rating(monitored, request_id, "down")
    result = monitor(tmp_path)
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "monitor" / "monitor.json").read_text())
    assert set(report["alerts"]) == {"input_drift", "negative_feedback"}
    assert report["checks"]["input_drift"]["p_value"] < 0.01
    assert report["checks"]["negative_feedback"]["ci95"][0] > 0.3


def test_monitor_without_production_version_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_STORE", str(tmp_path / "empty.sqlite3"))
    result = monitor(tmp_path)
    assert result.exit_code == 2 and "no production version" in result.output
