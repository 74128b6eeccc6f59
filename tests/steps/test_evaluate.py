from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from gate_fixtures import (  # noqa: F401 (gate_cfg, template_db: fixtures)
    CLASSES,
    GATE,
    ROWS_PER_CLASS,
    WRONG,
    gate_cfg,
    log_model,
    mapping_with_errors,
    split_rows,
    template_db,
    write_test_split,
)
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineError
from pipeline.results import EvaluateResult
from pipeline.steps import evaluate
from pipeline.storage import MARKER

A, B, C = CLASSES
# champion misses 15 rows of each class; the challenger misses 3 of those and nothing else
BETTER = ({c: range(15) for c in CLASSES}, {c: range(3) for c in CLASSES})
# champion misses rows 0-9, challenger rows 3-11 of each class: fixes 9, breaks 6
INSIGNIFICANT = ({c: range(10) for c in CLASSES}, {c: range(3, 12) for c in CLASSES})
# challenger fixes 50 rows of A and B but drops recall of C from 1.0 to 0.8 (F1 1.0 -> 0.889)
GUARDRAIL = ({A: range(25), B: range(25)}, {C: range(12)})


def _evaluate(cfg, tmp_path: Path, champion_errors, challenger_errors, *, run_id: str = "test__run1"):
    test_uri = write_test_split(tmp_path / "data" / "test.parquet")
    challenger_uri = log_model(cfg, mapping_with_errors(challenger_errors))
    champion_uri = None if champion_errors is None else log_model(cfg, mapping_with_errors(champion_errors))
    return evaluate.run(
        cfg,
        test_uri=test_uri,
        challenger_uri=challenger_uri,
        champion_uri=champion_uri,
        champion_version=None if champion_uri is None else "1",
        out_dir=str(tmp_path / "out" / run_id / "evaluate"),
        pipeline_run_id=run_id,
    )


def test_first_model_over_floor_is_promoted(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, None, {c: range(6) for c in CLASSES})
    assert res.is_first_model and res.promote
    assert res.reasons == ()
    assert res.challenger_accuracy == pytest.approx(0.9)
    assert res.champion_macro_f1 is None and res.p_value is None and res.ci_low is None


def test_first_model_without_floor_is_not_promoted(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(evaluate={"first_model_min_macro_f1": None}), tmp_path, None, {})
    assert res.challenger_macro_f1 == 1.0
    assert not res.promote
    assert len(res.reasons) == 1 and "gate not configured: first_model_min_macro_f1" in res.reasons[0]
    assert res.outcome == "reject"


def test_first_model_under_floor_is_not_promoted(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg(evaluate={"first_model_min_macro_f1": 0.95})
    res = _evaluate(cfg, tmp_path, None, {c: range(12) for c in CLASSES})
    assert not res.promote
    assert res.reasons == (f"first model: macro_f1 {res.challenger_macro_f1:.4f} < floor 0.95",)


def test_better_challenger_is_promoted(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, *BETTER)
    assert res.promote and not res.is_first_model
    assert res.reasons == ()
    assert res.champion_version == "1"
    assert res.challenger_accuracy == pytest.approx(1 - 9 / 180)
    assert res.champion_accuracy == pytest.approx(1 - 45 / 180)
    assert res.p_value is not None and res.p_value < 0.01  # 36 fixed, 0 broken
    assert res.outcome == "promote" and res.look == 1 and res.power is not None
    assert res.macro_f1_diff == pytest.approx(res.challenger_macro_f1 - res.champion_macro_f1)
    assert 0 < res.ci_low < res.macro_f1_diff < res.ci_high
    assert res.test_rows == len(CLASSES) * ROWS_PER_CLASS


def test_insignificant_challenger_is_insufficient_evidence_not_rejected(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, *INSIGNIFICANT)
    assert not res.promote and res.outcome == "insufficient_evidence"
    assert res.macro_f1_diff > 0 and res.p_value > 0.05  # a little better on paper, not significantly
    assert res.ci_low <= 0 < 0.02 < res.ci_high  # the CI still holds a gain worth having
    assert res.reasons[0].startswith("primary macro_f1") and "power" in res.reasons[0]
    assert 0 < res.power < 0.8


def test_worse_challenger_is_rejected(gate_cfg, tmp_path: Path) -> None:
    champion, challenger = BETTER
    res = _evaluate(gate_cfg(), tmp_path, challenger, champion)
    assert res.outcome == "reject" and res.macro_f1_diff < 0 and res.ci_high < 0
    assert res.p_value > 0.99  # one-sided: a worse challenger is nowhere near significant
    assert sum(r.startswith("class:") and "regression beyond the margin" in r for r in res.reasons) == len(CLASSES)


def test_guardrail_regression_blocks_an_overall_better_challenger(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, *GUARDRAIL)
    assert res.p_value < 0.05 and res.ci_low > 0  # overall clearly better
    assert res.outcome == "reject"
    assert len(res.reasons) == 1 and res.reasons[0].startswith(f"class:{C} 1.0000 -> 0.8889 (diff -0.1111")
    assert "regression beyond the margin" in res.reasons[0]


def test_classes_under_min_support_are_reported_not_gated(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(evaluate={"min_support": ROWS_PER_CLASS + 1}), tmp_path, *GUARDRAIL)
    assert res.promote
    checks = json.loads(Path(res.decision_uri).read_text())["checks"]
    assert next(c for c in checks if c["name"] == f"class:{C}")["status"] == "reported"


def test_gate_without_alpha_does_not_promote(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(evaluate={"alpha": None}), tmp_path, *BETTER)
    assert not res.promote
    assert res.reasons == ("gate not configured: alpha (no promotion over a champion without it)",)


@pytest.mark.parametrize("key", ["min_macro_f1_gain", "max_class_f1_drop", "min_class_support"])
def test_a_removed_gate_key_says_what_replaced_it(key: str) -> None:
    with pytest.raises(ValueError, match=f"evaluate.{key} was removed"):
        EvaluateConfig(**{key: 0.1})


def test_the_pool_and_memory_holdout_join_and_training_rows_are_excluded(gate_cfg, tmp_path: Path) -> None:
    from pipeline.data import eval_pool

    cfg = gate_cfg(evaluate={"pool_half_life_days": None})  # every pool row, to count the exclusions
    for i, end in enumerate(("2025-02-20", "2023-06-01")):  # a recent window and one from an earlier season
        old = split_rows().assign(example_id=lambda d, i=i: f"old{i}-" + d["example_id"],
                                  text=lambda d, i=i: f"window {i} " + d["text"])  # fmt: skip
        path = tmp_path / f"old{i}.parquet"
        old.to_parquet(path, index=False)
        assert eval_pool.add(cfg, str(path), f"w{i}", end) == len(old)
        assert eval_pool.add(cfg, str(path), f"w{i}", end) == 0  # once per window
    gone = split_rows().head(7).assign(example_id=lambda d: "gone-" + d["example_id"], label="retired_topic")
    gone.to_parquet(tmp_path / "gone.parquet", index=False)
    assert eval_pool.add(cfg, str(tmp_path / "gone.parquet"), "w_gone", "2023-01-01") == 7
    train = tmp_path / "train.parquet"
    near = [f"window 0 {C} message 5 please"]  # a near-duplicate of a pool row (Jaccard 9/11 of word 1-2-grams)
    exact = [f"window 0 {A} message {k}" for k in range(10)] + [f"{B} message 0"]
    pd.DataFrame({"text": exact + near}).to_parquet(train)
    test_uri = write_test_split(tmp_path / "data" / "test.parquet")
    res = evaluate.run(
        cfg, test_uri=test_uri, challenger_uri=log_model(cfg, mapping_with_errors(BETTER[1])),
        champion_uri=log_model(cfg, mapping_with_errors(BETTER[0])), champion_version="1",
        out_dir=str(tmp_path / "out" / "evaluate"), pipeline_run_id="r", window_end="2025-03-01",
        train_uris=(str(train),),
    )  # fmt: skip
    n = len(CLASSES) * ROWS_PER_CLASS
    # 10 exact and 1 near-duplicate pool rows; "B message 0" of the window; "A message 15" (Jaccard 0.64) stays
    assert res.rows["excluded_pool"] == 11 and res.rows["excluded_window"] == 1
    assert res.rows["pool"] == n - 11 and res.rows["memory"] == n
    assert res.rows["memory_retired_labels"] == 7  # a label no recent row has: forgetting it is no regression
    assert res.test_rows == res.rows["window"] + res.rows["pool"]
    decision = json.loads(Path(res.decision_uri).read_text())
    assert any(c["name"] == "memory" for c in decision["checks"])
    assert decision["window_primary"]["n"] == res.rows["window"]  # the window's slice, reported alone
    preds = pd.read_parquet(Path(res.decision_uri).parent / "predictions.parquet")
    assert set(preds["slice"]) == {"window", "pool", "memory"}


@pytest.mark.parametrize("shift_alpha", [0.05, None])
def test_a_class_whose_labels_moved_is_gated_on_the_window_rows(gate_cfg, tmp_path: Path, shift_alpha) -> None:
    """The challenger misses class C only on the pool's older rows, the champion only on the window's:
    C's labels moved. Judged on the window (the default) C gains; on every row it lost 0.11 F1."""
    from pipeline.data import eval_pool

    cfg = gate_cfg(evaluate={"class_shift_alpha": shift_alpha})
    old = split_rows().assign(example_id=lambda d: "old-" + d["example_id"], text=lambda d: "window 0 " + d["text"])
    old.to_parquet(tmp_path / "old.parquet", index=False)
    eval_pool.add(cfg, str(tmp_path / "old.parquet"), "w0", "2025-02-20")
    window_champion = mapping_with_errors({A: range(25), B: range(25), C: range(20)})
    window_challenger = mapping_with_errors({})
    pool_rows = {f"window 0 {t}": lab for t, lab in mapping_with_errors({}).items()}
    pool_challenger = {f"window 0 {t}": lab for t, lab in mapping_with_errors({C: range(40)}).items()}
    res = evaluate.run(
        cfg, test_uri=write_test_split(tmp_path / "data" / "test.parquet"),
        challenger_uri=log_model(cfg, window_challenger | pool_challenger),
        champion_uri=log_model(cfg, window_champion | pool_rows), champion_version="1",
        out_dir=str(tmp_path / "out" / "evaluate"), pipeline_run_id="r", window_end="2025-03-01",
    )  # fmt: skip
    decision = json.loads(Path(res.decision_uri).read_text())
    check = next(c for c in decision["checks"] if c["name"] == f"class:{C}")
    assert decision["checks"][0]["status"] == "pass", decision["checks"][0]["detail"]
    if shift_alpha is None:
        assert res.outcome == "reject" and check["status"] == "fail" and check["value"] < -0.1
        assert decision["methods"]["class_shift"] == "off"
    else:
        assert res.promote and check["status"] == "pass" and "labels moved" in check["detail"], check["detail"]
        assert check["value"] == pytest.approx(0.2, abs=0.01)  # F1 0.8 -> 1.0 on the window's 60 rows of C


@pytest.mark.parametrize(("standing_errors", "replaces"), [(INSIGNIFICANT[1], True), (BETTER[1], False)])
def test_a_newer_challenger_is_scored_against_the_standing_one_on_the_same_rows(
    gate_cfg, tmp_path: Path, standing_errors, replaces: bool
) -> None:
    cfg = gate_cfg()
    newer = INSIGNIFICANT  # champion misses rows 0-9, the newer one rows 3-11 of each class
    res = evaluate.run(
        cfg, test_uri=write_test_split(tmp_path / "data" / "test.parquet"),
        challenger_uri=log_model(cfg, mapping_with_errors(newer[1])),
        champion_uri=log_model(cfg, mapping_with_errors(newer[0])), champion_version="1",
        out_dir=str(tmp_path / "out" / "evaluate"), pipeline_run_id="r",
        rival=("2", log_model(cfg, mapping_with_errors(standing_errors))),
    )  # fmt: skip
    assert res.outcome == "insufficient_evidence" and res.rival_version == "2"
    assert res.replaces_standing is replaces  # the standing one (3 errors per class) is significantly better
    decision = json.loads(Path(res.decision_uri).read_text())
    assert decision["standing"]["version"] == "2" and decision["standing"]["status"] == ("pass" if replaces else "fail")


def test_artifacts_written_and_logged_to_mlflow(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg()
    res = _evaluate(cfg, tmp_path, *GUARDRAIL)
    out = Path(res.decision_uri).parent
    names = {p.name for p in out.iterdir()}
    expected = {
        "decision.json",
        "decision.md",
        "metrics_challenger.json",
        "metrics_champion.json",
        "confusion_challenger.png",
        "confusion_champion.png",
        "predictions.parquet",
    }
    assert expected | {MARKER} == names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left

    decision = json.loads((out / "decision.json").read_text())
    assert decision["outcome"] == "reject" and decision["promote"] is False
    assert decision["reasons"] == list(res.reasons)
    assert decision["thresholds"]["class_f1_margin"] == 0.05
    assert decision["primary"]["ci_low"] == res.ci_low and decision["methods"]["primary"].startswith("paired_perm")
    assert decision["models"]["champion_version"] == "1"
    assert decision["rows"]["window"] == res.test_rows
    assert decision["metrics"]["champion"]["eval"]["per_class"][C]["f1"] == 1.0
    assert set(decision["metrics"]["challenger"]["eval"]["per_segment"]) == {"app", "web"}
    names = {c["name"] for c in decision["checks"]}
    assert names == {"primary", "ece", "fairness", "segment:app", "segment:web"} | {f"class:{c}" for c in CLASSES}
    md = (out / "decision.md").read_text()
    assert md.startswith("**reject**") and f"| class:{C} | fail |" in md
    assert (out / "confusion_champion.png").read_bytes()[:4] == b"\x89PNG"

    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds.columns[:5]) == ["example_id", "slice", "label", "pred_champion", "pred_challenger"]
    assert len(preds) == res.test_rows
    assert (preds["pred_challenger"] == WRONG).sum() == 12 and (preds["pred_champion"] == WRONG).sum() == 50

    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    run = client.get_run(res.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tracking.TAG_RUN] == "test__run1" and run.data.tags[tracking.TAG_STEP] == "evaluate"
    assert run.data.tags["outcome"] == "reject"
    assert run.data.metrics["promote"] == 0.0
    assert run.data.metrics["p_value"] == pytest.approx(res.p_value)
    assert run.data.metrics["ci_low"] == pytest.approx(res.ci_low)
    assert run.data.metrics[f"challenger_f1_{C}"] == pytest.approx(8 / 9)
    assert run.data.metrics[f"champion_f1_{C}"] == 1.0
    assert run.data.params["gate.alpha"] == "0.05"
    assert expected <= {a.path for a in client.list_artifacts(res.mlflow_run_id)}


def test_rerun_returns_recorded_result_without_a_new_run(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg()
    first = _evaluate(cfg, tmp_path, *BETTER)
    out = Path(first.decision_uri).parent
    before = (out / "decision.json").read_bytes()
    again = evaluate.run(
        cfg,
        test_uri="/nonexistent.parquet",
        challenger_uri="models:/none",
        champion_uri=None,
        champion_version=None,
        out_dir=str(out),
        pipeline_run_id="test__run1",
    )
    assert again == first
    assert EvaluateResult.from_dict(first.to_dict()) == first
    assert (out / "decision.json").read_bytes() == before
    exp = MlflowClient(tracking_uri=cfg.tracking_uri).get_experiment_by_name(cfg.tracking.experiment_name)
    runs = MlflowClient(tracking_uri=cfg.tracking_uri).search_runs([exp.experiment_id], "tags.step = 'evaluate'")
    assert len(runs) == 1


def test_missing_test_split_names_the_file(gate_cfg, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="nowhere.parquet does not exist"):
        evaluate.run(
            gate_cfg(),
            test_uri=str(tmp_path / "nowhere.parquet"),
            challenger_uri="models:/x",
            champion_uri=None,
            champion_version=None,
            out_dir=str(tmp_path / "out"),
            pipeline_run_id="r",
        )
    assert not (tmp_path / "out").exists()


def test_test_split_without_label_column_names_the_column(gate_cfg, tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"example_id": ["1"], "text": ["hi"]}).to_parquet(path)
    with pytest.raises(PipelineError, match="lacks column\\(s\\) label"):
        evaluate.run(
            gate_cfg(),
            test_uri=str(path),
            challenger_uri="models:/x",
            champion_uri=None,
            champion_version=None,
            out_dir=str(tmp_path / "out"),
            pipeline_run_id="r",
        )


def test_latency_is_measured_interleaved_after_warm_up_and_gated(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(evaluate={"latency_rows": 12}), tmp_path, *BETTER)
    decision = json.loads(Path(res.decision_uri).read_text())
    assert set(decision["latency_p95_ms"]) == {"champion", "challenger", "champion_p50", "challenger_p50"}
    check = next(c for c in decision["checks"] if c["name"] == "latency_p95")
    assert check["status"] == "pass" and res.promote  # two lookup tables: no real difference in speed
