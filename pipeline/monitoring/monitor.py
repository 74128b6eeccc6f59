"""The monitor's I/O around the pure policy: references from the history, decide, record, chart.

- :func:`references`: what a window is compared with — the reference data (the latest retrain's
  training data, else the champion's), the same season of the previous cycle (windows checked in
  it), and the champion's evaluation split (to calibrate its probabilities for CBPE).
- :func:`decide`: the policy's verdict on a drift result, recorded in the drift history (idempotent
  per pipeline run), with a decision JSON and a PNG chart of the history, both logged to MLflow.
- :func:`record_retrain`: a finished retrain moves the reference and starts the cooldown.

Heavy module (SQLAlchemy, MLflow); flow imports it inside functions.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pendulum

from pipeline import paths, storage
from pipeline.config import PipelineConfig
from pipeline.monitoring import history, policy
from pipeline.monitoring.signals import as_tests
from pipeline.results import ChampionInfo, DecisionResult, DriftResult

log = logging.getLogger(__name__)

DECISION_FILE = "decision.json"
CHART_FILE = "drift_history.png"


@dataclasses.dataclass(frozen=True)
class References:
    reference_uris: tuple[str, ...]  # empty: no champion, nothing to compare with
    seasonal_uris: tuple[str, ...]
    seasonal_name: str | None
    calibration_uri: str | None


def rules(cfg: PipelineConfig) -> policy.Rules:
    p = cfg.policy
    return policy.Rules(
        alpha=cfg.drift.alpha,
        hysteresis=p.hysteresis,
        persist_k=p.persist_k,
        persist_m=p.persist_m,
        strong_multiple=p.strong_multiple,
        perf_margin=p.perf_margin,
        cooldown_days=p.cooldown_days,
        budget=p.budget,
        budget_days=p.budget_days,
        on_season_start=p.retrain_on_season_start,
        on_new_label=p.retrain_on_new_label,
        performance_veto=p.performance_veto,
        min_headroom=p.min_headroom,
        headroom_rule=p.headroom_rule,
        incremental=p.incremental_epochs is not None,
        full_headroom=p.full_headroom,
    )


def _day(value: str) -> pendulum.DateTime:
    d = date.fromisoformat(value[:10])
    return pendulum.datetime(d.year, d.month, d.day, tz="UTC")


def season_window(cfg: PipelineConfig, window_end: str) -> tuple[str, str, str]:
    """(season MM-DD, first day, last day) of the same season one cycle before ``window_end``."""
    from pipeline.schedules import seasonal_timetable

    tt = seasonal_timetable(cfg.schedule)
    at = _day(window_end)
    start = tt.previous_start(at)
    end = tt.next_start(at, strict=True)
    return (
        tt.season_of(at),
        start.subtract(years=1).date().isoformat(),
        end.subtract(years=1, days=1).date().isoformat(),
    )


def references(cfg: PipelineConfig, champ: ChampionInfo, window_end: str | None) -> References:
    url, name = cfg.drift_history_url, cfg.register.model_name
    rows = history.rows(url, name)
    retrains = [r for r in rows if r.kind == "retrain" and r.reference_after]
    reference: tuple[str, ...] = ()
    if champ.train_data_uri is not None:  # no champion: nothing to compare with (first model)
        reference = _reference_after(cfg, retrains[-1]) if retrains else (champ.train_data_uri,)
    calibration = next((r.test_uri for r in reversed(retrains) if r.model_version == champ.version), None)
    seasonal: tuple[str, ...] = ()
    season = None
    if window_end:
        season, first, last = season_window(cfg, window_end)
        uris = [u for r in rows if r.kind == "check" and first <= r.window_end <= last for u in r.current_uris]
        seasonal = tuple(u for u in dict.fromkeys(uris) if paths.exists(u))
        season = f"{season} ({first}..{last})" if seasonal else None
    return References(reference, seasonal, season, calibration)


def _reference_after(cfg: PipelineConfig, row: history.Row) -> tuple[str, ...]:
    """The retrain's window files, or their MLflow copies (lineage) where ``artifact_root`` lost them."""
    from mlflow.exceptions import MlflowException

    from pipeline import lineage, tracking

    if all(paths.exists(u) for u in row.reference_after) or row.model_version is None:
        return row.reference_after
    c = tracking.client(cfg)
    try:
        run_id = c.get_model_version(cfg.register.model_name, row.model_version).run_id
    except MlflowException as exc:  # the version was deleted: its files are what they are
        log.warning("drift reference: version %s cannot be read (%s)", row.model_version, exc)
        return row.reference_after
    return lineage.resolve_all(c, row.reference_after, run_id, lineage.REFERENCE)


def _recent_accuracy(rows: list[history.Row], champ: ChampionInfo, n: int) -> float | None:
    vals = [
        float((r.signals or {})["performance"]["accuracy"])
        for r in rows
        if r.kind == "check" and r.champion_version == champ.version and (r.signals or {}).get("performance")
    ][-n:]
    return sum(vals) / len(vals) if vals else None


def headroom_view(h: dict[str, Any] | None, basis: str, metric: str) -> tuple[float, float, float] | None:
    """The recorded headroom's (gain, low, high) in one view; None when it was not measured. A record
    written before a view existed lacks it: NaNs, which the policy reads as not measured."""
    if not h:
        return None
    if (basis, metric) == ("champion", "accuracy"):
        return float(h["gain"]), float(h["low"]), float(h["high"])
    key = {("champion", "macro_f1"): "f1", ("window", "accuracy"): "window", ("window", "macro_f1"): "window_f1"}
    g, lo, hi = h.get(key[(basis, metric)]) or (math.nan, math.nan, math.nan)
    return float(g), float(lo), float(hi)


def check_input(
    cfg: PipelineConfig, plan: Any, dr: DriftResult, champ: ChampionInfo, past: list[history.Row]
) -> policy.CheckInput:
    perf = None
    recent = _recent_accuracy(past, champ, cfg.policy.recent_windows)
    if dr.performance:
        p = dr.performance
        perf = policy.PerformanceCheck(
            p["accuracy"], p["accuracy_low"], p["accuracy_high"], champ.accuracy, recent,
            headroom=headroom_view(p.get("headroom"), cfg.policy.headroom_basis, cfg.policy.headroom_metric),
            headroom_view=f"{cfg.policy.headroom_metric} vs "
            + ("the champion" if cfg.policy.headroom_basis == "champion" else "a probe without the window"),
        )  # fmt: skip
    elif dr.estimate:
        e = dr.estimate
        perf = policy.PerformanceCheck(
            e["accuracy"], e["accuracy"], e["accuracy"], champ.accuracy, recent, estimated=True
        )
    day = date.fromisoformat((plan.window_end or date.today().isoformat())[:10])
    accepting = cfg.validate_cfg.new_labels == "accept"
    return policy.CheckInput(
        day=day,
        trigger=plan.trigger,
        has_champion=champ.exists,
        forced=plan.force_retrain,
        tests=as_tests(dr.tests.get(dr.reference_used, {})) if dr.has_reference else (),
        performance=perf,
        new_labels=tuple(dr.new_labels) if accepting else (),
        champion_version=champ.version,
    )


def decide(
    cfg: PipelineConfig,
    plan: Any,
    dr: DriftResult,
    champ: ChampionInfo,
    out_dir: str,
    current_uris: list[str],
    validation_warnings: tuple[str, ...] = (),
) -> DecisionResult:
    """The policy's decision on this check, recorded once per pipeline run (a retry returns it); the
    window's validation warnings travel with it into the decision record."""
    done = storage.load_done(out_dir, DecisionResult)
    if done is not None:
        return done
    url, name = cfg.drift_history_url, cfg.register.model_name
    past = [r for r in history.rows(url, name) if r.pipeline_run_id != plan.pipeline_run_id]
    check = check_input(cfg, plan, dr, champ, past)
    d = policy.decide(check, [r.past() for r in past], rules(cfg))
    reasons = tuple(dataclasses.asdict(r) for r in d.reasons)
    record = plan.trigger != "drift"  # the monitor recorded the check that emitted the event
    result = DecisionResult(
        retrain=d.retrain,
        rule=d.rule,
        summary=d.summary,
        reasons=reasons,
        signals_on=d.signals_on,
        suppressed_by=d.suppressed_by,
        cooldown_until=d.cooldown_until.isoformat() if d.cooldown_until else None,
        recorded=record,
        reference_uri=dr.reference_uri,
        validation_warnings=tuple(validation_warnings),
        scope=d.scope,
    )
    for w in validation_warnings:
        log.warning("decide: the window passed validation with a warning: %s", w)
    if record:
        history.record(
            url,
            history.Row(
                model_name=name,
                pipeline_run_id=plan.pipeline_run_id,
                kind="check",
                window_start=plan.window_start,
                window_end=check.day.isoformat(),
                trigger=plan.trigger,
                retrain=d.retrain,
                rule=d.rule,
                suppressed_by=d.suppressed_by,
                cooldown_until=result.cooldown_until,
                signals_on=d.signals_on,
                signals={
                    "tests": dr.tests.get(dr.reference_used, {}),
                    "seasonal": dr.tests.get("seasonal"),
                    "reference_used": dr.reference_used,
                    "performance": dr.performance,
                    "estimate": dr.estimate,
                    "new_labels": list(dr.new_labels),
                },
                reasons=list(reasons),
                summary=d.summary,
                reference_uri=dr.reference_uri,
                current_uris=tuple(current_uris),
                champion_version=champ.version,
                scope=d.scope,
            ),
        )
    with storage.staged_dir(out_dir) as stage:
        storage.write_json_atomic(stage / DECISION_FILE, result.to_dict())
        chart = None
        try:
            from pipeline.monitoring import chart as charting

            chart = charting.draw(history.rows(url, name), stage / CHART_FILE, f"drift history of {name}")
        except Exception as exc:  # a chart must never fail a decision
            log.warning("decide: no chart (%s)", exc)
        _log_to_mlflow(cfg, plan.pipeline_run_id, result, stage / DECISION_FILE, chart)
        storage.write_done(stage, result)
    log.info("decision: %s", d.summary)
    return result


def _log_to_mlflow(
    cfg: PipelineConfig, pipeline_run_id: str, result: DecisionResult, decision: Path, chart: Path | None
) -> None:
    import mlflow

    from pipeline import tracking

    with tracking.step_run(cfg, pipeline_run_id, "decide"):
        mlflow.set_tags(
            {
                "decision.retrain": str(result.retrain).lower(),
                "decision.rule": result.rule,
                "decision.scope": result.scope or "",
                "decision.summary": result.summary[:4900],
            }
        )
        mlflow.log_metric("retrain", int(result.retrain))
        mlflow.log_artifact(str(decision), "decide")
        if chart is not None:
            mlflow.log_artifact(str(chart), "decide")


def record_retrain(
    cfg: PipelineConfig,
    *,
    pipeline_run_id: str,
    window_start: str | None,
    window_end: str | None,
    trigger: str,
    window_uris: Sequence[str],
    test_uri: str,
    model_version: str | None,
    promoted: bool,
    champion_version: str | None,
    scope: str | None = None,
) -> bool:
    """A retrain finished: later checks compare against the window it answered; the cooldown starts.

    The reference is the window itself, not the training set with its replay: a mix of old and new
    data stays distinguishable from new data alone, so the answered drift would fire again.
    """
    return history.record(
        cfg.drift_history_url,
        history.Row(
            model_name=cfg.register.model_name,
            pipeline_run_id=pipeline_run_id,
            kind="retrain",
            window_start=window_start,
            window_end=(window_end or date.today().isoformat())[:10],
            trigger=trigger,
            retrain=True,
            rule="retrained",
            summary=f"retrained ({scope or 'full'}): version {model_version}, promoted={promoted}; "
            f"reference now {', '.join(window_uris)}",
            reference_after=tuple(window_uris),
            test_uri=test_uri,
            model_version=model_version,
            promoted=promoted,
            champion_version=champion_version,
            scope=scope,
        ),
    )
