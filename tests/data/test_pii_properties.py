"""Properties of the scrubber over generated text (hypothesis): whatever the input, nothing it
would call PII survives scrubbing, and cleaning is stable."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data.pii import find_pii, scrub_pii
from pipeline.data.text import clean_text

# the characters PII is made of, plus separators: dense enough to build near-misses of every kind
PIECES = st.sampled_from(
    [
        "a",
        "Z",
        "1",
        "4",
        "0",
        "9",
        "@",
        ".",
        "-",
        "+",
        " ",
        ":",
        "#",
        "(",
        ")",
        "DE89",
        "3704",
        "com",
        "gmail",
        "415",
        "555",
        "0134",
        "192.168",
        "::",
        "x@y.io",
        "4111 1111 1111 1111",
    ]
)
TEXT = st.lists(PIECES, max_size=40).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(TEXT)
def test_nothing_the_detector_calls_pii_survives_scrubbing(text: str) -> None:
    clean, counts = scrub_pii(text)
    assert find_pii(clean) == []
    assert sum(counts.values()) == len(find_pii(text))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=300), st.integers(min_value=10, max_value=200))
def test_clean_text_is_bounded_and_idempotent(text: str, max_chars: int) -> None:
    once, _, _ = clean_text(text, max_chars=max_chars)
    assert len(once) <= max_chars
    assert clean_text(once, max_chars=max_chars)[0] == once
