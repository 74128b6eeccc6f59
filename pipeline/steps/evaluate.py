"""Evaluate: champion vs challenger on the same rows, the gate's rule, one decision record.

The rows: the window's test split plus the evaluation pool (recent test rows of earlier windows),
and the memory holdout (older seasons) for the forgetting guardrail; rows that are, or nearly are,
in a compared model's training data are excluded first (:mod:`pipeline.data.eval_pool`). Both
models predict every row; :mod:`pipeline.gate.compare` turns the predictions into paired
comparisons and :mod:`pipeline.gate.rule` (pure) decides: ``promote``, ``insufficient_evidence``
or ``reject``. The window's own slice is reported separately.

A standing challenger (one whose evidence was insufficient) is scored again on each new window
with ``use_pool=False`` and its earlier looks: later looks use only new rows, so the looks are
independent and the group-sequential test may accumulate them.

The step never raises because the gate said no: the decision record is the artifact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import mlflow
import numpy as np
import pandas as pd

from pipeline import paths, storage, tracking
from pipeline.config import PipelineConfig
from pipeline.data import eval_pool
from pipeline.errors import PipelineError
from pipeline.gate import compare, rule
from pipeline.paths import local_path
from pipeline.results import EvaluateResult
from pipeline.stats.metrics import classification_summary, plot_confusion
from pipeline.steps import evaluate_record as record

log = logging.getLogger(__name__)

DECISION = "decision.json"
DECISION_MD = "decision.md"
PREDICTIONS = "predictions.parquet"
REQUIRED_COLUMNS = ("example_id", "text", "label")


def _read_rows(test_uri: str | tuple[str, ...]) -> pd.DataFrame:
    """The evaluation rows of one file, or of several (a reassessment on a whole window) in order."""
    if isinstance(test_uri, str):
        return _read_test(test_uri)
    frames = [_read_test(u, allow_empty=True) for u in test_uri]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if df.empty:
        raise PipelineError(f"evaluate: the evaluation files {', '.join(test_uri) or '(none)'} have no rows")
    return df


def _read_test(test_uri: str, allow_empty: bool = False) -> pd.DataFrame:
    if not paths.exists(test_uri):
        raise PipelineError(f"evaluate: test split {test_uri} does not exist")
    df = pd.read_parquet(local_path(test_uri))
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise PipelineError(f"evaluate: test split {test_uri} lacks column(s) {', '.join(missing)}")
    if df.empty and not allow_empty:
        raise PipelineError(f"evaluate: test split {test_uri} has no rows")
    if "segment" not in df.columns:
        df = df.assign(segment=None)
    return df.reset_index(drop=True)


def _train_texts(uris: list[str]) -> list[str]:
    out: list[str] = []
    for uri in uris:
        if paths.exists(uri):
            out += pd.read_parquet(local_path(uri), columns=["text"])["text"].astype(str).tolist()
    return out


class _Model:
    """A loaded pyfunc: labels and confidences for a frame of texts, and single-row latency."""

    def __init__(self, uri: str, role: str) -> None:
        log.info("evaluate: loading %s %s", role, uri)
        self.uri, self.role = uri, role
        self.model = mlflow.pyfunc.load_model(uri)
        try:
            self.known: list[str] | None = list(self.model.unwrap_python_model().labels)
        except (AttributeError, TypeError, ValueError):  # not an intent model (tests pass plain pyfuncs)
            self.known = None

    def predict(self, texts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        out = self.model.predict(texts)
        if not isinstance(out, pd.DataFrame) or "label" not in out.columns or len(out) != len(texts):
            shape = f"{type(out).__name__} of length {len(out)}" if hasattr(out, "__len__") else type(out).__name__
            raise PipelineError(
                f"evaluate: {self.role} model {self.uri} must return a DataFrame with a 'label' column and one row "
                f"per input ({len(texts)}), got {shape}"
            )
        conf = out["confidence"].astype(float).to_numpy() if "confidence" in out.columns else np.full(len(out), np.nan)
        return out["label"].astype(str).to_numpy(), conf

    def one_row_ms(self, texts: pd.DataFrame, i: int) -> float:
        t0 = time.perf_counter()
        self.model.predict(texts.iloc[i : i + 1])
        return (time.perf_counter() - t0) * 1000


def _latency_p95(models: dict[str, _Model], texts: pd.DataFrame) -> dict[str, float]:
    """p95 and median (``<role>_p50``) of single-row predictions in ms, after warm-up, the two models
    interleaved row by row so that both see the same load (a noisy neighbour must not look like a
    slow model)."""
    if len(models) < 2 or texts.empty:
        return {}
    for m in models.values():
        for i in range(min(3, len(texts))):
            m.one_row_ms(texts, i)  # warm-up: lazy initialisation is not latency
    times: dict[str, list[float]] = {role: [] for role in models}
    for i in range(len(texts)):
        for role in models if i % 2 == 0 else list(models)[::-1]:
            times[role].append(models[role].one_row_ms(texts, i))
    return {role: float(np.percentile(t, 95)) for role, t in times.items()} | {
        f"{role}_p50": float(np.median(t)) for role, t in times.items()
    }


def _rows(
    cfg: PipelineConfig, test: pd.DataFrame, use_pool: bool, window_end: str | None, train_uris: list[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The evaluation rows (window, pool, memory slices) after excluding training rows and near-duplicates."""
    pool, memory = (
        eval_pool.load(cfg, as_of=window_end, exclude_ids=test["example_id"].astype(str))
        if use_pool
        else (test.iloc[:0], test.iloc[:0])
    )
    live = set(test["label"].astype(str)) | set(pool["label"].astype(str))
    retired = ~memory["label"].astype(str).isin(live)  # forgetting a label nobody uses any more is no harm
    memory = memory[~retired]
    frames, dropped = eval_pool.exclude_training(
        {"window": test, "pool": pool, "memory": memory},
        _train_texts(train_uris),
        cfg.evaluate.near_duplicate_threshold,
    )
    if frames["window"].empty and frames["pool"].empty:
        raise PipelineError(
            f"evaluate: no evaluation rows left: all {len(test)} test rows are (near-)duplicates of training rows"
        )
    cols = ["example_id", "text", "label", "segment"]
    parts = [frames[k][cols].assign(slice=k) for k in ("window", "pool", "memory") if not frames[k].empty]
    rows = pd.concat(parts, ignore_index=True)
    counts = {k: len(frames[k]) for k in frames} | {f"excluded_{k}": v for k, v in dropped.items()}
    counts["memory_retired_labels"] = int(retired.sum())
    return rows, counts


def run(
    cfg: PipelineConfig,
    *,
    test_uri: str | tuple[str, ...],
    challenger_uri: str,
    champion_uri: str | None,
    champion_version: str | None,
    out_dir: str,
    pipeline_run_id: str,
    window_end: str | None = None,
    train_uris: tuple[str, ...] = (),
    use_pool: bool = True,
    earlier_looks: tuple[rule.Look, ...] = (),
    rival: tuple[str, str] | None = None,
) -> EvaluateResult:
    """Compare the challenger with the champion (if any) and decide on promotion.

    Writes under ``out_dir``: ``decision.json`` (outcome, every check with value, CI, threshold,
    p-value and power, the rows used, both models' metrics per class and per segment, URIs),
    ``decision.md`` (the same as a table), ``metrics_<role>.json``, ``confusion_<role>.png`` and
    ``predictions.parquet``; all are logged to the MLflow child run ``evaluate``. Retry-safe: a
    rerun of the same run returns the recorded result. ``rival`` (version, URI): the standing
    challenger, scored on the same rows; the record says whether this challenger may take its place
    (:func:`pipeline.gate.rule.replaces_standing`). Raises :class:`PipelineError` when the test
    split is missing or malformed, or a model's output is not one ``label`` per row. ``test_uri``
    may name several files (a standing challenger's reassessment on every split of a new window).
    """
    done = storage.load_done(out_dir, EvaluateResult)
    if done is not None:
        log.info("evaluate: %s already finished (%s); returning the recorded result", out_dir, done.outcome)
        return done
    ev = cfg.evaluate
    test = _read_rows(test_uri)
    rows, counts = _rows(cfg, test, use_pool, window_end, list(train_uris))
    y = rows["label"].astype(str).to_numpy()
    memory = (rows["slice"] == "memory").to_numpy()
    segments = rows["segment"].to_numpy(dtype=object)
    log.info("evaluate: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    decision_path = paths.join(paths.absolute(out_dir), DECISION)

    with storage.staged_dir(out_dir) as stage, tracking.step_run(cfg, pipeline_run_id, "evaluate") as mlrun:
        models = {"challenger": _Model(challenger_uri, "challenger")}
        if champion_uri is not None:
            models["champion"] = _Model(champion_uri, "champion")
        preds = {role: m.predict(rows[["text"]]) for role, m in models.items()}
        sample = rows.loc[~memory, ["text"]].head(ev.latency_rows)
        latency = _latency_p95(models, sample)
        known = {role: m.known for role, m in models.items()}
        lost = tuple(sorted(set(known.get("champion") or ()) - set(known["challenger"] or ())))
        if known["challenger"] is None:
            lost = ()
        inp = compare.build_input(
            ev, y_true=y, segments=segments, memory=memory, challenger=preds["challenger"],
            champion=preds.get("champion"), latency_p95_ms=latency, lost_labels=lost, earlier_looks=earlier_looks,
            recent=(rows["slice"] == "window").to_numpy(),
        )  # fmt: skip
        gd = rule.decide(inp, compare.rules_from(ev))
        rival_check = None
        if rival is not None and "champion" in preds:
            standing_pred, _ = _Model(rival[1], "standing challenger").predict(rows.loc[~memory, ["text"]])
            rival_check = rule.replaces_standing(
                compare.newer_vs_standing(y[~memory], preds["challenger"][0][~memory], standing_pred, ev),
                compare.rules_from(ev),
            )
            log.info("evaluate: against standing v%s: %s", rival[0], rival_check.detail)
        labels = list(dict.fromkeys([*cfg.validate_cfg.labels, *sorted(set(y.tolist()))]))
        main = ~memory
        summaries = {
            role: {
                "eval": classification_summary(y[main], p[main], labels, segments[main]),
                "window": classification_summary(y[rows["slice"] == "window"], p[rows["slice"] == "window"], labels),
            }
            for role, (p, _) in preds.items()
        }
        window_primary = record.window_primary(cfg, rows, y, preds)
        prim = inp.primary
        power = next((c.power for c in gd.checks if c.name == "primary"), None)
        result = EvaluateResult(
            promote=gd.promote,
            is_first_model=champion_uri is None,
            reasons=gd.reasons,
            decision_uri=decision_path,
            challenger_accuracy=summaries["challenger"]["eval"]["accuracy"],
            challenger_macro_f1=summaries["challenger"]["eval"]["macro_f1"],
            champion_accuracy=summaries["champion"]["eval"]["accuracy"] if "champion" in summaries else None,
            champion_macro_f1=summaries["champion"]["eval"]["macro_f1"] if "champion" in summaries else None,
            champion_version=champion_version,
            p_value=None if prim is None else prim.p_value,
            macro_f1_diff=None if prim is None else prim.diff,
            ci_low=None if prim is None else prim.ci_low,
            ci_high=None if prim is None else prim.ci_high,
            test_rows=int(main.sum()),
            mlflow_run_id=mlrun.info.run_id,
            outcome=gd.outcome,
            look=gd.look,
            power=power,
            rows=counts,
            summary=gd.summary,
            primary_variance=None if prim is None else prim.se**2,
            rival_version=None if rival_check is None or rival is None else rival[0],
            replaces_standing=None if rival_check is None else rival_check.status == "pass",
        )
        for role, (p, _) in preds.items():
            storage.write_json_atomic(
                stage / f"metrics_{role}.json", {"model_uri": models[role].uri, **summaries[role]}
            )
            plot_confusion(y[main], p[main], labels, stage / f"confusion_{role}.png", f"{role}: {models[role].uri}")
        record.predictions_frame(rows, preds).to_parquet(stage / PREDICTIONS, index=False)
        decision = {
            "outcome": gd.outcome,
            "verdict": {"promote": "promote", "reject": "reject"}.get(gd.outcome, "insufficient_evidence"),
            "promote": gd.promote,
            "is_first_model": champion_uri is None,
            "summary": gd.summary,
            "look": gd.look,
            "reasons": list(gd.reasons),
            "checks": [asdict(c) for c in gd.checks],
            "earlier_looks": [asdict(x) for x in earlier_looks],
            "standing": None if rival_check is None or rival is None else {"version": rival[0], **asdict(rival_check)},
            "primary": None if prim is None else record.record(prim),
            "window_primary": window_primary,
            "rows": counts,
            "latency_p95_ms": latency,
            "thresholds": ev.model_dump(),
            "metric": ev.metric,
            "methods": record.methods(ev),
            "metrics": {role: summaries.get(role) for role in ("challenger", "champion")},
            "labels": labels,
            "models": {
                "challenger_uri": challenger_uri,
                "champion_uri": champion_uri,
                "champion_version": champion_version,
            },
            "test_uri": test_uri if isinstance(test_uri, str) else list(test_uri),
            "test_rows": int(main.sum()),
            "pipeline_run_id": pipeline_run_id,
            "git_sha": tracking.git_sha(),
            "mlflow_run_id": mlrun.info.run_id,
        }
        storage.write_json_atomic(stage / DECISION, decision)
        md = rule.markdown(gd) + "\n" + record.rows_table(counts, window_primary)
        if rival_check is not None and rival is not None:
            md += f"\nAgainst the standing challenger v{rival[0]}: {rival_check.detail}.\n"
        (stage / DECISION_MD).write_text(md)
        record.log_to_mlflow(
            result,
            summaries,
            ev.model_dump(),
            champion_version,
            test_uri if isinstance(test_uri, str) else ",".join(test_uri),
        )
        mlflow.log_artifacts(str(stage))
        storage.write_done(stage, result)

    log.info("evaluate: %s", gd.summary)
    for line in gd.reasons:
        log.info("evaluate:   %s", line)
    log.info("evaluate: decision written to %s", decision_path)
    return result
