from __future__ import annotations

import pytest

from pipeline import flow
from pipeline.results import ChampionInfo, DriftResult


def _plan(**kw):
    base = dict(dag_id="retrain", run_id="manual__2025-03-01T00:00:00+00:00", run_type="manual")
    base.update(kw)
    return flow.make_plan(**base)


def test_run_id_is_filesystem_safe_and_dag_scoped() -> None:
    p = _plan()
    assert p.pipeline_run_id == "retrain__manual__2025-03-01T00_00_00_00_00"
    assert p.consumer == "retrain"


@pytest.mark.parametrize(
    ("kw", "trigger", "window_end"),
    [
        ({"params": {"window_end": "2025-02-10"}, "logical_date": "2025-03-01T00:00:00+00:00"}, "manual", "2025-02-10"),
        (
            {
                "run_type": "asset_triggered",
                "drift_events": [{"window_end": "2025-04-01"}, {"window_end": "2025-05-01"}],
            },
            "drift",
            "2025-05-01",
        ),
        (
            {"run_type": "DagRunType.SCHEDULED", "data_interval_end": "2025-06-01T00:00:00+00:00"},
            "schedule",
            "2025-06-01",
        ),
        ({"logical_date": "2025-07-04T00:00:00+00:00"}, "manual", "2025-07-04"),
        ({"params": {"trigger": "schedule"}, "logical_date": "2025-09-01T00:00:00+00:00"}, "schedule", "2025-09-01"),
    ],
)
def test_window_and_trigger_come_from_the_run(kw, trigger, window_end) -> None:
    p = _plan(**kw)
    assert p.trigger == trigger
    assert p.window_end == window_end


def _drift(detected: bool) -> DriftResult:
    return DriftResult(detected, True, 0.7, 0.05, detected, False, None, None, 10, 10, None)


CHAMP = ChampionInfo("m", "3", "models:/m/3", "/x/train.parquet")
NONE = ChampionInfo("m", None, None, None)


@pytest.mark.parametrize(
    ("plan_kw", "drift", "champ", "train"),
    [
        ({}, False, NONE, True),
        ({}, False, CHAMP, False),
        ({}, True, CHAMP, True),
        ({"params": {"force_retrain": True}}, False, CHAMP, True),
        ({"run_type": "scheduled"}, False, CHAMP, True),
        ({"run_type": "asset_triggered"}, False, CHAMP, True),
    ],
)
def test_should_train(plan_kw, drift, champ, train) -> None:
    ok, why = flow.should_train(_plan(**plan_kw), _drift(drift), champ)
    assert ok is train and why


def test_plan_round_trips_through_xcom_dict() -> None:
    p = _plan(params={"force_retrain": True, "window_start": "2025-01-01"})
    assert flow.Plan.from_dict(p.to_dict()) == p


def test_a_run_announces_every_null_gate_threshold_in_its_log(make_cfg, caplog) -> None:
    import logging

    from pipeline import flow

    cfg = make_cfg(evaluate={"alpha": None, "first_model_min_macro_f1": None})
    with caplog.at_level(logging.WARNING, logger="pipeline.flow"):
        lines = flow.announce(cfg)
    assert [r.getMessage() for r in caplog.records] == lines
    assert [line.split(" is null")[0] for line in lines] == ["evaluate.alpha", "evaluate.first_model_min_macro_f1"]
    assert flow.announce(make_cfg()) == []


def test_commit_without_an_ingest_result_is_a_no_op(cfg) -> None:
    from pipeline import flow

    assert flow.commit(cfg, None) == 0
