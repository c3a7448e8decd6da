"""`tuneloop align` on the tiny Llama: production answers tickets rudely, users preferred another
version's polite answers; one round trains a reward model and a DPO candidate, which passes the gate."""

from __future__ import annotations

import contextlib
import json

import pytest

from helpers import run_cli
from helpers_align import ALIGN_ARGS, align_scenario


@pytest.fixture(scope="module")
def scenario(tiny_model_dir, tmp_path_factory):
    """(store file, folder): triage:v1 in production, style:v1 beside it, 24 A/B choices of style's answer."""
    folder = tmp_path_factory.mktemp("align")
    return align_scenario(tiny_model_dir, folder), folder


@pytest.mark.timeout(600)
def test_a_round_promotes_a_candidate_that_wins_under_the_rounds_reward_model(scenario):
    from tuneloop.store.db import connect
    from tuneloop.store.rounds import rounds
    from tuneloop.store.versions import get, production

    store, folder = scenario
    result = run_cli("align", "triage", "--out", str(folder / "round1"), "--store", str(store), *ALIGN_ARGS)
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "round1" / "align.json").read_text())
    assert record["promoted"] and record["candidate"] == "triage:v2" and record["objective"] == "dpo", record["reason"]
    reward = record["checks"]["reward"]
    assert reward["candidate"] > reward["production"] and reward["win_rate"] > 0.5
    assert "frozen_test" in record["reason"] and "general" in record["reason"]
    assert record["feedback"]["pairs"] == 24 and len(record["feedback"]["ids"]) == 24
    assert "win rate" in result.output and "promoted" in result.output
    with contextlib.closing(connect(store)) as conn:
        assert production(conn, "triage").id == "triage:v2" and get(conn, "triage:v2").parent_id == "triage:v1"
        (stored,) = rounds(conn, "triage")
        assert stored.promoted and stored.feedback_ids == record["feedback"]["ids"] and stored.scores["reward"]["win_rate"] == reward["win_rate"]

    again = run_cli("align", "triage", "--out", str(folder / "round2"), "--store", str(store), *ALIGN_ARGS)
    assert again.exit_code == 2
    assert "0 usable preference pairs since align round feedback #24; a round needs at least 12" in again.output
    assert not (folder / "round2").exists()
