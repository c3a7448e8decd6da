"""Learning from feedback, end to end on the tiny Llama: serve triage:v1 -> users compare its answers with
another version's on the web page (Playwright) and through /v1/feedback, picking the polite one -> `tuneloop
align triage` -> v2 passes the gate -> the running server answers with v2 -> a judge reward model that
never saw the round's data prefers v2's answers to v1's."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from helpers import run_cli, running
from helpers_align import ALIGN_ARGS, conversation, judged, ticket, train_judge, train_versions

CHROMIUM = Path("/usr/bin/chromium")
PAGE_TICKETS = range(3000, 3003)  # chosen on the web page
API_TICKETS = range(3003, 3020)  # chosen through the API


def compare_on_the_page(url: str, key: str, tickets) -> list[str]:
    """Ask production and style:v1 each ticket side by side and pick the right (polite) answer; the saved messages."""
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        tab = browser.new_page()
        tab.set_default_timeout(30_000)
        tab.goto(url + "/")
        tab.fill("#key", key)
        tab.dispatch_event("#key", "change")
        for i in tickets:
            tab.wait_for_function("document.querySelectorAll('#model-a option').length >= 3")
            tab.check("#compare")
            tab.select_option("#model-a", "triage@production")
            tab.select_option("#model-b", "style:v1")
            tab.fill("#prompt", ticket(i))
            tab.click("#send")
            tab.locator("#pane-b .turn.assistant").first.wait_for()
            tab.locator("#pane-a .turn.assistant").first.wait_for()
            # Each answer names the version that gave it, the alias resolved.
            assert tab.locator("#pane-a .turn.assistant .version").inner_text() == "triage@production → triage:v1"
            assert tab.locator("#pane-b .turn.assistant .version").inner_text() == "style:v1"
            tab.get_by_role("button", name="right is better ▶").click()
            saved.append(tab.get_by_text("preference saved").inner_text())
            tab.goto(url + "/")  # a fresh conversation: the next comparison is one prompt, not a continuation
        browser.close()
    return saved


@pytest.mark.timeout(900)
def test_preferences_from_the_page_and_the_api_align_production_and_v2_wins(tiny_model_dir, tmp_path, monkeypatch):
    from tuneloop.serve.run import build_server
    from tuneloop.store.feedback import preferences
    from tuneloop.store.keys import create_key
    from tuneloop.store.requests import get_request

    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (scripts/install_browser.sh)"
    store = tmp_path / "store.sqlite3"
    monkeypatch.setenv("TUNELOOP_STORE", str(store))
    v1, style = train_versions(tiny_model_dir, tmp_path)
    judge = train_judge(tiny_model_dir, tmp_path)
    assert run_cli("models", "register", str(v1), "--project", "triage").exit_code == 0
    assert run_cli("models", "promote", "triage:v1", "--reason", "first release").exit_code == 0
    assert run_cli("models", "register", str(style), "--project", "style").exit_code == 0

    app = build_server(str(tiny_model_dir), store, max_batch=8, max_tokens=16)
    conn = app.state.store.connection()
    key = create_key(conn, "align-test")
    with running(app) as url:
        saved = compare_on_the_page(url, key, PAGE_TICKETS)
        assert saved == ["preference saved (style:v1 over triage:v1)"] * len(PAGE_TICKETS)

        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        for i in API_TICKETS:
            rude = client.chat.completions.create(model="triage@production", messages=conversation(i), max_tokens=16)
            polite = client.chat.completions.create(model="style:v1", messages=conversation(i), max_tokens=16)
            assert (rude.system_fingerprint, polite.system_fingerprint) == ("triage:v1", "style:v1")
            client.post("/feedback", body={"kind": "preference", "chosen_id": polite.id, "rejected_id": rude.id}, cast_to=object)
        chosen = preferences(conn, project="style")
        assert len(chosen) == len(PAGE_TICKETS) + len(API_TICKETS)
        assert {(p.chosen_version, p.rejected_version) for p in chosen} == {("style:v1", "triage:v1")}  # attributable

        aligned = run_cli("align", "triage", "--out", str(tmp_path / "round"), *ALIGN_ARGS)
        assert aligned.exit_code == 0, aligned.output
        record = json.loads((tmp_path / "round" / "align.json").read_text())
        assert record["promoted"] and record["candidate"] == "triage:v2", record["reason"]
        assert record["feedback"]["pairs"] == len(PAGE_TICKETS) + len(API_TICKETS)

        answered = client.chat.completions.create(model="triage@production", messages=conversation(9999), max_tokens=16)
        assert answered.system_fingerprint == "triage:v2"  # the running server follows the promotion
        assert get_request(conn, answered.id).version_id == "triage:v2"

    rewards = judged(judge, {"v1": v1, "v2": Path(record["runs"]["candidate"])}, range(9000, 9012))
    assert rewards["v2"] > rewards["v1"], rewards
