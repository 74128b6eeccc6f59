from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from pipeline.stats.metrics import macro_f1
from pipeline.stats.paired import mcnemar_exact, paired_bootstrap_diff


def _correctness(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_textbook_exact_p_value() -> None:
    # 10 examples only the challenger (b) gets right, 2 only the champion (a) gets right
    a, b = _correctness(both=30, only_a=2, only_b=10, neither=8)
    res = mcnemar_exact(a, b)
    assert (res.b01, res.b10) == (10, 2)
    assert res.statistic == 2
    assert res.p_value == pytest.approx(2 * binom.cdf(2, 12, 0.5))
    assert res.p_value == pytest.approx(0.0386, abs=1e-4)
    assert res.b_better


def test_mcnemar_is_symmetric_in_p_but_not_in_direction() -> None:
    a, b = _correctness(both=30, only_a=2, only_b=10, neither=8)
    swapped = mcnemar_exact(b, a)
    assert (swapped.b01, swapped.b10) == (2, 10)
    assert swapped.p_value == pytest.approx(mcnemar_exact(a, b).p_value)
    assert not swapped.b_better


@pytest.mark.parametrize("correct", [[True, False, True, True], [False, False], [True] * 50])
def test_mcnemar_identical_predictions_p_is_one(correct: list[bool]) -> None:
    res = mcnemar_exact(correct, correct)
    assert (res.b01, res.b10) == (0, 0)
    assert res.p_value == 1.0
    assert not res.b_better


def test_mcnemar_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        mcnemar_exact([True, False], [True])


def _two_models(n: int, err_a: float, err_b: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array(["a", "b", "c", "d"])
    y = labels[rng.integers(0, 4, n)]

    def noisy(err: float) -> np.ndarray:
        wrong = rng.random(n) < err
        shifted = labels[(np.searchsorted(labels, y) + 1) % 4]
        return np.where(wrong, shifted, y)

    return y, noisy(err_a), noisy(err_b)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_bootstrap_ci_contains_full_sample_diff_and_is_deterministic(metric: str) -> None:
    y, a, b = _two_models(300, 0.3, 0.25)
    first = paired_bootstrap_diff(y, a, b, metric=metric, n_resamples=500, seed=3)
    again = paired_bootstrap_diff(y, a, b, metric=metric, n_resamples=500, seed=3)
    other = paired_bootstrap_diff(y, a, b, metric=metric, n_resamples=500, seed=4)
    assert first == again
    assert other != first
    assert first.ci_low <= first.diff <= first.ci_high
    expected = float(np.mean(b == y) - np.mean(a == y)) if metric == "accuracy" else macro_f1(y, b) - macro_f1(y, a)
    assert first.diff == pytest.approx(expected)


def test_bootstrap_vectorized_macro_f1_matches_callable_metric() -> None:
    y, a, b = _two_models(120, 0.3, 0.2, seed=5)
    fast = paired_bootstrap_diff(y, a, b, metric="macro_f1", n_resamples=200, seed=9)
    slow = paired_bootstrap_diff(y, a, b, metric=macro_f1, n_resamples=200, seed=9)
    assert fast.diff == pytest.approx(slow.diff)
    assert fast.ci_low == pytest.approx(slow.ci_low)
    assert fast.ci_high == pytest.approx(slow.ci_high)


def test_bootstrap_ci_excludes_zero_for_clearly_better_model() -> None:
    y, a, b = _two_models(500, 0.4, 0.1)
    res = paired_bootstrap_diff(y, a, b, metric="macro_f1", n_resamples=1000, seed=1)
    assert res.diff > 0.2
    assert res.ci_low > 0


def test_bootstrap_identical_models_has_zero_width_ci_at_zero() -> None:
    y, a, _ = _two_models(100, 0.3, 0.3)
    res = paired_bootstrap_diff(y, a, a, metric="macro_f1", n_resamples=200, seed=1)
    assert (res.diff, res.ci_low, res.ci_high) == (0.0, 0.0, 0.0)


def test_bootstrap_ci_covers_true_diff_of_population() -> None:
    # the population diff of accuracy is 0.10 by construction; a 95% CI from 400 rows covers it
    y, a, b = _two_models(400, 0.3, 0.2, seed=11)
    res = paired_bootstrap_diff(y, a, b, metric="accuracy", n_resamples=1000, seed=2)
    assert res.ci_low < 0.10 < res.ci_high


def test_bootstrap_chunks_give_same_answer_as_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.stats.paired as paired

    y, a, b = _two_models(200, 0.3, 0.2, seed=4)
    one = paired_bootstrap_diff(y, a, b, metric="macro_f1", n_resamples=300, seed=8)
    monkeypatch.setattr(paired, "_MAX_CHUNK_CELLS", 200 * 7)  # 7 resamples per chunk
    chunked = paired_bootstrap_diff(y, a, b, metric="macro_f1", n_resamples=300, seed=8)
    # chunking changes how the generator's stream is cut, not which indices it draws
    assert chunked == one


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"metric": "auc"}, "unknown metric"), ({"confidence": 1.5}, "confidence"), ({"n_resamples": 0}, "n_resamples")],
)
def test_bootstrap_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"metric": "accuracy", "n_resamples": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_diff(["a", "b"], ["a", "b"], ["a", "a"], **args)
