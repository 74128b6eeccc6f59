"""Row-level cleaning of a run's raw rows, before anything is persisted.

Pure DataFrame work (no files): :func:`clean` takes the rows every source delivered
(:mod:`pipeline.data.readers`) and returns the kept rows, the set-aside rows with a reason, and
the accounting. In order:

1. records already ingested (their row key is in the row watermark, or repeats one earlier in this
   run: a renamed or re-sent file) are dropped and counted as ``repeated``;
2. text repaired (ftfy, NFKC), scrubbed of PII and cut; labels normalized (case, separators,
   ``ingest.label_aliases``), PII scrubbed from unknown labels and segments; timestamps parsed;
3. feedback corrections applied (:mod:`pipeline.data.feedback`);
4. row checks, first failing reason wins: ``empty_text``, ``text_too_short``, ``long_token``, ``missing_label``,
   ``bad_timestamp``, ``language`` (lingua; the detected language in the reason), ``new_label``;
5. exact duplicates (same dedup key) and near-duplicates (MinHash LSH, within the window and
   against the consumer's earlier windows) of an earlier row, with the id of the row they repeat.

Accounting: ``read = kept + quarantined (row checks) + duplicates (exact, near) + repeated +
corrections applied``; :meth:`Cleaned.accounting` returns it and the ingest step asserts it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.config import PipelineConfig
from pipeline.data import feedback, language, neardup
from pipeline.data.pii import custom_kinds, scrub_pii
from pipeline.data.text import clean_text, dedup_key, example_id, label_key, normalize_label, normalize_text

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_BASIC_DATE = re.compile(r"^\s*\d{8}\s*$")
ROW_CHECKS = (
    "empty_text",
    "text_too_short",
    "long_token",
    "missing_label",
    "bad_timestamp",
    "language",
    "new_label",
    "unknown_message",
)
DUPLICATE_CODES = ("duplicate", "near_duplicate")
REASON_CODES = ROW_CHECKS + DUPLICATE_CODES
_MAX_FIELD_CHARS = 200  # labels, segments and raw timestamps are short; longer values are cut before cleaning


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _clean_str(value: Any) -> str | None:
    """A normalized short string (cut to ``_MAX_FIELD_CHARS`` first), or None for missing values."""
    if _missing(value):
        return None
    s = normalize_text(str(value)[: _MAX_FIELD_CHARS * 4])[:_MAX_FIELD_CHARS]
    return s or None


def to_utc(values: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``: ISO 8601 strings (naive means UTC), datetimes or epoch
    seconds; anything else becomes NaT."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    stamps = values.map(lambda v: isinstance(v, pd.Timestamp | datetime))
    if stamps.any():
        out[stamps] = pd.to_datetime(values[stamps], utc=True, errors="coerce", format="mixed")
    # "20250101" is ISO 8601 (basic format), not 20 million seconds after 1970
    is_epoch = ~stamps & values.map(
        lambda v: not isinstance(v, bool) and not (isinstance(v, str) and _BASIC_DATE.match(v))
    )
    numbers = pd.to_numeric(values.where(is_epoch), errors="coerce")
    is_number = numbers.notna()
    if is_number.any():
        out[is_number] = pd.to_datetime(numbers[is_number], unit="s", utc=True, errors="coerce")
    rest = ~stamps & ~is_number & values.notna()
    if rest.any():
        text = values[rest].astype(str).str.strip()
        out[rest] = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    return out


@dataclass
class Cleaned:
    kept: pd.DataFrame
    quarantined: pd.DataFrame
    pii: dict[str, int]
    truncated: int
    unknown_labels: dict[str, int]
    rows_read: int = 0
    repeated: int = 0
    corrections: list[dict[str, Any]] = field(default_factory=list)
    labels_normalized: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    signatures: np.ndarray | None = None  # MinHash of each kept row, in ``kept`` order
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (clean, language, near_dup, checks)

    def accounting(self) -> dict[str, Any]:
        by_reason = Counter(self.quarantined["reason_code"])
        quarantined = {code: int(by_reason.get(code, 0)) for code in ROW_CHECKS}
        duplicates = {"exact": int(by_reason.get("duplicate", 0)), "near": int(by_reason.get("near_duplicate", 0))}
        applied = sum(1 for c in self.corrections if c.get("applied"))
        total = len(self.kept) + sum(quarantined.values()) + sum(duplicates.values()) + self.repeated + applied
        return {
            "rows_read": self.rows_read,
            "kept": len(self.kept),
            "quarantined": quarantined,
            "duplicates": duplicates,
            "repeated": self.repeated,
            "corrections_applied": applied,
            "balanced": total == self.rows_read,
        }


def _hold_out_new_labels(df: pd.DataFrame, cfg: PipelineConfig, flag: Any) -> None:
    """``validate.new_labels``: fail leaves new labels for validation to name; hold_out quarantines
    their rows; accept keeps them, holding out only those with fewer than min_rows_per_class rows."""
    vcfg = cfg.validate_cfg
    if vcfg.new_labels == "fail":
        return
    ok = df["reason_code"].isna() & df["label"].notna()
    new = ok & ~df["label"].isin(set(vcfg.labels))
    if not new.any():
        return
    if vcfg.new_labels == "hold_out":
        flag(
            new,
            "new_label",
            "new_label (" + df["label"].astype(str) + " is not in validate.labels; validate.new_labels: hold_out)",
        )
        return
    counts = df.loc[new, "label"].value_counts()
    rare = new & df["label"].isin(set(counts[counts < vcfg.min_rows_per_class].index))
    flag(
        rare,
        "new_label",
        "new_label ("
        + df["label"].astype(str)
        + f" has fewer than validate.min_rows_per_class={vcfg.min_rows_per_class} "
        "rows in this window; validate.new_labels: accept)",
    )


def _clean_rows(raw: pd.DataFrame, cfg: PipelineConfig, pii: Counter[str]) -> tuple[pd.DataFrame, int, int]:
    """Text, label, timestamp and segment of each row cleaned; (frame, truncated, labels normalized)."""
    import pandas as pd

    ic = cfg.ingest
    extra = custom_kinds(ic.pii_patterns)
    known = {label_key(lab): lab for lab in cfg.validate_cfg.labels}
    aliases = {label_key(a): lab for a, lab in ic.label_aliases.items()}

    def scrub(value: str | None) -> str | None:
        if value is None or not ic.scrub_pii:
            return value
        out, counts = scrub_pii(value, extra)
        pii.update(counts)
        return out

    texts: list[str | None] = []
    truncated = 0
    for value in raw["text"]:
        if _missing(value):
            texts.append(None)
            continue
        text, counts, cut = clean_text(str(value), max_chars=ic.max_text_chars, scrub=ic.scrub_pii, extra=extra)
        pii.update(counts)
        truncated += int(cut)
        texts.append(text or None)
    labels: list[str | None] = []
    normalized = 0
    for v in raw["label"]:
        lab = _clean_str(v)
        if lab is not None:
            mapped = normalize_label(lab, known, aliases)
            normalized += int(mapped != lab)
            lab = mapped if mapped in cfg.validate_cfg.labels else scrub(mapped)
        labels.append(lab)
    timestamps = to_utc(raw["timestamp"])
    df = pd.DataFrame(
        {
            "text": texts,
            "label": labels,
            "timestamp": timestamps,
            "timestamp_raw": [
                scrub(_clean_str(v)) if bad else None
                for v, bad in zip(raw["timestamp"], timestamps.isna(), strict=True)
            ],
            "segment": [scrub(_clean_str(v)) for v in raw["segment"]],
            "message_id": [scrub(_clean_str(v)) for v in raw["message_id"]],
            "source": raw["source"].to_numpy(),
            "source_file": raw["source_file"].to_numpy(),
            "source_row": raw["source_row"].to_numpy(),
            "_order": raw["_order"].to_numpy(),
        },
        index=raw.index,
    )
    return df, truncated, normalized


def clean(
    raw: pd.DataFrame,
    cfg: PipelineConfig,
    *,
    seen_keys: set[str] | frozenset[str] = frozenset(),
    feedback_sources: set[str] | frozenset[str] = frozenset(),
    prior_ids: list[str] | None = None,
    prior_sigs: np.ndarray | None = None,
    batch_rows: int = 50_000,
) -> Cleaned:
    """Kept and set-aside rows of ``raw`` (the columns of :data:`pipeline.data.readers.ROW_COLUMNS`).

    ``seen_keys``: the row watermark; ``feedback_sources``: names of sources whose rows are
    corrections; ``prior_ids``/``prior_sigs``: the cross-window near-duplicate index. Rows are
    cleaned ``batch_rows`` at a time, so the text work's memory stays bounded.
    """
    import pandas as pd

    ic = cfg.ingest
    rows_read = len(raw)
    raw = raw.reset_index(drop=True)
    raw["_order"] = range(len(raw))
    repeated_mask = raw["row_key"].isin(seen_keys) | raw["row_key"].duplicated(keep="first")
    fresh = raw[~repeated_mask]
    if fresh.empty:  # every record was ingested before: nothing to clean
        return Cleaned(raw.iloc[0:0], raw.iloc[0:0].assign(reason_code=None), {}, 0, {}, rows_read=rows_read,
                       repeated=int(repeated_mask.sum()))  # fmt: skip
    pii: Counter[str] = Counter()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    parts, truncated, normalized = [], 0, 0
    for start in range(0, len(fresh), batch_rows):
        part, cut, norm = _clean_rows(fresh.iloc[start : start + batch_rows], cfg, pii)
        parts.append(part)
        truncated += cut
        normalized += norm
    columns = [
        "text",
        "label",
        "timestamp",
        "timestamp_raw",
        "segment",
        "message_id",
        "source",
        "source_file",
        "source_row",
        "_order",
    ]
    df = pd.concat(parts) if parts else pd.DataFrame(columns=columns).astype({"timestamp": "datetime64[ns, UTC]"})
    df["reason"] = None
    df["reason_code"] = None
    timings["clean_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    def flag(mask: pd.Series, code: str, reason: str | pd.Series) -> None:
        mask = mask & df["reason_code"].isna()
        df.loc[mask, "reason_code"] = code
        df.loc[mask, "reason"] = reason if isinstance(reason, str) else reason[mask]

    df, corrections, unknown_message = feedback.apply(df, feedback_sources)
    flag(
        unknown_message,
        "unknown_message",
        "unknown_message (message_id " + df["message_id"].astype(str) + " is not in this run and the correction "
        "carries no text)",
    )
    known = set(cfg.validate_cfg.labels)
    unknown = Counter(lab for lab in df["label"] if lab is not None and lab not in known)
    df["example_id"] = [
        example_id(t, lab or "") if t is not None else None for t, lab in zip(df["text"], df["label"], strict=True)
    ]

    flag(df["text"].isna(), "empty_text", "empty_text")
    flag(
        df["text"].fillna("").str.len() < ic.min_text_chars,
        "text_too_short",
        f"text_too_short (fewer than {ic.min_text_chars} characters)",
    )
    longest = df["text"].map(lambda t: max((len(w) for w in t.split()), default=0) if isinstance(t, str) else 0)
    flag(
        longest > ic.max_token_chars,
        "long_token",
        "long_token (a " + longest.astype(str) + f"-character token; ingest.max_token_chars={ic.max_token_chars})",
    )
    flag(df["label"].isna(), "missing_label", "missing_label")
    flag(df["timestamp"].isna(), "bad_timestamp", "bad_timestamp (not ISO 8601 or epoch seconds)")
    ok = df["reason_code"].isna()
    df["language"] = language.UNKNOWN
    timings["checks_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if ic.languages.allowed and ok.any():
        df.loc[ok, "language"] = language.detect(df.loc[ok, "text"].tolist(), ic.languages)
        allowed = {c.lower() for c in ic.languages.allowed} | {language.UNKNOWN}
        foreign = ok & ~df["language"].isin(allowed)
        flag(
            foreign,
            "language",
            "language (detected " + df["language"].astype(str) + f", allowed {sorted(allowed - {language.UNKNOWN})})",
        )
    _hold_out_new_labels(df, cfg, flag)
    timings["language_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    # duplicates among the remaining rows: keep the first by time, then by arrival order
    ok = df["reason_code"].isna()
    candidates = df[ok].sort_values(["timestamp", "_order"], kind="mergesort")
    keys = candidates["text"].map(dedup_key)
    first_id = candidates.groupby(keys, sort=False)["example_id"].transform("first")
    is_dup = keys.duplicated(keep="first")
    dup_index = candidates.index[is_dup.to_numpy()]
    df.loc[dup_index, "reason_code"] = "duplicate"
    df.loc[dup_index, "reason"] = "duplicate of " + first_id[is_dup]

    sigs = None
    if ic.near_duplicates.enabled:
        unique = candidates[~is_dup.to_numpy()]
        sig_all = neardup.signatures(keys[~is_dup].tolist(), ic.near_duplicates)
        match = neardup.first_seen(
            unique["example_id"].tolist(), sig_all, ic.near_duplicates, prior_ids=prior_ids or [], prior_sigs=prior_sigs
        )
        near = [m is not None for m in match]
        near_index = unique.index[near]
        df.loc[near_index, "reason_code"] = "near_duplicate"
        df.loc[near_index, "reason"] = ["near_duplicate of " + str(m) for m in match if m is not None]
        kept_order = unique.index[[not n for n in near]]
        sigs_by_index = dict(zip(unique.index, sig_all, strict=True))

    kept = df[df["reason_code"].isna()].sort_values(["timestamp", "_order"], kind="mergesort")
    if ic.near_duplicates.enabled:
        import numpy as np

        assert set(kept.index) == set(kept_order)
        sigs = (
            np.stack([sigs_by_index[i] for i in kept.index])
            if len(kept)
            else np.zeros((0, ic.near_duplicates.num_perm), dtype=np.uint32)
        )
    quarantined = df[df["reason_code"].notna()].copy()
    timings["near_dup_s"] = time.perf_counter() - t0
    languages = {str(k): int(v) for k, v in Counter(kept["language"]).items()}
    return Cleaned(
        kept.copy(),
        quarantined,
        {k: int(v) for k, v in sorted(pii.items())},
        truncated,
        dict(sorted(unknown.items())),
        rows_read=rows_read,
        repeated=int(repeated_mask.sum()),
        corrections=corrections,
        labels_normalized=normalized,
        languages=dict(sorted(languages.items())),
        signatures=sigs,
        timings={k: round(v, 4) for k, v in timings.items()},
    )
