"""A seeded Alpaca-style instruction mix (instruction / input / output) for Northwind Cloud.

The rows are what a support organisation would fine-tune an assistant on: summarise a ticket,
extract its fields as JSON, polish an agent's draft reply, answer a policy question, describe a
product, translate a phrase list, and, less often, digest a pasted ticket thread or answer from
a handbook excerpt. Every output follows from its instruction and input, so a small model can
learn the mix.

Lengths are long-tailed on purpose, as in real instruction data and because that is what makes
padding expensive: most rows are short (roughly 60-150 tokens with a chat template), about one
in eight carries a pasted thread or excerpt that brings it close to 512 tokens. Tickets and
handbook facts come from :mod:`tuneloop.demo.tickets` and :mod:`tuneloop.demo.knowledge`, so the
same fictional company, products and customers appear everywhere.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from tuneloop.atomic import write_text_atomic
from tuneloop.demo.knowledge import FACTS, draw_facts, handbook_paragraphs
from tuneloop.demo.tickets import COMPANY, PRODUCTS, generate_tickets

FIELDS = ("instruction", "input", "output")
TICKET_POOL = 300  # fixed, so the first k of n rows are the same rows for every n >= k

# Short kinds first; the last two paste a long input and make the long tail (about 13% of rows).
KIND_WEIGHTS = {
    "summarise_ticket": 17,
    "extract_fields": 17,
    "polish_reply": 14,
    "policy_question": 16,
    "product_description": 9,
    "translate_phrases": 14,
    "summarise_thread": 7,
    "handbook_question": 6,
}
LONG_KINDS = ("summarise_thread", "handbook_question")
# Characters of pasted input in a long row, drawn per row. Measured with the SmolLM2 tokenizer, a
# thread (names, addresses, dates) runs ~2.6 characters a token and a handbook excerpt ~3.9, with
# ~60-80 tokens of template, instruction and answer around them: both spread over ~250-505 tokens.
THREAD_CHARS = (480, 1060)
EXCERPT_CHARS = (700, 1650)

AGENTS = ["Marta (Northwind Support)", "Jonas from Northwind", "Priya, Support Engineer", "Tom | Northwind Cloud"]
CATEGORY_PHRASES = {
    "billing": "a billing problem",
    "bug": "a bug",
    "account": "an account access problem",
    "feature_request": "a feature request",
    "how_to": "a how-to question",
    "outage": "an outage",
}
NEXT_STEPS = {
    "billing": "billing to check the invoice and confirm any refund in writing",
    "bug": "engineering to reproduce the error and share a fix date",
    "account": "an admin to verify the requester and restore access",
    "feature_request": "product to log the request and tell the customer where it stands",
    "how_to": "support to send the help-center link and confirm it solved the question",
    "outage": "the on-call engineer to post a status update and a post-mortem",
}

# (terse agent draft, the reply it should become); {first} customer, {agent} signature.
REPLY_DRAFTS = {
    "billing": [
        ("checked {invoice}, u were charged twice. refund {amount} on its way, 5-7 days",
         "Hi {first},\n\nThank you for flagging this. I checked invoice {invoice} and you were indeed charged twice. "
         "A refund of {amount} is on its way and should reach your account within 5-7 business days.\n\n"
         "Best regards,\n{agent}"),
        ("seats fixed, next invoice will be {amount}. old one credited",
         "Hi {first},\n\nI have corrected the seat count on your workspace. Your next invoice will be {amount}, "
         "and the difference on the previous one has been credited to your account.\n\nKind regards,\n{agent}"),
    ],
    "bug": [
        ("known bug, fix ships {weekday}. workaround: reload page after save",
         "Hi {first},\n\nThanks for the detailed report. This is a known bug and the fix ships on {weekday}. "
         "Until then, reloading the page after saving keeps your changes.\n\nSorry for the trouble,\n{agent}"),
        ("cant reproduce. pls send browser + screenshot",
         "Hi {first},\n\nThank you for reporting this. We have not been able to reproduce it yet. Could you "
         "send us the browser you are using and a screenshot of the error? That will help us find the "
         "cause quickly.\n\nBest regards,\n{agent}"),
    ],
    "account": [
        ("reset 2fa, u can log in now, set it up again",
         "Hi {first},\n\nI have reset two-factor authentication on your account, so you can log in again now. "
         "Please set it up again right after logging in to keep your account safe.\n\nBest regards,\n{agent}"),
        ("ownership moved to {colleague}. they got an email",
         "Hi {first},\n\nThe workspace ownership has been transferred to {colleague}, who has received a "
         "confirmation email. Let us know if anything else needs to change.\n\nKind regards,\n{agent}"),
    ],
    "feature_request": [
        ("logged it for product team, no date yet",
         "Hi {first},\n\nThank you for the suggestion. I have passed it on to our product team. There is no "
         "release date yet, but we will let you know as soon as it is planned.\n\nBest regards,\n{agent}"),
    ],
    "how_to": [
        ("settings > workspace > timezone. done",
         "Hi {first},\n\nYou can change it under Settings > Workspace > Timezone; the new value applies to "
         "every view right away.\n\nHappy to help if anything is unclear,\n{agent}"),
    ],
    "outage": [
        ("was an outage in {region}, fixed {time}. postmortem friday",
         "Hi {first},\n\nWe had an outage in our {region} region, which has been resolved since {time}. "
         "We are sorry for the disruption; a full post-mortem will be published on Friday.\n\n"
         "Best regards,\n{agent}"),
    ],
}  # fmt: skip

# One support phrase per row, in English, German, Spanish and French.
PHRASES = [
    ("Thank you for your patience.", "Vielen Dank für Ihre Geduld.", "Gracias por su paciencia.",
     "Merci de votre patience."),
    ("We are looking into it.", "Wir sehen uns das an.", "Lo estamos revisando.", "Nous examinons la question."),
    ("Your refund has been issued.", "Ihre Rückerstattung wurde veranlasst.", "Su reembolso ha sido emitido.",
     "Votre remboursement a été effectué."),
    ("Please reset your password.", "Bitte setzen Sie Ihr Passwort zurück.", "Por favor, restablezca su contraseña.",
     "Veuillez réinitialiser votre mot de passe."),
    ("The issue has been resolved.", "Das Problem wurde behoben.", "El problema se ha resuelto.",
     "Le problème a été résolu."),
    ("Could you send us a screenshot?", "Könnten Sie uns einen Screenshot schicken?",
     "¿Podría enviarnos una captura de pantalla?", "Pourriez-vous nous envoyer une capture d'écran ?"),
    ("Your invoice is attached.", "Ihre Rechnung ist beigefügt.", "Adjuntamos su factura.",
     "Votre facture est jointe."),
    ("We apologise for the inconvenience.", "Wir entschuldigen uns für die Unannehmlichkeiten.",
     "Disculpe las molestias.", "Nous nous excusons pour la gêne occasionnée."),
    ("Is there anything else we can help with?", "Können wir Ihnen sonst noch helfen?",
     "¿Podemos ayudarle en algo más?", "Pouvons-nous vous aider avec autre chose ?"),
    ("The service is available again.", "Der Dienst ist wieder verfügbar.", "El servicio vuelve a estar disponible.",
     "Le service est de nouveau disponible."),
]  # fmt: skip
LANGUAGES = ("German", "Spanish", "French")

FOLLOW_UPS = [
    "Any update on this? We are still seeing the same thing this morning.",
    "I tried what you suggested but nothing changed. Could someone take another look?",
    "Just checking in again. My manager is asking when this will be sorted.",
    "Adding my colleague in copy. It happened again today, twice in a row.",
    "Thanks for the quick answer. One more question: does this affect the other workspaces too?",
]
AGENT_REPLIES = [
    "Thanks for reaching out. I have forwarded this to the team responsible and will update you shortly.",
    "Sorry for the delay. Could you tell us roughly when it started and whether other users see it too?",
    "We are still investigating. I will get back to you as soon as we know more.",
    "Thank you for the extra details, they help. The team is working on it now.",
]


def generate_instructions(n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct rows with ``instruction``, ``input`` (may be empty) and ``output``; seeded."""
    rng = random.Random(seed)
    tickets = generate_tickets(TICKET_POOL, seed)
    facts = draw_facts(random.Random(seed))
    paragraphs = handbook_paragraphs(120, seed)
    rows, seen = [], set()
    while len(rows) < n:
        kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        row = MAKERS[kind](rng, tickets, facts, paragraphs)
        key = (row["instruction"], row["input"])
        if key not in seen:  # a repeated prompt would let validation rows leak into training
            seen.add(key)
            rows.append(row)
    return rows


def write_instructions_jsonl(path: str | Path, n: int = 64, seed: int = 0) -> Path:
    """Write ``generate_instructions(n, seed)`` as JSONL (format ``alpaca``), atomically."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in generate_instructions(n, seed)]
    return write_text_atomic(path, "".join(lines))


# --- short rows ------------------------------------------------------------------------------


def ticket_text(ticket: dict) -> str:
    """A ticket as an agent pastes it from the helpdesk: header lines, then the message."""
    return (
        f"From: {ticket['customer_name']} <{ticket['customer_email']}>\nChannel: {ticket['channel']}\n"
        f"Subject: {ticket['subject']}\n\n{ticket['body']}"
    )


def summarise_ticket(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    ticket = rng.choice(tickets)
    instruction = rng.choice([
        "Summarise this support ticket in one sentence for the on-call engineer.",
        "Give a one-line summary of the ticket below.",
        "Write a one-sentence summary of this ticket for the team channel.",
    ])  # fmt: skip
    human = " and asks to speak to a person" if ticket["needs_human"] else ""
    output = (
        f"{ticket['customer_name']} reports {CATEGORY_PHRASES[ticket['category']]} with {ticket['product']}{human}; "
        f"priority {ticket['priority']}."
    )
    return row(instruction, ticket_text(ticket), output)


def extract_fields(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    ticket = rng.choice(tickets)
    if rng.random() < 0.6:
        keys = ["category", "priority", "product", "needs_human"]
        instruction = "Extract the triage fields from this ticket as JSON with the keys " + ", ".join(keys) + "."
        fields = {key: ticket[key] for key in keys}
    else:
        instruction = "Extract the customer's contact details from this ticket as JSON (name, email, channel)."
        fields = {"name": ticket["customer_name"], "email": ticket["customer_email"], "channel": ticket["channel"]}
    return row(instruction, ticket_text(ticket), json.dumps(fields, ensure_ascii=False))


def polish_reply(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    ticket = rng.choice(tickets)
    draft, reply = rng.choice(REPLY_DRAFTS[ticket["category"]])
    slots = {
        "first": ticket["customer_name"].split()[0],
        "agent": rng.choice(AGENTS),
        "invoice": f"INV-2024-{rng.randint(1000, 9999)}",
        "amount": f"{rng.choice(['$', '€', '£'])}{rng.choice([29, 49, 79, 99, 129, 199])}.00",
        "weekday": rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday"]),
        "colleague": ticket["customer_name"].split()[0] + "'s colleague " + rng.choice(["Nora Kim", "Omar Silva"]),
        "region": facts[ticket["product"]]["region"],
        "time": rng.choice(["09:40 UTC", "11:15 CET", "14:05 UTC"]),
    }
    instruction = rng.choice([
        f"Rewrite this draft reply to {slots['first']} so it is polite, complete and ready to send.",
        f"Turn the agent's rough notes below into a friendly, professional email reply to {slots['first']}.",
    ])  # fmt: skip
    return row(instruction, draft.format(**slots), reply.format(**slots))


def policy_question(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    paragraph, product, key, value = rng.choice(paragraphs)
    question, phrasings = next((q, p) for k, q, p in FACTS if k == key)
    answer = rng.choice(phrasings).format(p=product, v=value)
    context = paragraph if rng.random() < 0.5 else ""  # closed-book half the time
    prefix = "Answer the customer's question using the handbook paragraph. " if context else "Answer the customer's question. "
    return row(prefix + question.format(p=product), context, answer)


def product_description(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    product = rng.choice(sorted(PRODUCTS))
    audience = rng.choice(["small agencies", "IT teams", "finance departments", "customer support teams", "schools"])
    features = rng.sample(PRODUCTS[product]["features"], 3)
    fact = facts[product]
    instruction = f"Write a two-sentence product description of {COMPANY} {product} for {audience}."
    output = (
        f"{product} gives {audience} {features[0]}, {features[1]} and {features[2]} in one place. "
        f"The Team plan costs {fact['price']} per user a month, and data is hosted in {fact['region']} by default."
    )
    return row(instruction, "", output)


def translate_phrases(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    language = rng.choice(LANGUAGES)
    column = 1 + LANGUAGES.index(language)
    chosen = rng.sample(PHRASES, rng.randint(2, 5))
    instruction = f"Translate these support phrases into {language}, one per line."
    return row(instruction, "\n".join(p[0] for p in chosen), "\n".join(p[column] for p in chosen))


# --- long rows: a pasted thread or handbook excerpt -------------------------------------------


def summarise_thread(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    """A ticket and its back-and-forth, pasted as an email thread, grown to a drawn length."""
    ticket = rng.choice(tickets)
    when = datetime.fromisoformat(ticket["created_at"])
    messages = [thread_message(ticket["customer_name"], ticket["customer_email"], when, ticket["body"])]
    budget = rng.randint(*THREAD_CHARS) - len(messages[0])
    customer_turns, agent_turns = 1, 0
    while True:  # alternate support and customer until the next message would not fit
        when += timedelta(hours=rng.randint(1, 30))
        from_support = len(messages) % 2 == 1
        if from_support:
            message = thread_message(rng.choice(AGENTS), "support@northwind.example", when, rng.choice(AGENT_REPLIES))
        else:
            message = thread_message(ticket["customer_name"], ticket["customer_email"], when, rng.choice(FOLLOW_UPS))
        if len(message) > budget and len(messages) > 1:
            break
        messages.append(message)
        budget -= len(message)
        agent_turns += from_support
        customer_turns += not from_support
    instruction = "Summarise this ticket thread for the hand-over: customer, product, issue, history and next step."
    output = "\n".join([
        f"- Customer: {ticket['customer_name']} ({ticket['customer_email']})",
        f"- Product: {ticket['product']}",
        f"- Issue: {CATEGORY_PHRASES[ticket['category']]}, priority {ticket['priority']}, "
        f"opened {ticket['created_at'][:10]}",
        f"- History: {customer_turns} customer messages, {agent_turns} support replies, still open",
        f"- Next step: {NEXT_STEPS[ticket['category']]}",
    ])  # fmt: skip
    return row(instruction, f"Subject: {ticket['subject']}\n\n" + "\n\n".join(messages), output)


def thread_message(sender: str, email: str, when: datetime, text: str) -> str:
    return f"From: {sender} <{email}>\nDate: {when:%a %d %b %Y %H:%M}\n\n{text}"


def handbook_question(rng: random.Random, tickets: list[dict], facts: dict, paragraphs: list) -> dict:
    """A question answered by one paragraph of a pasted handbook excerpt of drawn length."""
    budget = rng.randint(*EXCERPT_CHARS)
    start = rng.randrange(len(paragraphs))
    excerpt = []
    while len(excerpt) < len(paragraphs):  # consecutive paragraphs while the next still fits
        paragraph = paragraphs[(start + len(excerpt)) % len(paragraphs)]
        if len(paragraph[0]) > budget and excerpt:
            break
        excerpt.append(paragraph)
        budget -= len(paragraph[0]) + 2
    paragraph, product, key, value = rng.choice(excerpt)
    question, phrasings = next((q, p) for k, q, p in FACTS if k == key)
    section = paragraph.split(",", 1)[1].split(".", 1)[0].strip()  # "Vault section 12"
    instruction = "Using only the handbook excerpt, answer: " + question.format(p=product) + " Cite the section."
    answer = rng.choice(phrasings).format(p=product, v=value) + f" (Source: {section}.)"
    return row(instruction, "\n\n".join(p for p, *_ in excerpt), answer)


def row(instruction: str, input_text: str, output: str) -> dict:
    return {"instruction": instruction, "input": input_text, "output": output}


MAKERS = {
    "summarise_ticket": summarise_ticket,
    "extract_fields": extract_fields,
    "polish_reply": polish_reply,
    "policy_question": policy_question,
    "product_description": product_description,
    "translate_phrases": translate_phrases,
    "summarise_thread": summarise_thread,
    "handbook_question": handbook_question,
}
