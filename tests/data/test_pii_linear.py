"""No PII pattern is super-linear, and cleaning a megabyte of hostile text stays cheap.

The email pattern used to rescan the rest of a run of letters from every start position: 40k
characters without a space took 6 s and a megabyte hung ingest.
"""

from __future__ import annotations

import time

import pytest

from pipeline.data.pii import PII_KINDS
from pipeline.data.text import clean_text

MB = 1_000_000
ADVERSARIAL = {
    "letters": "a" * MB,
    "local parts": "a@" * (MB // 2),
    "dotted": "a." * (MB // 2),
    "digits": "1" * MB,
    "spaced digits": "1 " * (MB // 2),
    "dashed digits": "1-" * (MB // 2),
    "dotted digits": "1." * (MB // 2),
    "colons": "a:" * (MB // 2),
    "hashes": "#1" * (MB // 2),
    "iban-ish": "DE89 1234 " * (MB // 10),
    "domains": "x@y." * (MB // 4),
    "long local part": "a" * MB + "@",
    "long domain": "a@" + "b." * (MB // 2) + "1",
    "phone-ish": "12 345 6789 " * (MB // 12),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_every_pii_pattern_scans_a_megabyte_in_linear_time(name: str) -> None:
    text = ADVERSARIAL[name]
    for kind in PII_KINDS:
        started = time.perf_counter()
        for _ in kind.pattern.finditer(text):
            pass
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"{kind.name} pattern on 1 MB of {name!r}: {elapsed:.2f}s"


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_a_megabyte_of_adversarial_text_is_cleaned_in_under_a_second(name: str) -> None:
    started = time.perf_counter()
    text, _, truncated = clean_text(ADVERSARIAL[name], max_chars=1000)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"clean_text on 1 MB of {name!r}: {elapsed:.2f}s"
    assert truncated and len(text) <= 1000


def test_an_email_across_the_cut_is_scrubbed_whole_before_the_cut() -> None:
    text, counts, truncated = clean_text("x" * 990 + " john.doe@example.com and more", max_chars=1000)
    assert truncated and counts["email"] == 1
    assert "@" not in text and "john" not in text
