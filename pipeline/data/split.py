"""Deterministic stratified train/val/test split."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MIN_ROWS_TO_SPLIT = 3  # a class needs one row in each of train, val and test


def split_stratified(
    df: pd.DataFrame,
    *,
    label_col: str = "label",
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(train, val, test)``: disjoint, together all rows of ``df``, label shares kept in each part.

    Rows are first sorted by ``example_id`` (or by label and text when there is none), so the result
    depends only on the rows and ``seed``, never on their input order. Classes with fewer than
    three rows go entirely to train. When the data is too small for stratification (fewer rows
    than classes in a part), the split falls back to a seeded random split of the same sizes.
    Each part comes back sorted by its sort key with a fresh index.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"split fractions val={val_fraction} test={test_fraction} must be in (0, 1) and sum below 1")
    sort_cols = ["example_id"] if "example_id" in df.columns else [c for c in (label_col, "text") if c in df.columns]
    ordered = (df.sort_values(sort_cols, kind="mergesort") if sort_cols else df).reset_index(drop=True)
    empty = ordered.iloc[0:0]
    if ordered.empty:
        return ordered, empty.copy(), empty.copy()

    counts = ordered[label_col].value_counts(dropna=False)
    rare = set(counts[counts < MIN_ROWS_TO_SPLIT].index)
    is_rare = ordered[label_col].isin(rare)
    rare_rows, rest = ordered[is_rare], ordered[~is_rare]
    if rare:
        log.info("classes with fewer than %d rows go to train only: %s", MIN_ROWS_TO_SPLIT, sorted(map(str, rare)))
    if len(rest) < MIN_ROWS_TO_SPLIT:
        return _tidy(ordered, sort_cols), _tidy(empty, sort_cols), _tidy(empty, sort_cols)

    def _cut(frame: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        if len(frame) < 2:
            return frame, frame.iloc[0:0]
        try:
            return train_test_split(frame, test_size=share, stratify=frame[label_col], random_state=seed)
        except ValueError as exc:  # too few rows per class for the requested share
            log.warning("stratified split not possible (%s); using a seeded random split", exc)
            return train_test_split(frame, test_size=share, random_state=seed)

    train_val, test = _cut(rest, test_fraction)
    train, val = _cut(train_val, val_fraction / (1 - test_fraction))
    import pandas as pd

    train = pd.concat([train, rare_rows])
    return _tidy(train, sort_cols), _tidy(val, sort_cols), _tidy(test, sort_cols)


def _tidy(frame: pd.DataFrame, sort_cols: list[str]) -> pd.DataFrame:
    out = frame.sort_values(sort_cols, kind="mergesort") if sort_cols else frame
    return out.reset_index(drop=True)
