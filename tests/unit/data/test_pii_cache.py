"""The PII scrub's findings kept between runs (:mod:`tuneloop.data.pii_cache`): a second read of a file
takes them from the cache; a changed file, minimum score or scrubber misses; a damaged cache file is
ignored and written again; the cache holds no text; a cache that cannot be written costs no run."""

from __future__ import annotations

import csv
import json

import pytest

from tuneloop.config import DataConfig
from tuneloop.data import pii_cache
from tuneloop.data.pii import PiiSpan, text_digest
from tuneloop.data.pii_cache import PiiCache, read_findings
from tuneloop.data.validate import load_examples

ROWS = [
    {"question": "I'm Olivia Thompson, mail me at olivia@fjord.io", "answer": "Refunded."},
    {"question": "Call +1 201-555-0123 about Beacon", "answer": "Done for bo@acme.com."},
]
SCRUBBED = [
    ("I'm <NAME_1>, mail me at <EMAIL_1>", "Refunded."),
    ("Call <PHONE_1> about Beacon", "Done for <EMAIL_1>."),
]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TUNELOOP_CACHE", str(folder))
    return folder


def write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def scrubbed_rows(path, **fields) -> list[tuple[str, str]]:
    config = DataConfig(path=[str(path)], format="prompt_completion", columns={"prompt": "question", "completion": "answer"}, scrub_pii=True, **fields)
    return [(e.messages[0]["content"], e.messages[1]["content"]) for e in load_examples(config).examples]


def cache_files(cache_dir) -> list:
    return sorted((cache_dir / "pii").glob("*.json"))


def plant(cache_file, text: str, entry: list) -> None:
    """A detection in ``text`` that only the cache knows of (the analyzer finds nothing in "Refunded.")."""
    stored = json.loads(cache_file.read_text())
    stored["findings"][text_digest(text)] = [entry]
    cache_file.write_text(json.dumps(stored))


def test_a_second_read_takes_the_findings_from_the_cache_which_holds_no_text(tmp_path, cache_dir):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    assert scrubbed_rows(data) == SCRUBBED
    [cache_file] = cache_files(cache_dir)
    stored = cache_file.read_text()
    assert not [value for value in ("Olivia", "Thompson", "fjord", "acme", "201-555", "Refunded") if value in stored]
    plant(cache_file, "Refunded.", [0, 8, "NAME", 0.85])
    assert scrubbed_rows(data) == [("I'm <NAME_1>, mail me at <EMAIL_1>", "<NAME_2>."), SCRUBBED[1]]


def test_a_changed_file_misses(tmp_path, cache_dir):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    scrubbed_rows(data)
    [cache_file] = cache_files(cache_dir)
    plant(cache_file, "Refunded.", [0, 8, "NAME", 0.85])
    write_csv(data, [*ROWS, {"question": "Hello again", "answer": "Hi."}])
    assert scrubbed_rows(data)[:2] == SCRUBBED  # the planted detection belongs to the old file
    assert len(cache_files(cache_dir)) == 2


def test_another_minimum_score_or_scrubber_version_misses(tmp_path, cache_dir, monkeypatch):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    scrubbed_rows(data)
    assert PiiCache(data).findings and PiiCache(data, min_score=0.5).findings == {}
    monkeypatch.setattr(pii_cache, "scrubber_version", lambda: "another release of presidio")
    assert PiiCache(data).findings == {}


def test_the_allow_list_applies_after_the_cache(tmp_path, cache_dir):
    """The allow list is not part of the key: the same findings serve another list, which still applies."""
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    assert scrubbed_rows(data) == SCRUBBED
    allowed = scrubbed_rows(data, pii_allow=["Olivia Thompson"])
    assert allowed == [("I'm Olivia Thompson, mail me at <EMAIL_1>", "Refunded."), SCRUBBED[1]]
    assert len(cache_files(cache_dir)) == 1


DAMAGED = {
    "empty": "",
    "truncated": '{"key": {"format": 1, "file_sh',
    "not an object": "[]",
    "a digest that is not one": None,  # written by the test from the real file
    "an unknown type": None,
    "a span past the text's end": None,
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_cache_file_is_ignored_and_written_again(tmp_path, cache_dir, damage):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    scrubbed_rows(data)
    [cache_file] = cache_files(cache_dir)
    good = json.loads(cache_file.read_text())
    if DAMAGED[damage] is not None:
        cache_file.write_text(DAMAGED[damage])
    elif damage == "a digest that is not one":
        cache_file.write_text(json.dumps({**good, "findings": {**good["findings"], "not-a-digest": []}}))
    elif damage == "an unknown type":
        plant(cache_file, "Refunded.", [0, 8, "PASSWORD", 0.85])
    else:
        plant(cache_file, "Refunded.", [0, 80, "NAME", 0.85])
    assert scrubbed_rows(data) == SCRUBBED
    assert json.loads(cache_file.read_text()) == good
    assert [path.name for path in cache_file.parent.iterdir()] == [cache_file.name]  # no temp file left


def test_a_cache_that_cannot_be_written_costs_no_run(tmp_path, monkeypatch, capsys):
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("TUNELOOP_CACHE", str(blocked))
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    assert scrubbed_rows(data) == SCRUBBED
    assert "PII cache not written" in capsys.readouterr().err


def test_read_findings_returns_what_save_wrote(tmp_path, cache_dir):
    data = write_csv(tmp_path / "tickets.csv", ROWS)
    cache = PiiCache(data)
    cache.findings[text_digest("Call Bo")] = [PiiSpan(5, 7, "NAME", 0.85)]
    cache.save()
    assert read_findings(cache.path, cache.key) == {text_digest("Call Bo"): [PiiSpan(5, 7, "NAME", 0.85)]}
    assert read_findings(cache.path, {**cache.key, "min_score": 0.9}) == {}


def test_without_tuneloop_cache_the_cache_lies_in_tuneloop_home(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNELOOP_CACHE", raising=False)
    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "home"))
    cache = PiiCache(write_csv(tmp_path / "tickets.csv", ROWS))
    assert cache.path.parent == tmp_path / "home" / "cache" / "pii"
