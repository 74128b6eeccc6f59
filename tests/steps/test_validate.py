from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline import storage
from pipeline.errors import DataValidationError
from pipeline.results import ValidateResult
from pipeline.steps import validate

LABELS = ("order_status", "refund_request", "gift_card")
WORDS = ("where", "is", "my", "parcel", "refund", "please", "card", "balance", "late", "again")
EMAIL, PHONE = "jo.doe@example.com", "415-555-0134"


@pytest.fixture
def vcfg(make_cfg, mlflow_store):
    return make_cfg(
        tracking=mlflow_store,
        validate={
            "min_rows": 20,
            "min_rows_per_class": 2,
            "max_duplicate_share": 0.05,
            "min_text_chars": 3,
            "max_text_chars": 1000,
        },
    )


def _window(n: int = 60) -> pd.DataFrame:
    """A clean curated window: unique texts, known labels, sane lengths, no PII."""
    texts = [f"{WORDS[i % 10]} {WORDS[(i // 10) % 10]} {WORDS[(i // 3) % 10]} message {i}" for i in range(n)]
    return pd.DataFrame(
        {
            "example_id": [f"ex{i:03d}" for i in range(n)],
            "text": texts,
            "label": [LABELS[i % len(LABELS)] for i in range(n)],
            "timestamp": pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC"),
            "segment": [None if i % 4 else f"seg{i % 3}" for i in range(n)],
            "language": "en",
            "message_id": None,
            "source": "landing",
            "source_file": "support_2025-01-01.jsonl",
            "source_row": range(n),
        }
    )


def _write(df: pd.DataFrame, folder: Path) -> list[str]:
    """Split like ingest does: train, val and test files."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(df)
    cuts = {
        "train": df.iloc[: int(n * 0.6)],
        "val": df.iloc[int(n * 0.6) : int(n * 0.8)],
        "test": df.iloc[int(n * 0.8) :],
    }
    uris = []
    for name, part in cuts.items():
        part.to_parquet(folder / f"{name}.parquet", index=False)
        uris.append(str(folder / f"{name}.parquet"))
    return uris


def _run(cfg, uris: list[str], out: Path, run_id: str = "validate_test__r1") -> ValidateResult:
    return validate.run(cfg, data_uris=uris, out_dir=str(out), pipeline_run_id=run_id)


def test_clean_window_passes(vcfg, tmp_path: Path) -> None:
    uris = _write(_window(), tmp_path / "curated")
    out = tmp_path / "run" / "validate"

    res = _run(vcfg, uris, out)

    assert res.success and res.expectations_evaluated == 11 and res.expectations_failed == 0
    assert res.rows_validated == 60 and res.rows_quarantined == 0 and res.quarantine_uri is None
    assert res.result_uri == str(out / "validation_result.json")
    assert res.data_docs_uri == str(out / "data_docs" / "index.html")
    assert (out / "_SUCCESS").is_file() and not (out / "_FAILED").exists()
    assert not (out / "quarantine.parquet").exists()
    report = json.loads(Path(res.result_uri).read_text())
    assert report["success"] is True and report["expectations_evaluated"] == 11
    suites = {r["meta"]["active_batch_definition"]["data_asset_name"] for r in report["validation_results"]}
    assert suites == {"curated_rows", "label_counts", "pii_scan"}
    docs = Path(res.data_docs_uri)
    assert docs.is_file() and list((out / "data_docs" / "validations").rglob("*.html"))
    assert not list(out.parent.glob(".validate.tmp-*"))  # nothing staged is left behind

    client = MlflowClient(tracking_uri=vcfg.tracking_uri)
    run = client.get_run(res.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["pipeline_run_id"] == "validate_test__r1" and run.data.tags["step"] == "validate"
    assert run.data.metrics["expectations_evaluated"] == 11 and run.data.metrics["expectations_failed"] == 0
    assert [f.path for f in client.list_artifacts(res.mlflow_run_id, "validation")] == [
        "validation/validation_result.json"
    ]
    assert "data_docs/index.html" in {f.path for f in client.list_artifacts(res.mlflow_run_id, "data_docs")}


def test_rerun_returns_recorded_result(vcfg, tmp_path: Path) -> None:
    uris = _write(_window(), tmp_path / "curated")
    out = tmp_path / "run" / "validate"
    first = _run(vcfg, uris, out, run_id="validate_test__rerun")
    written = (out / "_SUCCESS").stat().st_mtime_ns

    again = _run(vcfg, uris, out, run_id="validate_test__rerun")

    assert again == first
    assert (out / "_SUCCESS").stat().st_mtime_ns == written  # not validated a second time
    client = MlflowClient(tracking_uri=vcfg.tracking_uri)
    exp = client.get_experiment_by_name(vcfg.tracking.experiment_name)
    runs = client.search_runs(
        [exp.experiment_id], "tags.pipeline_run_id = 'validate_test__rerun' and tags.step = 'validate'"
    )
    assert len(runs) == 1


def _unknown_label(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[3, 6, 9], "label"] = "refnd"
    return df


def _too_long(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[4, "text"] = "x" * 1200
    return df


def _pii(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[5, "text"] = f"mail {EMAIL} or call {PHONE} please"
    return df


def _duplicates(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[:9, "text"] = "where is my parcel"  # 10 rows, 1 distinct: 51 distinct of 60
    return df


def _rare_class(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[7, "label"] = "price_match"  # a known label, but only one row of it
    return df


def _single_class(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(label="order_status")


def _missing_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["label"])


def _too_few_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[:12].copy()


FAILURES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "unknown_label": (
        _unknown_label,
        [
            "expect_column_values_to_be_in_set(label",
            "3 rows with 1 new label(s) {'refnd': 3}",
            "add them to validate.labels (or set validate.new_labels: accept)",
        ],
    ),
    "text_too_long": (
        _too_long,
        ["expect_column_value_lengths_to_be_between(text, min=3, max=1000)", "lengths [1200]"],
    ),
    "pii_left": (
        _pii,
        ["expect_column_values_to_be_null(pii_scan.pii", "1 rows with PII left", "'text:email': 1", "'text:phone': 1"],
    ),
    "single_class": (
        _single_class,
        ["expect_column_unique_value_count_to_be_between(label, min=2) observed 1 distinct label(s) ['order_status']"],
    ),
    "duplicate_share": (
        _duplicates,
        ["expect_column_proportion_of_unique_values_to_be_between(text, min=0.95)", "observed 0.85", "0.150"],
    ),
    "too_few_per_class": (
        _rare_class,
        ["expect_column_values_to_be_between(label_counts.rows, min=2)", "{'price_match': 1}"],
    ),
    "missing_column": (_missing_column, ["expect_table_columns_to_match_set", "missing ['label']"]),
    "too_few_rows": (_too_few_rows, ["expect_table_row_count_to_be_between(min=20)", "observed 12 rows"]),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_failure_raises_named_error_and_publishes_report(vcfg, tmp_path: Path, kind: str) -> None:
    corrupt, expected = FAILURES[kind]
    uris = _write(corrupt(_window()), tmp_path / "curated")
    out = tmp_path / "run" / "validate"

    with pytest.raises(DataValidationError) as info:
        _run(vcfg, uris, out, run_id=f"validate_test__{kind}")

    message = str(info.value)
    assert (
        message.startswith("validate: ") and "expectations failed on train.parquet,val.parquet,test.parquet" in message
    )
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert EMAIL not in message and PHONE not in message
    assert not (out / "_SUCCESS").exists()
    failed = validate.read_failure(out)
    assert failed is not None and failed["success"] is False and failed["error"] == message
    assert (out / "validation_result.json").is_file() and (out / "data_docs" / "index.html").is_file()
    assert storage.load_done(out, ValidateResult) is None
    run = MlflowClient(tracking_uri=vcfg.tracking_uri).get_run(failed["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.metrics["expectations_failed"] == failed["expectations_failed"] >= 1


def test_quarantine_names_rows_and_reasons_without_leaking_pii(vcfg, tmp_path: Path) -> None:
    uris = _write(_rare_class(_pii(_too_long(_unknown_label(_window())))), tmp_path / "curated")
    out = tmp_path / "run" / "validate"

    with pytest.raises(DataValidationError, match="4 of 11 expectations failed"):
        _run(vcfg, uris, out, run_id="validate_test__quarantine")

    q = pd.read_parquet(out / "quarantine.parquet")
    reasons = dict(zip(q["example_id"], q["reason"], strict=True))
    assert set(reasons) == {"ex003", "ex004", "ex005", "ex006", "ex007", "ex009"}
    assert reasons["ex003"].startswith("expect_column_values_to_be_in_set(label): label 'refnd' is not in validate")
    assert "label 'refnd' has 3 rows" not in reasons["ex003"]  # 3 >= min 2: not a rare class
    # each reason names the landing file and row the curated row came from
    assert reasons["ex004"] == (
        "expect_column_value_lengths_to_be_between(text, min=3, max=1000): length 1200 [support_2025-01-01.jsonl row 4]"
    )
    assert reasons["ex005"] == (
        "expect_column_values_to_be_null(pii_scan.pii): PII text:email,text:phone [support_2025-01-01.jsonl row 5]"
    )
    assert (
        reasons["ex007"]
        == "expect_column_values_to_be_between(label_counts.rows, min=2): label 'price_match' has 1 rows "
        "[support_2025-01-01.jsonl row 7]"
    )
    assert dict(zip(q["example_id"], q["data_file"], strict=True))["ex005"] == "train.parquet"
    assert set(q.columns) >= {"example_id", "text", "label", "timestamp", "segment", "source_file", "reason"}
    quarantined = q.loc[q["example_id"] == "ex005", "text"].item()
    assert EMAIL not in quarantined and "[EMAIL]" in quarantined  # no step persists PII

    travels = [out / "validation_result.json", *(out / "data_docs").rglob("*.html")]
    for path in travels:
        text = path.read_text()
        assert EMAIL not in text and PHONE not in text, path
    assert "text:email" in (out / "validation_result.json").read_text()


def test_new_labels_are_counted_over_the_whole_window(vcfg, tmp_path: Path) -> None:
    df = _window(600)
    df.loc[df.index % 2 == 0, "label"] = "warranty_claim"  # 300 rows: more than any GX sample
    df.loc[df.index % 10 == 1, "label"] = "jane@example.com"
    uris = _write(df, tmp_path / "curated")
    with pytest.raises(DataValidationError) as exc:
        _run(vcfg, uris, tmp_path / "run" / "validate", run_id="validate_test__true_counts")
    message = str(exc.value)
    assert "360 rows with 2 new label(s) {'warranty_claim': 300, '[PII:email]': 60}" in message
    assert "jane@" not in message and "\n" not in message


def test_failed_validation_is_redone_on_retry(vcfg, tmp_path: Path) -> None:
    folder = tmp_path / "curated"
    out = tmp_path / "run" / "validate"
    with pytest.raises(DataValidationError):
        _run(vcfg, _write(_unknown_label(_window()), folder), out, run_id="validate_test__retry")
    assert (out / "_FAILED").is_file()

    res = _run(vcfg, _write(_window(), folder), out, run_id="validate_test__retry")  # data fixed upstream

    assert res.success and (out / "_SUCCESS").is_file()
    assert not (out / "_FAILED").exists() and not (out / "quarantine.parquet").exists()


def test_unreadable_file_is_named(vcfg, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"cannot read .*missing\.parquet"):
        _run(vcfg, [str(tmp_path / "missing.parquet")], tmp_path / "run" / "validate")
    assert not (tmp_path / "run" / "validate").exists()


def test_pii_is_masked_in_every_failed_value(vcfg, tmp_path: Path) -> None:
    df = _window()
    df.loc[4, "text"] = "x" * 1100 + f" reach me at {EMAIL}"  # too long and with PII: two expectations list it
    out = tmp_path / "run" / "validate"

    with pytest.raises(DataValidationError) as info:
        _run(vcfg, _write(df, tmp_path / "curated"), out, run_id="validate_test__mask")

    assert "expect_column_value_lengths_to_be_between" in str(info.value) and EMAIL not in str(info.value)
    report = (out / "validation_result.json").read_text()
    assert EMAIL not in report and report.count("[PII:email]") >= 2
    assert all(EMAIL not in p.read_text() for p in (out / "data_docs").rglob("*.html"))


def test_column_missing_in_one_file_is_named(vcfg, tmp_path: Path) -> None:
    uris = _write(_window(), tmp_path / "curated")
    pd.read_parquet(uris[1]).drop(columns=["segment"]).to_parquet(uris[1], index=False)

    with pytest.raises(DataValidationError) as info:
        _run(vcfg, uris, tmp_path / "run" / "validate", run_id="validate_test__one_file")

    assert "expect_table_columns_to_match_set" in str(info.value) and "missing ['segment']" in str(info.value)
    assert "val.parquet lacks columns ['segment']" in str(info.value)


# ---------------------------------------------------------------- learned bounds, severities, freshness
def test_learned_bounds_warn_and_the_run_goes_on(vcfg, tmp_path: Path, caplog) -> None:
    reference = _window(90)
    ref_uris = _write(reference, tmp_path / "ref")
    shifted = _window(60)
    shifted["label"] = ["order_status"] * 50 + ["refund_request"] * 5 + ["gift_card"] * 5  # class balance moved
    shifted["text"] = [t + " " + "padding words " * 12 for t in shifted["text"]]  # lengths much longer
    uris = _write(shifted, tmp_path / "cur")
    with caplog.at_level("WARNING"):
        res = validate.run(vcfg, data_uris=uris, out_dir=str(tmp_path / "v"), pipeline_run_id="vb__1",
                           reference_uris=ref_uris)  # fmt: skip
    assert res.success and res.expectations_failed == 0
    checks = {w.split(":", 1)[0] for w in res.warnings}
    assert {"warning class_balance", "warning length_quantiles"} <= checks
    assert any("learned from the reference" in w for w in res.warnings)
    assert any("class_balance" in r.message for r in caplog.records if r.levelname == "WARNING")
    report = json.loads(Path(res.result_uri).read_text())
    assert report["learned_bounds"]["class_shares"] and report["window_stats"]["class_shift"] > 0.25


def test_a_severity_override_turns_a_learned_bound_into_an_error(make_cfg, mlflow_store, tmp_path: Path) -> None:
    cfg = make_cfg(tracking=mlflow_store, validate={"min_rows": 20, "min_rows_per_class": 2,
                                                     "severity": {"class_balance": "error"}})  # fmt: skip
    ref_uris = _write(_window(90), tmp_path / "ref")
    shifted = _window(60)
    shifted["label"] = ["order_status"] * 50 + ["refund_request"] * 5 + ["gift_card"] * 5
    with pytest.raises(DataValidationError, match=r"error class_balance: .*class_shift.*observed"):
        validate.run(cfg, data_uris=_write(shifted, tmp_path / "cur"), out_dir=str(tmp_path / "v"),
                     pipeline_run_id="vb__2", reference_uris=ref_uris)  # fmt: skip


def test_unknown_severity_check_is_a_config_error(make_cfg) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown check"):
        make_cfg(validate={"severity": {"class_balanse": "error"}})


def test_future_rows_fail_and_stale_rows_and_new_segments_warn(vcfg, tmp_path: Path) -> None:
    ref_uris = _write(_window(90), tmp_path / "ref")
    df = _window(60)
    df.loc[3, "timestamp"] = pd.Timestamp("2099-01-01", tz="UTC")
    df.loc[4, "timestamp"] = pd.Timestamp("2020-01-01", tz="UTC")
    df.loc[8, "segment"] = "kiosk"
    uris = _write(df, tmp_path / "cur")
    with pytest.raises(DataValidationError) as exc:
        validate.run(vcfg, data_uris=uris, out_dir=str(tmp_path / "v"), pipeline_run_id="vb__3",
                     reference_uris=ref_uris, window_start="2025-01-01")  # fmt: skip
    message = str(exc.value)
    assert "\n" not in message
    assert "error future_timestamps: " in message and "at support_2025-01-01.jsonl row 3" in message
    failed = validate.read_failure(tmp_path / "v")
    assert failed is not None
    report = json.loads(Path(failed["result_uri"]).read_text())
    warned = " ".join(report["warnings"])
    assert "warning stale_timestamps" in warned and "row 4" in warned
    assert "warning segment_values" in warned and "'kiosk'" in warned and "row 8" in warned
