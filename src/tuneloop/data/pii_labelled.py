"""A seeded, labelled set of support-ticket sentences with personal data in them, to measure the scrubber.

Every value is valid by construction: card numbers carry a Luhn check digit (Visa, Mastercard,
Amex), IBANs mod-97 check digits (DE, GB, FR, NL), phone numbers are valid numbers of their
region (US, GB, DE, FR) written in international, national and E.164 form, SSNs avoid the area,
group and serial numbers the SSA never issues, NINOs the prefixes HMRC never issues. Each row
also carries look-alikes that are *not* personal data (order numbers that fail the Luhn check,
IBANs with wrong check digits, invoice numbers, dates, amounts, versions), so precision is
measured honestly. ``bench/pii.py`` scores :mod:`tuneloop.data.pii` on it.

>>> row = labelled_pii_rows(1, seed=0)[0]
>>> all(row.text[s.start:s.end] == s.value for s in row.spans)
True
"""

from __future__ import annotations

import ipaddress
import random
import string
from dataclasses import dataclass

import phonenumbers

from tuneloop.data.pii import PII_TYPES

FIRST_NAMES = ["Olivia", "James", "Amara", "Mateo", "Priya", "Lukas", "Chloe", "Kwame", "Sofia", "Daniel", "Yuki",
               "Hannah", "Omar", "Elena", "Thomas", "Aisha", "Noah", "Ingrid", "Rafael", "Grace", "Viktor", "Leila"]  # fmt: skip
LAST_NAMES = ["Thompson", "Okafor", "Fischer", "Ramirez", "Nakamura", "Patel", "Johansson", "Moreau", "Kowalski",
              "Brennan", "Haddad", "Lindqvist", "Castillo", "Whitaker", "Abernathy", "Delgado", "Harrington", "Novak"]  # fmt: skip
STREET_NAMES = ["Baker", "Maple", "Oak", "High", "Church", "Station", "Elm", "Mill", "Park", "Willow", "Cedar",
                "King", "Queen", "Victoria", "Lincoln", "Old Mill", "North Ridge", "Harbor View"]  # fmt: skip
STREET_SUFFIXES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Boulevard", "Court", "Way", "Place"]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.co.uk", "acme-logistics.com", "brightleaf.org", "kestrel-energy.de",
           "fjord.io", "example.com", "mail.example"]  # fmt: skip

# Each template holds one slot of personal data ({VALUE}) and may hold look-alikes ({ORDER}, ...).
TEMPLATES: dict[str, list[str]] = {
    "EMAIL": ["Please send the invoice to {VALUE} instead.", "My login is {VALUE} and reset does not work.",
              "You can reach me at {VALUE} after {DATE}.", "Change the account e-mail to {VALUE}, ref {ORDER}."],
    "PHONE": ["Call me back on {VALUE} please.", "My number is {VALUE}, I'm free after {DATE}.",
              "The on-call phone is {VALUE} for ticket {TICKET}.", "Reach our office at {VALUE} about order {ORDER}."],
    "CARD": ["I was charged twice on card {VALUE} for order {ORDER}.", "Please refund to {VALUE}, invoice {INVOICE}.",
             "The card ending up in the form was {VALUE}, not the order number {ORDER}."],
    "IBAN": ["Please pay the refund to IBAN {VALUE}.", "Our bank account is {VALUE} (the old one {BAD_IBAN} is closed).",
             "Wire {AMOUNT} to {VALUE} by {DATE}."],
    "IP": ["Logins from {VALUE} are blocked since {DATE}.", "Whitelist our gateway {VALUE} for the API, version {VERSION}.",
           "The webhook calls come from {VALUE} and fail with 502."],
    "SSN": ["For the tax form, my SSN is {VALUE}.", "Payroll shows SSN {VALUE} on invoice {INVOICE}.",
            "The W-2 lists {VALUE} as the employee's social security number."],
    "NINO": ["My national insurance number is {VALUE}.", "HR needs NI number {VALUE} before {DATE}.",
             "Payslip {INVOICE} shows NINO {VALUE}."],
    "ADDRESS": ["Ship the replacement to {VALUE}, please.", "Our office moved to {VALUE} on {DATE}.",
                "Send the hardware token to {VALUE} for order {ORDER}."],
    "NAME": ["My colleague {VALUE} cannot log in since {DATE}.", "Please add {VALUE} as an admin on our account.",
             "{VALUE} from our finance team will approve invoice {INVOICE}.", "Thanks, {VALUE}"],
}
# Rows of look-alikes only: no personal data at all.
NEGATIVE_TEMPLATES = ["Order {ORDER} was delivered on {DATE} but invoice {INVOICE} is missing.",
                      "We upgraded to version {VERSION} and ticket {TICKET} is still open.",
                      "The refund of {AMOUNT} for order {ORDER} has not arrived.",
                      "Transfer reference {BAD_IBAN} was rejected on {DATE}."]  # fmt: skip


@dataclass(frozen=True)
class LabelledSpan:
    start: int
    end: int
    kind: str  # one of tuneloop.data.pii.PII_TYPES
    value: str


@dataclass(frozen=True)
class LabelledRow:
    text: str
    spans: tuple[LabelledSpan, ...]


def labelled_pii_rows(n_per_type: int, seed: int = 0, negatives: int | None = None) -> list[LabelledRow]:
    """``n_per_type`` rows for every type of PII_TYPES (each row: two sentences, each with personal data
    of some type, the first of the row's type), and ``negatives`` rows of look-alikes only (default
    ``n_per_type``); shuffled, the same for the same arguments."""
    rng = random.Random(seed)
    rows = [labelled_row(rng, [kind, rng.choice(PII_TYPES)]) for kind in PII_TYPES for _ in range(n_per_type)]
    rows += [labelled_row(rng, []) for _ in range(n_per_type if negatives is None else negatives)]
    rng.shuffle(rows)
    return rows


def labelled_row(rng: random.Random, kinds: list[str]) -> LabelledRow:
    """Sentences with one value of each of ``kinds`` (none: look-alikes only), joined by spaces."""
    templates = [(rng.choice(TEMPLATES[kind]), kind) for kind in kinds] or [(rng.choice(NEGATIVE_TEMPLATES), None)]
    text, spans = "", []
    for template, kind in templates:
        text = text + " " if text else text
        for literal, slot in parsed(template):
            text += literal
            if slot == "VALUE":
                value = VALUE_MAKERS[kind](rng)
                spans.append(LabelledSpan(len(text), len(text) + len(value), kind, value))
                text += value
            elif slot:
                text += LOOK_ALIKES[slot](rng)
    return LabelledRow(text, tuple(spans))


def parsed(template: str) -> list[tuple[str, str | None]]:
    return [(literal, slot) for literal, slot, _, _ in string.Formatter().parse(template)]


# --- valid values ------------------------------------------------------------------------


def luhn_check_digit(digits: str) -> str:
    """The digit that makes ``digits + it`` pass the Luhn check."""
    total = 0
    for i, char in enumerate(reversed(digits)):  # the check digit will sit right of these: double every other from here
        d = int(char) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def passes_luhn(number: str) -> bool:
    digits = [c for c in number if c.isdigit()]
    return luhn_check_digit("".join(digits[:-1])) == digits[-1]


def card_number(rng: random.Random) -> str:
    prefix, length, groups = rng.choice([("4", 16, (4, 4, 4, 4)), (str(rng.randint(51, 55)), 16, (4, 4, 4, 4)),
                                         (rng.choice(["34", "37"]), 15, (4, 6, 5))])  # fmt: skip
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    number = body + luhn_check_digit(body)
    return grouped(number, groups, rng.choice([" ", "-", ""]))


def not_a_card(rng: random.Random) -> str:
    """16 digits that fail the Luhn check (an order number)."""
    body = rng.choice("123456789") + "".join(rng.choice(string.digits) for _ in range(14))
    return body + str((int(luhn_check_digit(body)) + rng.randint(1, 9)) % 10)


def grouped(number: str, groups: tuple[int, ...], separator: str) -> str:
    parts, start = [], 0
    for size in groups:
        parts.append(number[start : start + size])
        start += size
    return separator.join(parts)


IBAN_FORMATS = {  # country: the BBAN as character classes (d digit, A upper-case letter)
    "DE": "d" * 18, "GB": "AAAA" + "d" * 14, "FR": "d" * 23, "NL": "AAAA" + "d" * 10,
}  # fmt: skip


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616: the two digits after the country code, so that the IBAN is 1 mod 97."""
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{98 - number % 97:02d}"


def iban_is_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(list(IBAN_FORMATS))
    bban = "".join(rng.choice(string.digits if c == "d" else string.ascii_uppercase) for c in IBAN_FORMATS[country])
    check = iban_check_digits(country, bban)
    if not valid:  # exactly one two-digit value passes mod-97: any other fails
        check = f"{(int(check) + rng.randint(1, 99)) % 100:02d}"
    compact = country + check + bban
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if rng.random() < 0.7 else compact


def phone_number(rng: random.Random) -> str:
    region = rng.choice(["US", "GB", "DE", "FR"])
    example = phonenumbers.example_number_for_type(region, rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE,
                                                                       phonenumbers.PhoneNumberType.MOBILE]))  # fmt: skip
    while True:  # vary the example's last digits until the number is still valid
        digits = str(example.national_number)
        number = phonenumbers.parse(f"+{example.country_code}{digits[:-4]}{rng.randint(0, 9999):04d}")
        if phonenumbers.is_valid_number(number):
            break
    style = rng.choice([phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL,
                        phonenumbers.PhoneNumberFormat.E164])  # fmt: skip
    return phonenumbers.format_number(number, style)


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return str(ipaddress.IPv4Address(rng.randint(0x0B000000, 0xDFFFFFFF)))  # 11.0.0.0 .. 223.255.255.255
    return str(ipaddress.IPv6Address(rng.getrandbits(128)))  # compressed form where it has zero groups


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def nino(rng: random.Random) -> str:
    first_letters, second_letters = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
    while True:
        prefix = rng.choice(first_letters) + rng.choice(second_letters)
        if prefix not in ("BG", "GB", "NK", "KN", "NT", "TN", "ZZ"):
            break
    digits = f"{rng.randint(0, 999999):06d}"
    suffix = rng.choice("ABCD")
    spaced = rng.random() < 0.5
    return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}" if spaced else f"{prefix}{digits}{suffix}"


def street_address(rng: random.Random) -> str:
    address = f"{rng.randint(1, 2999)} {rng.choice(STREET_NAMES)} {rng.choice(STREET_SUFFIXES)}"
    return address + (f", Apt {rng.randint(1, 40)}{rng.choice(['', 'B'])}" if rng.random() < 0.3 else "")


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def email_address(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(LAST_NAMES).lower()
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"])
    return f"{local}@{rng.choice(DOMAINS)}"


VALUE_MAKERS = {
    "EMAIL": email_address, "PHONE": phone_number, "CARD": card_number, "IBAN": iban, "IP": ip_address,
    "SSN": ssn, "NINO": nino, "ADDRESS": street_address, "NAME": person_name,
}  # fmt: skip
LOOK_ALIKES = {
    "ORDER": not_a_card,
    "BAD_IBAN": lambda rng: iban(rng, valid=False),
    "INVOICE": lambda rng: f"INV-{rng.randint(2019, 2026)}-{rng.randint(1000, 99999)}",
    "TICKET": lambda rng: f"#{rng.randint(10000, 999999)}",
    "DATE": lambda rng: rng.choice([f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                                    f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2019, 2026)}"]),  # fmt: skip
    "AMOUNT": lambda rng: f"{rng.choice(['$', '€', '£'])}{rng.randint(10, 9999):,}.{rng.randint(0, 99):02d}",
    "VERSION": lambda rng: f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 40)}",
}
