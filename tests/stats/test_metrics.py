from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.stats.metrics import classification_summary, macro_f1, plot_confusion

Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]


def test_summary_hand_computed() -> None:
    s = classification_summary(Y_TRUE, Y_PRED, labels=["a", "b", "c"])
    # a: tp 2, fp 0, fn 1 | b: tp 1, fp 1, fn 1 | c: tp 1, fp 1, fn 0
    assert s["rows"] == 6
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert s["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert s["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert s["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["per_segment"] == {}


def test_macro_f1_ignores_labels_absent_from_y_true() -> None:
    # "x" is only predicted, "d" is only listed: neither dilutes the macro average
    s = classification_summary(["a", "a", "b", "b"], ["a", "a", "b", "x"], labels=["a", "b", "d"])
    assert s["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert s["per_class"]["x"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert s["per_class"]["d"]["support"] == 0
    assert list(s["per_class"]) == ["a", "b", "d", "x"]


def test_model_that_never_predicts_a_new_intent_scores_zero_on_it() -> None:
    y_true = ["a", "a", "new", "new"]
    champion = ["a", "a", "a", "a"]
    s = classification_summary(y_true, champion, labels=["a"])
    assert s["per_class"]["new"]["f1"] == 0.0
    # a: precision 2/4, recall 1 -> F1 2/3; new: 0 -> macro 1/3
    assert s["macro_f1"] == pytest.approx(1 / 3)
    assert macro_f1(y_true, champion) == pytest.approx(1 / 3)


def test_per_segment_hand_computed_and_nulls_left_out() -> None:
    segments = np.array(["s1", "s1", "s1", None, "s2", "s2"], dtype=object)
    s = classification_summary(Y_TRUE, Y_PRED, labels=["a", "b", "c"], segments=segments)
    assert set(s["per_segment"]) == {"s1", "s2"}
    assert s["per_segment"]["s1"] == pytest.approx({"rows": 3, "accuracy": 2 / 3, "macro_f1": 0.8})
    # s2: true b, c / pred c, c -> b: F1 0, c: F1 2/3
    assert s["per_segment"]["s2"] == pytest.approx({"rows": 2, "accuracy": 0.5, "macro_f1": 1 / 3})


def test_summary_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="length"):
        classification_summary(["a"], ["a", "b"], labels=["a"])


def test_plot_confusion_writes_png(tmp_path: Path) -> None:
    out = plot_confusion(Y_TRUE, Y_PRED, ["a", "b", "c"], tmp_path / "sub" / "cm.png", "challenger")
    assert out == tmp_path / "sub" / "cm.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 1000
