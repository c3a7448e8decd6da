"""A tiny run with canaries, end to end: the canaries reach the training split alone, `tuneloop eval` reports the
privacy section, and `tuneloop audit privacy` rescores it with its own options into audit.json and metrics.json."""

from __future__ import annotations

import json

from helpers import run_cli, tiny_config
from tuneloop.config import RunConfig
from tuneloop.data.canaries import CANARY_SOURCE


def test_canaries_are_planted_reported_and_audited(tiny_model_dir, toy_chat_file, tmp_path, one_torch_thread):
    from tuneloop.evaluate.heldout import evaluate_run
    from tuneloop.train.run import train

    raw = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=4).model_dump()
    raw["data"].update(canaries=2, canary_repeats=5)
    raw["eval"].update(max_new_tokens=4, few_shot=[], forgetting=False, privacy_candidates=30)
    run = train(RunConfig.model_validate(raw))

    secrets = [c["secret"] for c in json.loads((run / "data.json").read_text())["canaries"]["canaries"]]
    splits = {name: (run / "splits" / f"{name}.jsonl").read_text() for name in ("train", "val", "test")}
    assert all(splits["train"].count(secret) == 5 for secret in secrets)
    assert not any(CANARY_SOURCE in splits[name] or secret in splits[name] for name in ("val", "test") for secret in secrets)

    section = evaluate_run(run)["privacy"]
    assert section["candidates"] == 30 and [c["secret"] for c in section["canaries"]] == secrets
    assert 0.0 <= section["tuned"]["mia_auc"] <= 1.0 and section["dp"] is None
    assert "## Privacy: membership inference and canary exposure" in (run / "report.md").read_text()

    result = run_cli("audit", "privacy", str(run), "--rows", "3", "--candidates", "12")
    assert result.exit_code == 0, result.output
    audited = json.loads((run / "audit.json").read_text())["privacy"]
    assert audited["rows"] == 3 and audited["candidates"] == 12
    assert json.loads((run / "metrics.json").read_text())["privacy"] == audited
    rows = [json.loads(line) for line in (run / "privacy.jsonl").read_text().splitlines()]
    assert sum(1 for r in rows if "member" in r) == 6 and [r["secret"] for r in rows if r.get("canary")] == secrets
    assert "mia_auc_calibrated" in result.output
