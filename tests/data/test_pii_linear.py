"""No PII pattern is super-linear, and cleaning a megabyte of hostile text scales linearly.

The email pattern used to rescan the rest of a run of letters from every start position: 40k
characters without a space took 6 s and a megabyte hung ingest.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from pipeline.data.pii import PII_KINDS
from pipeline.data.text import clean_text

MB = 1_000_000
SMALL, LARGE = MB // 8, MB  # 8x the input: a linear scan takes ~8x the time, a quadratic one ~64x
MAX_RATIO = 24.0  # far from both, and from a loaded machine's noise (the minimum of 3 runs is timed)
ADVERSARIAL = {
    "letters": lambda n: "a" * n,
    "local parts": lambda n: "a@" * (n // 2),
    "dotted": lambda n: "a." * (n // 2),
    "digits": lambda n: "1" * n,
    "spaced digits": lambda n: "1 " * (n // 2),
    "dashed digits": lambda n: "1-" * (n // 2),
    "dotted digits": lambda n: "1." * (n // 2),
    "colons": lambda n: "a:" * (n // 2),
    "hashes": lambda n: "#1" * (n // 2),
    "iban-ish": lambda n: "DE89 1234 " * (n // 10),
    "domains": lambda n: "x@y." * (n // 4),
    "long local part": lambda n: "a" * n + "@",
    "long domain": lambda n: "a@" + "b." * (n // 2) + "1",
    "phone-ish": lambda n: "12 345 6789 " * (n // 12),
    "international": lambda n: "+49 30 9018 " * (n // 12),
    "plus groups": lambda n: "+1(2)" * (n // 5),
}


def _seconds(fn: Callable[[str], object], text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - started)
    return max(best, 1e-4)  # a scan faster than 0.1 ms is timer noise


def _ratio(fn: Callable[[str], object], name: str) -> float:
    """Time on 1 MB over time on 1/8 MB, measured in the same process (no absolute time limits)."""
    return _seconds(fn, ADVERSARIAL[name](LARGE)) / _seconds(fn, ADVERSARIAL[name](SMALL))


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_every_pii_pattern_scans_hostile_text_in_linear_time(name: str) -> None:
    for kind in PII_KINDS:
        ratio = _ratio(lambda t, k=kind: sum(1 for _ in k.pattern.finditer(t)), name)
        assert ratio < MAX_RATIO, f"{kind.name} pattern, 8x more {name!r}: {ratio:.1f}x the time (linear: ~8x)"


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_cleaning_hostile_text_is_linear_and_cut(name: str) -> None:
    ratio = _ratio(lambda t: clean_text(t, max_chars=1000), name)
    assert ratio < MAX_RATIO, f"clean_text, 8x more {name!r}: {ratio:.1f}x the time (linear: ~8x)"
    text, _, truncated = clean_text(ADVERSARIAL[name](LARGE), max_chars=1000)
    assert truncated and len(text) <= 1000


def test_an_email_across_the_cut_is_scrubbed_whole_before_the_cut() -> None:
    text, counts, truncated = clean_text("x" * 990 + " john.doe@example.com and more", max_chars=1000)
    assert truncated and counts["email"] == 1
    assert "@" not in text and "john" not in text


@pytest.mark.parametrize("pattern", ["ACC-[0-9]+", "(ab)*c", "[0-9]{3,}", "(x)\\1", "a(?P=n)"])
def test_configured_patterns_must_be_bounded(pattern: str) -> None:
    from pydantic import ValidationError

    from pipeline.config_ingest import IngestConfig

    with pytest.raises(ValidationError, match="unbounded quantifier|back-reference"):
        IngestConfig(pii_patterns={"account": pattern})
    assert IngestConfig(pii_patterns={"account": "ACC-[0-9]{8}"}).pii_patterns == {"account": "ACC-[0-9]{8}"}


def test_configured_pattern_scans_hostile_text_in_linear_time() -> None:
    from pipeline.data.pii import custom_kinds

    (kind,) = custom_kinds({"account": "ACC-?[0-9]{6,10}"})
    ratio = _ratio(lambda t: sum(1 for _ in kind.pattern.finditer(t)), "hashes")
    assert ratio < MAX_RATIO
