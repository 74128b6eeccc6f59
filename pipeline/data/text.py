"""Text cleaning helpers: normalization, duplicate keys, example ids, and the one cleaning function
(:func:`clean_text`) that ingest applies to training text and the served model to its input.

PII detection lives in :mod:`pipeline.data.pii`. Light module.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from pipeline.data.pii import _Kind, scrub_pii

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


def repair_text(s: str) -> str:
    """Mojibake, HTML entities and broken escapes fixed with ftfy (``cafÃ©`` -> ``café``), NFKC-normalized,
    then :func:`normalize_text` (control and invisible characters dropped, whitespace collapsed)."""
    import ftfy

    # C1 controls are dropped, not read as Windows-1252 (which could make new mojibake); fixed-point
    # iteration keeps cleaning idempotent (the served model cleans text that ingest already cleaned)
    for _ in range(4):
        fixed = normalize_text(ftfy.fix_text(s, normalization="NFKC", unescape_html=False, fix_c1_controls=False))
        if fixed == s:
            break
        s = fixed
    return s


_LABEL_SEP = re.compile(r"[\s_\-]+")


def label_key(s: str) -> str:
    """How labels compare: casefolded, runs of spaces, dashes and underscores as one underscore."""
    return _LABEL_SEP.sub("_", normalize_text(s).casefold()).strip("_")


def normalize_label(value: str, known: dict[str, str], aliases: dict[str, str]) -> str:
    """The known label ``value`` stands for (``known`` and ``aliases`` are keyed by :func:`label_key`),
    else ``value`` as it was (an unknown label, decided later)."""
    key = label_key(value)
    return known.get(key) or aliases.get(key) or value


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


def clean_text(
    value: str, *, max_chars: int, scrub: bool = True, extra: tuple[_Kind, ...] = ()
) -> tuple[str, dict[str, int], bool]:
    """``(text, pii_counts, truncated)``: ``value`` repaired (:func:`repair_text`), scrubbed of PII and cut to
    ``max_chars``.

    The raw input is cut to a bounded length first, so a megabyte of text costs what a few
    kilobytes cost; the scrubber then sees ``PII_MARGIN`` characters past the cut, so an email
    straddling the cut is replaced whole before the cut, never left half-matched.
    """
    budget = max_chars + PII_MARGIN
    text = repair_text(value[: budget * _RAW_FACTOR])
    truncated = len(text) > max_chars or len(value) > budget * _RAW_FACTOR
    text = text[:budget]
    counts: dict[str, int] = {}
    if scrub:
        text, counts = scrub_pii(text, extra)
    return text[:max_chars].rstrip(), counts, truncated
