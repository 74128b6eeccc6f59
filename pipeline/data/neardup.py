"""Near-duplicate detection with MinHash LSH (datasketch), within a window and against earlier windows.

A text's fingerprint is the MinHash of its character shingles (``shingle_chars`` long) over the
dedup key (normalized, casefolded), so a resend with a typo, a changed word or extra punctuation
lands in the same LSH buckets as the original. :class:`datasketch.MinHashLSH` chooses the bands
and rows for a looser threshold (``threshold - 0.15``, recall weighted), so a true pair is rarely
missed; each candidate is then confirmed with the signatures' estimated Jaccard at ``threshold``,
so a bucket collision alone never drops a row. Short messages change more with a small edit
("where is my order" and "again: where is my order??" are far apart as shingle sets): the
guarantee is for estimated Jaccard at or above the threshold.

:func:`first_seen` walks the rows in order: a row is a near-duplicate when it matches an earlier
row of the same window or a row of the cross-window index (kept rows of earlier runs, see
:mod:`pipeline.data.ledger`). Because every kept row is then far from every other kept row of
the consumer, no test or evaluation row has a near-duplicate in any training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from pipeline.config_ingest import NearDupConfig


SCHEME = "affine32"  # datasketch 2's default hashing scheme: uint32 values, stored as such in the index


def _shingles(key: str, k: int) -> list[bytes]:
    if len(key) <= k:
        return [key.encode("utf-8")]
    return [key[i : i + k].encode("utf-8") for i in range(len(key) - k + 1)]


def signatures(keys: Sequence[str], cfg: NearDupConfig) -> np.ndarray:
    """An ``(n, num_perm)`` uint32 array: the MinHash of each key's shingles."""
    import zlib

    import numpy as np
    from datasketch import MinHash

    out = np.zeros((len(keys), cfg.num_perm), dtype=np.uint32)
    # one MinHash reused, and CRC-32 (stable across processes, C speed) instead of SHA-1: 5x faster
    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=SCHEME, hashfunc=zlib.crc32)
    for i, key in enumerate(keys):
        m.clear()
        m.update_batch(_shingles(key, cfg.shingle_chars))
        out[i] = m.hashvalues
    return out


def first_seen(
    ids: Sequence[str],
    sigs: np.ndarray,
    cfg: NearDupConfig,
    *,
    prior_ids: Sequence[str] = (),
    prior_sigs: np.ndarray | None = None,
) -> list[str | None]:
    """For each row (in order), the id of the earlier row or prior-window row it near-duplicates, else None."""
    from datasketch import LeanMinHash, MinHashLSH

    # candidates from a looser, recall-weighted index; the signatures' estimate then decides at the threshold
    lsh = MinHashLSH(threshold=max(0.3, cfg.threshold - 0.15), num_perm=cfg.num_perm, weights=(0.3, 0.7))
    stored: dict[str, np.ndarray] = {}

    def lean(sig: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=cfg.seed, hashvalues=sig, scheme=SCHEME)

    def add(key: str, sig: np.ndarray) -> None:
        if key not in stored:
            lsh.insert(key, lean(sig), check_duplication=False)
            stored[key] = sig

    if prior_sigs is not None:
        for pid, psig in zip(prior_ids, prior_sigs, strict=True):
            add(f"p:{pid}", psig)
    out: list[str | None] = []
    for n, (rid, sig) in enumerate(zip(ids, sigs, strict=True)):
        match = None
        for cand in lsh.query(lean(sig)):
            if float((stored[cand] == sig).mean()) >= cfg.threshold:
                match = cand.split(":", 1)[1]
                break
        out.append(match)
        if match is None:
            add(f"w{n}:{rid}", sig)
    return out
