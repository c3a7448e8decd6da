"""The generated preference pairs: deterministic, and every pair ranked by the rule alone."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tuneloop.demo.preferences import MAX_WORDS, RULES, broken_rules, generate_preference_pairs, rule_share, sent_replies, ticket_id_of, word_count


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_preference_pairs(300, seed=0)


def ticket_id(row: dict) -> str:
    return re.search(r"NW-\d+", row["prompt"]).group()


def test_same_seed_same_rows_and_one_ticket_per_row(rows):
    assert generate_preference_pairs(300, seed=0) == rows
    assert generate_preference_pairs(20, seed=1) != rows[:20]
    assert len({row["prompt"] for row in rows}) == len(rows)  # no prompt shared across splits


def test_chosen_keeps_the_rule_and_rejected_breaks_what_it_says(rows):
    for row in rows:
        assert broken_rules(row["chosen"], ticket_id(row)) == []
        assert broken_rules(row["rejected"], ticket_id(row)) == row["broken"] != []
        assert word_count(row["chosen"]) <= MAX_WORDS


def test_every_rule_is_broken_often_and_alone(rows):
    alone = Counter(row["broken"][0] for row in rows if len(row["broken"]) == 1)
    assert set(alone) == set(RULES) and min(alone.values()) >= 50
    assert 0.15 < sum(len(row["broken"]) == 2 for row in rows) / len(rows) < 0.35


def test_the_checker_reads_each_rule():
    polite = "Hi Ana,\n\nThank you for contacting us about ticket NW-10007. It is fixed.\n\nBest regards,\nTom"
    assert broken_rules(polite, "NW-10007") == []
    assert broken_rules(polite, "NW-10008") == ["ticket"]
    assert broken_rules("NW-10007: fixed. Stop wasting our time.", "NW-10007") == ["polite"]
    assert broken_rules(polite.replace("It is fixed.", "word " * MAX_WORDS), "NW-10007") == ["short"]


def test_sent_replies_ramble_on_most_tickets_and_keep_the_other_rules():
    sent = sent_replies(300, seed=0)
    assert sent == sent_replies(300, seed=0)
    assert [r["prompt"] for r in sent] == [r["prompt"] for r in generate_preference_pairs(300, seed=0)]
    broken = [broken_rules(r["completion"], ticket_id_of(r["prompt"])) for r in sent]
    assert all(b in ([], ["short"]) for b in broken)
    assert 0.6 < sum(b == ["short"] for b in broken) / len(sent) < 0.8
    assert rule_share([r["completion"] for r in sent], [r["prompt"] for r in sent]) == sum(b == [] for b in broken) / len(sent)


def test_the_ticket_id_is_read_back_from_the_prompt(rows):
    assert ticket_id_of(rows[0]["prompt"]) in rows[0]["chosen"]
    with pytest.raises(ValueError, match="not a ticket prompt"):
        ticket_id_of("Hello there")
