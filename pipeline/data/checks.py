"""The names of the validation checks and their default severity (light: no imports).

An ``error`` stops the run before training; a ``warning`` lets it go on and is reported in the
decision record and the task log. ``validate.severity`` overrides any of them.
"""

from __future__ import annotations

CHECKS: dict[str, str] = {
    # from config
    "columns": "error",
    "row_count": "error",
    "text_not_null": "error",
    "label_not_null": "error",
    "known_labels": "error",
    "text_length": "error",
    "duplicate_share": "error",
    "min_classes": "error",
    "min_rows_per_class": "error",
    "no_pii": "error",
    "future_timestamps": "error",
    "stale_timestamps": "warning",
    "segment_values": "warning",
    # learned from the reference window
    "length_quantiles": "warning",
    "class_balance": "warning",
    "language_share": "warning",
    "learned_duplicate_share": "warning",
}


def severity(check: str, overrides: dict[str, str]) -> str:
    return overrides.get(check, CHECKS.get(check, "error"))
