"""Text cleaning helpers: normalization, duplicate keys, example ids, and the one cleaning function
(:func:`clean_text`) that ingest applies to training text and the served model to its input.

PII detection lives in :mod:`pipeline.data.pii`. Light module.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from pipeline.data.pii import scrub_pii

_WS = re.compile(r"\s+")
# Cc: control characters, Cf: invisible format characters (zero-width space, BOM, bidi marks),
# Cs/Co: surrogates and private-use code points that no tokenizer knows
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


def normalize_text(s: str) -> str:
    """NFKC-normalized ``s`` without control or invisible characters, whitespace collapsed to single
    spaces and stripped. Case is kept (the model's tokenizer decides about case)."""
    s = unicodedata.normalize("NFKC", s)
    s = "".join(
        " " if ch.isspace() else ch for ch in s if ch.isspace() or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    return _WS.sub(" ", s).strip()


def dedup_key(s: str) -> str:
    """The key under which two messages count as the same: normalized, casefolded, whitespace collapsed."""
    return _WS.sub(" ", normalize_text(s).casefold()).strip()


def example_id(text: str, label: str) -> str:
    """Stable id of a training example: sha1 hex of its dedup key and its label."""
    return hashlib.sha1(f"{dedup_key(text)}\n{label}".encode()).hexdigest()


# Longest PII match the scrubber must see whole at the cut (an email is at most 254 characters).
PII_MARGIN = 256
# Raw characters looked at per message: normalization collapses whitespace, so a few times the kept
# length is read; anything beyond can never reach the kept text, and cutting first keeps every step
# after it linear in the kept length, not in the input's length.
_RAW_FACTOR = 4


def clean_text(value: str, *, max_chars: int, scrub: bool = True) -> tuple[str, dict[str, int], bool]:
    """``(text, pii_counts, truncated)``: ``value`` normalized, scrubbed of PII and cut to ``max_chars``.

    The raw input is cut to a bounded length first, so a megabyte of text costs what a few
    kilobytes cost; the scrubber then sees ``PII_MARGIN`` characters past the cut, so an email
    straddling the cut is replaced whole before the cut, never left half-matched.
    """
    budget = max_chars + PII_MARGIN
    text = normalize_text(value[: budget * _RAW_FACTOR])
    truncated = len(text) > max_chars or len(value) > budget * _RAW_FACTOR
    text = text[:budget]
    counts: dict[str, int] = {}
    if scrub:
        text, counts = scrub_pii(text)
    return text[:max_chars].rstrip(), counts, truncated
