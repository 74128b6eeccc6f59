"""The headroom estimate: a probe that saw the window against the champion, on rows it did not see."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.monitoring import headroom


def _blobs(rng: np.random.Generator, n: int, centres: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.array(list(centres))[rng.integers(0, len(centres), n)]
    x = np.stack([centres[lab] for lab in labels]) + 0.3 * rng.standard_normal((n, 8))
    return x, labels


def test_a_learnable_shift_the_champion_misses_has_headroom_and_a_stable_world_has_none() -> None:
    rng = np.random.default_rng(0)
    eye = np.eye(8)
    old = {"a": eye[0], "b": eye[1]}
    x_ref, y_ref = _blobs(rng, 300, old)
    # the world moved: class b now lives where nothing lived before; the champion (old boundary) says "a"
    x_cur, y_cur = _blobs(rng, 300, {"a": eye[0], "b": eye[2]})
    champion = np.where(x_cur[:, 1] > x_cur[:, 0], "b", "a")
    moved = headroom.estimate(x_cur, y_cur, champion, x_ref, y_ref)
    assert moved is not None and moved.low > 0.15 and moved.probe_accuracy > 0.95  # the champion guesses on b
    assert moved.champion_accuracy == pytest.approx(np.mean(champion == y_cur))
    # the same world, a champion that is right: nothing to gain; the CI's upper end stays near zero
    x_same, y_same = _blobs(rng, 300, old)
    perfect = headroom.estimate(x_same, y_same, y_same.copy(), x_ref, y_ref)
    assert perfect is not None and perfect.high < 0.02 and perfect.gain <= 0


def test_too_few_rows_give_no_estimate() -> None:
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, 20, {"a": np.eye(8)[0], "b": np.eye(8)[1]})
    assert headroom.estimate(x, y, y, x, y) is None


def test_what_the_window_adds_cancels_the_probes_own_edge_over_a_weak_champion() -> None:
    rng = np.random.default_rng(2)
    eye = np.eye(8)
    world = {"a": eye[0], "b": eye[1], "c": eye[2]}
    x_ref, y_ref = _blobs(rng, 400, world)
    x_cur, y_cur = _blobs(rng, 400, world)  # the same world
    weak = y_cur.copy()
    wrong = rng.random(len(weak)) < 0.2  # an undertrained champion: 20% of rows wrong
    weak[wrong] = np.where(weak[wrong] == "a", "b", "a")
    h = headroom.estimate(x_cur, y_cur, weak, x_ref, y_ref)
    assert h is not None
    assert h.low > 0.1 and h.f1[1] > 0.1  # against the champion: a probe beats it, in accuracy and macro-F1
    assert h.window[1] < 0 < h.window[2] and abs(h.window[0]) < 0.03  # the window itself teaches nothing new
    assert h.window_f1[1] < 0.03
    assert h.view("window", "macro_f1") == h.window_f1 and h.view("champion", "accuracy") == (h.gain, h.low, h.high)
    # a learnable shift: the window's rows teach the new place of class c, a probe without them cannot know it
    x_new, y_new = _blobs(rng, 400, {"a": eye[0], "b": eye[1], "c": eye[3]})
    moved = headroom.estimate(x_new, y_new, weak, x_ref, y_ref)
    assert moved is not None and moved.window[1] > 0.15 and moved.window_f1[1] > 0.15
