"""Text cleaning helpers: normalization, duplicate keys, example ids and PII scrubbing.

``PII_PATTERNS`` is the one definition of what counts as personal data in a message: ingest scrubs
with it, and the validate step checks with the same regexes (``PII_REGEXES``, plain strings for
Great Expectations' regex expectations) that nothing is left. Stdlib only.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Order matters: emails first (they may hold digits), then cards (16 digits would also satisfy the
# phone pattern piecewise), then order numbers ("123-4567890" is phone-shaped), then phones.
PII_REGEXES: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # 13-16 digits as four-digit groups (space or dash between groups, or none), or Amex-style 4-6-5
    "card": r"(?<![\w-])(?:\d{4}[ -]?\d{6}[ -]?\d{5}|(?:\d{4}[ -]?){3}\d{1,4})(?![\w-])",
    # "#A1234567", "# 12345678", "A1234567", "AB-12345678", "123-4567890" (and "123-4567890-1234567")
    "order_number": (
        r"(?:#\s?[A-Za-z]{0,3}-?\d{5,12}(?!\w)"
        r"|(?<![\w-])[A-Za-z]{1,3}-?\d{7,12}(?![\w-])"
        r"|(?<![\w-])\d{3}-\d{7}(?:-\d{7})?(?![\w-]))"
    ),
    # "(415) 555-0134", "415-555-0134", "415.555.0134", "4155550134", "+1 415 555 0134",
    # "+44 20 7946 0958"; the look-arounds keep "$45.99", "2 items", "size 10" and dates out
    "phone": r"(?<![\w+.$-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{4}(?!\w|[.-]\d)",
}
PII_PATTERNS: dict[str, re.Pattern[str]] = {kind: re.compile(rx) for kind, rx in PII_REGEXES.items()}
PII_TOKENS: dict[str, str] = {"email": "[EMAIL]", "card": "[CARD]", "order_number": "[ORDER]", "phone": "[PHONE]"}

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


def scrub_pii(s: str) -> tuple[str, dict[str, int]]:
    """``s`` with every PII match replaced by its token (``[EMAIL]``, ``[CARD]``, ``[ORDER]``, ``[PHONE]``),
    and the number of replacements per kind (every kind present, zeros included)."""
    counts: dict[str, int] = {}
    for kind, pattern in PII_PATTERNS.items():
        s, n = pattern.subn(PII_TOKENS[kind], s)
        counts[kind] = n
    return s, counts


def find_pii(s: str) -> list[tuple[str, str]]:
    """Every ``(kind, matched text)`` left in ``s``; empty when ``s`` is clean."""
    return [(kind, m.group(0)) for kind, pattern in PII_PATTERNS.items() for m in pattern.finditer(s)]
