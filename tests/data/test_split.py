from __future__ import annotations

import pandas as pd
import pytest

from pipeline.data.split import split_stratified


def _frame(counts: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"example_id": f"{label}-{i:04d}", "text": f"text {label} {i}", "label": label}
        for label, n in counts.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def _split(df: pd.DataFrame, seed: int = 13) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return split_stratified(df, val_fraction=0.15, test_fraction=0.25, seed=seed)


def test_parts_are_disjoint_and_complete() -> None:
    df = _frame({"a": 100, "b": 60, "c": 40})
    train, val, test = _split(df)
    ids = [set(p["example_id"]) for p in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == set(df["example_id"])
    assert (len(train), len(val), len(test)) == (120, 30, 50)


def test_label_shares_are_kept() -> None:
    train, val, test = _split(_frame({"a": 100, "b": 60, "c": 40}))
    assert test["label"].value_counts().to_dict() == {"a": 25, "b": 15, "c": 10}
    assert val["label"].value_counts().to_dict() == {"a": 15, "b": 9, "c": 6}


def test_deterministic_and_independent_of_input_order() -> None:
    df = _frame({"a": 50, "b": 30, "c": 20})
    first = _split(df)
    again = _split(df.sample(frac=1.0, random_state=1))
    for x, y in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(x, y)
    other = _split(df, seed=99)
    assert set(other[2]["example_id"]) != set(first[2]["example_id"])


def test_rare_classes_go_to_train() -> None:
    train, val, test = _split(_frame({"a": 40, "b": 40, "rare": 2, "single": 1}))
    assert set(train["label"]) >= {"rare", "single"}
    assert "rare" not in set(val["label"]) | set(test["label"])
    assert (train["label"] == "rare").sum() == 2


def test_tiny_data_falls_back_without_losing_rows() -> None:
    df = _frame({c: 3 for c in "abcdefghi"})  # too few rows for 9 classes in a 15% part
    train, val, test = _split(df)
    assert len(train) + len(val) + len(test) == len(df)
    assert len(test) > 0


def test_empty_frame() -> None:
    train, val, test = _split(_frame({}).reindex(columns=["example_id", "text", "label"]))
    assert len(train) == len(val) == len(test) == 0


def test_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_stratified(_frame({"a": 10}), val_fraction=0.5, test_fraction=0.5, seed=1)
