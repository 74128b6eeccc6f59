"""Choosing training rows: stratified caps that never drop a class, replay that never forgets a label.

Pure pandas helpers used by the finetune step (no I/O).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def stratified_sample(df: pd.DataFrame, n: int, *, seed: int, min_per_class: int = 0) -> pd.DataFrame:
    """``n`` rows of ``df`` keeping each label's share (largest-remainder rounding), in original order.

    Every class keeps at least ``min_per_class`` rows (all of it when it has fewer), so a cap never
    silently drops a rare class; the rest of ``n`` is shared out by the classes' remaining rows. The
    result has more than ``n`` rows only when the floors alone exceed ``n``. Deterministic for a given
    ``seed``; returns all rows when ``n >= len(df)``.
    """
    if n >= len(df):
        return df.reset_index(drop=True)
    if n <= 0 and min_per_class <= 0:
        return df.iloc[0:0].reset_index(drop=True)
    counts = df["label"].value_counts().sort_index()
    floors = counts.clip(upper=max(min_per_class, 0))
    rest = counts - floors
    budget = max(n - int(floors.sum()), 0)
    exact = rest * budget / rest.sum() if rest.sum() else rest.astype(float)
    alloc = np.floor(exact).astype(int)
    short = budget - int(alloc.sum())
    # ties broken by label name: the sort is stable over a sorted index
    for label in (exact - alloc).sort_values(ascending=False, kind="stable").index[:short]:
        alloc[label] += 1
    alloc = alloc + floors
    parts = [df[df["label"] == label].sample(n=int(k), random_state=seed) for label, k in alloc.items() if k > 0]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def _shares(sizes: list[int], n: int) -> list[int]:
    """``n`` split as evenly as possible over groups of ``sizes`` rows (water-filling: a group that
    runs out passes its share on to the others)."""
    alloc = [0] * len(sizes)
    left, open_ = n, [i for i, s in enumerate(sizes) if s > 0]
    while left > 0 and open_:
        each, extra = divmod(left, len(open_))
        for rank, i in enumerate(open_):
            take = min(sizes[i] - alloc[i], each + (1 if rank < extra else 0))
            alloc[i] += take
            left -= take
        open_ = [i for i in open_ if alloc[i] < sizes[i]]
    return alloc


def balanced_by_period(pool: pd.DataFrame, n: int, *, seed: int) -> pd.DataFrame:
    """``n`` rows of ``pool``: shared evenly over calendar quarters of ``timestamp`` (so an older
    season keeps its share however small its part of the pool has become), stratified by label
    within each quarter. Rows without a timestamp form one group of their own."""
    if n >= len(pool) or "timestamp" not in pool.columns:
        return stratified_sample(pool, n, seed=seed)
    ts = pd.to_datetime(pool["timestamp"], utc=True, errors="coerce")
    period = ts.dt.tz_convert(None).dt.to_period("Q").astype(str).where(ts.notna(), "none")
    groups = [g for _, g in pool.groupby(period, sort=True)]
    parts = [
        stratified_sample(g, k, seed=seed)
        for g, k in zip(groups, _shares([len(g) for g in groups], n), strict=True)
        if k
    ]
    return pd.concat(parts, ignore_index=True) if parts else pool.iloc[0:0]


def replay_rows(
    pool: pd.DataFrame, n: int, exclude_ids: set[str], seed: int, cover: dict[str, int], balance: str = "label"
) -> pd.DataFrame:
    """Up to ``n`` rows of ``pool`` (earlier versions' training data), stratified by label (or, with
    ``balance="period"``, shared evenly over calendar quarters first: :func:`balanced_by_period`),
    without ids already in the new data, plus, for each label in ``cover``, rows of that label up to
    the count given: the labels the new rows lack, so that the challenger keeps every label the
    champion knows (even with ``n`` = 0)."""
    if "example_id" in pool.columns and exclude_ids:
        before = len(pool)
        pool = pool[~pool["example_id"].astype(str).isin(exclude_ids)]
        log.info("replay pool: %d rows, %d dropped as already in the new data", before, before - len(pool))
    pool = pool.reset_index(drop=True)
    pick = balanced_by_period if balance == "period" else stratified_sample
    base = pick(pool.assign(_row=pool.index), max(n, 0), seed=seed)
    chosen = set(base["_row"])
    extra = []
    for label, need in sorted(cover.items()):
        have = int((base["label"] == label).sum())
        candidates = pool[(pool["label"] == label) & ~pool.index.isin(chosen)]
        k = min(max(need - have, 0), len(candidates))
        if k:
            extra.append(candidates.sample(n=k, random_state=seed))
            log.info("replay: %d extra row(s) of label %r, which the new rows lack", k, label)
    out = pd.concat([base.drop(columns="_row"), *extra], ignore_index=True) if extra else base.drop(columns="_row")
    return out.reset_index(drop=True)


def required_labels(
    champion_labels: Iterable[str], configured: Iterable[str], window_labels: Iterable[str]
) -> set[str]:
    """Labels the challenger must know and have training rows for: every label of the champion, and
    every configured label present in the window."""
    return set(champion_labels) | (set(configured) & set(window_labels))


def label_order(previous: Sequence[str], seen: Iterable[str]) -> list[str]:
    """The champion's labels in their order, then labels not seen before, sorted."""
    known = list(previous)
    return known + sorted(set(seen) - set(known))
