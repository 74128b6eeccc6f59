from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.errors import DriftCheckError
from pipeline.results import DriftResult
from pipeline.steps import drift

LABELS = ("order_status", "refund_request", "return_item")
# vocabularies as strings: _messages draws words from vocab.split()
SHOP = (
    "where is my order package delivery refund money back card charged twice return item broken "
    "shipping late arrive tracking number parcel courier exchange size wrong colour"
)
CRYPTO = "wallet token staking blockchain ledger mining airdrop swap seed phrase gas fee validator"


@pytest.fixture
def dcfg(make_cfg, mlflow_store):
    return make_cfg(
        tracking=mlflow_store,
        drift={"text_drift_threshold": 0.6, "label_drift_threshold": 0.1, "reference_sample_size": 300, "seed": 7},
    )


def _messages(n: int, vocab: str, labels=LABELS, p=None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = vocab.split()
    return pd.DataFrame(
        {
            "example_id": [f"s{seed}-{i}" for i in range(n)],
            "text": [" ".join(rng.choice(words, size=int(rng.integers(5, 12)))) for _ in range(n)],
            "label": rng.choice(list(labels), size=n, p=p),
            "timestamp": pd.date_range("2025-03-01", periods=n, freq="h", tz="UTC"),
        }
    )


def _save(df: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def reference(tmp_path: Path) -> str:
    # larger than reference_sample_size, so the seeded sample is exercised
    return _save(_messages(500, SHOP, seed=1), tmp_path / "champion" / "train.parquet")


def _run(cfg, current: list[str], reference: str | None, out: Path, run_id: str) -> DriftResult:
    return drift.run(cfg, current_uris=current, reference_uri=reference, out_dir=str(out), pipeline_run_id=run_id)


def test_same_distribution_has_no_drift(dcfg, reference: str, tmp_path: Path) -> None:
    current = [
        _save(_messages(150, SHOP, seed=2), tmp_path / "cur" / "train.parquet"),
        _save(_messages(50, SHOP, seed=3), tmp_path / "cur" / "val.parquet"),
    ]
    out = tmp_path / "run" / "drift"

    res = _run(dcfg, current, reference, out, "drift_test__same")

    assert res.has_reference and not res.drift_detected
    assert not res.text_drift_detected and not res.label_drift_detected
    assert res.text_drift_score is not None and 0.3 < res.text_drift_score < 0.6
    assert res.label_drift_score is not None and res.label_drift_score < 0.1
    assert res.reference_rows == 300 and res.current_rows == 200
    assert res.report_html_uri == str(out / "drift_report.html") and Path(res.report_html_uri).stat().st_size > 10_000
    snapshot = json.loads(Path(res.report_json_uri).read_text())
    scores = {m["config"]["column"]: m["value"] for m in snapshot["metrics"]}
    assert scores == {"text": pytest.approx(res.text_drift_score), "label": pytest.approx(res.label_drift_score)}
    assert (out / "_SUCCESS").is_file()

    client = MlflowClient(tracking_uri=dcfg.tracking_uri)
    run = client.get_run(res.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["step"] == "drift"
    assert run.data.tags["drift.has_reference"] == "true"
    assert run.data.metrics["drift_detected"] == 0 and run.data.metrics["rows"] == 200
    assert run.data.metrics["text_drift_score"] == pytest.approx(res.text_drift_score)
    assert {f.path for f in client.list_artifacts(res.mlflow_run_id, "drift")} == {
        "drift/drift_report.html",
        "drift/drift_report.json",
        "drift/signals.json",
    }


def test_shifted_vocabulary_is_text_drift(dcfg, reference: str, tmp_path: Path) -> None:
    current = [
        _save(
            _messages(200, "where is my order package delivery " + CRYPTO, seed=4), tmp_path / "cur" / "train.parquet"
        )
    ]

    res = _run(dcfg, current, reference, tmp_path / "run" / "drift", "drift_test__vocab")

    assert res.text_drift_detected and res.drift_detected
    assert res.text_drift_score is not None and res.text_drift_score > 0.9
    assert not res.label_drift_detected


@pytest.mark.parametrize(
    ("labels", "p"),
    [
        (LABELS, [0.8, 0.1, 0.1]),  # shifted priors
        ((*LABELS, "gift_card"), [0.25, 0.25, 0.25, 0.25]),  # a new intent the champion never saw
    ],
    ids=["priors", "new_label"],
)
def test_label_shift_is_label_drift(dcfg, reference: str, tmp_path: Path, labels, p) -> None:
    current = [_save(_messages(200, SHOP, labels=labels, p=p, seed=5), tmp_path / "cur" / "train.parquet")]

    res = _run(dcfg, current, reference, tmp_path / "run" / "drift", "drift_test__labels")

    if "gift_card" in labels:  # a new label is its own signal, not a prior shift
        assert res.new_labels == ("gift_card",)
        return
    assert res.label_drift_detected and res.drift_detected
    assert res.label_drift_score is not None and res.label_drift_score >= 0.1
    assert res.tests["training"]["label_prior"]["p_value"] < 0.01
    assert not res.text_drift_detected


def test_no_reference_means_nothing_to_compare(dcfg, tmp_path: Path) -> None:
    current = [_save(_messages(40, SHOP, seed=6), tmp_path / "cur" / "train.parquet")]
    out = tmp_path / "run" / "drift"

    res = _run(dcfg, current, None, out, "drift_test__first")

    assert res == DriftResult(
        drift_detected=False,
        has_reference=False,
        text_drift_score=None,
        label_drift_score=None,
        text_drift_detected=False,
        label_drift_detected=False,
        report_html_uri=None,
        report_json_uri=None,
        reference_rows=0,
        current_rows=40,
        mlflow_run_id=res.mlflow_run_id,
    )
    assert (out / "_SUCCESS").is_file() and not (out / "drift_report.html").exists()
    run = MlflowClient(tracking_uri=dcfg.tracking_uri).get_run(res.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["drift.has_reference"] == "false"
    assert run.data.metrics["rows"] == 40


def test_rerun_returns_recorded_result(dcfg, reference: str, tmp_path: Path) -> None:
    current = [_save(_messages(100, SHOP, seed=7), tmp_path / "cur" / "train.parquet")]
    out = tmp_path / "run" / "drift"
    first = _run(dcfg, current, reference, out, "drift_test__rerun")
    written = (out / "drift_report.html").stat().st_mtime_ns

    again = _run(dcfg, current, reference, out, "drift_test__rerun")

    assert again == first
    assert (out / "drift_report.html").stat().st_mtime_ns == written
    client = MlflowClient(tracking_uri=dcfg.tracking_uri)
    exp = client.get_experiment_by_name(dcfg.tracking.experiment_name)
    runs = client.search_runs([exp.experiment_id], "tags.pipeline_run_id = 'drift_test__rerun' and tags.step = 'drift'")
    assert len(runs) == 1


def test_scores_do_not_depend_on_the_attempt(dcfg, reference: str, tmp_path: Path) -> None:
    current = [_save(_messages(100, SHOP, seed=8), tmp_path / "cur" / "train.parquet")]
    a = _run(dcfg, current, reference, tmp_path / "a" / "drift", "drift_test__seed_a")
    b = _run(dcfg, current, reference, tmp_path / "b" / "drift", "drift_test__seed_b")
    assert (a.text_drift_score, a.label_drift_score) == (b.text_drift_score, b.label_drift_score)


def test_empty_current_names_the_files(dcfg, reference: str, tmp_path: Path) -> None:
    empty = _messages(5, SHOP).iloc[0:0]
    current = [_save(empty, tmp_path / "cur" / "train.parquet"), _save(empty, tmp_path / "cur" / "val.parquet")]
    out = tmp_path / "run" / "drift"

    with pytest.raises(DriftCheckError, match=r"current data is empty .* in train\.parquet,val\.parquet"):
        _run(dcfg, current, reference, out, "drift_test__empty")
    assert not out.exists()


def test_reference_without_label_column_is_named(dcfg, tmp_path: Path) -> None:
    current = [_save(_messages(40, SHOP, seed=9), tmp_path / "cur" / "train.parquet")]
    bad_ref = _save(_messages(40, SHOP, seed=10).drop(columns=["label"]), tmp_path / "champion" / "train.parquet")

    with pytest.raises(
        DriftCheckError, match=r"reference file .*champion/train\.parquet lacks column\(s\) \['label'\]"
    ):
        _run(dcfg, current, bad_ref, tmp_path / "run" / "drift", "drift_test__badref")


def test_a_known_seasonal_shift_is_drift_against_training_but_not_against_last_season(
    dcfg, reference, tmp_path
) -> None:
    """Both references are reported; drift.reference picks the one that decides."""
    crypto_last_year = _save(_messages(300, CRYPTO, seed=11), tmp_path / "last" / "train.parquet")
    current = [_save(_messages(200, CRYPTO, seed=12), tmp_path / "cur" / "train.parquet")]
    seasonal_cfg = dcfg.model_copy(update={"drift": dcfg.drift.model_copy(update={"reference": "seasonal"})})
    res = drift.run(
        seasonal_cfg, current_uris=current, reference_uri=reference, out_dir=str(tmp_path / "run" / "drift"),
        pipeline_run_id="drift_test__season", seasonal_uris=[crypto_last_year], seasonal_name="06-01 (2024)",
    )  # fmt: skip
    assert res.tests["training"]["text"]["p_value"] < 0.01  # unlike the shop data the champion saw
    assert res.tests["seasonal"]["text"]["p_value"] > 0.01  # like the same season last year
    assert res.reference_used == "seasonal" and res.seasonal_reference == "06-01 (2024)"
    assert not res.drift_detected  # decided on the seasonal reference
