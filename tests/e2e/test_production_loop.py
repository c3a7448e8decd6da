"""The whole loop on the tiny model: train v1 on the demo's tickets -> serve -> same and shifted traffic
with feedback -> monitor (quiet, then alert) -> retrain -> v2 promoted and answering -> rollback to v1."""

from __future__ import annotations

import csv
import json
import random

import openai
import pytest


from helpers import run_cli, running

NEW_PRODUCT_BODIES = (
    "Exporting the quarterly VAT report from Ledger fails with a timeout for {n} invoices.",
    "Ledger double counts credit notes in the bookkeeping journal since the {n}th.",
    "Can Ledger reconcile bank feeds automatically? We have {n} accounts.",
    "The Ledger general ledger view shows the wrong fiscal year for entry {n}.",
)


def ledger_tickets(n: int, seed: int) -> list[dict]:
    """The shifted distribution: tickets about a product the first version never saw."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        body = rng.choice(NEW_PRODUCT_BODIES).format(n=rng.randint(2, 900))
        rows.append({"subject": f"Ledger problem #{i}", "body": body, "category": rng.choice(["bug", "billing", "how_to"]),
                     "priority": rng.choice(["low", "high"]), "product": "Ledger", "needs_human": str(rng.random() < 0.3).lower()})  # fmt: skip
    return rows


def write_csv(path, rows: list[dict]):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def chat(client, ticket: dict) -> openai.types.chat.ChatCompletion:
    content = f"Subject: {ticket['subject']}\n\n{ticket['body']}"
    return client.chat.completions.create(model="triage@production", messages=[{"role": "user", "content": content}], max_tokens=8)


TRAIN = ("--format", "prompt_completion", "--prompt-template", "Subject: {subject}\n\n{body}",
         "--target-columns", "category,priority,product,needs_human", "--system-prompt", "Triage the ticket as JSON.",
         "--r", "4", "--lr", "5e-3", "--max-steps", "12", "--tokens-per-batch", "1024", "--pack-length", "512",
         "--max-length", "384", "--early-stopping-patience", "0")  # fmt: skip


@pytest.mark.timeout(900)
def test_train_serve_monitor_retrain_promote_rollback(tiny_model_dir, tmp_path, monkeypatch):
    from tuneloop.demo.tickets import generate_tickets, write_tickets_csv
    from tuneloop.serve.run import build_server
    from tuneloop.store.keys import create_key
    from tuneloop.store.requests import get_request

    store = tmp_path / "store.sqlite3"
    monkeypatch.setenv("TUNELOOP_STORE", str(store))
    demo = write_tickets_csv(tmp_path / "tickets.csv", n=120, seed=0)
    v1 = tmp_path / "v1"
    result = run_cli("train", "--project", "triage", "--model", str(tiny_model_dir), "--data", str(demo), *TRAIN, "--out", str(v1))
    assert result.exit_code == 0, result.output
    assert run_cli("models", "register", str(v1), "--project", "triage").exit_code == 0
    assert run_cli("models", "promote", "triage:v1", "--reason", "first release").exit_code == 0

    app = build_server(str(tiny_model_dir), store, max_batch=8)
    key = create_key(app.state.store.connection(), "loop-test")
    conn = app.state.store.connection()
    with running(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

        for ticket in generate_tickets(30, seed=5):  # like the training data
            chat(client, ticket)
        quiet = run_cli("monitor", "triage", "--out", str(tmp_path / "monitor-quiet"))
        assert quiet.exit_code == 0, quiet.output

        for index, ticket in enumerate(ledger_tickets(90, seed=1)):  # shifted, and users are unhappy
            reply = chat(client, ticket)
            feedback = {"kind": "rating", "request_id": reply.id, "rating": "down"}
            if index % 3 == 0:
                answer = {k: ticket[k] for k in ("category", "priority", "product", "needs_human")}
                feedback = {"kind": "correction", "request_id": reply.id, "correction": json.dumps(answer)}
            client.post("/feedback", body=feedback, cast_to=object)
        alert = run_cli("monitor", "triage", "--out", str(tmp_path / "monitor-alert"))
        assert alert.exit_code == 1, alert.output
        assert "input_drift" in json.loads((tmp_path / "monitor-alert" / "monitor.json").read_text())["alerts"]

        new_data = write_csv(tmp_path / "new_tickets.csv", ledger_tickets(60, seed=2))
        retrained = run_cli("retrain", "triage", "--data", str(new_data), "--out", str(tmp_path / "retrain"),
                            "--gate-metric", "loss", "--tolerance", "0.5", "--max-steps", "12")  # fmt: skip
        assert retrained.exit_code == 0, retrained.output
        record = json.loads((tmp_path / "retrain" / "retrain.json").read_text())
        assert record["promoted"] and record["candidate"] == "triage:v2", record["reason"]
        assert record["dataset"]["corrections"] == 30 and record["dataset"]["replayed"] > 0
        assert record["checks"]["new_test"]["candidate"] < record["checks"]["new_test"]["production"]

        answered = chat(client, ledger_tickets(1, seed=3)[0])
        assert get_request(conn, answered.id).version_id == "triage:v2"  # the running server follows the store
        assert run_cli("models", "rollback", "triage", "--reason", "on-call rollback drill").exit_code == 0
        answered = chat(client, ledger_tickets(1, seed=4)[0])
        assert get_request(conn, answered.id).version_id == "triage:v1"

    shown = run_cli("models", "show", "triage:v2")
    assert "triage:v1" in shown.output and "gate passed" in shown.output
