"""The evaluation pool's recency thinning: a fixed, prediction-free draw per row, halving per half-life."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from pipeline.config import load_config
from pipeline.data import eval_pool

IDS = [f"row-{i}" for i in range(4000)]


@pytest.mark.parametrize(("age", "share"), [(0, 1.0), (90, 0.5), (180, 0.25), (360, 0.0625)])
def test_a_row_one_half_life_old_stays_with_chance_one_half(age: int, share: float) -> None:
    kept = sum(eval_pool.kept_by_recency(IDS, [age] * len(IDS), 90))
    if share == 1.0:
        assert kept == len(IDS)
    else:  # the hash is uniform: the kept count is a Binomial(4000, share) draw
        assert binomtest(kept, len(IDS), share).pvalue > 0.001


@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.integers(0, 1000)), max_size=30),
       st.floats(1, 400))  # fmt: skip
def test_thinning_is_the_same_on_every_call_and_nested_in_age(rows: list[tuple[str, int]], half_life: float) -> None:
    ids = [i for i, _ in rows]
    ages = [a for _, a in rows]
    first = eval_pool.kept_by_recency(ids, ages, half_life)
    assert first == eval_pool.kept_by_recency(ids, ages, half_life)  # every look sees the same rows
    younger = eval_pool.kept_by_recency(ids, [max(a - 30, 0) for a in ages], half_life)
    assert all(y or not f for f, y in zip(first, younger, strict=True))  # a row kept when old is kept when young
    assert all(eval_pool.kept_by_recency(ids, ages, None))


def test_the_pool_follows_recent_windows(tmp_path: Path) -> None:
    cfg = load_config(home=str(tmp_path / "home"), evaluate={"pool_half_life_days": 30, "pool_max_rows": 100000})
    for name, end in (("new", "2025-06-01"), ("old", "2025-03-03")):  # 0 and 90 days before the window
        frame = pd.DataFrame({"example_id": [f"{name}-{i}" for i in range(2000)], "text": "t",
                              "label": ["a", "b"] * 1000, "segment": "s"})  # fmt: skip
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        assert eval_pool.add(cfg, str(tmp_path / f"{name}.parquet"), name, end) == 2000
    pool, memory = eval_pool.load(cfg, as_of="2025-06-01", exclude_ids=[])
    window = pool["example_id"].str.split("-").str[0]
    assert (window == "new").sum() == 2000  # the newest window whole
    assert binomtest(int((window == "old").sum()), 2000, 0.125).pvalue > 0.001  # three half-lives: 1/8
    assert memory.empty
    unthinned = load_config(
        home=str(tmp_path / "home"), evaluate={"pool_half_life_days": None, "pool_max_rows": 100000}
    )
    assert len(eval_pool.load(unthinned, as_of="2025-06-01", exclude_ids=[])[0]) == 4000


@pytest.mark.parametrize("half_life", [None, 30.0])
def test_a_pool_with_no_recent_rows_is_empty_with_its_columns(tmp_path: Path, half_life: float | None) -> None:
    cfg = load_config(home=str(tmp_path / "home"), evaluate={"pool_half_life_days": half_life})
    frame = pd.DataFrame({"example_id": ["a", "b"], "text": "t", "label": ["x", "y"], "segment": "s"})
    frame.to_parquet(tmp_path / "old.parquet", index=False)
    eval_pool.add(cfg, str(tmp_path / "old.parquet"), "old", "2023-01-01")  # older than pool_max_age_days
    pool, memory = eval_pool.load(cfg, as_of="2025-06-01", exclude_ids=[])
    assert pool.empty and {"example_id", "label", "text"} <= set(pool.columns)
    assert sorted(memory["label"]) == ["x", "y"]
