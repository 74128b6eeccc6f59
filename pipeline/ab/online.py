"""The online A/B decision from the serving logs, applied to the registry (I/O around :mod:`pipeline.ab.rule`).

:func:`run` first decides the guard of the last promotion (:mod:`pipeline.ab.guard`: roll back or
keep), then the A/B test. It reads the aliases (``champion``, ``challenger``), replays the test's feedback from the
prediction log into looks (one per ``ab.look_every`` events, and one now), and decides with the pure
rule. Applied: ``promote`` moves ``previous`` to the old champion, ``champion`` to the challenger
and removes ``challenger`` (:func:`pipeline.promotion.promote`, which refuses a stale decision if
the champion moved meanwhile); ``stop_harm``, ``stop_futility`` and ``inconclusive`` remove
``challenger``. Every move lands in the alias history with the numbers. Idempotent: the decision is
recomputed from the whole log each time, and a finished test has no challenger left to move.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import datetime
from typing import Any

from pipeline import promotion, registry, tracking
from pipeline.ab import rule
from pipeline.config import PipelineConfig
from pipeline.results import AbResult
from pipeline.serving import log as serving_log

log = logging.getLogger(__name__)


def rules_from(cfg: PipelineConfig) -> rule.AbRules:
    ab = cfg.ab
    return rule.AbRules(alpha=ab.alpha, tau=ab.tau, min_effect=ab.min_effect, min_per_arm=ab.min_per_arm,
                        max_samples=ab.max_samples, max_days=ab.max_days, guard_days=ab.guard_days)  # fmt: skip


def run(cfg: PipelineConfig, *, run_id: str, apply: bool = True, now: datetime | None = None) -> AbResult:
    """The guard of the last promotion (:mod:`pipeline.ab.guard`), then the A/B test, each decided on
    the whole log; applied to the registry unless ``apply`` is False."""
    from pipeline.ab import guard

    name = cfg.register.model_name
    now = now or serving_log.now()
    url = cfg.serving_log_url
    seen = serving_log.feedback_total(url)  # before reading: feedback arriving meanwhile counts next time
    g = guard.run(cfg, run_id=run_id, apply=apply, now=now)
    extra: dict[str, Any] = {} if g is None else {"guard_outcome": g.outcome, "guard_summary": g.summary}
    c = tracking.client(cfg)
    champion = registry.alias_version(c, name, registry.CHAMPION)
    challenger = registry.alias_version(c, name, registry.CHALLENGER)
    steps: list[rule.AbDecision] = []
    if g is not None and g.outcome == "rollback" and g.applied:
        summary = f"champion rolled back to v{champion} by the guard; the A/B test goes on against it next run"
        result = AbResult("continue" if challenger else "no_test", champion, challenger, summary, False, **extra)
    elif champion is None or challenger is None:
        summary = f"no A/B test: {name} has {'no champion' if champion is None else 'no challenger'}"
        result = AbResult("no_test", champion, challenger, summary, applied=False, **extra)
    else:
        start, events = serving_log.judged(url, champion, challenger)
        if start is None:
            summary = f"no A/B test yet: challenger v{challenger} has served no traffic"
            result = AbResult("no_test", champion, challenger, summary, applied=False, **extra)
        else:
            result, steps = _decide(cfg, run_id, apply, champion, challenger, start, events, now, extra)
    if apply:
        serving_log.set_mark(url, serving_log.DECIDED, seen)
    if steps or g is not None:
        _log_to_mlflow(cfg, run_id, result, steps, rules_from(cfg))
    if g is not None:
        result = replace(result, summary=f"{result.summary}; {g.summary}")
    return result


def _decide(cfg: PipelineConfig, run_id: str, apply: bool, champion: str, challenger: str, start: datetime,
            events: list[serving_log.Judged], now: datetime,
            extra: dict[str, Any]) -> tuple[AbResult, list[rule.AbDecision]]:  # fmt: skip
    day = 86400.0
    looks = rule.looks_from([((e.ts - start).total_seconds() / day, e.variant, e.correct) for e in events],
                            cfg.ab.look_every, now_days=(now - start).total_seconds() / day)  # fmt: skip
    steps = rule.trace(looks, rules_from(cfg))
    d = steps[-1]
    log.info("ab: champion v%s vs challenger v%s: %s", champion, challenger, d.summary)
    # an unbounded confidence sequence (before the arms warm up) is None: XCom and JSON columns refuse inf
    est, low, high, p = (_finite(x) for x in (d.estimate, d.low, d.high, d.p_value))
    numbers: dict[str, object] = {"outcome": d.outcome, "estimate": est, "low": low, "high": high, "p_value": p,
               "n_champion": d.n_champion, "n_challenger": d.n_challenger, "looks": d.looks}  # fmt: skip
    applied = False
    if apply and d.outcome == "promote":
        applied = promotion.promote(cfg, challenger, expected_champion=champion, actor="ab_test",
                                    reason=f"online A/B: {d.summary}", run_id=run_id, numbers=numbers)  # fmt: skip
    elif apply and d.outcome in ("stop_harm", "stop_futility", "inconclusive"):
        applied = registry.move_alias(cfg, registry.CHALLENGER, None, actor="ab_test", reason=f"online A/B: {d.summary}",
                                      pipeline_run_id=run_id, numbers=numbers)  # fmt: skip
    result = AbResult(d.outcome, champion, challenger, d.summary, applied, d.n_champion, d.n_challenger, est, low,
                      high, p, d.looks, **extra)  # fmt: skip
    return result, steps


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _log_to_mlflow(cfg: PipelineConfig, run_id: str, result: AbResult, steps: list[rule.AbDecision],
                   rules: rule.AbRules) -> None:  # fmt: skip
    """The decision's numbers, ``ab_decision.json`` and ``ab_test.png`` in the MLflow run ``ab_test``."""
    import json
    import math
    import tempfile
    from pathlib import Path

    import mlflow

    from pipeline.ab import chart

    with tempfile.TemporaryDirectory() as tmp, tracking.step_run(cfg, run_id, "ab_test"):
        mlflow.set_tags({"ab.outcome": result.outcome, "ab.summary": result.summary[:4900],
                         "ab.champion_version": str(result.champion_version),
                         "ab.challenger_version": str(result.challenger_version)})  # fmt: skip
        if result.guard_outcome is not None:
            mlflow.set_tags(
                {"ab.guard_outcome": result.guard_outcome, "ab.guard_summary": str(result.guard_summary)[:4900]}
            )
        mlflow.log_metrics({k: float(v) for k, v in (("ab_estimate", result.estimate), ("ab_p_value", result.p_value),
                            ("ab_n_champion", result.n_champion), ("ab_n_challenger", result.n_challenger))
                            if v is not None and math.isfinite(float(v))})  # fmt: skip
        record = Path(tmp) / "ab_decision.json"
        record.write_text(json.dumps(result.to_dict(), indent=2, default=str))
        mlflow.log_artifact(str(record), "ab_test")
        if not steps:
            return
        try:
            png = chart.draw(steps, rules, Path(tmp) / "ab_test.png",
                             f"v{result.challenger_version} vs champion v{result.champion_version}: {result.outcome}")  # fmt: skip
            mlflow.log_artifact(str(png), "ab_test")
        except Exception as exc:  # a chart must never fail a decision
            log.warning("ab: no chart (%s)", exc)
