"""Seeded preference pairs over support replies, with a rule a person would hold.

A reply to a ticket is preferred when it keeps all three of:

- **polite**: it greets the customer, thanks them or apologises, and contains none of the rude lines;
- **cites the ticket**: it names the ticket's id (``NW-10001``);
- **short**: at most ``MAX_WORDS`` words.

Each row is a ticket (``prompt``), a reply keeping the rule (``chosen``) and the same reply made to
break one or two of the three (``rejected``), so a reward model can only rank the pair right by
learning the rule. ``broken_rules`` checks any reply against the rule (for a policy's answers too).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from tuneloop.atomic import write_text_atomic
from tuneloop.demo.instructions import AGENTS
from tuneloop.demo.tickets import generate_tickets

MAX_WORDS = 60
RULES = ("polite", "ticket", "short")
# How often the rejected reply breaks one rule, and two.
BROKEN_COUNT_WEIGHTS = {1: 3, 2: 1}

GREETINGS = ["Hi {first},", "Hello {first},", "Dear {first},"]
SIGN_OFFS = ["Best regards,", "Kind regards,", "Many thanks,", "Warm regards,"]
# (with the ticket id, without it): the courtesy a polite reply opens with.
COURTESIES = [
    ("Thank you for contacting us about ticket {ticket}.", "Thank you for contacting us."),
    ("Thanks for reaching out; I have looked into ticket {ticket}.", "Thanks for reaching out; I have looked into this."),
    ("Sorry for the trouble with ticket {ticket}.", "Sorry for the trouble."),
    ("Thank you for your patience with ticket {ticket}.", "Thank you for your patience."),
    ("Thanks for the clear report in ticket {ticket}.", "Thanks for the clear report."),
]
RUDE_OPENERS = [
    "We have explained this many times already.",
    "Frankly, this should be obvious.",
    "You clearly did not read the help center.",
    "This is not a real problem.",
    "Honestly, this is your own mistake.",
]
RUDE_CLOSERS = [
    "Do not open another ticket about this.",
    "Figure out the rest yourself.",
    "That is all we are going to say.",
    "Stop wasting our time.",
]
# (with the ticket id, without it): how a rude reply cites the ticket, or does not.
RUDE_CITES = [("Ticket {ticket}:", ""), ("Re {ticket}.", ""), ("About {ticket}:", "")]
CORE = {
    "billing": [
        "I checked your latest invoice and corrected the amount; the difference is credited to your account.",
        "A refund for the double charge is on its way and should arrive within 5-7 business days.",
    ],
    "bug": [
        "Our engineers reproduced the error in {product} and a fix ships this week.",
        "This is a known issue in {product}; reloading the page after saving keeps your changes until the fix is out.",
    ],
    "account": [
        "I reset your sign-in, so you can log in again now.",
        "Your workspace access is restored; please set up two-factor authentication again.",
    ],
    "feature_request": [
        "I passed your suggestion for {product} to our product team and will tell you when it is planned.",
        "Your idea for {product} is logged with the product team; there is no date yet.",
    ],
    "how_to": [
        "You can change this in {product} under Settings > Workspace; the new value applies right away.",
        "The help-center article on {product} settings walks through it step by step.",
    ],
    "outage": [
        "The {product} outage is resolved and a full post-mortem follows on Friday.",
        "Service for {product} is back to normal since this morning and we are monitoring it closely.",
    ],
}  # fmt: skip
FILLER = [
    "As you may know, Northwind Cloud serves thousands of teams around the world every single day.",
    "Our engineers review every report carefully and discuss it in several internal meetings before they change anything.",
    "We also publish detailed release notes every two weeks on our status page and in the product newsletter.",
    "In addition, our documentation team is currently rewriting large parts of the help center for the next quarter.",
    "We are always working hard on improving the overall experience for all of our many valued customers.",
    "Many other customers have asked similar questions in the past, which is why we keep a long list of them.",
]  # fmt: skip


def generate_preference_pairs(n: int = 300, seed: int = 0) -> list[dict]:
    """``n`` rows ``{"prompt", "chosen", "rejected", "broken"}``, one ticket each; the same ``(n, seed)``
    always gives the same rows. ``broken`` lists the rules the rejected reply breaks."""
    rng = random.Random(seed)
    return [preference_row(rng, ticket) for ticket in generate_tickets(n, seed)]


def write_preference_pairs(path: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write ``generate_preference_pairs(n, seed)`` as JSONL (format ``pairs``), atomically."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in generate_preference_pairs(n, seed)]
    return write_text_atomic(path, "".join(lines))


def ratings_of_pairs(pairs: list[dict]) -> list[dict]:
    """Each pair as two rated answers (format ``ratings``, for KTO): the chosen reply good, the rejected bad."""
    rows = []
    for pair in pairs:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": "good"})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": "bad", "broken": pair["broken"]})
    return rows


def write_ratings(path: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write the ``2 n`` ratings of ``generate_preference_pairs(n, seed)`` as JSONL (format ``ratings``), atomically."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in ratings_of_pairs(generate_preference_pairs(n, seed))]
    return write_text_atomic(path, "".join(lines))


def sent_replies(n: int = 300, seed: int = 0, ramble_share: float = 0.7) -> list[dict]:
    """The replies agents sent to ``generate_tickets(n, seed)``, for SFT (format ``prompt_completion``): polite
    and citing the ticket, but in a share ``ramble_share`` of them padded past ``MAX_WORDS`` words with filler.
    A model tuned on them rambles too, breaking the "short" rule on most tickets: the starting point
    alignment improves on. Seeded apart from the preference pairs, so the two are different replies."""
    rng = random.Random(f"sent-{seed}")
    rows = []
    for ticket in generate_tickets(n, seed):
        broken = ("short",) if rng.random() < ramble_share else ()
        rows.append({"prompt": ticket_prompt(ticket), "completion": reply(rng, reply_slots(rng, ticket), broken)})
    return rows


def write_sent_replies(path: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write ``sent_replies(n, seed)`` as JSONL, atomically."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in sent_replies(n, seed)]
    return write_text_atomic(path, "".join(lines))


def rule_share(answers: list[str], prompts: list[str]) -> float:
    """The share of ``answers`` that keep all three rules, each answering the ticket its prompt names."""
    kept = [not broken_rules(answer, ticket_id_of(prompt)) for answer, prompt in zip(answers, prompts, strict=True)]
    return sum(kept) / len(kept)


def ticket_id_of(prompt: str) -> str:
    """The ticket id a prompt of :func:`ticket_prompt` names."""
    found = re.search(r"\bticket (\S+) from\b", prompt)
    if found is None:
        raise ValueError(f"not a ticket prompt: {prompt[:60]!r}")
    return found.group(1)


def ticket_prompt(ticket: dict) -> str:
    return f"Write the reply to ticket {ticket['ticket_id']} from {ticket['customer_name']}.\nSubject: {ticket['subject']}"


def reply_slots(rng: random.Random, ticket: dict) -> dict:
    """What a reply to ``ticket`` says, drawn once so that the chosen and the rejected reply share it."""
    return {
        "first": ticket["customer_name"].split()[0],
        "ticket": ticket["ticket_id"],
        "product": ticket["product"],
        "agent": rng.choice(AGENTS),
        "core": rng.choice(CORE[ticket["category"]]).format(product=ticket["product"]),
        "courtesy": rng.randrange(len(COURTESIES)),
    }


def preference_row(rng: random.Random, ticket: dict) -> dict:
    slots = reply_slots(rng, ticket)
    count = rng.choices(list(BROKEN_COUNT_WEIGHTS), weights=list(BROKEN_COUNT_WEIGHTS.values()))[0]
    broken = sorted(rng.sample(RULES, count), key=RULES.index)
    return {"prompt": ticket_prompt(ticket), "chosen": reply(rng, slots, ()), "rejected": reply(rng, slots, broken), "broken": broken}


def reply(rng: random.Random, slots: dict, broken) -> str:
    """A reply to the ticket in ``slots`` that breaks exactly the rules in ``broken``."""
    cited = "ticket" not in broken
    if "polite" in broken:
        cite = rng.choice(RUDE_CITES)[0 if cited else 1].format(**slots)
        body = " ".join(part for part in (cite, rng.choice(RUDE_OPENERS), slots["core"], rng.choice(RUDE_CLOSERS)) if part)
        head, tail = "", slots["agent"]
    else:
        courtesy = COURTESIES[slots["courtesy"]][0 if cited else 1].format(**slots)
        body = f"{courtesy} {slots['core']}"
        head, tail = rng.choice(GREETINGS).format(**slots) + "\n\n", f"{rng.choice(SIGN_OFFS)}\n{slots['agent']}"
    if "short" in broken:
        fillers = rng.sample(FILLER, len(FILLER))
        while word_count(f"{head}{body}\n\n{tail}") <= MAX_WORDS + 10:
            body += " " + fillers.pop()
    return f"{head}{body}\n\n{tail}"


def word_count(text: str) -> int:
    return len(text.split())


def broken_rules(reply_text: str, ticket_id: str) -> list[str]:
    """The rules (of ``RULES``) that ``reply_text``, answering ticket ``ticket_id``, breaks."""
    greets = any(reply_text.startswith(greeting.split("{")[0]) for greeting in GREETINGS)
    courteous = re.search(r"\b(thank|thanks|sorry)\b", reply_text, re.IGNORECASE) is not None
    rude = any(line in reply_text for line in RUDE_OPENERS + RUDE_CLOSERS)
    checks = {"polite": greets and courteous and not rude, "ticket": ticket_id in reply_text, "short": word_count(reply_text) <= MAX_WORDS}
    return [rule for rule in RULES if not checks[rule]]
