"""The server through the official ``openai`` client: completions, streaming, adapters, limits, feedback."""

from __future__ import annotations

import concurrent.futures

import requests
import openai
import pytest

PROMPT = [{"role": "user", "content": "what colour is the lime?"}]


@pytest.fixture(scope="module")
def client(server):
    url, key, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def ask(client, model: str, max_tokens: int = 12) -> str:
    reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=max_tokens)
    return reply.choices[0].message.content


def test_models_lists_base_versions_and_stage_aliases(client):
    names = {m.id for m in client.models.list().data}
    assert {"base", "triage:v1", "triage:v2", "triage@production", "triage@candidate"} <= names


def test_versions_answer_differently_from_the_base_and_aliases_resolve(client):
    base, v1, v2 = ask(client, "base"), ask(client, "triage:v1"), ask(client, "triage:v2")
    assert len({base, v1, v2}) == 3
    assert ask(client, "triage@production") == v1


def test_concurrent_requests_share_batches_and_match_sequential_answers(client, server):
    _, _, app = server
    models = ["triage:v1", "triage:v2", "base", "triage:v1"] * 2
    sequential = [ask(client, m) for m in models]
    stats = app.state.engine.stats
    steps_before, rows_before = stats.steps, stats.row_steps
    with concurrent.futures.ThreadPoolExecutor(len(models)) as pool:
        concurrent_answers = list(pool.map(lambda m: ask(client, m), models))
    assert concurrent_answers == sequential
    assert stats.row_steps - rows_before > stats.steps - steps_before  # some decode steps advanced several requests


def test_streaming_gives_the_same_text_as_a_plain_answer(client):
    stream = client.chat.completions.create(model="triage:v2", messages=PROMPT, max_tokens=12, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ask(client, "triage:v2")
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("req_")


def test_stream_with_include_usage_ends_with_the_token_counts(client):
    stream = client.chat.completions.create(
        model="triage:v2", messages=PROMPT, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    *answer, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == client.chat.completions.create(
        model="triage:v2", messages=PROMPT, max_tokens=12
    ).usage.completion_tokens
    assert all(chunk.usage is None for chunk in answer)


def test_text_completions(client):
    reply = client.completions.create(model="base", prompt="Billing, refunds", max_tokens=5)
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens <= 5


def test_errors_have_openai_shape(client, server):
    url, _, _ = server
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="tl_nope_nope", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError, match="triage:v9"):
        ask(client, "triage:v9")
    with pytest.raises(openai.BadRequestError, match="never by a path"):
        ask(client, "../runs/triage")
    with pytest.raises(openai.BadRequestError, match="limit of 64"):
        ask(client, "base", max_tokens=65)
    with pytest.raises(openai.BadRequestError, match="at most 200"):
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "refund " * 300}], max_tokens=4)
    body = requests.post(f"{url}/v1/chat/completions", json={"model": "base"}, headers={"Authorization": f"Bearer {client.api_key}"}).json()
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "messages"


def test_feedback_ties_to_the_logged_request(client, server):
    url, key, app = server
    reply = client.chat.completions.create(model="triage:v1", messages=PROMPT, max_tokens=6)
    headers = {"Authorization": f"Bearer {key}"}
    ok = requests.post(f"{url}/v1/feedback", json={"kind": "rating", "request_id": reply.id, "rating": "down"}, headers=headers)
    assert ok.status_code == 200, ok.text
    correction = {"kind": "correction", "request_id": reply.id, "correction": "green"}
    assert requests.post(f"{url}/v1/feedback", json=correction, headers=headers).status_code == 200
    missing = requests.post(f"{url}/v1/feedback", json={"kind": "rating", "request_id": "req_unknown", "rating": "up"}, headers=headers)
    assert missing.status_code == 404 and "req_unknown" in missing.json()["error"]["message"]
    from tuneloop.store.feedback import corrections

    assert [c.correction for c in corrections(app.state.store.connection(), project="triage")] == ["green"]


def test_health_and_metrics(server):
    url, key, _ = server
    assert requests.get(f"{url}/healthz").json()["status"] == "ok"
    assert requests.get(f"{url}/metrics").status_code == 401
    text = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    assert 'tuneloop_requests_total{endpoint="chat.completions",model="triage:v1",status="200"}' in text
    assert "tuneloop_decode_steps_total" in text and "tuneloop_decode_rows_total" in text
