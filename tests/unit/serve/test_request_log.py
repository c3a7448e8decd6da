"""``tuneloop serve --log-prompts scrubbed|full|none``: what the request log keeps, through the app."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from tuneloop.data.pii import PiiDetector
from tuneloop.errors import ConfigError
from tuneloop.serve.catalog import BASE_NAME
from tuneloop.serve.request_log import scrubbed_exchange
from tuneloop.store.requests import recent

MESSAGES = [{"role": "user", "content": "I am Olivia Thompson, mail olivia@fjord.io or call +1 201-555-0123."}]


@pytest.fixture(scope="module")
def apps(tiny_model_dir, tmp_path_factory):
    from tuneloop.serve.run import build_server
    from tuneloop.store.keys import create_key

    built = {}
    for mode in ("scrubbed", "full", "none"):
        home = tmp_path_factory.mktemp(f"log-{mode}")
        app = build_server(str(tiny_model_dir), home / "store.sqlite3", max_batch=2, max_prompt_tokens=200, max_tokens=8, log_prompts=mode)
        built[mode] = (app, create_key(app.state.store.connection(), "tests"))
    return built


def chat(app, key, model):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               json={"model": model, "messages": MESSAGES, "max_tokens": 6})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"], recent(app.state.store.connection())[0]


def test_scrubbed_keeps_placeholders_in_the_log_and_answers_the_client_in_full(apps):
    app, key = apps["scrubbed"]
    answer, logged = chat(app, key, BASE_NAME)
    assert json.loads(logged.prompt) == [{"role": "user", "content": "I am <NAME_1>, mail <EMAIL_1> or call <PHONE_1>."}]
    assert (logged.prompt, logged.response) == scrubbed_exchange(PiiDetector(), json.dumps(MESSAGES), answer)


def test_full_keeps_what_was_sent_and_answered(apps):
    app, key = apps["full"]
    answer, logged = chat(app, key, BASE_NAME)
    assert json.loads(logged.prompt) == MESSAGES and logged.response == answer


def test_none_keeps_no_text_but_the_request(apps):
    app, key = apps["none"]
    _, logged = chat(app, key, BASE_NAME)
    assert (logged.prompt, logged.response) == ("", "") and logged.prompt_tokens > 0


def test_scrubbed_exchange_numbers_the_prompt_and_the_answer_together():
    prompt = json.dumps([{"role": "user", "content": "Is bo@acme.com mine?"}])
    logged_prompt, logged_answer = scrubbed_exchange(PiiDetector(), prompt, "Yes, bo@acme.com is yours; cy@acme.com is not.")
    assert json.loads(logged_prompt)[0]["content"] == "Is <EMAIL_1> mine?"
    assert logged_answer == "Yes, <EMAIL_1> is yours; <EMAIL_2> is not."
    assert scrubbed_exchange(PiiDetector(), "plain bo@acme.com", "ok") == ("plain <EMAIL_1>", "ok")


def test_an_unknown_mode_is_refused_before_the_model_loads(tmp_path):
    from tuneloop.serve.run import build_server

    with pytest.raises(ConfigError, match="--log-prompts 'everything': choose one of scrubbed, full, none"):
        build_server("no-such-model", tmp_path / "store.sqlite3", log_prompts="everything")
    result = run_cli("serve", "--base", "no-such-model", "--log-prompts", "everything")
    assert result.exit_code == 2 and "choose one of scrubbed, full, none" in result.output
