"""The evaluation pool: recent test rows that no model trains on, so the gate sees enough evidence.

Each window's test split joins the pool when its run commits (one Parquet file per window under
``{home}/eval_pool/``, written once, by rename). At evaluation:

- **pool**: rows from windows that ended at most ``evaluate.pool_max_age_days`` before the window
  under evaluation (never later ones), thinned by recency (a row ``a`` days older than the window
  stays with chance ``0.5 ** (a / pool_half_life_days)``, a fixed draw from a hash of its id, so
  every look and every rerun sees the same rows; off by default), at most ``pool_max_rows``,
  stratified by label. Thinning makes the pool look like what the model will serve next, at the
  cost of rows: on the HuffPost replay a 90-day half-life left about 230 evaluation rows a
  quarter, power fell to 8–10% at +2 points and the served macro-F1 from 0.253 to 0.242;
- **memory holdout**: older rows (earlier seasons), at most ``memory_max_rows``, stratified: the
  forgetting guardrail;
- **exclusion**: any row whose normalized text is in a training set the compared models saw, or is a
  near-duplicate of one (MinHash LSH over word 1–2-grams, Jaccard ≥ ``near_duplicate_threshold``),
  is dropped and counted. The pool is never a source of training or replay rows: finetune reads
  only the window's train split and the champion's own training data.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import paths, storage
from pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

COLUMNS = ("example_id", "text", "label", "segment", "window_end")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_WORD = re.compile(r"\w+")
NUM_PERM = 128


def pool_dir(cfg: PipelineConfig) -> str:
    """Under ``artifact_root`` (shared storage when workers are many), never a worker's own home."""
    return paths.join(cfg.artifact_root_uri, "eval_pool")


def add(cfg: PipelineConfig, test_uri: str, window_id: str, window_end: str | None) -> int:
    """Add a window's test split (idempotent per ``window_id``); returns the rows added (0 when present).

    Each window's file is written once, whole (a rename, or one PUT on object storage)."""
    target = paths.join(pool_dir(cfg), f"{_UNSAFE.sub('_', window_id)}.parquet")
    if paths.exists(target) or not paths.exists(test_uri):
        return 0
    df = pd.read_parquet(paths.local_path(test_uri))
    if df.empty:
        return 0
    df = df.assign(window_end=(window_end or "")[:10], segment=df.get("segment"))[list(COLUMNS)]
    with tempfile.TemporaryDirectory(prefix="eval-pool-") as tmp:
        local = Path(tmp) / "window.parquet"
        df.to_parquet(local, index=False)
        storage.put_file(local, target)
    log.info("eval pool: %d test rows of %s joined the pool", len(df), window_id)
    return len(df)


def _stratified(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(df) <= n:
        return df
    if n <= 0:
        return df.iloc[:0]
    frac = n / len(df)
    out = df.groupby("label", group_keys=False).sample(frac=frac, random_state=seed)
    return out.head(n)


def kept_by_recency(ids: Iterable[object], ages_days: Iterable[float], half_life_days: float | None) -> list[bool]:
    """Which rows stay in the pool: ``u(id) < 0.5 ** (age / half_life)``, ``u`` uniform from a hash of the id.

    Independent of any prediction (the pool stays a fixed sample, so the gate's tests stay valid) and
    the same on every call (a standing challenger's later looks see the rows its first look saw)."""
    if half_life_days is None:
        return [True for _ in ids]
    out = []
    for i, age in zip(ids, ages_days, strict=True):
        u = int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "big") / 2.0**64
        out.append(u < 0.5 ** (max(float(age), 0.0) / half_life_days))
    return out


def load(cfg: PipelineConfig, *, as_of: str | None, exclude_ids: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pool, memory) as of the window ending ``as_of``; ``exclude_ids`` (the window's own rows) left out."""
    files = [paths.local_path(u) for u in paths.listdir(pool_dir(cfg), "*.parquet")]
    empty = pd.DataFrame(columns=list(COLUMNS))
    if not files:
        return empty, empty
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = df[~df["example_id"].astype(str).isin(set(map(str, exclude_ids)))]
    df = df.sort_values("window_end", ascending=False).drop_duplicates("example_id")
    ev = cfg.evaluate
    if as_of:
        end = date.fromisoformat(as_of[:10])
        ends = pd.to_datetime(df["window_end"], errors="coerce").dt.date
        df = df[ends.notna() & (ends <= end)]  # never a later window's rows (replays, backfills)
        ends = ends[df.index]
        recent = df[ends >= end - timedelta(days=ev.pool_max_age_days)]
        ages = [(end - e).days for e in ends[recent.index]]
        if ev.pool_half_life_days is not None:  # a boolean mask (a plain empty list would select no columns)
            kept = np.asarray(kept_by_recency(recent["example_id"], ages, ev.pool_half_life_days), dtype=bool)
            recent = recent.loc[kept]
        older = df[ends < end - timedelta(days=ev.pool_max_age_days)]
    else:
        recent, older = df, df.iloc[:0]
    return (
        _stratified(recent, ev.pool_max_rows, ev.seed).reset_index(drop=True),
        _stratified(older, ev.memory_max_rows, ev.seed).reset_index(drop=True),
    )


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(str(text).lower()))


def _shingles(text: str) -> set[bytes]:
    words = _norm(text).split()
    grams = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
    return {g.encode() for g in grams} or {b""}


def exclude_training(
    frames: dict[str, pd.DataFrame], train_texts: Iterable[str], threshold: float
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Drop every row that is a training row, or a near-duplicate of one; return the counts dropped."""
    from datasketch import MinHash, MinHashLSH

    train = [str(t) for t in train_texts]
    if not train:
        return frames, {k: 0 for k in frames}
    exact = {_norm(t) for t in train}
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    train_mh = MinHash.bulk([_shingles(t) for t in train], num_perm=NUM_PERM, seed=1)
    for i, m in enumerate(train_mh):
        lsh.insert(str(i), m)

    def near(h: MinHash) -> bool:  # LSH gives candidates; the estimated Jaccard confirms them
        return any(h.jaccard(train_mh[int(k)]) >= threshold for k in lsh.query(h))

    out, dropped = {}, {}
    for name, df in frames.items():
        if df.empty:
            out[name], dropped[name] = df, 0
            continue
        texts = df["text"].astype(str).tolist()
        hashes = MinHash.bulk([_shingles(t) for t in texts], num_perm=NUM_PERM, seed=1)
        keep = [_norm(t) not in exact and not near(h) for t, h in zip(texts, hashes, strict=True)]
        out[name] = df[keep].reset_index(drop=True)
        dropped[name] = len(df) - int(sum(keep))
    return out, dropped
