"""The online A/B decision on a real registry and a real feedback log: promote, stop, dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from pipeline.serving.log import PredictionLog


@pytest.fixture
def registered(make_cfg, intent_dir: Path):
    """A config whose registry holds versions 1 (champion) and 2 (challenger)."""
    import mlflow

    from pipeline import tracking
    from pipeline.modeling.pyfunc import log_intent_model

    cfg = make_cfg(ab={"look_every": 25})
    name = cfg.register.model_name
    exp = tracking.configure(cfg)
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp):
            info = log_intent_model(intent_dir, tags={"pipeline_run_id": "ab-test"})
        mlflow.register_model(info.model_uri, name)
    c = tracking.client(cfg)
    c.set_registered_model_alias(name, "champion", "1")
    c.set_registered_model_alias(name, "challenger", "2")
    return cfg


def _judged(cfg, arms: tuple[tuple[str, str, float], ...], n: int, t0: datetime, step: timedelta, seed: int) -> None:
    """n judged predictions per (variant, version, accuracy) arm from t0 on, one per ``step``."""
    rng = np.random.default_rng(seed)
    plog = PredictionLog(cfg.serving_log_url, buffer_max=10**6, flush_interval_s=1)
    truths = []
    for i in range(n):
        for variant, version, acc in arms:
            rid = f"{variant}-{version}-{i}"
            plog.record([{"request_id": rid, "ts": t0 + i * step, "user_key": "u" * 32,
                          "variant": variant, "model_version": version, "label": "order_status",
                          "confidence": 0.8, "latency_ms": 3.0, "text": "where is my order"}])  # fmt: skip
            truths.append((rid, bool(rng.random() < acc)))
    plog.flush()
    for rid, right in truths:
        plog.feedback(rid, label=None, correct=right)


def _traffic(cfg, acc_champion: float, acc_challenger: float, n: int, seed: int = 0) -> datetime:
    """The A/B test: champion v1 and challenger v2 over the last day (feedback arrives now). Returns
    when the test began."""
    t0 = datetime.now(UTC) - timedelta(days=1)
    _judged(
        cfg, (("champion", "1", acc_champion), ("challenger", "2", acc_challenger)), n, t0, timedelta(minutes=1), seed
    )
    return t0


def _aliases(cfg) -> dict[str, str]:
    from pipeline import tracking

    return {a: str(v) for a, v in tracking.client(cfg).get_registered_model(cfg.register.model_name).aliases.items()}


def test_a_clearly_better_challenger_is_promoted_with_its_record(registered):
    from pipeline import registry_history
    from pipeline.ab import online

    cfg = registered
    _traffic(cfg, 0.70, 0.90, 600)
    dry = online.run(cfg, run_id="ab-1", apply=False)
    assert dry.outcome == "promote" and not dry.applied and _aliases(cfg) == {"champion": "1", "challenger": "2"}
    res = online.run(cfg, run_id="ab-2")
    assert res.outcome == "promote" and res.applied and res.low > 0
    assert _aliases(cfg) == {"champion": "2", "previous": "1"}
    moves = registry_history.moves(cfg.registry_history_url, cfg.register.model_name, "champion")
    assert moves[-1].to_version == "2" and moves[-1].actor == "ab_test" and moves[-1].numbers["n_challenger"] > 0
    from pipeline import tracking

    c = tracking.client(cfg)
    exp = c.get_experiment_by_name(cfg.tracking.experiment_name).experiment_id
    (run,) = c.search_runs([exp], filter_string="tags.pipeline_run_id = 'ab-2' and tags.step = 'ab_test'")
    assert run.data.tags["ab.outcome"] == "promote" and run.data.metrics["ab_estimate"] > 0
    assert {a.path for a in c.list_artifacts(run.info.run_id, "ab_test")} == {
        "ab_test/ab_decision.json",
        "ab_test/ab_test.png",
    }
    again = online.run(cfg, run_id="ab-3")
    assert again.outcome == "no_test" and not again.applied


def test_a_worse_challenger_is_stopped_and_the_champion_stays(registered):
    from pipeline.ab import online

    cfg = registered
    _traffic(cfg, 0.90, 0.70, 600)
    res = online.run(cfg, run_id="ab-1")
    # futility (no gain of ab.min_effect possible) may come a look before harm: either stops it
    assert res.outcome in ("stop_harm", "stop_futility") and res.applied and res.high < cfg.ab.min_effect
    assert _aliases(cfg) == {"champion": "1"}


def test_too_little_feedback_continues_and_moves_nothing(registered):
    from pipeline.ab import online

    cfg = registered
    t0 = _traffic(cfg, 0.80, 0.82, 40)
    res = online.run(cfg, run_id="ab-1", now=t0 + timedelta(days=2))
    assert res.outcome == "continue" and not res.applied and _aliases(cfg) == {"champion": "1", "challenger": "2"}
    import json

    json.dumps(res.to_dict(), allow_nan=False)  # an XCom: no inf while the sequence is still unbounded
    late = online.run(cfg, run_id="ab-2", now=t0 + timedelta(days=40))  # past ab.max_days
    assert late.outcome == "inconclusive" and late.applied and _aliases(cfg) == {"champion": "1"}
    json.dumps(late.to_dict(), allow_nan=False)


def _guard_traffic(cfg, acc_champion: float, acc_previous: float, n: int, t0: datetime, seed: int = 1) -> None:
    """The guard: the guarded champion (v2) and previous (v1), from t0 on."""
    _judged(cfg, (("champion", "2", acc_champion), ("previous", "1", acc_previous)), n, t0, timedelta(seconds=1), seed)


@pytest.fixture
def promoted(registered):
    """v2 promoted over v1 (by any path: promotion.promote), so a guard runs."""
    from pipeline import promotion

    assert promotion.promote(registered, "2", expected_champion="1", actor="test", reason="gate", run_id="p-1")
    return registered


def test_a_promotion_starts_a_guard_that_serving_sees(promoted):
    from pipeline.ab import guard
    from pipeline.serving.models import MlflowSource

    cfg = promoted
    g = guard.active(cfg)
    assert g is not None and (g.champion, g.previous) == ("2", "1")
    assert MlflowSource(cfg).aliases() == {"champion": "2", "previous": "1"}
    off = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"guard_share": 0.0})})
    assert guard.active(off) is None and MlflowSource(off).aliases() == {"champion": "2"}


def test_the_guard_rolls_back_a_live_regression_with_its_record(promoted):
    from pipeline import registry_history, serving, tracking
    from pipeline.ab import guard, online

    cfg = promoted
    g = guard.active(cfg)
    _guard_traffic(cfg, 0.60, 0.90, 400, g.since + timedelta(seconds=1))
    dry = online.run(cfg, run_id="g-1", apply=False)
    assert dry.guard_outcome == "rollback" and _aliases(cfg) == {"champion": "2", "previous": "1"}
    res = online.run(cfg, run_id="g-2")
    assert res.guard_outcome == "rollback" and "rolled back to v1" in res.summary
    assert _aliases(cfg)["champion"] == "1" and guard.active(cfg) is None
    last = registry_history.moves(cfg.registry_history_url, cfg.register.model_name, "champion")[-1]
    assert (last.from_version, last.to_version, last.actor) == ("2", "1", "ab_guard")
    assert (
        last.reason.startswith("rollback")
        and cfg.ab.min_per_arm <= last.numbers["n_previous"] < 400
        and last.numbers["high"] < 0
    )  # sequential: it stops early
    tags = tracking.client(cfg).get_model_version(cfg.register.model_name, "2").tags
    assert tags[guard.STATE] == guard.ROLLED_BACK
    assert serving.log.marks(cfg.serving_log_url)["decided"] == 800  # the watcher counts from here
    assert online.run(cfg, run_id="g-3").guard_outcome is None  # over: nothing to roll back twice


def test_the_guard_keeps_a_sound_promotion_after_its_period(promoted):
    from pipeline import tracking
    from pipeline.ab import guard, online

    cfg = promoted
    g = guard.active(cfg)
    _guard_traffic(cfg, 0.85, 0.85, 300, g.since + timedelta(seconds=1))
    early = online.run(cfg, run_id="k-1", now=g.since + timedelta(days=1))
    assert early.guard_outcome == "continue" and guard.active(cfg) is not None
    res = online.run(cfg, run_id="k-2", now=g.since + timedelta(days=cfg.ab.guard_days + 0.5))
    assert res.guard_outcome == "keep" and _aliases(cfg) == {"champion": "2", "previous": "1"}
    assert tracking.client(cfg).get_model_version(cfg.register.model_name, "2").tags[guard.STATE] == guard.KEPT
    assert guard.active(cfg) is None
