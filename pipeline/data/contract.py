"""The curated data contract as Great Expectations suites, and how their failures read.

Three suites run on one window (see :mod:`pipeline.steps.validate`): ``curated_rows`` (the rows),
``label_counts`` (one row per label) and ``pii_scan`` (one row per row, naming the PII found).
:func:`describe` turns a failed expectation into one line (expectation, column, threshold, observed
value) plus the rows it condemns with their reasons; values are counted over the whole window, never
from GX's samples. Nothing here writes files.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.config import ValidateConfig
from pipeline.data.pii import mask_pii, pii_kinds

CONTRACT_COLUMNS: tuple[str, ...] = (
    "example_id",
    "text",
    "label",
    "timestamp",
    "segment",
    "language",
    "message_id",
    "source",
    "source_file",
    "source_row",
)
ROWS_SUITE = "curated_rows"
COUNTS_SUITE = "label_counts"
PII_SUITE = "pii_scan"
STATS_SUITE = "window_stats"
STAT_CHECKS = {
    "length_p05": "length_quantiles",
    "length_p50": "length_quantiles",
    "length_p95": "length_quantiles",
    "class_shift": "class_balance",
    "language_share": "language_share",
    "duplicate_share": "learned_duplicate_share",
}
PII_COLUMNS = ("text", "label", "segment")  # every free-form string column of the contract
_MAX_SHOWN = 10  # distinct values quoted per failed expectation in the error message


@dataclass
class Failure:
    """One failed expectation: its one-line description and the row reasons it contributes."""

    summary: str
    row_reasons: dict[int, str] = field(default_factory=dict)
    table_level: bool = False
    check: str = ""
    severity: str = "error"


def where(df: pd.DataFrame, index: Iterable[int], limit: int = 3) -> str:
    """``' at support_2025-01-01.jsonl row 12, ... (+n more)'``: the landing file and row of curated rows."""
    idx = list(index)
    if not idx or "source_file" not in df.columns:
        return ""
    rows = "source_row" in df.columns
    shown = [
        f"{df.at[i, 'source_file']} row {int(df.at[i, 'source_row'])}" if rows and df.at[i, "source_row"] == df.at[i, "source_row"]
        else str(df.at[i, "source_file"])
        for i in idx[:limit]
        if i in df.index
    ]  # fmt: skip
    more = f" (+{len(idx) - limit} more)" if len(idx) > limit else ""
    return f" at {', '.join(shown)}{more}" if shown else ""


def _row_where(df: pd.DataFrame, i: int) -> str:
    return where(df, [i]).removeprefix(" at ")


def label_counts(df: pd.DataFrame) -> pd.DataFrame:
    if "label" not in df.columns:
        return pd.DataFrame({"label": pd.Series(dtype=object), "rows": pd.Series(dtype="int64")})
    counts = df["label"].dropna().astype(str).value_counts().sort_index()
    return pd.DataFrame({"label": counts.index.astype(object), "rows": counts.to_numpy(dtype="int64")})


def pii_scan(df: pd.DataFrame, extra: tuple[Any, ...] = ()) -> pd.DataFrame:
    """One row per row of ``df``: ``pii`` names the columns and kinds found (``text:email``), else null."""
    found: list[str | None] = []
    columns = [c for c in PII_COLUMNS if c in df.columns]
    for values in zip(*(df[c] for c in columns), strict=True) if columns else [() for _ in range(len(df))]:
        hits = [f"{col}:{kind}" for col, v in zip(columns, values, strict=True) for kind in pii_kinds(v, extra)]
        found.append(",".join(hits) or None)
    return pd.DataFrame({"row": range(len(df)), "pii": pd.Series(found, dtype=object)})


def stats_frame(stats: dict[str, float]) -> pd.DataFrame:
    """The ``window_stats`` batch: one row of the window's statistics (see :mod:`pipeline.data.bounds`)."""
    return pd.DataFrame({k: [v] for k, v in stats.items()}) if stats else pd.DataFrame({"none": [0.0]})


def expectations(
    vcfg: ValidateConfig,
    *,
    now: Any = None,
    oldest: Any = None,
    segments: Iterable[str] = (),
    stat_bounds: dict[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, list[Any]]:
    """Each suite's expectations (``curated_rows``, ``label_counts``, ``pii_scan``, ``window_stats``), each
    with ``meta.check`` naming its check (:data:`pipeline.data.checks.CHECKS`). ``now``: the latest valid
    timestamp; ``oldest``: the earliest one the window allows; ``segments``: valid segment values;
    ``stat_bounds``: the learned bounds of the window statistics (none without a reference)."""
    import great_expectations.expectations as gxe

    def m(check: str) -> dict[str, Any]:
        return {"check": check}

    rows = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(CONTRACT_COLUMNS), exact_match=True, meta=m("columns")),
        gxe.ExpectTableRowCountToBeBetween(min_value=vcfg.min_rows, meta=m("row_count")),
        gxe.ExpectColumnValuesToNotBeNull(column="text", meta=m("text_not_null")),
        gxe.ExpectColumnValuesToNotBeNull(column="label", meta=m("label_not_null")),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(vcfg.labels), meta=m("known_labels")),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=vcfg.min_text_chars, max_value=vcfg.max_text_chars, meta=m("text_length")
        ),
        # duplicate share = 1 - distinct/non-null, so "at most x repeated" is "at least 1 - x unique"
        gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
            column="text", min_value=round(1.0 - vcfg.max_duplicate_share, 10), meta=m("duplicate_share")
        ),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=vcfg.min_classes, meta=m("min_classes")),
    ]
    if now is not None:
        rows.append(gxe.ExpectColumnValuesToBeBetween(column="timestamp", max_value=now, meta=m("future_timestamps")))
    if oldest is not None:
        rows.append(gxe.ExpectColumnValuesToBeBetween(column="timestamp", min_value=oldest, meta=m("stale_timestamps")))
    segments = sorted(segments)
    if segments:
        rows.append(gxe.ExpectColumnValuesToBeInSet(column="segment", value_set=segments, meta=m("segment_values")))
    counts = [
        gxe.ExpectColumnValuesToBeBetween(
            column="rows", min_value=vcfg.min_rows_per_class, meta=m("min_rows_per_class")
        )
    ]
    pii = [gxe.ExpectColumnValuesToBeNull(column="pii", meta=m("no_pii"))]
    stats = [
        gxe.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high, meta=m(STAT_CHECKS[name]))
        for name, (low, high) in (stat_bounds or {}).items()
    ]
    out: dict[str, list[Any]] = {ROWS_SUITE: rows, COUNTS_SUITE: counts, PII_SUITE: pii}
    if stats:
        out[STATS_SUITE] = stats
    return out


def _mask(value: Any) -> Any:
    return mask_pii(value) if isinstance(value, str) else value


def mask_result(er: Any) -> None:
    """Mask PII in an expectation's unexpected values, in place: not only the PII expectation's, as a
    text that is too long may also hold an email address."""
    if not er.result:
        return
    for key in ("partial_unexpected_list", "unexpected_list"):
        if key in er.result:
            er.result[key] = [_mask(v) for v in er.result[key]]
    if "partial_unexpected_counts" in er.result:
        er.result["partial_unexpected_counts"] = [
            {**c, "value": _mask(c.get("value"))} for c in er.result["partial_unexpected_counts"]
        ]


def _num(value: Any) -> Any:
    """GX keeps bounds as floats (``3.0``); show whole numbers as the config wrote them."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _quote(values: Iterable[Any]) -> str:
    counted = Counter(str(v) for v in values)
    shown = [f"{v!r} x{n}" if n > 1 else repr(v) for v, n in counted.most_common(_MAX_SHOWN)]
    more = f" (+{len(counted) - _MAX_SHOWN} more)" if len(counted) > _MAX_SHOWN else ""
    return "[" + ", ".join(shown) + "]" + more


def describe(
    er: Any,
    df: pd.DataFrame,
    counts: pd.DataFrame,
    vcfg: ValidateConfig,
    stats: dict[str, float] | None = None,
    scan: pd.DataFrame | None = None,
) -> Failure:
    """A failed expectation as one line (check, severity, expectation, column, threshold, observed value,
    and the landing file and row of the first rows it condemns) plus those rows, each with its reason."""
    from pipeline.data.checks import severity

    failure = _describe(er, df, counts, vcfg, stats or {}, scan)
    meta = er.expectation_config.meta or {}
    failure.check = str(meta.get("check", ""))
    failure.severity = severity(failure.check, dict(vcfg.severity))
    if failure.row_reasons and not failure.table_level:
        failure.summary += where(df, sorted(failure.row_reasons))
        failure.row_reasons = {i: f"{r} [{_row_where(df, i)}]" for i, r in failure.row_reasons.items()}
    failure.summary = f"{failure.severity} {failure.check}: {failure.summary}" if failure.check else failure.summary
    return failure


def _describe(
    er: Any,
    df: pd.DataFrame,
    counts: pd.DataFrame,
    vcfg: ValidateConfig,
    stats: dict[str, float],
    scan: pd.DataFrame | None,
) -> Failure:
    etype: str = er.expectation_config.type
    kw: dict[str, Any] = {k: _num(v) for k, v in er.expectation_config.kwargs.items()}
    res: dict[str, Any] = er.result or {}
    column = kw.get("column")
    index = [int(i) for i in res.get("unexpected_index_list") or [] if isinstance(i, numbers.Integral)]
    unexpected = res.get("unexpected_list") or []
    exc = er.exception_info or {}
    if exc.get("raised_exception") or any(isinstance(v, dict) and v.get("raised_exception") for v in exc.values()):
        messages = [exc.get("exception_message")] + [
            v.get("exception_message") for v in exc.values() if isinstance(v, dict)
        ]
        reason = next((m for m in messages if m), "unknown error")
        return Failure(f"{etype}({column or 'table'}) could not be evaluated: {reason}")

    if etype == "expect_table_columns_to_match_set":
        mismatched = (res.get("details") or {}).get("mismatched") or {}
        found = [f"{k} {sorted(mismatched[k])}" for k in ("missing", "unexpected") if mismatched.get(k)]
        return Failure(
            f"{etype}(columns={list(kw.get('column_set') or [])}) "
            f"{', '.join(found) or 'mismatch'}; observed {res.get('observed_value')}"
        )
    if etype == "expect_table_row_count_to_be_between":
        return Failure(f"{etype}(min={kw.get('min_value')}) observed {res.get('observed_value')} rows")
    if etype == "expect_column_proportion_of_unique_values_to_be_between":
        observed = res.get("observed_value")
        has_values = column in df.columns and bool(df[column].notna().any())
        why = (
            f"duplicate share {1 - observed:.3f} > max_duplicate_share {vcfg.max_duplicate_share}"
            if has_values and isinstance(observed, int | float)
            else "no values"
        )
        summary = f"{etype}({column}, min={kw.get('min_value')}) observed {observed} ({why})"
        repeated = df.index[df[column].duplicated(keep="first") & df[column].notna()] if column in df else []
        return Failure(summary, {int(i): f"{etype}({column}): repeated text" for i in repeated})
    if etype == "expect_column_values_to_be_between" and column == "rows":  # the label_counts batch
        low = counts.iloc[index] if index else counts[counts["rows"] < vcfg.min_rows_per_class]
        per_label = dict(zip(low["label"], low["rows"].astype(int), strict=True))
        summary = (
            f"{etype}({COUNTS_SUITE}.rows, min={kw.get('min_value')}) {len(per_label)} labels below the minimum "
            f"rows per class: {per_label}"
        )
        reasons = {
            int(i): f"{etype}({COUNTS_SUITE}.rows, min={kw.get('min_value')}): label {lab!r} has {per_label[lab]} rows"
            for i, lab in df["label"].items()
            if lab in per_label
        }
        return Failure(summary, reasons)

    count = res.get("unexpected_count", len(index))
    prefix = f"{etype}({column}"
    if etype == "expect_column_values_to_not_be_null":
        return Failure(f"{prefix}) {count} null values", {i: f"{prefix}): null" for i in index})
    if etype == "expect_column_values_to_be_in_set" and column == "label":
        # true counts from the whole window: GX's unexpected lists may be samples
        labels = df["label"]
        bad = labels.notna() & ~labels.astype(str).isin(set(vcfg.labels))
        per_label = {str(k): int(v) for k, v in labels[bad].astype(str).value_counts().items()}
        shown = dict(list(per_label.items())[:_MAX_SHOWN])
        more = f" (+{len(per_label) - _MAX_SHOWN} more)" if len(per_label) > _MAX_SHOWN else ""
        return Failure(
            f"{prefix}, set of {len(vcfg.labels)} known labels) {int(bad.sum())} rows with {len(per_label)} new "
            f"label(s) {shown}{more}; to train on them add them to validate.labels (or set validate.new_labels: accept), "
            "to train on the rest set validate.new_labels: hold_out, and start a new run (this window's files stay "
            "unconsumed); to fix a typo, correct the landing file",
            {int(i): f"{prefix}): label {labels[i]!r} is not in validate.labels" for i in df.index[bad]},
        )
    if etype == "expect_column_unique_value_count_to_be_between":
        present = sorted(df[column].dropna().astype(str).unique()) if column in df.columns else []
        return Failure(
            f"{prefix}, min={kw.get('min_value')}) observed {len(present)} distinct label(s) {present[:_MAX_SHOWN]}: "
            "a classifier needs at least validate.min_classes classes to learn and to be evaluated",
            table_level=True,
        )
    if etype == "expect_column_value_lengths_to_be_between":
        bounds = f"min={kw.get('min_value')}, max={kw.get('max_value')}"
        lengths = [len(str(v)) for v in unexpected]
        distinct = sorted(set(lengths))
        return Failure(
            f"{prefix}, {bounds}) {count} unexpected values with lengths {distinct[:_MAX_SHOWN]}",
            {i: f"{prefix}, {bounds}): length {n}" for i, n in zip(index, lengths, strict=False)},
        )
    if etype == "expect_column_values_to_be_null" and column == "pii":  # the pii_scan batch
        scan = pii_scan(df) if scan is None else scan
        hits = scan["pii"].dropna()
        per_kind = Counter(h for found in hits for h in str(found).split(","))
        return Failure(
            f"{etype}({PII_SUITE}.pii, columns={[c for c in PII_COLUMNS if c in df.columns]}) {len(hits)} rows with "
            f"PII left {dict(sorted(per_kind.items()))}",
            {int(i): f"{etype}({PII_SUITE}.pii): PII {found}" for i, found in hits.items()},
        )
    if etype == "expect_column_values_to_be_between" and column == "timestamp":
        bound, value = ("max", kw.get("max_value")) if kw.get("max_value") is not None else ("min", kw.get("min_value"))
        what = "in the future" if bound == "max" else "older than the window allows"
        stamps = sorted(str(df.at[i, "timestamp"]) for i in index if i in df.index)
        return Failure(
            f"{prefix}, {bound}={value}) {count} rows {what} (e.g. {stamps[:3]})",
            {i: f"{prefix}, {bound}={value}): {df.at[i, 'timestamp']}" for i in index if i in df.index},
        )
    if etype == "expect_column_values_to_be_in_set" and column == "segment":
        allowed = list(kw.get("value_set") or [])
        values = [str(df.at[i, "segment"]) for i in index if i in df.index]
        return Failure(
            f"{prefix}, set of {len(allowed)} segments {allowed[:_MAX_SHOWN]}) {count} rows with other segments "
            f"{_quote(values)}",
            {i: f"{prefix}): segment {df.at[i, 'segment']!r} is not a known segment" for i in index if i in df.index},
        )
    if column in STAT_CHECKS and column in stats:
        bounds = f"min={kw.get('min_value')}, max={kw.get('max_value')}"
        return Failure(
            f"{etype}({STATS_SUITE}.{column}, {bounds}) observed {stats[column]:.4g} (bounds learned from the "
            "reference window)",
            table_level=True,
        )
    observed = res.get("observed_value", f"{count} unexpected values")
    return Failure(f"{prefix}) observed {observed}", {i: f"{prefix})" for i in index})
