"""Row-level cleaning of a window's raw rows: cut, normalize, scrub PII, parse time, flag, dedup.

Pure DataFrame work (no files): :func:`clean` takes the concatenated landing rows and returns the
kept rows, the quarantined rows with a reason, and counts. The ingest step does the I/O around it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.config import PipelineConfig
from pipeline.data.pii import PII_TOKENS, scrub_pii
from pipeline.data.text import clean_text, dedup_key, example_id, normalize_text

if TYPE_CHECKING:
    import pandas as pd

_BASIC_DATE = re.compile(r"^\s*\d{8}\s*$")
REASON_CODES = ("empty_text", "text_too_short", "missing_label", "bad_timestamp", "duplicate", "new_label")
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


def _to_utc(values: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``: ISO 8601 strings (naive means UTC) or epoch seconds;
    anything else becomes NaT."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    # "20250101" is ISO 8601 (basic format), not 20 million seconds after 1970
    is_epoch = values.map(lambda v: not isinstance(v, bool) and not (isinstance(v, str) and _BASIC_DATE.match(v)))
    numbers = pd.to_numeric(values.where(is_epoch), errors="coerce")
    is_number = numbers.notna()
    if is_number.any():
        out[is_number] = pd.to_datetime(numbers[is_number], unit="s", utc=True, errors="coerce")
    rest = ~is_number & values.notna()
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


def clean(raw: pd.DataFrame, cfg: PipelineConfig) -> Cleaned:
    """Kept and quarantined rows; PII is gone from every string column of both frames.

    Labels are checked against ``validate.labels`` before anything about them is written: a known
    label is kept as is, an unknown one is scrubbed like text (a user's label column may hold
    anything, an email included). Valid timestamps are not kept as raw text (an epoch number is not a
    phone number); the raw value survives only, scrubbed, on rows whose timestamp failed to parse.
    """
    import pandas as pd

    ic = cfg.ingest
    known = set(cfg.validate_cfg.labels)
    pii: Counter[str] = Counter({kind: 0 for kind in PII_TOKENS})

    def scrub(value: str | None) -> str | None:
        if value is None or not ic.scrub_pii:
            return value
        clean, counts = scrub_pii(value)
        pii.update(counts)
        return clean

    texts: list[str | None] = []
    truncated = 0
    for value in raw["text"]:
        if _missing(value):
            texts.append(None)
            continue
        text, counts, cut = clean_text(str(value), max_chars=ic.max_text_chars, scrub=ic.scrub_pii)
        pii.update(counts)
        truncated += int(cut)
        texts.append(text or None)
    labels = [_clean_str(v) for v in raw["label"]]
    labels = [lab if lab is None or lab in known else scrub(lab) for lab in labels]
    unknown = Counter(lab for lab in labels if lab is not None and lab not in known)
    timestamps = _to_utc(raw["timestamp"])
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
            "source_file": raw["source_file"].to_numpy(),
            "source_row": raw["source_row"].to_numpy(),
            "_file_order": raw["_file_order"].to_numpy(),
        }
    )
    df["example_id"] = [
        example_id(t, lab or "") if t is not None else None for t, lab in zip(df["text"], df["label"], strict=True)
    ]
    df["reason"] = None
    df["reason_code"] = None

    def flag(mask: pd.Series, code: str, reason: str | pd.Series) -> None:
        mask = mask & df["reason_code"].isna()
        df.loc[mask, "reason_code"] = code
        df.loc[mask, "reason"] = reason if isinstance(reason, str) else reason[mask]

    flag(df["text"].isna(), "empty_text", "empty_text")
    flag(
        df["text"].fillna("").str.len() < ic.min_text_chars,
        "text_too_short",
        f"text_too_short (fewer than {ic.min_text_chars} characters)",
    )
    flag(df["label"].isna(), "missing_label", "missing_label")
    flag(df["timestamp"].isna(), "bad_timestamp", "bad_timestamp (not ISO 8601 or epoch seconds)")
    _hold_out_new_labels(df, cfg, flag)

    # exact duplicates among the remaining rows: keep the first by time, then by file order and row
    ok = df["reason_code"].isna()
    candidates = df[ok].sort_values(["timestamp", "_file_order", "source_row"], kind="mergesort")
    keys = candidates["text"].map(dedup_key)
    first_id = candidates.groupby(keys, sort=False)["example_id"].transform("first")
    is_dup = keys.duplicated(keep="first")
    dup_index = candidates.index[is_dup.to_numpy()]
    df.loc[dup_index, "reason_code"] = "duplicate"
    df.loc[dup_index, "reason"] = "duplicate of " + first_id[is_dup]

    kept = df[df["reason_code"].isna()].copy()
    quarantined = df[df["reason_code"].notna()].copy()
    kept = kept.sort_values(["timestamp", "_file_order", "source_row"], kind="mergesort")
    return Cleaned(kept, quarantined, dict(pii), truncated, dict(sorted(unknown.items())))
