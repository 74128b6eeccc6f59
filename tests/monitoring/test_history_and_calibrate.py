"""The drift-history table (SQLite), its chart, and the calibration helpers."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.monitoring import calibrate, chart, history


def _row(run: str, day: str, kind: str = "check", **kw) -> history.Row:
    return history.Row(model_name="m", pipeline_run_id=run, kind=kind, window_end=day, **kw)


def test_history_round_trip_idempotent_and_filtered(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'h.db'}"  # the folder is created
    sig = {
        "tests": {"text": {"value": 0.7}},
        "performance": {"accuracy": 0.8, "accuracy_low": 0.75, "accuracy_high": 0.85},
    }
    assert history.record(url, _row("a", "2025-03-01", retrain=False, signals=sig, signals_on=("text",)))
    assert not history.record(url, _row("a", "2025-03-01"))
    assert history.record(url, _row("b", "2025-03-08", kind="retrain", reference_after=("/r",), promoted=True))
    with pytest.raises(ValueError, match="kind"):
        history.record(url, _row("c", "2025-03-09", kind="other"))
    rows = history.rows(url, "m")
    assert [(r.pipeline_run_id, r.kind) for r in rows] == [("a", "check"), ("b", "retrain")]
    assert rows[0].signals == sig and rows[0].signals_on == ("text",)
    assert history.rows(url, "m", kind="retrain")[0].reference_after == ("/r",)
    assert history.rows(url, "m", before="2025-03-05")[-1].pipeline_run_id == "a"
    assert history.get(url, "b", "retrain") is not None and history.rows(url, "other") == []
    png = chart.draw(rows, tmp_path / "c.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_table_from_before_the_scope_column_gains_it_and_keeps_its_rows(tmp_path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.MetaData()
    cols = [  # the table as an older release made it
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in history.TABLE.columns
        if c.name != "scope"
    ]
    sa.Table("drift_history", old, *cols)
    eng = sa.create_engine(url)
    old.create_all(eng)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO drift_history (model_name, pipeline_run_id, kind, window_end, recorded_at, retrain) "
                "VALUES ('m', 'old', 'retrain', '2025-01-01', '2025-01-01 00:00:00', 1)"
            )
        )
    eng.dispose()
    assert history.record(url, _row("new", "2025-02-01", kind="retrain", model_version="5", scope="incremental"))
    rows = history.rows(url, "m")
    assert [(r.pipeline_run_id, r.scope) for r in rows] == [("old", None), ("new", "incremental")]
    assert rows[1].past().scope == "incremental" and rows[0].past().scope is None


def test_calibration_helpers():
    assert calibrate.quantile_floor(list(range(101)), 0.05) == pytest.approx(95.0)
    assert calibrate.k_of_m_rate(0.05, 2, 3) == pytest.approx(3 * 0.05**2 * 0.95 + 0.05**3)
    assert calibrate.k_of_m_rate(0.05, 1, 1) == pytest.approx(0.05)


def test_calibrate_on_no_drift_data_meets_the_target(make_cfg) -> None:
    from datetime import date

    from pipeline.config import SimulatorConfig
    from pipeline.data.simulator import simulate_messages

    rows = simulate_messages(SimulatorConfig(messages_per_day=40), date(2025, 3, 1), date(2025, 5, 31))
    pool = pd.DataFrame(rows)[["text", "label"]]
    out = calibrate.calibrate(make_cfg(), pool, [40, 280], windows=40, target=0.1)
    assert [e["rows"] for e in out["sizes"]] == [40, 280]
    for e in out["sizes"]:
        assert e["any_signal_false_alarm_rate"] <= 0.1
        assert 0 <= e["persistence_2_of_3_rate"] <= e["any_signal_false_alarm_rate"]
        assert e["text"]["recommended_effect_floor"] > 0
