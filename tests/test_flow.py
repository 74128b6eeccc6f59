from __future__ import annotations

import dataclasses
from pathlib import Path

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


def _drift(detected: bool, accuracy: float | None = None) -> DriftResult:
    text = {
        "p_value": 0.001 if detected else 0.5,
        "effect": 0.2 if detected else 0.01,
        "effect_floor": 0.05,
        "value": 0.7,
    }
    perf = None
    if accuracy is not None:
        perf = {
            "accuracy": accuracy,
            "accuracy_low": accuracy - 0.03,
            "accuracy_high": accuracy + 0.03,
            "macro_f1": accuracy,
        }
    return DriftResult(
        detected, True, 0.7, 0.05, detected, False, None, None, 10, 10, None,
        tests={"training": {"text": text}}, performance=perf,
    )  # fmt: skip


CHAMP = ChampionInfo("m", "3", "models:/m/3", "/x/train.parquet", accuracy=0.9)
NONE = ChampionInfo("m", None, None, None)


@pytest.mark.parametrize(
    ("plan_kw", "drift", "champ", "train", "rule"),
    [
        ({}, False, NONE, True, "first_model"),
        ({}, False, CHAMP, False, "none"),
        ({}, True, CHAMP, False, "none"),  # one drifted check is not persistent drift
        ({"params": {"force_retrain": True}}, False, CHAMP, True, "forced"),
        ({"run_type": "scheduled"}, False, CHAMP, True, "season_start"),
        ({"run_type": "backfill"}, False, CHAMP, True, "season_start"),
        ({"run_type": "asset_triggered"}, False, CHAMP, True, "drift_event"),
    ],
)
def test_decide_applies_the_policy_and_records_it(make_cfg, tmp_path, plan_kw, drift, champ, train, rule) -> None:
    from pipeline.monitoring import history, monitor

    cfg = make_cfg()
    plan = _plan(**plan_kw)
    dec = monitor.decide(cfg, plan, _drift(drift), champ, str(tmp_path / "decide"), ["/x/cur.parquet"])
    assert (dec.retrain, dec.rule) == (train, rule)
    assert flow.should_train(dec) == (train, dec.summary)
    rows = history.rows(cfg.drift_history_url, cfg.register.model_name)
    assert len(rows) == (0 if rule == "drift_event" else 1)  # the monitor recorded the event's check
    # a retry returns the recorded decision and writes nothing twice
    assert monitor.decide(cfg, plan, _drift(drift), champ, str(tmp_path / "decide"), []) == dec
    assert len(history.rows(cfg.drift_history_url, cfg.register.model_name)) == len(rows)


def test_persistent_drift_retrains_and_a_retrain_moves_the_reference(make_cfg, tmp_path) -> None:
    from pipeline.monitoring import history, monitor

    cfg = make_cfg(policy={"incremental_epochs": 1})

    def check(day: str, detected: bool, accuracy: float | None = None):
        plan = _plan(run_id=f"manual__{day}", params={"window_end": day})
        return monitor.decide(cfg, plan, _drift(detected, accuracy), CHAMP, str(tmp_path / day), [f"/x/{day}.parquet"])

    assert not check("2025-03-01", True).retrain
    second = check("2025-03-08", True)
    assert second.retrain and second.rule == "distribution_drift" and second.scope == "incremental"
    assert monitor.references(cfg, CHAMP, "2025-03-15").reference_uris == ("/x/train.parquet",)  # the champion's
    monitor.record_retrain(
        cfg, pipeline_run_id="retrain__r", window_start=None, window_end="2025-03-08", trigger="drift",
        window_uris=["/x/w_train.parquet", "/x/w_test.parquet"], test_uri="/x/w_test.parquet", model_version="4",
        promoted=False, champion_version="3", scope="incremental",
    )  # fmt: skip
    refs = monitor.references(cfg, CHAMP, "2025-03-15")
    assert refs.reference_uris == ("/x/w_train.parquet", "/x/w_test.parquet")  # the window it answered
    assert refs.calibration_uri is None  # version 4 is not the champion: its test split calibrates nothing
    after = check("2025-03-15", True)
    assert not after.retrain  # the same drift, right after a retrain, does not fire again
    drop = check("2025-03-16", False, accuracy=0.7)
    assert not drop.retrain and "cooldown" in (drop.suppressed_by or "")
    later = check("2025-03-29", False, accuracy=0.7)
    assert later.retrain and later.rule == "performance_drop"
    assert later.scope == "full"  # the incremental retrain (version 4) lost: this one is full
    kinds = [r.kind for r in history.rows(cfg.drift_history_url, cfg.register.model_name)]
    assert kinds.count("retrain") == 1 and kinds.count("check") == 5


def test_the_fine_tune_runs_the_decision_s_scope(make_cfg) -> None:
    from pipeline import storage
    from pipeline.results import DecisionResult

    cfg = make_cfg(finetune={"epochs": 3}, policy={"incremental_epochs": 1})
    plan = _plan(run_id="manual__scope")
    assert flow.retrain_scope(cfg, plan, CHAMP)[1] == "full"  # no decision on record (a fine-tune by hand)
    dec = DecisionResult(True, "performance_drop", "s", (), (), None, None, True, scope="incremental")
    out = Path(flow.step_out(cfg, plan, "decide"))
    out.mkdir(parents=True)
    storage.write_done(out, dec)
    light, scope = flow.retrain_scope(cfg, plan, CHAMP)
    assert scope == "incremental" and light.finetune.epochs == 1 and cfg.finetune.epochs == 3
    assert flow.retrain_scope(cfg, plan, NONE)[1] == "full"  # nothing to warm-start from
    off = make_cfg(finetune={"epochs": 3}, policy={"incremental_epochs": None})
    full, scope = flow.retrain_scope(off, plan, CHAMP)  # incremental switched off: the decision's scope is not run
    assert scope == "full" and full.finetune.epochs == 3


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


def test_the_seasonal_reference_is_last_cycles_windows_of_the_same_season(make_cfg, tmp_path) -> None:
    from pipeline.monitoring import history, monitor

    cfg = make_cfg()
    files = []
    for day in ("2024-06-10", "2024-08-20", "2024-09-05"):
        f = tmp_path / f"{day}.parquet"
        f.write_bytes(b"x")
        files.append(str(f))
        history.record(
            cfg.drift_history_url,
            history.Row(model_name=cfg.register.model_name, pipeline_run_id=f"monitor__{day}", kind="check",
                        window_end=day, current_uris=(str(f),)),
        )  # fmt: skip
    refs = monitor.references(cfg, CHAMP, "2025-07-01")  # summer: 06-01 .. 08-31
    assert refs.seasonal_uris == tuple(files[:2])
    assert refs.seasonal_name == "06-01 (2024-06-01..2024-08-31)"
    assert monitor.references(cfg, CHAMP, "2025-04-01").seasonal_uris == ()  # no spring last year


def test_the_policy_reads_the_configured_view_of_the_recorded_headroom(make_cfg) -> None:
    from pipeline.monitoring import monitor

    h = {"gain": 0.05, "low": 0.03, "high": 0.07, "f1": [0.01, -0.01, 0.03], "window": [0.0, -0.02, 0.02]}
    assert monitor.headroom_view(h, "champion", "accuracy") == (0.05, 0.03, 0.07)
    assert monitor.headroom_view(h, "champion", "macro_f1") == (0.01, -0.01, 0.03)
    assert monitor.headroom_view(h, "window", "accuracy") == (0.0, -0.02, 0.02)
    assert all(v != v for v in monitor.headroom_view(h, "window", "macro_f1"))  # not recorded: NaN, no veto
    assert monitor.headroom_view(None, "window", "macro_f1") is None
    cfg = make_cfg(policy={"headroom_basis": "window", "headroom_metric": "macro_f1", "headroom_rule": "shown"})
    dr = _drift(False, 0.8)
    dr = dataclasses.replace(dr, performance={**dr.performance, "headroom": {**h, "window_f1": [0.04, 0.02, 0.06]}})
    check = monitor.check_input(cfg, _plan(), dr, CHAMP, [])
    assert check.performance is not None and check.performance.headroom == (0.04, 0.02, 0.06)
    assert check.performance.headroom_view == "macro_f1 vs a probe without the window"
    assert monitor.rules(cfg).headroom_rule == "shown"
