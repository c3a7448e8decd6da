"""A seeded product handbook for the fictional company, and QA pairs drawn from it.

The handbook is raw text (one paragraph per fact sheet section), the unsupervised material of
continued pre-training; the QA file asks about the same facts with the paragraph as context,
so the same seed gives both a ``cpt`` and a ``qa`` example that run offline.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tuneloop.demo.tickets import COMPANY, PRODUCTS

PLANS = ("Starter", "Team", "Business", "Enterprise")
REGIONS = ("Frankfurt", "Dublin", "Virginia", "Oregon", "Singapore", "Sydney", "Sao Paulo", "Tokyo")

# (fact key, question, ways of stating it); {p} product, {v} value, {f} one of its features
FACTS = (
    ("retention", "How many days does {p} keep deleted items?", (
        "{p} keeps deleted items for {v} days before they are purged.",
        "Anything removed in {p} can be recovered for {v} days.",
        "Deleted data stays in the {p} trash for {v} days.",
    )),
    ("seats", "How many users does the {p} Starter plan include?", (
        "The Starter plan of {p} includes {v} users.",
        "{p} Starter comes with {v} user seats.",
        "Up to {v} people can use {p} on the Starter plan.",
    )),
    ("price", "What does the {p} Team plan cost per user per month?", (
        "{p} Team costs {v} per user per month.",
        "The Team plan of {p} is billed at {v} per user each month.",
        "Each {p} Team seat is {v} a month.",
    )),
    ("region", "Where is {p} data hosted by default?", (
        "By default {p} stores customer data in {v}.",
        "New {p} workspaces are hosted in {v} unless another region is chosen.",
        "{p} runs out of the {v} region by default.",
    )),
    ("sla", "What uptime does the {p} Enterprise plan guarantee?", (
        "{p} Enterprise guarantees {v} uptime.",
        "The Enterprise SLA of {p} promises {v} availability.",
        "On Enterprise, {p} is backed by a {v} uptime commitment.",
    )),
)
FILLERS = (
    "Customers rely on {f} every day.",
    "The {f} feature was redesigned last year.",
    "Admins can switch on {f} in the settings page.",
    "The {f} feature is available on every plan.",
)


def draw_facts(rng: random.Random) -> dict[str, dict[str, str]]:
    """Per product: one value per fact key."""
    return {
        product: {
            "retention": str(rng.choice((7, 14, 30, 45, 60, 90))),
            "seats": str(rng.choice((3, 5, 10, 15, 25))),
            "price": f"${rng.choice((4, 6, 8, 9, 12, 15, 19))}",
            "region": rng.choice(REGIONS),
            "sla": rng.choice(("99.5%", "99.9%", "99.95%", "99.99%")),
        }
        for product in PRODUCTS
    }


def handbook_paragraphs(n: int, seed: int) -> list[tuple[str, str, str, str]]:
    """``n`` paragraphs as (paragraph, product, fact key, value); several phrasings per fact."""
    rng = random.Random(seed)
    facts = draw_facts(rng)
    paragraphs = []
    for index in range(n):
        product = rng.choice(sorted(PRODUCTS))
        key, _, phrasings = rng.choice(FACTS)
        value = facts[product][key]
        feature = rng.choice(PRODUCTS[product]["features"])
        sentences = [rng.choice(phrasings).format(p=product, v=value), rng.choice(FILLERS).format(f=feature)]
        rng.shuffle(sentences)
        intro = f"{COMPANY} handbook, {product} section {index + 1}."
        paragraphs.append((" ".join([intro, *sentences]), product, key, value))
    return paragraphs


def write_handbook(path: str | Path, n: int = 300, seed: int = 0) -> Path:
    """The handbook as plain text, one paragraph per blank-line-separated block (format ``text``)."""
    path = Path(path)
    path.write_text("\n\n".join(p for p, *_ in handbook_paragraphs(n, seed)) + "\n", encoding="utf-8")
    return path


def write_qa(path: str | Path, n: int = 300, seed: int = 0) -> Path:
    """JSONL rows with ``context``, ``question`` and ``answer`` drawn from handbook paragraphs."""
    questions = {key: question for key, question, _ in FACTS}
    rows = [
        {"context": paragraph, "question": questions[key].format(p=product), "answer": value}
        for paragraph, product, key, value in handbook_paragraphs(n, seed)
    ]
    path = Path(path)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
