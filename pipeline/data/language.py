"""Language of each message, offline, with lingua (lingua-language-detector).

The detector chooses among ``ingest.languages.candidates`` (plus the allowed ones) in high-accuracy
mode (``accuracy: low`` is about 3x faster and misjudges about 3% of short English messages). Texts
shorter than ``min_chars`` are not judged: they come back as ``unknown`` and are kept. A text judged
foreign is quarantined only when the detector's confidence in that language reaches
``min_confidence``; below it the row is kept as ``unknown``. Codes are ISO 639-1, lowercase.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config_ingest import LanguageConfig

UNKNOWN = "unknown"


@lru_cache(maxsize=4)
def _detector(codes: tuple[str, ...], high_accuracy: bool) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = []
    for code in codes:
        try:
            languages.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except (AttributeError, ValueError) as exc:
            raise ValueError(f"ingest.languages: {code!r} is not an ISO 639-1 code lingua knows") from exc
    if len(languages) < 2:  # lingua needs two; a second candidate makes "not the allowed one" decidable
        languages.append(Language.SPANISH if languages and languages[0] != Language.SPANISH else Language.ENGLISH)
    builder = LanguageDetectorBuilder.from_languages(*languages)
    return (builder if high_accuracy else builder.with_low_accuracy_mode()).build()


def codes_of(cfg: LanguageConfig) -> tuple[str, ...]:
    return tuple(sorted({c.lower() for c in (*cfg.candidates, *cfg.allowed)}))


def detect(texts: Sequence[str], cfg: LanguageConfig) -> list[str]:
    """The language code of each text, or ``unknown`` (too short, undecided, or foreign with low confidence)."""
    if not cfg.allowed:
        return [UNKNOWN] * len(texts)
    detector = _detector(codes_of(cfg), cfg.accuracy == "high")
    judged = [i for i, t in enumerate(texts) if len(t) >= cfg.min_chars]
    ranked = detector.compute_language_confidence_values_in_parallel([texts[i] for i in judged]) if judged else []
    allowed = {c.lower() for c in cfg.allowed}
    out = [UNKNOWN] * len(texts)
    for i, values in zip(judged, ranked, strict=True):
        if not values or values[0].value <= 0:
            continue
        code = values[0].language.iso_code_639_1.name.lower()
        if code in allowed or values[0].value >= cfg.min_confidence:
            out[i] = code
    return out
