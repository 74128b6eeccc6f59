"""Validation bounds learned from a reference window, and the window statistics they bound.

The reference is the data the champion answered (the drift reference: the latest retrain's window,
or the champion's training data). From it the suite learns what a normal window looks like:

- text length quantiles (5th, 50th, 95th percentile), each bounded to ``[q / f, q * f]`` with
  ``f = validate.length_factor``;
- class shares: the window's Jensen-Shannon distance to them is at most ``validate.max_class_shift``;
- the reference's main language and its share: the window's share of that language may fall at most
  ``validate.language_tolerance`` below it;
- the duplicate share: at most the reference's plus ``validate.duplicate_tolerance``;
- the segments seen, when a segment column is mapped: other segments are flagged row by row.

Pure functions over DataFrames (no files, no GX): :mod:`pipeline.data.contract` turns them into
expectations. Without a reference (the first model) only the configured checks run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

QUANTILES = (0.05, 0.5, 0.95)


@dataclass(frozen=True)
class Learned:
    rows: int
    length_quantiles: tuple[float, ...]
    class_shares: dict[str, float]
    language: str | None
    language_share: float | None
    duplicate_share: float
    segments: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dup_share(texts: pd.Series) -> float:
    present = texts.dropna()
    return 0.0 if present.empty else float(1 - present.nunique() / len(present))


def learn(reference: pd.DataFrame) -> Learned | None:
    """Bounds from the reference rows; ``None`` for an empty or unusable reference."""
    if reference.empty or "text" not in reference or "label" not in reference:
        return None
    lengths = reference["text"].dropna().astype(str).str.len()
    shares = reference["label"].dropna().astype(str).value_counts(normalize=True)
    lang, lang_share = None, None
    if "language" in reference:
        known = reference["language"].dropna().astype(str)
        known = known[known != "unknown"]
        if len(known):
            top = known.value_counts(normalize=True)
            lang, lang_share = str(top.index[0]), float((reference["language"] == top.index[0]).mean())
    segments: tuple[str, ...] = ()
    if "segment" in reference:
        segments = tuple(sorted(reference["segment"].dropna().astype(str).unique()))
    return Learned(
        rows=len(reference),
        length_quantiles=tuple(float(lengths.quantile(q)) for q in QUANTILES) if len(lengths) else (),
        class_shares={str(k): round(float(v), 6) for k, v in shares.items()},
        language=lang,
        language_share=lang_share,
        duplicate_share=round(_dup_share(reference["text"]), 6),
        segments=segments,
    )


def js_distance(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon distance (natural log, 0..0.83) of two label-share maps."""
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(p) | set(q))
    if not keys:
        return 0.0
    value = jensenshannon([p.get(k, 0.0) for k in keys], [q.get(k, 0.0) for k in keys])
    return float(value) if value == value else 0.0


def window_stats(df: pd.DataFrame, learned: Learned | None) -> dict[str, float]:
    """The one-row statistics the learned bounds apply to (empty without a reference)."""
    if learned is None or df.empty:
        return {}
    out: dict[str, float] = {}
    lengths = df["text"].dropna().astype(str).str.len() if "text" in df else None
    if learned.length_quantiles and lengths is not None and len(lengths):
        for q, name in zip(QUANTILES, ("length_p05", "length_p50", "length_p95"), strict=True):
            out[name] = float(lengths.quantile(q))
    if "label" in df:
        shares = df["label"].dropna().astype(str).value_counts(normalize=True)
        out["class_shift"] = round(js_distance({str(k): float(v) for k, v in shares.items()}, learned.class_shares), 6)
    if learned.language is not None and "language" in df:
        out["language_share"] = float((df["language"] == learned.language).mean())
    if "text" in df:
        out["duplicate_share"] = _dup_share(df["text"])
    return out


def stat_bounds(learned: Learned, *, length_factor: float, max_class_shift: float, language_tolerance: float,
                duplicate_tolerance: float) -> dict[str, tuple[float | None, float | None]]:  # fmt: skip
    """Bounds (low, high) of each window statistic, learned from ``learned`` and the tolerances."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for q, name in zip(learned.length_quantiles, ("length_p05", "length_p50", "length_p95"), strict=False):
        out[name] = (round(q / length_factor, 3), round(q * length_factor, 3))
    out["class_shift"] = (None, max_class_shift)
    if learned.language_share is not None:
        out["language_share"] = (round(max(0.0, learned.language_share - language_tolerance), 6), None)
    out["duplicate_share"] = (None, round(learned.duplicate_share + duplicate_tolerance, 6))
    return out
