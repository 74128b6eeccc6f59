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
    template_db,
    write_test_split,
)
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineError
from pipeline.results import EvaluateResult
from pipeline.stats.metrics import classification_summary
from pipeline.steps import evaluate
from pipeline.storage import MARKER

A, B, C = CLASSES
# champion misses 15 rows of each class; the challenger misses 3 of those and nothing else
BETTER = ({c: range(15) for c in CLASSES}, {c: range(3) for c in CLASSES})
# champion misses rows 0-9, challenger rows 3-11 of each class: fixes 9, breaks 6 -> p = 0.61
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


def test_first_model_under_floor_is_not_promoted(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg(evaluate={"first_model_min_macro_f1": 0.95})
    res = _evaluate(cfg, tmp_path, None, {c: range(12) for c in CLASSES})
    assert not res.promote
    assert res.reasons == (f"first model: macro-F1 {res.challenger_macro_f1:.4f} < first_model_min_macro_f1 0.95",)


def test_better_challenger_is_promoted(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, *BETTER)
    assert res.promote and not res.is_first_model
    assert res.reasons == ()
    assert res.champion_version == "1"
    assert res.challenger_accuracy == pytest.approx(1 - 9 / 180)
    assert res.champion_accuracy == pytest.approx(1 - 45 / 180)
    assert res.p_value is not None and res.p_value < 1e-9  # 36 fixed, 0 broken
    assert res.macro_f1_diff == pytest.approx(res.challenger_macro_f1 - res.champion_macro_f1)
    assert 0 < res.ci_low < res.macro_f1_diff < res.ci_high
    assert res.test_rows == len(CLASSES) * ROWS_PER_CLASS


def test_insignificant_challenger_is_not_promoted(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, *INSIGNIFICANT)
    assert not res.promote
    assert res.p_value == pytest.approx(0.6072387695)  # 2 * binom.cdf(6, 15, 0.5)
    assert res.macro_f1_diff > 0  # a little better on paper, but neither test says so
    assert len(res.reasons) == 2
    assert res.reasons[0] == (
        "McNemar: p=0.6072 >= alpha 0.05, not significant (challenger fixed 9 and broke 6 of the champion's answers)"
    )
    assert res.reasons[1].startswith("macro-F1 gain +0.0")
    assert res.reasons[1].endswith("lower bound <= min_macro_f1_gain 0.0")
    assert res.ci_low <= 0 < res.ci_high


def test_worse_challenger_is_not_promoted(gate_cfg, tmp_path: Path) -> None:
    champion, challenger = BETTER
    res = _evaluate(gate_cfg(), tmp_path, challenger, champion)
    assert not res.promote
    assert res.macro_f1_diff < 0 and res.ci_high < 0
    assert res.reasons[0].startswith("McNemar: challenger is not better where the models disagree")
    assert "fixed 0 and broke 36" in res.reasons[0]
    assert any(r.startswith("macro-F1 gain") for r in res.reasons)
    # every class regresses by more than 0.1: one guardrail line each
    assert sum(r.startswith("guardrail: class") for r in res.reasons) == len(CLASSES)


def test_guardrail_regression_blocks_an_overall_better_challenger(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(), tmp_path, *GUARDRAIL)
    assert res.p_value < 0.05 and res.ci_low > 0  # overall clearly better
    assert not res.promote
    assert res.reasons == (
        f"guardrail: class '{C}' F1 1.0000 -> 0.8889 (drop 0.1111 > max_class_f1_drop 0.1; 60 test rows)",
    )


def test_guardrail_ignores_classes_under_min_support(gate_cfg, tmp_path: Path) -> None:
    res = _evaluate(gate_cfg(evaluate={"min_class_support": ROWS_PER_CLASS + 1}), tmp_path, *GUARDRAIL)
    assert res.promote
    decision = json.loads(Path(res.decision_uri).read_text())
    assert "none guarded" in next(c["detail"] for c in decision["checks"] if c["name"] == "guardrail")


@pytest.mark.parametrize("key", ["alpha", "min_macro_f1_gain", "max_class_f1_drop"])
def test_gate_with_a_threshold_missing_does_not_promote(gate_cfg, tmp_path: Path, key: str) -> None:
    res = _evaluate(gate_cfg(evaluate={key: None}), tmp_path, *BETTER)
    assert not res.promote
    assert res.reasons == (f"gate not configured: {key} (no promotion over a champion without it)",)


NOTHING = EvaluateConfig(alpha=None, min_macro_f1_gain=None, max_class_f1_drop=None, first_model_min_macro_f1=None)


def test_decide_with_every_threshold_null_names_every_key() -> None:
    from pipeline.stats.paired import BootstrapResult, McNemarResult

    summary = classification_summary([A, B], [A, B], labels=[A, B])
    promote, checks = evaluate.decide(
        NOTHING,
        challenger=summary,
        champion=summary,
        mcnemar=McNemarResult(b01=40, b10=0, statistic=0, p_value=1e-12),
        bootstrap=BootstrapResult(diff=0.3, ci_low=0.2, ci_high=0.4),
    )
    assert not promote
    assert [c.name for c in checks] == ["alpha", "min_macro_f1_gain", "max_class_f1_drop"]
    first, first_checks = evaluate.decide(NOTHING, challenger=summary, champion=None, mcnemar=None, bootstrap=None)
    assert first is False
    assert [c.name for c in first_checks] == ["first_model_min_macro_f1"]


def test_artifacts_written_and_logged_to_mlflow(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg()
    res = _evaluate(cfg, tmp_path, *GUARDRAIL)
    out = Path(res.decision_uri).parent
    names = {p.name for p in out.iterdir()}
    expected = {
        "decision.json",
        "metrics_challenger.json",
        "metrics_champion.json",
        "confusion_challenger.png",
        "confusion_champion.png",
        "predictions.parquet",
    }
    assert expected | {MARKER} == names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left

    decision = json.loads((out / "decision.json").read_text())
    assert decision["verdict"] == "reject" and decision["promote"] is False
    assert decision["reasons"] == list(res.reasons)
    assert decision["thresholds"]["max_class_f1_drop"] == GATE["max_class_f1_drop"]
    assert decision["stats"]["mcnemar"]["b01"] == 50 and decision["stats"]["mcnemar"]["b10"] == 12
    assert decision["stats"]["bootstrap"]["ci_low"] == res.ci_low
    assert decision["models"]["champion_version"] == "1"
    assert decision["test_uri"].endswith("test.parquet")
    assert decision["metrics"]["champion"]["per_class"][C]["f1"] == 1.0
    assert set(decision["metrics"]["challenger"]["per_segment"]) == {"app", "web"}
    assert decision["metrics"]["challenger"]["per_segment"]["web"]["rows"] == 60
    assert {c["name"] for c in decision["checks"]} == {"mcnemar", "macro_f1_gain"} | {f"guardrail:{c}" for c in CLASSES}
    assert json.loads((out / "metrics_challenger.json").read_text())["macro_f1"] == res.challenger_macro_f1
    assert (out / "confusion_champion.png").read_bytes()[:4] == b"\x89PNG"

    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds.columns[:4]) == ["example_id", "label", "pred_champion", "pred_challenger"]
    assert len(preds) == res.test_rows
    assert (preds["pred_challenger"] == WRONG).sum() == 12 and (preds["pred_champion"] == WRONG).sum() == 50

    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    run = client.get_run(res.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tracking.TAG_RUN] == "test__run1" and run.data.tags[tracking.TAG_STEP] == "evaluate"
    assert run.data.tags["verdict"] == "reject"
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
