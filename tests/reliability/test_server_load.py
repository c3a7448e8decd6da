"""The server suite, short variant (issue 18, part 4): a real ``tuneloop serve`` process on the tiny model with a
LoRA version in production, under 16 light clients mixing chat, streams, completions, feedback and hostile
requests, then SIGKILLed during 200 concurrent feedback posts and started again on the same store.

The load driver is ``reliability/serve_load.py``; ``bench/serve_reliability.py`` runs it for 60 s. That every
route but the public ones needs a key, and that a mid-stream error reaches the ``openai`` client as an error
it reads, are in tests/integration/test_serve_hostile.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reliability.serve_load import (
    ServerProcess, all_kinds, drive, each_kind_once, kill_verdict, post_feedback_until_killed, seed_store, stored_corrections, summary,
)  # fmt: skip

CLIENTS = 16
WARM_UP_S, LOAD_S = 3.0, 6.0
# Resident memory may grow this much over the measured run, after the warm-up: a guard against a gross leak
# only. The allocator takes memory in heaps of up to 64 MB, so a few seconds rise in steps: +8 % to +19 % in
# five runs with the server's capped malloc arenas, +25 % and +38 % with glibc's default (one arena per thread,
# still growing after 40 s). The cap itself is tested in tests/unit/serve/test_malloc.py; the 60 s curve is
# in bench/results/serve_reliability.md (622 MiB at the start, 760 at 30 s, 745 at 60 s).
MAX_RSS_GROWTH = 0.5

pytestmark = pytest.mark.timeout(300)


@dataclass
class Served:
    server: ServerProcess
    key: str
    models: list[str]
    store: Path
    model_dir: Path


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("server-load")
    key, models = seed_store(home / "store.sqlite3", tiny_model_dir, home / "lora-run")
    served = Served(ServerProcess.start(tiny_model_dir, home / "store.sqlite3", home / "server.log"), key, models, home / "store.sqlite3", tiny_model_dir)
    try:
        served.server.wait_ready()
        yield served
    finally:
        served.server.stop()  # (the kill test leaves its restarted server here)


def problems_by_kind(outcomes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.problem:
            found.setdefault(outcome.kind, []).append(f"{outcome.status}: {outcome.problem}")
    return found


def test_16_clients_mixing_valid_and_hostile_requests_get_no_5xx_and_memory_stays_flat(served):
    server = served.server
    every_kind = asyncio.run(each_kind_once(server.url, served.key, served.models))
    warm_up, _ = asyncio.run(drive(server.url, served.key, served.models, CLIENTS, WARM_UP_S, seed=1))
    load, memory = asyncio.run(drive(server.url, served.key, served.models, CLIENTS, LOAD_S, seed=2, rss=server.rss_bytes))
    outcomes = every_kind + warm_up + load
    figures = summary(outcomes)
    assert set(all_kinds()) <= set(figures["kinds"])
    assert figures["any_5xx"] == 0, summary([o for o in outcomes if o.status >= 500])["kinds"]
    assert problems_by_kind(outcomes) == {}  # valid: 200 and parsed by openai's types; hostile: its 4xx in OpenAI's shape
    assert figures["valid"] >= 100 and figures["hostile"] >= 30, figures  # a load, not a trickle
    assert server.logged_errors() == []  # no unhandled exception, from a hung-up client either
    start, end = memory[0][1], max(rss for _, rss in memory[-3:])
    assert end <= start * (1 + MAX_RSS_GROWTH), [round(rss / 2**20) for _, rss in memory]


def test_acknowledged_feedback_survives_a_sigkill_exactly_once(served):
    headers = {"Authorization": f"Bearer {served.key}"}
    chat = {"model": "base", "messages": [{"role": "user", "content": "the invoice"}], "max_tokens": 2}
    request_ids = [httpx.post(f"{served.server.url}/v1/chat/completions", json=chat, headers=headers, timeout=60).json()["id"] for _ in range(4)]

    kill = asyncio.run(post_feedback_until_killed(served.server, served.key, request_ids, posts=200, kill_after_acks=40))
    served.server = ServerProcess.start(served.model_dir, served.store, served.server.log)  # on the same store
    served.server.wait_ready()
    verdict = kill_verdict(kill, stored_corrections(served.store))

    assert 40 <= verdict["acknowledged"] < 200, verdict  # the kill came while posts were in flight
    assert (verdict["lost"], verdict["wrong_or_repeated"], verdict["duplicates"]) == (0, 0, 0), verdict
    assert verdict["acknowledged_present_once"] == verdict["acknowledged"]
    assert all(status < 500 for status in verdict["other_statuses"]), verdict
    after = httpx.post(f"{served.server.url}/v1/feedback", headers=headers, timeout=60,
                       json={"kind": "correction", "request_id": request_ids[0], "correction": "after the restart"})  # fmt: skip
    assert after.status_code == 200 and after.json()["id"] > max(id_ for ids in stored_corrections(served.store).values() for id_ in ids)
