"""PII scrubbing (data/pii.py): checksums respected, placeholders numbered per row, overlaps, counts."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tuneloop.data.pii import PiiDetector, PiiSpan, is_plausible, scrub_example, scrub_texts, without_overlaps
from tuneloop.data.pii_labelled import (
    card_number,
    iban,
    iban_check_digits,
    iban_is_valid,
    labelled_pii_rows,
    luhn_check_digit,
    not_a_card,
    passes_luhn,
)
from tuneloop.data.schema import Example


@pytest.fixture(scope="module")
def detector():
    return PiiDetector()


def test_a_luhn_valid_card_is_replaced_and_a_failing_one_is_not(detector):
    # 4111 1111 1111 1111 is the textbook Luhn-valid test card; changing its last digit breaks the checksum.
    [text], counts = scrub_texts(["Charged on 4111 1111 1111 1111, not on 4111 1111 1111 1112."], detector)
    assert text == "Charged on <CARD_1>, not on 4111 1111 1111 1112."
    assert counts == Counter({"CARD": 1})


def test_a_mod97_valid_iban_is_replaced_and_one_with_wrong_check_digits_is_not(detector):
    # GB82 WEST 1234 5698 7654 32 is the ISO 13616 example IBAN; GB83 fails mod-97.
    [text], counts = scrub_texts(["Refund to GB82 WEST 1234 5698 7654 32 (GB83 WEST 1234 5698 7654 32 is closed)."], detector)
    assert text == "Refund to <IBAN_1> (GB83 WEST 1234 5698 7654 32 is closed)."
    assert counts == Counter({"IBAN": 1})


def test_the_same_value_keeps_its_placeholder_across_the_fields_of_a_row(detector):
    texts, counts = scrub_texts(
        ["Mail ana.lima@acme.com or bo@acme.com.", "Replying to ana.lima@acme.com, IP 203.0.113.9."], detector
    )
    assert texts == ["Mail <EMAIL_1> or <EMAIL_2>.", "Replying to <EMAIL_1>, IP <IP_1>."]
    assert counts == Counter({"EMAIL": 3, "IP": 1})


def test_numbering_starts_again_in_every_row(detector):
    first, _ = scrub_texts(["From bo@acme.com"], detector)
    second, _ = scrub_texts(["From cy@acme.com"], detector)
    assert first == ["From <EMAIL_1>"] and second == ["From <EMAIL_1>"]


def test_every_type_is_found_in_one_sentence(detector):
    text = ("I'm Olivia Thompson, olivia@fjord.io, +1 201-555-0123, card 4111-1111-1111-1111, IBAN DE89 3704 0044 0532 "
            "0130 00, from 198.51.100.7, SSN 536-22-8170, NINO AB 12 34 56 C, living at 42 Baker Street.")  # fmt: skip
    [scrubbed], counts = scrub_texts([text], detector)
    assert scrubbed == ("I'm <NAME_1>, <EMAIL_1>, <PHONE_1>, card <CARD_1>, IBAN <IBAN_1>, from <IP_1>, SSN <SSN_1>, "
                        "NINO <NINO_1>, living at <ADDRESS_1>.")  # fmt: skip
    assert set(counts) == {"NAME", "EMAIL", "PHONE", "CARD", "IBAN", "IP", "SSN", "NINO", "ADDRESS"}


def test_texts_analysed_in_a_batch_get_what_they_get_one_by_one(detector):
    """``analyse_all`` runs spaCy on a batch of texts (nlp.pipe): each text's detections are those of its own call."""
    texts = ["I'm Olivia Thompson, olivia@fjord.io, +1 201-555-0123, card 4111-1111-1111-1111, from 198.51.100.7.",
             "Refund to GB82 WEST 1234 5698 7654 32, ship to 7b Old Mill Lane, Apt 4.", "", "   ",
             "Ana Lima and Bo Chen wrote; SSN 536-22-8170, NINO AB 12 34 56 C.", "Beacon keeps crashing.",
             "Order 4111 1111 1111 1112 is late"] * 2  # fmt: skip
    batched = PiiDetector(known={})
    batched.analyse_all(texts)
    assert len(batched.known) == 5 and [batched.find(text) for text in texts] == [detector.find(text) for text in texts]
    assert any(batched.find(texts[0]))


def test_allowed_words_are_not_taken_for_names():
    text = "Beacon keeps crashing."
    assert PiiDetector(allow=["beacon"]).find(text) == []


def test_scrub_example_scrubs_turns_and_answers_but_not_labels(detector):
    example = Example("f.csv", 3, messages=({"role": "user", "content": "I am bo@acme.com"},
                                            {"role": "assistant", "content": "Noted, bo@acme.com."}))  # fmt: skip
    scrubbed, counts = scrub_example(example, detector)
    assert [turn["content"] for turn in scrubbed.messages] == ["I am <EMAIL_1>", "Noted, <EMAIL_1>."]
    assert (scrubbed.source, scrubbed.line, counts) == ("f.csv", 3, Counter({"EMAIL": 2}))
    labelled, _ = scrub_example(Example("f.csv", 4, text="Write to bo@acme.com", label="bo@acme.com"), detector)
    assert (labelled.text, labelled.label) == ("Write to <EMAIL_1>", "bo@acme.com")


def test_overlaps_keep_the_longest_then_the_more_reliable_type():
    nino, phone_inside = PiiSpan(0, 13, "NINO", 0.5), PiiSpan(3, 11, "PHONE", 0.75)
    assert without_overlaps([phone_inside, nino]) == [nino]
    ip, phone_same = PiiSpan(5, 19, "IP", 0.6), PiiSpan(5, 19, "PHONE", 0.75)
    assert without_overlaps([phone_same, ip]) == [ip]
    apart = [PiiSpan(20, 25, "NAME", 0.85), PiiSpan(0, 4, "EMAIL", 1.0)]
    assert without_overlaps(apart) == sorted(apart, key=lambda s: s.start)


def test_implausible_detections_are_dropped():
    assert not is_plausible("Order INV-2024", PiiSpan(0, 14, "NAME", 0.85))  # a name has no digits
    text = "old one NL70 NHWU 2742 1922 44 closed"  # an IBAN shape that failed mod-97
    assert not is_plausible(text, PiiSpan(text.index("2742"), text.index(" closed"), "PHONE", 0.4))
    text = "ticket 12-345-6789-0"  # digits go on after the span
    assert not is_plausible(text, PiiSpan(7, 18, "PHONE", 0.4))
    assert not is_plausible("order 4996411212833794", PiiSpan(6, 22, "PHONE", 0.75))  # 16 digits: no phone number
    assert is_plausible("call +1 201-555-0123 now", PiiSpan(5, 20, "PHONE", 0.75))


def test_luhn_and_mod97_helpers_match_known_values():
    assert luhn_check_digit("7992739871") == "3"  # the worked example of the Luhn algorithm
    assert passes_luhn("4111 1111 1111 1111") and not passes_luhn("4111 1111 1111 1112")
    assert iban_check_digits("GB", "WEST12345698765432") == "82"
    assert iban_check_digits("DE", "370400440532013000") == "89"
    assert iban_is_valid("DE89 3704 0044 0532 0130 00") and not iban_is_valid("DE88 3704 0044 0532 0130 00")


def test_generated_values_are_valid_by_construction_and_look_alikes_are_not():
    rng = random.Random(3)
    for _ in range(300):
        assert passes_luhn(card_number(rng)) and not passes_luhn(not_a_card(rng))
        assert iban_is_valid(iban(rng)) and not iban_is_valid(iban(rng, valid=False))


def test_labelled_rows_are_seeded_and_their_spans_point_at_their_values():
    rows = labelled_pii_rows(4, seed=5)
    assert rows == labelled_pii_rows(4, seed=5) and rows != labelled_pii_rows(4, seed=6)
    assert len(rows) == 4 * 9 + 4
    assert all(row.text[s.start : s.end] == s.value for row in rows for s in row.spans)
    assert sum(not row.spans for row in rows) == 4  # the look-alike rows
