"""The generated support export: deterministic, complete, and with labels readable from the text."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter

import pytest

from tuneloop.demo.tickets import (
    CATEGORIES,
    COLUMNS,
    PRIORITIES,
    PRODUCTS,
    PROMPT_TEMPLATE,
    SYSTEM_PROMPT,
    TARGET_COLUMNS,
    generate_tickets,
    write_tickets_csv,
)


@pytest.fixture(scope="module")
def tickets() -> list[dict]:
    return generate_tickets(600, seed=0)


def ticket_text(ticket: dict) -> str:
    return PROMPT_TEMPLATE.format(**ticket).lower()


def test_same_seed_same_rows_other_seed_other_rows():
    assert generate_tickets(50, seed=3) == generate_tickets(50, seed=3)
    assert generate_tickets(50, seed=3) != generate_tickets(50, seed=4)


def test_rows_have_every_column_and_valid_values(tickets):
    assert len(tickets) == 600
    for ticket in tickets:
        assert list(ticket) == COLUMNS
        assert ticket["category"] in CATEGORIES
        assert ticket["priority"] in PRIORITIES
        assert ticket["product"] in PRODUCTS
        assert isinstance(ticket["needs_human"], bool)
        assert ticket["channel"] in ("email", "chat", "web")
        assert "@" in ticket["customer_email"]
    assert len({t["ticket_id"] for t in tickets}) == 600


def test_created_at_is_iso_sorted_and_spread_over_months(tickets):
    dates = [t["created_at"] for t in tickets]
    assert dates == sorted(dates)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", d) for d in dates)
    assert len({d[:7] for d in dates}) >= 6


def test_every_label_value_occurs(tickets):
    for column, allowed, minimum in (("category", CATEGORIES, 40), ("priority", PRIORITIES, 50),
                                     ("product", tuple(PRODUCTS), 80), ("needs_human", (True, False), 60)):  # fmt: skip
        counts = Counter(t[column] for t in tickets)
        assert set(counts) == set(allowed), column
        assert min(counts.values()) >= minimum, (column, counts)


def test_product_is_named_or_implied_by_a_feature_in_nearly_every_row(tickets):
    def mentions(ticket: dict) -> bool:
        info = PRODUCTS[ticket["product"]]
        clues = [ticket["product"], *info["typos"], *info["features"]]
        return any(clue.lower() in ticket_text(ticket) for clue in clues)

    share = sum(mentions(t) for t in tickets) / len(tickets)
    assert share >= 0.97
    # ...and not every row spells the name out: some only use a feature, lower case or a typo.
    named = sum(t["product"] in PROMPT_TEMPLATE.format(**t) for t in tickets) / len(tickets)
    assert 0.4 < named < 0.9


def cue_priority(text: str) -> str:
    """A keyword rule; the generator's priority cues must be consistent enough for it to be exact."""
    if any(cue in text for cue in ("no rush", "not urgent", "nice-to-have", "low priority", "no hurry")):
        return "low"
    if any(cue in text for cue in ("production", "all users", "all of our users", "every customer", "emergency")):
        return "urgent"
    if any(cue in text for cue in ("asap", "deadline", "blocking", "blocked", "tomorrow")):
        return "high"
    return "medium"


def test_priority_follows_from_consistent_cues(tickets):
    for ticket in tickets:
        assert cue_priority(ticket_text(ticket)) == ticket["priority"], ticket_text(ticket)


def test_needs_human_rows_carry_an_escalation_cue(tickets):
    cues = ("a person", "real person", "human", "manager", "refund", "chargeback", "cancel", "legal team", "gdpr")
    for ticket in tickets:
        has_cue = any(cue in ticket_text(ticket) for cue in cues)
        assert has_cue == ticket["needs_human"], ticket_text(ticket)


def test_bodies_are_modest_in_length(tickets):
    lengths = [len(t["body"].split()) for t in tickets]
    assert 25 <= sum(lengths) / len(lengths) <= 60
    assert max(lengths) <= 130
    assert sum(10 <= n <= 70 for n in lengths) / len(lengths) >= 0.85


def test_bodies_contain_some_pii(tickets):
    bodies = " ".join(t["body"] for t in tickets)
    assert len(re.findall(r"[\w.]+@[\w.-]+\.example", bodies)) > 50
    assert len(re.findall(r"555[ -]0\d{3}", bodies)) > 30


def test_write_csv_round_trips_with_lowercase_booleans(tmp_path):
    path = write_tickets_csv(tmp_path / "out" / "tickets.csv", n=30, seed=1)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30
    assert list(rows[0]) == COLUMNS
    assert {r["needs_human"] for r in rows} <= {"true", "false"}
    assert rows[0]["body"] == generate_tickets(30, seed=1)[0]["body"]  # multi-line bodies survive quoting


def test_prompt_constants():
    assert TARGET_COLUMNS == ["category", "priority", "product", "needs_human"]
    for column in TARGET_COLUMNS:
        assert column in SYSTEM_PROMPT
    assert len(SYSTEM_PROMPT.split()) < 20
    json.dumps({c: "x" for c in TARGET_COLUMNS})
