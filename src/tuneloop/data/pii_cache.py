"""What the PII scrub found in a data file, kept between runs: training again on the same file
(another learning rate, a resumed run, a second process of a launch) skips the NER model.

One JSON file per version of a data file: ``$TUNELOOP_CACHE/pii/<key>.json``
(:func:`~tuneloop.paths.tuneloop_cache`). The key is a sha256 of the file's bytes, the detector's
minimum score and :func:`scrubber_version` (the source of tuneloop's scrubber and the versions of
Presidio, spaCy, its model and the libraries they check with), so a change of any of them misses.
The allow list (``data.pii_allow``) is applied after the cache (:meth:`PiiDetector.find`), so it
is not part of the key. The file holds each text's plausible detections (offsets, type, score)
under the sha256 of the text: no text of the data file, and so no personal data, is written.

A cache file that cannot be read, or does not hold what its name promises, is ignored; the file
is then analysed again and the cache file replaced (atomically: temp file and rename).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
from pathlib import Path

from tuneloop.atomic import write_text_atomic
from tuneloop.data.pii import MIN_SCORE, NER_MODEL, PII_TYPES, PiiDetector, PiiSpan
from tuneloop.data.split import file_sha256
from tuneloop.paths import tuneloop_cache
from tuneloop.progress import console

CACHE_FORMAT = 1
# The modules whose code decides what is found (read as bytes: importing the recognizers loads spaCy).
SCRUBBER_SOURCES = ("pii.py", "pii_recognizers.py")
# The libraries that do: a new release may find other spans.
SCRUBBER_DISTRIBUTIONS = ("presidio-analyzer", "spacy", "thinc", NER_MODEL, "phonenumbers", "tldextract")
DIGEST = re.compile(r"[0-9a-f]{64}")


@functools.cache
def scrubber_version() -> str:
    """sha256 of the scrubber's source files and its libraries' versions."""
    digest = hashlib.sha256()
    for name in SCRUBBER_SOURCES:
        digest.update(Path(__file__).with_name(name).read_bytes())
    for distribution in SCRUBBER_DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        digest.update(f"\n{distribution}=={version}".encode())
    return digest.hexdigest()


class PiiCache:
    """The detections of one data file: read when it is opened, written back by :meth:`save` when the
    detector analysed texts the cache lacked.

    >>> cache = PiiCache("examples/support_tickets.csv")  # doctest: +SKIP
    >>> detector = cache.detector(allow=["Beacon"])  # scrub rows with it, then: cache.save()  # doctest: +SKIP
    """

    def __init__(self, data_file: str | Path, min_score: float = MIN_SCORE):
        self.data_file, self.min_score = data_file, min_score
        self.key = {"format": CACHE_FORMAT, "file_sha256": file_sha256(data_file), "min_score": min_score, "scrubber": scrubber_version()}
        name = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.path = tuneloop_cache() / "pii" / f"{name}.json"
        self.findings = read_findings(self.path, self.key)
        self.stored = dict(self.findings)  # what the file holds, to tell whether it needs writing

    def detector(self, allow: tuple[str, ...] | list[str] = ()) -> PiiDetector:
        """A detector that takes the cached detections and adds what it analyses to them."""
        return PiiDetector(allow=allow, min_score=self.min_score, known=self.findings)

    def save(self) -> None:
        """Write the cache file when the detections changed; a cache that cannot be written costs time, not the run."""
        if self.findings == self.stored:
            return
        entries = {digest: [[s.start, s.end, s.kind, s.score] for s in spans] for digest, spans in self.findings.items()}
        try:
            write_text_atomic(self.path, json.dumps({"key": self.key, "findings": entries}, separators=(",", ":")) + "\n")
        except OSError as err:
            console().print(f"PII cache not written ({self.path}: {err.strerror or err}): the next run analyses {self.data_file} again")
            return
        self.stored = dict(self.findings)


def read_findings(path: Path, key: dict) -> dict[str, list[PiiSpan]]:
    """The detections a cache file holds under ``key``; none when it is missing, unreadable, of another key
    or not in the expected shape (then it is written again)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["key"] != key:
            return {}
        return {parse_digest(digest): [parse_span(span) for span in spans] for digest, spans in stored["findings"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return {}


def parse_digest(entry) -> str:
    if not isinstance(entry, str) or not DIGEST.fullmatch(entry):
        raise ValueError(f"not a text digest: {entry!r}")
    return entry


def parse_span(entry) -> PiiSpan:
    """A cached ``[start, end, kind, score]``; ValueError for anything else."""
    start, end, kind, score = entry
    valid = type(start) is int and type(end) is int and 0 <= start < end and kind in PII_TYPES
    if not valid or type(score) not in (int, float):
        raise ValueError(f"not a cached detection: {entry!r}")
    return PiiSpan(start, end, kind, float(score))
