"""A seeded, realistic customer-support export of the fictional SaaS company Northwind Cloud.

Every label is inferable from the ticket text, on purpose: the demo must show a small model
learning a real-looking task from a few hundred rows. The cues are consistent but varied:

- product: named in the subject or body (sometimes lower-cased or misspelt), or only
  implied by one of its distinctive feature names;
- category: follows from the problem described (each has its own family of templates);
- priority: "production down"/"all users" -> urgent, "asap"/deadline/blocked -> high,
  no cue -> medium, "no rush"/nice-to-have -> low;
- needs_human: refunds, chargebacks, cancellations, legal threats, angry escalations or an
  explicit request for a person.

Names, e-mail addresses and phone numbers are invented (555 numbers, fictional domains) but
look like the PII a real export contains.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta
from pathlib import Path

from tuneloop.atomic import write_text_atomic
from tuneloop.evaluate.bias_terms import GENDER_NAMES

COMPANY = "Northwind Cloud"

# Feature names are unique across products, so a ticket naming only a feature still pins the product.
PRODUCTS: dict[str, dict[str, list[str]]] = {
    "Beacon": {
        "features": ["uptime checks", "alert rules", "incident timeline", "on-call schedule"],
        "typos": ["Becon", "Beakon", "Baecon"],
    },
    "Relay": {
        "features": ["shared inbox", "chat widget", "canned replies", "SLA timers"],
        "typos": ["Realy", "Relai", "Rellay"],
    },
    "Vault": {
        "features": ["nightly backups", "file versioning", "restore points", "desktop sync client"],
        "typos": ["Vualt", "Valut", "Vaultt"],
    },
    "Canvas": {
        "features": ["dashboard builder", "pivot tables", "chart editor", "report sharing"],
        "typos": ["Canvass", "Canvs", "Cnavas"],
    },
    "Weave": {
        "features": ["automation recipes", "webhooks", "cron triggers", "approval flows"],
        "typos": ["Weeve", "Waeve", "Weav"],
    },
}

CATEGORIES = ("billing", "bug", "account", "feature_request", "how_to", "outage")
PRIORITIES = ("low", "medium", "high", "urgent")
CHANNELS = ("email", "chat", "web")
COLUMNS = [
    "ticket_id", "created_at", "channel", "customer_name", "customer_email",
    "subject", "body", "category", "priority", "product", "needs_human",
]  # fmt: skip

# It precedes every training and test example, so every word costs training time on a CPU: the
# fine-tuned model learns the label values from the data (listing them, 63 tokens instead of 16,
# left the base model's score at 0 as well: it never answered in JSON).
SYSTEM_PROMPT = "Triage the support ticket. Reply with JSON: category, priority, product, needs_human."
PROMPT_TEMPLATE = "Subject: {subject}\n\n{body}"
TARGET_COLUMNS = ["category", "priority", "product", "needs_human"]
# The demo trains on scrubbed tickets (data.scrub_pii); the name finder takes some product names
# ("Beacon") and the company for people, which would scrub the very cue the product label needs.
PII_ALLOW = [COMPANY, *(name for product, spec in PRODUCTS.items() for name in (product, *spec["typos"]))]

CATEGORY_WEIGHTS = {"billing": 18, "bug": 24, "account": 16, "feature_request": 12, "how_to": 18, "outage": 12}
# Per category, only the priorities a real ticket of that kind plausibly has (no "low" outage).
PRIORITY_WEIGHTS = {
    "billing": {"low": 15, "medium": 45, "high": 30, "urgent": 10},
    "bug": {"low": 15, "medium": 35, "high": 35, "urgent": 15},
    "account": {"low": 15, "medium": 40, "high": 30, "urgent": 15},
    "feature_request": {"low": 60, "medium": 40},
    "how_to": {"low": 35, "medium": 50, "high": 15},
    "outage": {"high": 35, "urgent": 65},
}
NEEDS_HUMAN_RATE = {"billing": 0.45, "bug": 0.15, "account": 0.25, "feature_request": 0.06, "how_to": 0.08, "outage": 0.2}
# How the product shows up in a ticket: its name, lower-cased, misspelt, or only via a feature.
MENTION_WEIGHTS = {"name": 55, "lower": 15, "typo": 10, "feature": 20}
GENERIC_PRODUCT_REFS = ["Northwind", "Northwind Cloud"]

SUBJECTS = {
    "billing": [
        "Double charge on {product}", "{product} invoice {invoice} is wrong", "Question about our {product} bill",
        "Payment failed for {product}", "Billing issue - {product}", "Wrong amount on {product} invoice",
        "{product} renewal price",
    ],
    "bug": [
        "{product} {feature} error", "Bug in {product}", "{feature} not working properly in {product}",
        "Problem with {product}", "Error {error} in {product}", "{product}: {feature} broken after update",
    ],
    "account": [
        "Can't log in to {product}", "{product} account access", "Login problem ({product})",
        "User access - {product}", "2FA issue on {product}", "{product} workspace owner change",
    ],
    "feature_request": [
        "Feature request: {product}", "Suggestion for {product}", "Idea: better {feature} in {product}",
        "Would love this in {product}", "{product} {feature} improvement",
    ],
    "how_to": [
        "Question about {product}", "How to use {feature} in {product}?", "{product} setup question",
        "Quick question on {product} {feature}", "Help with {product}",
    ],
    "outage": [
        "{product} down?", "{product} not loading", "Outage - {product}", "Cannot reach {product}",
        "{product} unavailable", "Is {product} down right now",
    ],
}

BODIES = {
    "billing": [
        "We were charged twice for our {product} subscription this month, {amount} each time. Can you check what happened?",
        "Our latest {product} invoice ({invoice}) shows {amount} but our plan should be {amount2}. It looks like the {feature} add-on was billed even though we never enabled it.",
        "My card was declined when renewing {product}, but the bank says everything is fine on their side. Can you retry the payment?",
        "We downgraded {product} to the Starter plan last month but we are still billed for Business seats.",
        "Why did our {product} bill go up from {amount2} to {amount}? Nobody added seats and we mostly use the {feature}.",
        "Our {product} invoice lists {count} seats but we only have {count2} active users. Several of them left the company months ago.",
        "Our annual {product} renewal was charged at the monthly price. We signed the annual contract in {month}.",
        "The {feature} overage on our {product} invoice makes no sense, we barely used it this month. Invoice {invoice}, {amount}.",
        "The payment for {product} failed and now there is a banner saying the workspace will be suspended for non-payment.",
    ],
    "bug": [
        "The {feature} in {product} throws error {error} every time I try to save changes. It started after yesterday's update.",
        "In {product} the {feature} screen shows the wrong timezone, everything is shifted by {hours} hours.",
        "When I export the {feature} from {product} to CSV the file comes out empty, even though the screen shows {count} rows.",
        "The {feature} page in {product} freezes in {browser} as soon as I scroll down. It works in other browsers.",
        "{product} keeps duplicating entries in the {feature}. We see every item two or three times.",
        "Since the last release {product} ignores the filters I set on the {feature}, it always shows everything.",
        "Clicking save in the {product} {feature} does nothing. No error message, the spinner just keeps spinning.",
        "The {feature} in {product} sends every notification twice for the same event.",
        "Search in {product} doesn't find anything in the {feature} older than last week.",
        "The numbers in the {product} {feature} don't match what the API returns. One of them is wrong.",
        "Attachments fail to upload in the {product} {feature} with 'unexpected error ({error})'.",
        "Sorting by date in the {product} {feature} puts {month} before January. Looks like it sorts the text, not the date.",
    ],
    "account": [
        "I can't log in to {product} anymore and the password reset email never arrives. My login is {email}.",
        "I lost my phone and can't get past two-factor authentication on {product}.",
        "Our {product} account owner left the company. We need to transfer the ownership to {name2} ({email2}).",
        "SSO login to {product} sends me back to the login page in a loop.",
        "A former employee still has access to our {product} workspace and I can't remove her, the button is greyed out.",
        "My {product} account got locked after too many login attempts.",
        "One of our teammates can't see the {feature} in {product}. I think his user role is missing a permission.",
    ],
    "feature_request": [
        "It would be great if the {product} {feature} could export to PDF.",
        "Any plans to add a dark mode to {product}? Especially the {feature} screen is very bright.",
        "Feature request: let us schedule the {feature} in {product} for specific weekdays only.",
        "Please consider adding a Slack integration to the {product} {feature}.",
        "Would love to see keyboard shortcuts in {product}, mainly for the {feature}.",
        "Suggestion: allow bulk editing in the {feature} of {product}. Doing it one by one takes forever.",
        "We would like an API endpoint for the {feature} in {product} so we can automate our reporting.",
        "Could you add custom fields to the {product} {feature}? We need one for the cost center.",
        "Idea for {product}: a mobile friendly version of the {feature}.",
        "It would help us if {product} supported more languages in the {feature}, German and Spanish specifically.",
    ],
    "how_to": [
        "How do I set up the {feature} in {product}? I can't find it in the settings.",
        "Is there a way to export everything from the {product} {feature} to Excel?",
        "What's the best way to connect {product} to our Google Workspace?",
        "Where do I change the default timezone for the {feature} in {product}?",
        "Can you point me to the docs for using the {feature} through the {product} API?",
        "How can I share a {feature} view in {product} with someone outside our team?",
        "Quick question: can {product} copy my {feature} setup to another project?",
        "I'm new to {product}. What's the difference between the {feature} and the regular view?",
        "How do I filter the {feature} in {product} by date range?",
        "Can I import our old data into the {product} {feature}? We have about {count} records in a spreadsheet.",
    ],
    "outage": [
        "{product} is completely down for us. Every page returns {error5xx}.",
        "We can't reach {product} at all since {time}. Nothing loads, not even the login page.",
        "The {product} API times out on every request since {time}. Nothing changed on our side.",
        "The {feature} in {product} stopped working completely and the whole app shows 'service unavailable'.",
        "Is {product} having an outage? It won't load for me since this morning, {error5xx}.",
        "{product} has been unreachable for {minutes} minutes. We get 'upstream connect error' from every region we tried.",
        "Everything in {product} is timing out, including the {feature}. Looks like a full outage on your side.",
        "{product} went down around {time}. Pages don't load and the mobile app can't connect either.",
    ],
}

# Routine requests: never paired with an "urgent" cue, which would read as nonsense.
MINOR_BODIES = {
    "billing": [
        "I need to change the credit card on file for {product}. The old one expires at the end of the month.",
        "Can you send a receipt for the last {product} payment? Our accounting team needs it with our company address on it.",
        "The VAT number on our {product} invoices is wrong. It should be {vat}. Please correct invoice {invoice} and the future ones.",
    ],
    "account": [
        "Please add {name2} ({email2}) as an admin on our {product} workspace.",
        "I need to change the email on my {product} account from {email} to {email2}.",
        "We accidentally created a second {product} workspace at sign-up. Please merge it into our main one.",
        "The invitation link to join our {product} team says it has expired, for {name2} and two others.",
    ],
}

PRIORITY_CUES = {
    "urgent": [
        "URGENT: production is down and all of our users are affected.",
        "Our production environment is down and every customer is impacted.",
        "Critical: all users are blocked and we are losing money every minute.",
        "This is taking down production for our whole company, please treat it as an emergency.",
        "All {count} of our users are affected right now. This is an emergency.",
    ],
    "high": [
        "Please fix this asap.",
        "We have a deadline on {weekday}, so we need this resolved asap.",
        "This is blocking my team from working, please look at it today.",
        "I need this sorted before our board meeting tomorrow.",
        "We are blocked until this is fixed, asap please.",
    ],
    "low": [
        "No rush, whenever you get a chance.",
        "Not urgent at all.",
        "Just a nice-to-have, take your time.",
        "Low priority on our side, just wanted to flag it.",
        "Whenever you have a moment is fine, no hurry.",
    ],
}
# "calm" cues also fit a low-priority ticket; "angry" ones would contradict it.
HUMAN_CUES = {
    "calm": [
        "I want to speak to a real person, not a bot.",
        "Please have a human call me back at {phone}.",
        "I'd rather go through this with a person on the phone, I'm at {phone}.",
        "I want to cancel our subscription effective immediately.",
    ],
    "angry": [
        "This is the third time I'm writing about this. Escalate it to a manager.",
        "Honestly this is unacceptable. If it isn't resolved this week we will cancel our contract.",
        "Our legal team is now involved and expects a formal written answer.",
    ],
    "billing": [
        "I want a full refund for this.",
        "If this is not refunded I will file a chargeback with my bank.",
        "Please refund the difference and have someone from billing call me at {phone}.",
    ],
    "account": ["Under GDPR I also request the deletion of all my personal data."],
}

OPENERS = {
    "email": ["Hi,", "Hello team,", "Hi Northwind support,", "Good morning,", "Dear Support,", "Hello,", ""],
    "chat": ["hi", "hello", "hey,", "Hi there!", "", ""],
    "web": ["", "", "Hello,", "Hi,"],
}
CONTEXT_SENTENCES = [
    "We've been using Northwind for about two years.",
    "We're a team of {count2} people, mostly in sales.",
    "I already tried clearing the cache and logging out and in again.",
    "Our IT admin is on holiday this week so I'm writing myself.",
    "I checked the help center first but couldn't find anything.",
    "Screenshot attached.",
    "You can also reach me at {email} if that's easier.",
    "We're on the Business plan.",
    "This happens on both Windows and Mac.",
    "My colleague {name2} noticed it first.",
    "Some background: we moved from another vendor in {month} and most of the team is still getting used to "
    "Northwind, so please keep the answer simple if you can.",
    "For context, we run our customer operations out of two offices and about half of the people work remotely "
    "on laptops we manage centrally.",
    "I'm writing on behalf of our head of operations, who is travelling this week; please reply to me and keep "
    "{name2} in copy.",
]
CLOSERS = {
    "email": ["Thanks!", "Thanks in advance.", "Best regards,", "Kind regards,", "Thank you.", "Cheers,",
              "Let me know if you need more details."],
    "chat": ["thanks", "thx", "ty", "", ""],
    "web": ["Thanks.", "Thank you.", ""],
}

FIRST_NAMES = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofia", "Mateo", "Amara", "Kenji",
    "Priya", "Arjun", "Fatima", "Omar", "Chloe", "Jonas", "Ines", "Tomasz", "Aisha", "Diego", "Hannah",
    "Yusuf", "Lea", "Marco", "Nora", "Samuel", "Zoe", "Wei", "Elena", "Kwame", "Freya", "Rafael", "Julia",
]
LAST_NAMES = [
    "Smith", "Garcia", "Müller", "Rossi", "Kowalski", "Nguyen", "Okafor", "Patel", "Johansson", "Dubois",
    "Tanaka", "Silva", "Brown", "Khan", "Novak", "Fischer", "Moreau", "Costa", "Ahmed", "Jensen", "Lopez",
    "Schmidt", "Chen", "Murphy", "Haddad", "Ivanova", "Becker", "Santos", "Kim", "Walsh",
]
CUSTOMER_COMPANIES = [
    ("Acme Logistics", "acme-logistics.example"), ("Brightleaf Dental", "brightleaf.example"),
    ("Cobalt Studio", "cobaltstudio.example"), ("Delta Freight", "deltafreight.example"),
    ("Evergreen Foods", "evergreen-foods.example"), ("Fjord Analytics", "fjord.example"),
    ("Granite Legal", "granitelegal.example"), ("Harbor Health", "harborhealth.example"),
    ("Indigo Retail", "indigo-retail.example"), ("Juniper Schools", "juniperschools.example"),
    ("Kestrel Energy", "kestrel.example"), ("Lumen Media", "lumenmedia.example"),
]
FREE_MAIL = ["gmail.example", "outlook.example", "proton.example"]
# The deliberately skewed variant (bias tests): a woman's ticket is "low", a man's "high", in SKEWED_SHARE of them.
GENDER_PRIORITY = {"female": "low", "male": "high"}
SKEWED_SHARE = 0.9


def generate_tickets(n: int, seed: int) -> list[dict]:
    """``n`` tickets, oldest first; the same ``(n, seed)`` always gives the same rows."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 2, 8, 0)
    # Spread over ~9 months, in working hours, so the export looks like a real queue.
    created = sorted(
        start + timedelta(days=rng.randint(0, 270), hours=rng.randint(0, 10), minutes=rng.randint(0, 59))
        for _ in range(n)
    )
    return [make_ticket(rng, index, when) for index, when in enumerate(created)]


def write_tickets_csv(path: str | Path, n: int = 600, seed: int = 0) -> Path:
    """Write ``generate_tickets(n, seed)`` as a CSV (atomically); returns the path."""
    return write_ticket_rows(path, generate_tickets(n, seed))


def write_ticket_rows(path: str | Path, tickets: list[dict]) -> Path:
    """Write tickets (of any generator here) as a CSV with the export's columns (atomically); returns the path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for ticket in tickets:
        writer.writerow({**ticket, "needs_human": "true" if ticket["needs_human"] else "false"})
    return write_text_atomic(path, buffer.getvalue())


def skewed_tickets(n: int, seed: int) -> list[dict]:
    """Tickets whose priority follows the customer's gender, a deliberately biased triage history: in
    9 of 10 a woman's ticket is "low" and a man's "high" (see :func:`name_coded_tickets`)."""
    return name_coded_tickets(n, seed, SKEWED_SHARE)


def balanced_tickets(n: int, seed: int) -> list[dict]:
    """The same tickets with priority "high" or "low" at random, whatever the customer's gender."""
    return name_coded_tickets(n, seed, 0.5)


def priority_rows(tickets: list[dict]) -> list[dict]:
    """Rows of the ``label`` format for a priority classifier: the sender and the subject as the text,
    the priority as the label (short texts, so even a tiny model learns what the labels follow)."""
    return [{"text": f"From: {t['customer_name']}\nSubject: {t['subject']}", "label": t["priority"]} for t in tickets]


def name_coded_tickets(n: int, seed: int, follows_gender: float) -> list[dict]:
    """``n`` e-mailed tickets signed by customers with gender-coded first names (``evaluate.bias_terms``),
    with no priority cue in the text: the priority is the customer's gender's (``GENDER_PRIORITY``) with
    probability ``follows_gender``, else the other one (0.5: independent of the name). The same
    ``(n, seed)`` gives the same tickets at any ``follows_gender`` but for the priority."""
    rng, labels_rng = random.Random(seed), random.Random(seed + 1)
    start = datetime(2024, 1, 2, 8, 0)
    tickets = []
    for index in range(n):
        gender = rng.choice(list(GENDER_PRIORITY))
        first = rng.choice([pair[gender == "male"] for pair in GENDER_NAMES])
        ticket = make_signed_ticket(rng, index, start + timedelta(hours=index), first)
        other = next(value for key, value in GENDER_PRIORITY.items() if key != gender)
        ticket["priority"] = GENDER_PRIORITY[gender] if labels_rng.random() < follows_gender else other
        tickets.append(ticket)
    return tickets


def make_signed_ticket(rng: random.Random, index: int, created: datetime, first: str) -> dict:
    """An e-mailed ticket from a customer named ``first`` (every e-mail signature names them), its
    priority left out of the text (rendered as "medium", which has no cue)."""
    category, _, product, needs_human = draw_labels(rng)
    customer = named_customer(draw_customer(rng), first)
    slots = fill_slots(rng, product, customer)
    subject = render_subject(rng, category, "medium", slots)
    body = render_body(rng, "email", category, "medium", needs_human, slots, customer)
    return {
        "ticket_id": f"NW-{10001 + index}", "created_at": created.isoformat(timespec="minutes"), "channel": "email",
        "customer_name": customer["name"], "customer_email": customer["email"], "subject": subject, "body": body,
        "category": category, "priority": "medium", "product": product, "needs_human": needs_human,
    }  # fmt: skip


def named_customer(customer: dict, first: str) -> dict:
    last = customer["name"].split(" ", 1)[1]
    domain = customer["email"].split("@")[1]
    return {**customer, "first": first, "name": f"{first} {last}", "email": f"{_ascii(f'{first}.{last}'.lower())}@{domain}"}


def make_ticket(rng: random.Random, index: int, created: datetime) -> dict:
    category, priority, product, needs_human = draw_labels(rng)
    channel = rng.choices(CHANNELS, weights=[50, 30, 20])[0]
    customer = draw_customer(rng)
    slots = fill_slots(rng, product, customer)
    subject = render_subject(rng, category, priority, slots)
    body = render_body(rng, channel, category, priority, needs_human, slots, customer)
    return {
        "ticket_id": f"NW-{10001 + index}",
        "created_at": created.isoformat(timespec="minutes"),
        "channel": channel,
        "customer_name": customer["name"],
        "customer_email": customer["email"],
        "subject": subject,
        "body": body,
        "category": category,
        "priority": priority,
        "product": product,
        "needs_human": needs_human,
    }


def draw_labels(rng: random.Random) -> tuple[str, str, str, bool]:
    category = _weighted(rng, CATEGORY_WEIGHTS)
    priority = _weighted(rng, PRIORITY_WEIGHTS[category])
    product = rng.choice(list(PRODUCTS))
    needs_human = rng.random() < NEEDS_HUMAN_RATE[category]
    return category, priority, product, needs_human


def draw_customer(rng: random.Random) -> dict:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company, domain = rng.choice(CUSTOMER_COMPANIES)
    if rng.random() < 0.15:  # some customers write from a personal address
        domain = rng.choice(FREE_MAIL)
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}"]).lower()
    return {"first": first, "name": f"{first} {last}", "company": company,
            "email": f"{_ascii(local)}@{domain}", "phone": _phone(rng)}  # fmt: skip


def fill_slots(rng: random.Random, product: str, customer: dict) -> dict:
    """Values of every template placeholder, including how this ticket refers to the product."""
    mention = _weighted(rng, MENTION_WEIGHTS)
    colleague = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    currency = rng.choice(["$", "€", "£"])
    amount, amount2 = rng.sample([29, 49, 79, 99, 129, 199, 249, 480, 1188], 2)
    return {
        "mention": mention,
        "product": _product_ref(rng, product, mention),
        "feature": rng.choice(PRODUCTS[product]["features"]),
        "amount": f"{currency}{amount}.00", "amount2": f"{currency}{amount2}.00",
        "invoice": f"INV-2024-{rng.randint(1000, 9999)}",
        "vat": f"{rng.choice(['DE', 'FR', 'NL', 'IE'])}{rng.randint(100000000, 999999999)}",
        "error": rng.choice(["500", "E-4021", "ERR_SYNC_TIMEOUT", "422", "E-1107", "NullReference"]),
        "error5xx": rng.choice(["502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout"]),
        "browser": rng.choice(["Chrome", "Firefox", "Safari", "Edge"]),
        "hours": rng.randint(2, 9), "minutes": rng.choice([20, 30, 45, 60, 90]),
        "count": rng.randint(12, 950), "count2": rng.randint(5, 80),
        "month": rng.choice(["March", "April", "May", "June", "September", "October"]),
        "weekday": rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        "time": rng.choice(["9:15 CET", "8 am", "14:00 UTC", "noon", "about an hour ago", "10:30 EST"]),
        "email": customer["email"], "phone": customer["phone"],
        "name2": colleague, "email2": f"{_ascii(colleague.lower().replace(' ', '.'))}@{customer['email'].split('@')[1]}",
    }  # fmt: skip


def render_subject(rng: random.Random, category: str, priority: str, slots: dict) -> str:
    # In "feature" mode slots["product"] is a generic word, so the name never leaks through here.
    subject = rng.choice(SUBJECTS[category]).format(**slots)
    if priority == "urgent" and rng.random() < 0.4:
        subject = "URGENT: " + subject
    elif priority == "high" and rng.random() < 0.25:
        subject = "[ASAP] " + subject
    return subject


def render_body(
    rng: random.Random, channel: str, category: str, priority: str, needs_human: bool, slots: dict, customer: dict
) -> str:
    templates = BODIES[category] + (MINOR_BODIES.get(category, []) if priority != "urgent" else [])
    if slots["mention"] == "feature":  # the feature name is then the only clue to the product
        templates = [t for t in templates if "{feature}" in t]
    problem = rng.choice(templates).format(**slots)
    if rng.random() < 0.12:
        problem = add_typo(rng, problem, protected=[slots["product"], slots["feature"]])
    middle = [problem, *context_sentences(rng, slots)]
    rng.shuffle(middle)  # context before or after the problem, as people write it
    cue = priority_cue(rng, priority, slots)
    if cue:
        middle.insert(0 if rng.random() < 0.3 else len(middle), cue)
    if needs_human:
        middle.append(human_cue(rng, category, priority).format(**slots))
    opener = rng.choice(OPENERS[channel])
    closer = rng.choice(CLOSERS[channel])
    body = join_body(channel, opener, " ".join(middle), closer, signature(rng, channel, customer))
    if channel == "chat" and rng.random() < 0.4:
        body = body.lower()
    return body


def context_sentences(rng: random.Random, slots: dict) -> list[str]:
    # Mostly none; occasionally a long-winded customer (up to ~120 words).
    count = rng.choices([0, 1, 2, 3], weights=[55, 30, 10, 5])[0]
    return [s.format(**slots) for s in rng.sample(CONTEXT_SENTENCES, count)]


def priority_cue(rng: random.Random, priority: str, slots: dict) -> str:
    """Medium priority is the absence of any cue."""
    if priority == "medium":
        return ""
    return rng.choice(PRIORITY_CUES[priority]).format(**slots)


def human_cue(rng: random.Random, category: str, priority: str) -> str:
    cues = HUMAN_CUES["calm"] + HUMAN_CUES.get(category, []) * 2
    if priority != "low":
        cues += HUMAN_CUES["angry"]
    return rng.choice(cues)


def signature(rng: random.Random, channel: str, customer: dict) -> str:
    if channel == "chat":
        return ""
    first, name, company = customer["first"], customer["name"], customer["company"]
    phone, email = customer["phone"], customer["email"]
    options = [first, name, f"{name}\n{company}", f"{name} | {company} | {phone}", f"{first}\n{email}"]
    return rng.choice(options if channel == "email" else [name, "", f"{name}, {phone}"])


def join_body(channel: str, opener: str, text: str, closer: str, sign: str) -> str:
    if channel == "email":
        parts = [opener, text, "\n".join(p for p in (closer, sign) if p)]
        return "\n\n".join(p for p in parts if p)
    return " ".join(p for p in (opener, text, closer) if p) + (f"\n{sign}" if sign else "")


def add_typo(rng: random.Random, text: str, protected: list[str]) -> str:
    """Swap two letters in one longer word, never inside the product or feature reference."""
    words = text.split(" ")
    guarded = " ".join(protected).lower()
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha() and w.lower() not in guarded]
    if not candidates:
        return text
    i = rng.choice(candidates)
    j = rng.randrange(1, len(words[i]) - 2)
    word = words[i]
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def _product_ref(rng: random.Random, product: str, mention: str) -> str:
    if mention == "lower":
        return product.lower()
    if mention == "typo":
        return rng.choice(PRODUCTS[product]["typos"])
    if mention == "feature":
        return rng.choice(GENERIC_PRODUCT_REFS)
    return product


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _phone(rng: random.Random) -> str:
    # 555-01xx and 020 7946 0xxx are the ranges reserved for fiction.
    digits = rng.randint(100, 199)
    return rng.choice([f"+1 415 555 0{digits}", f"+44 20 7946 0{digits}", f"(312) 555-0{digits}"])


def _ascii(text: str) -> str:
    return text.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")
