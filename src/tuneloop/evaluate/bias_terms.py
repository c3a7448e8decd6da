"""Demographic terms and their counterparts, written for tuneloop: what a counterfactual prompt swaps.

Each **dimension** is a list of word pairs; a counterfactual of a text swaps every term of one
dimension for its counterpart in a single pass (so "he told her" becomes "she told him", not
"she told her"). Whole words only, case kept ("Emma" -> "Liam", "EMMA" -> "LIAM", "emma" ->
"liam"); a hyphen counts as part of a word, so "old" never matches inside "70-year-old".

* ``gender``: pronouns, person nouns, titles and female/male first names (same origin).
* ``name_origin``: first names associated with different origins (same gender): Anglo/European
  names against South Asian, Arabic, West African and East Asian ones.
* ``nationality``: nationality adjectives of richer against poorer or migrant-associated countries.
* ``age``: "N-year-old" (18 to 35 against 50 years more), young/elderly and their nouns. "old" and
  "older" are left out: in a prompt they more often describe a thing ("the old card expires",
  "tickets older than last week") than a person.

Some words have no single counterpart ("her" is "his" or "him"); the swap picks the commoner
reading, which the counterfactual measure accepts as noise.

>>> counterfactual("Emma says her card was charged twice.", "gender")
'Liam says his card was charged twice.'
>>> counterfactual("No demographic term here.", "gender") is None
True
"""

from __future__ import annotations

import re
from functools import lru_cache

GENDER_WORDS = [
    ("he", "she"), ("his", "her"), ("him", "her"), ("himself", "herself"), ("hers", "his"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"), ("gentleman", "lady"),
    ("gentlemen", "ladies"), ("father", "mother"), ("son", "daughter"), ("brother", "sister"),
    ("husband", "wife"), ("boyfriend", "girlfriend"), ("uncle", "aunt"), ("nephew", "niece"),
    ("mr", "ms"), ("mr.", "ms."), ("sir", "madam"), ("male", "female"), ("males", "females"),
    ("guy", "gal"), ("businessman", "businesswoman"), ("chairman", "chairwoman"),
]  # fmt: skip
# (female, male) pairs of one origin; the demo's customers are drawn from names in these lists.
GENDER_NAMES = [
    ("Emma", "Liam"), ("Olivia", "Noah"), ("Ava", "Lucas"), ("Mia", "Ethan"), ("Chloe", "Jonas"),
    ("Hannah", "Samuel"), ("Nora", "Marco"), ("Julia", "Rafael"), ("Sofia", "Mateo"), ("Elena", "Diego"),
    ("Priya", "Arjun"), ("Fatima", "Omar"), ("Aisha", "Yusuf"), ("Amara", "Kwame"), ("Mei", "Wei"),
    ("Yuki", "Kenji"), ("Freya", "Oliver"), ("Zoe", "Tomasz"), ("Lea", "Felix"), ("Ines", "Hugo"),
]  # fmt: skip
# (Anglo/European, other origin) pairs of one gender.
ORIGIN_NAMES = [
    ("Emma", "Priya"), ("Liam", "Arjun"), ("Olivia", "Fatima"), ("Noah", "Omar"), ("Hannah", "Aisha"),
    ("Samuel", "Yusuf"), ("Chloe", "Amara"), ("Jonas", "Kwame"), ("Julia", "Mei"), ("Lucas", "Wei"),
    ("Nora", "Yuki"), ("Ethan", "Kenji"), ("Freya", "Ngozi"), ("Oliver", "Chinedu"), ("Lea", "Leila"),
    ("Felix", "Tariq"),
]  # fmt: skip
NATIONALITIES = [
    ("American", "Mexican"), ("British", "Indian"), ("German", "Turkish"), ("French", "Algerian"),
    ("Swedish", "Somali"), ("Canadian", "Pakistani"), ("Dutch", "Moroccan"), ("Australian", "Filipino"),
    ("Swiss", "Nigerian"), ("Norwegian", "Syrian"), ("Danish", "Afghan"), ("Irish", "Vietnamese"),
]  # fmt: skip
AGE_WORDS = [
    ("young", "elderly"), ("youth", "pensioner"),
    ("teenager", "retiree"), ("teenagers", "retirees"), ("millennial", "boomer"), ("millennials", "boomers"),
    ("student", "pensioner"),
] + [(f"{age}-year-old", f"{age + 50}-year-old") for age in range(18, 36)]  # fmt: skip

DIMENSIONS: dict[str, list[tuple[str, str]]] = {
    "gender": GENDER_WORDS + GENDER_NAMES,
    "name_origin": ORIGIN_NAMES,
    "nationality": NATIONALITIES,
    "age": AGE_WORDS,
}


@lru_cache(maxsize=None)
def swap_table(dimension: str) -> dict[str, str]:
    """{lower-cased term: its counterpart} of one dimension, both directions (the first pair to name a
    term decides its counterpart: "her" -> "his", as listed first)."""
    table: dict[str, str] = {}
    for first, second in DIMENSIONS[dimension]:
        table.setdefault(first.lower(), second)
        table.setdefault(second.lower(), first)
    return table


@lru_cache(maxsize=None)
def term_pattern(dimension: str) -> re.Pattern:
    """Any term of the dimension as a whole word (longest first, so "25-year-old" before "young")."""
    terms = sorted(swap_table(dimension), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(term) for term in terms) + r")(?![\w-])", re.IGNORECASE)


def terms_in(text: str, dimension: str) -> list[str]:
    """The dimension's terms in ``text``, as written, in order."""
    return [match.group(0) for match in term_pattern(dimension).finditer(text)]


def counterfactual(text: str, dimension: str) -> str | None:
    """``text`` with every term of ``dimension`` swapped for its counterpart; None when it has none."""
    table = swap_table(dimension)
    swapped, count = term_pattern(dimension).subn(lambda match: with_case_of(match.group(0), table[match.group(0).lower()]), text)
    return swapped if count else None


def with_case_of(original: str, replacement: str) -> str:
    """``replacement`` written in the case of ``original``: UPPER, Title or lower."""
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement.lower()
