from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from messages import msg

from pipeline.config import SimulatorConfig
from pipeline.data.pii import find_pii
from pipeline.data.simulator import write_landing
from pipeline.data.watermark import Watermark
from pipeline.errors import IngestError, NoNewDataError
from pipeline.results import IngestResult
from pipeline.steps import ingest

SIM = SimulatorConfig(messages_per_day=6, days=14, days_per_file=7, start_date=date(2025, 1, 1), pii_rate=0.5)


def _run(cfg, landing: Path, out: Path, run_id: str = "r1", consumer: str = "retrain", **kw) -> IngestResult:
    return ingest.run(cfg, landing_uri=str(landing), out_dir=str(out), pipeline_run_id=run_id, consumer=consumer, **kw)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    write_landing(SIM, tmp_path / "landing")
    return tmp_path / "landing"


def _ledger(cfg, consumer: str = "retrain") -> Path:
    return Path(Watermark.ledger_path(cfg.state_dir_uri, consumer))


def test_writes_curated_window(cfg, landing: Path, tmp_path: Path) -> None:
    out = tmp_path / "run" / "ingest"
    res = _run(cfg, landing, out)

    assert res.files == ("support_2025-01-01.jsonl", "support_2025-01-08.jsonl")
    assert res.rows_read == res.rows_kept + res.rows_quarantined > 100  # nothing repeated, no corrections
    assert res.rows_repeated == 0 and res.manifest_sha256 and res.mlflow_run_id
    assert res.rows_quarantined > 0 and res.quarantine_uri == str(out / "quarantine.parquet")
    assert sum(res.label_counts.values()) == res.rows_kept == sum(res.split_sizes.values())
    assert (out / "_SUCCESS").is_file()
    parts = {name: pd.read_parquet(getattr(res, f"{name}_uri")) for name in ("train", "val", "test")}
    assert {k: len(v) for k, v in parts.items()} == res.split_sizes
    for df in parts.values():
        assert list(df.columns) == list(ingest.OUTPUT_COLUMNS)
        assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
        assert set(df["source_file"]) <= set(res.files)
    ids = pd.concat(parts.values())["example_id"]
    assert ids.is_unique and ids.str.fullmatch(r"[0-9a-f]{40}").all()
    assert len(parts["test"]) > len(parts["val"]) > 0

    manifest = json.loads(Path(res.manifest_uri).read_text())
    assert manifest["consumer"] == "retrain" and manifest["rows_kept"] == res.rows_kept
    assert [f["name"] for f in manifest["files"]] == list(res.files)
    assert all(len(f["sha256"]) == 64 and f["rows_read"] > 0 for f in manifest["files"])
    assert sum(manifest["quarantined_by_reason"].values()) == res.rows_quarantined
    acc = manifest["accounting"]
    assert acc["balanced"] and acc["rows_read"] == res.rows_read
    assert acc["kept"] + sum(acc["quarantined"].values()) + sum(acc["duplicates"].values()) == res.rows_read
    assert manifest["split_sizes"] == res.split_sizes
    assert sum(manifest["pii_replacements"].values()) > 0
    assert not list(out.parent.glob(".*tmp*"))  # no staging leftovers


def test_rerun_returns_the_recorded_result_without_reading(cfg, landing: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(cfg, landing, out)
    for f in landing.iterdir():
        f.unlink()
    again = _run(cfg, landing, out)
    assert again == first
    assert IngestResult.from_dict(first.to_dict()) == first


def test_retry_of_the_same_run_after_lost_output_reads_again(cfg, landing: Path, tmp_path: Path) -> None:
    first = _run(cfg, landing, tmp_path / "out")
    import shutil

    shutil.rmtree(tmp_path / "out")
    again = _run(cfg, landing, tmp_path / "out")  # same run id: its claimed files count as pending
    assert replace(again, mlflow_run_id=None) == replace(first, mlflow_run_id=None)  # a new MLflow run


def test_watermark_exactly_once_per_consumer_after_commit(cfg, landing: Path, tmp_path: Path) -> None:
    first = _run(cfg, landing, tmp_path / "a", run_id="r1")
    # nothing is consumed until the run that read the files succeeds and commits
    assert not _ledger(cfg).exists()
    assert ingest.commit(cfg, first) == 2
    assert ingest.commit(cfg, first) == 0  # idempotent
    with pytest.raises(NoNewDataError, match=r"consumer 'retrain'") as exc:
        _run(cfg, landing, tmp_path / "b", run_id="r2")
    assert "no new rows" in str(exc.value)
    assert not (tmp_path / "b").exists()

    other = _run(cfg, landing, tmp_path / "c", run_id="m1", consumer="monitor")
    assert other.files == first.files and other.rows_read == first.rows_read

    # a new landing file is seen once, alone
    write_landing(SIM, landing, start=date(2025, 1, 15), end=date(2025, 1, 21))
    newer = _run(cfg, landing, tmp_path / "d", run_id="r3")
    assert newer.files == ("support_2025-01-15.jsonl",)
    ingest.commit(cfg, newer)

    # a file with one row appended: only that row is new
    changed = landing / "support_2025-01-01.jsonl"
    extra = {"text": "my umbrella arrived broken and I want my money back", "label": "refund_request",
             "timestamp": "2025-01-03T10:00:00Z", "segment": "web"}  # fmt: skip
    changed.write_text(changed.read_text() + json.dumps(extra) + "\n")
    again = _run(cfg, landing, tmp_path / "e", run_id="r4")
    assert again.files == ("support_2025-01-01.jsonl",)
    assert again.rows_kept == 1 and again.rows_repeated == again.rows_read - 1


def test_a_run_that_fails_after_ingest_consumes_nothing(cfg, landing: Path, tmp_path: Path) -> None:
    failed = _run(cfg, landing, tmp_path / "a", run_id="failed-run")  # e.g. validation fails next
    retry = _run(cfg, landing, tmp_path / "b", run_id="new-run")  # a new run id reads the same files
    assert retry.files == failed.files and retry.rows_kept == failed.rows_kept


def test_compressed_files_are_read_and_every_unread_entry_is_in_the_manifest(cfg, tmp_path: Path) -> None:
    import gzip

    landing = tmp_path / "landing"
    rows = [
        {
            "text": f"where is parcel number {i} today",
            "label": "order_status",
            "timestamp": f"2025-01-0{1 + i % 5}T10:00:00Z",
        }
        for i in range(8)
    ]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    landing.mkdir()
    (landing / "a_2025-01-01.jsonl.gz").write_bytes(gzip.compress(body.encode()))
    csv = "text,label,timestamp\n" + "".join(
        f"refund for item {i} please,refund_request,2025-01-02T10:00:00Z\n" for i in range(8)
    )
    (landing / "b_2025-01-02.csv.gz").write_bytes(gzip.compress(csv.encode()))
    frame = pd.DataFrame(
        [
            {"text": f"my card {i} was declined", "label": "payment_problem", "timestamp": "2025-01-03T10:00:00Z"}
            for i in range(8)
        ]
    )
    for codec in ("snappy", "gzip", "zstd", "brotli", "lz4", "none"):
        frame.assign(text=frame["text"] + f" via {codec}").to_parquet(
            landing / f"c_{codec}_2025-01-03.parquet", compression=None if codec == "none" else codec
        )
    (landing / "notes_2025-01-03.txt").write_text("not data")
    (landing / "d_2025-01-03.parquet.gz").write_bytes(b"x")
    res = _run(cfg, landing, tmp_path / "out")
    assert len(res.files) == 8 and res.rows_read == 8 * 8
    manifest = json.loads(Path(res.manifest_uri).read_text())
    assert {s["name"] for s in manifest["skipped"]} == {"notes_2025-01-03.txt", "d_2025-01-03.parquet.gz"}
    assert all("unsupported file type" in s["reason"] for s in manifest["skipped"])


def test_a_window_whose_rows_are_all_quarantined_is_nothing_to_do(cfg, tmp_path: Path) -> None:
    from pipeline.errors import EmptyWindowError, NothingToDoError

    landing = tmp_path / "landing"
    _jsonl(
        landing / "bad_2025-01-01.jsonl",
        [
            {"text": "", "label": "order_status", "timestamp": "2025-01-01T10:00:00Z"},
            {"text": "where is it", "label": "order_status", "timestamp": "never"},
        ],
    )
    with pytest.raises(EmptyWindowError, match=r"none of the 2 rows of 1 unit\(s\) can train") as exc:
        _run(cfg, landing, tmp_path / "out")
    assert isinstance(exc.value, NothingToDoError) and "\n" not in str(exc.value)
    assert len(pd.read_parquet(tmp_path / "out" / "quarantine.parquet")) == 2  # nothing lost
    # every row is accounted for in quarantine, so the file is consumed: the next run has nothing new
    with pytest.raises(NoNewDataError):
        _run(cfg, landing, tmp_path / "next", run_id="r2")
    with pytest.raises(EmptyWindowError):  # a retry of the same run says the same
        _run(cfg, landing, tmp_path / "out")


def test_pii_in_the_label_column_never_persists(cfg, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    rows = [
        {"text": msg(i, "where is my order"), "label": "order_status", "timestamp": 1735689600 + i} for i in range(10)
    ]
    rows.append({"text": "please help me now", "label": "jane.doe@example.com", "timestamp": 1735689700})
    _jsonl(landing / "x_2025-01-01.jsonl", rows)
    cfg = cfg.model_copy(update={"validate_": cfg.validate_cfg.model_copy(update={"new_labels": "fail"})})
    res = _run(cfg, landing, tmp_path / "out")
    assert res.label_counts == {"[EMAIL]": 1, "order_status": 10}
    manifest = json.loads(Path(res.manifest_uri).read_text())
    assert manifest["unknown_labels"] == {"[EMAIL]": 1}
    # epoch seconds are timestamps, not phone numbers
    assert res.pii_replacements["phone"] == 0 and res.pii_replacements["email"] == 1
    blob = b"".join(p.read_bytes() for p in (tmp_path / "out").iterdir())
    assert b"jane.doe" not in blob


def test_unreadable_file_is_one_line_naming_it(cfg, landing: Path, tmp_path: Path, monkeypatch) -> None:
    target = landing / "support_2025-01-08.jsonl"
    if os.geteuid() != 0:
        target.chmod(0)
    else:  # root reads anything: make the open fail as it would for a user without permission
        real_open = Path.open

        def deny(self, *a, **kw):
            if self == target:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *a, **kw)

        monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(IngestError) as exc:
        _run(cfg, landing, tmp_path / "out")
    assert str(exc.value) == f"landing file {target}: cannot be read (permission denied)"


def test_window_selects_files_by_their_date(cfg, landing: Path, tmp_path: Path) -> None:
    res = _run(cfg, landing, tmp_path / "a", window_start="2025-01-05", window_end="2025-01-08T00:00:00+00:00")
    assert res.files == ("support_2025-01-08.jsonl",)
    assert (res.window_start, res.window_end) == ("2025-01-05", "2025-01-08T00:00:00+00:00")
    with pytest.raises(NoNewDataError, match=r"2025-02-01"):
        _run(cfg, landing, tmp_path / "b", run_id="r2", window_start="2025-02-01")


def test_no_pii_in_any_persisted_file(cfg, landing: Path, tmp_path: Path) -> None:
    _jsonl(
        landing / "extra_2025-01-03.jsonl",
        [
            {"text": "", "label": "order_status", "timestamp": "2025-01-03T10:00:00Z", "segment": "jane@x.org"},
            {"text": "card 4111 1111 1111 1111 failed", "label": None, "timestamp": "2025-01-03T10:00:00Z"},
            {"text": "call 415-555-0134 now please", "label": "account_access", "timestamp": "call 415-555-0134"},
        ],
    )
    res = _run(cfg, landing, tmp_path / "out")
    assert res.pii_replacements["card"] >= 1 and res.pii_replacements["phone"] >= 1
    written = [Path(u) for u in (res.train_uri, res.val_uri, res.test_uri, res.quarantine_uri)]
    for path in written:
        df = pd.read_parquet(path)
        for col in df.columns:
            if df[col].dtype in (object, "string"):
                leaks = [v for v in df[col].dropna() if find_pii(str(v))]
                assert leaks == [], f"{path.name}:{col} {leaks[:3]}"
    blob = b"".join(p.read_bytes() for p in tmp_path.joinpath("out").iterdir())
    assert b"4111 1111" not in blob and b"jane@x.org" not in blob and b"555-0134" not in blob


def test_bad_rows_are_quarantined_with_reasons(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(ingest={"max_text_chars": 40}, validate={"new_labels": "fail"})
    landing = tmp_path / "landing"
    _jsonl(
        landing / "support_2025-02-01.jsonl",
        [
            {
                "text": "Where is my parcel?",
                "label": "order_status",
                "timestamp": "2025-02-01T12:00:00Z",
                "segment": "web",
            },
            {
                "text": "where  is my PARCEL?",
                "label": "shipping_delay",
                "timestamp": "2025-02-01T09:00:00Z",
                "segment": "web",
            },
            {"text": "   ", "label": "refund_request", "timestamp": "2025-02-01T10:00:00Z"},
            {"text": None, "label": "refund_request", "timestamp": "2025-02-01T10:00:00Z"},
            {"text": "ok", "label": "refund_request", "timestamp": "2025-02-01T10:00:00Z"},
            {"text": "I want my money back", "label": "", "timestamp": "2025-02-01T10:00:00Z"},
            {"text": "The gift card does not work", "label": "gift_card", "timestamp": "yesterday"},
            {
                "text": "A brand new intent nobody knows about yet, with a long tail of words",
                "label": "warranty_claim",
                "timestamp": 1738411200,
            },
            {"text": "Is the parka warm?", "label": "product_question", "timestamp": "2025-02-01 08:00:00"},
            {"text": "Is the scarf wool?", "label": "product_question", "timestamp": "20250201", "segment": "mobile"},
        ],
    )
    res = _run(cfg, landing, tmp_path / "out")
    q = pd.read_parquet(res.quarantine_uri).set_index("source_row")
    assert q["reason_code"].to_dict() == {
        0: "duplicate",
        2: "empty_text",
        3: "empty_text",
        4: "text_too_short",
        5: "missing_label",
        6: "bad_timestamp",
    }
    assert res.quarantine_reasons == {
        "bad_timestamp": 1,
        "duplicate": 1,
        "empty_text": 2,
        "missing_label": 1,
        "text_too_short": 1,
    }
    kept = pd.concat(pd.read_parquet(u) for u in (res.train_uri, res.val_uri, res.test_uri))
    survivor = kept[kept["text"].str.lower().str.contains("parcel")]
    assert list(survivor["label"]) == ["shipping_delay"]  # the earlier of the two duplicates
    assert q.loc[0, "reason"] == f"duplicate of {survivor['example_id'].iloc[0]}"
    assert q.loc[6, "timestamp_raw"] == "yesterday"
    # labels are validate's business, long texts are cut, epoch seconds and naive times are UTC
    assert "warranty_claim" in res.label_counts
    assert kept["text"].str.len().max() <= 40
    assert pd.Timestamp("2025-02-01T12:00:00Z") in set(kept["timestamp"])
    assert pd.Timestamp("2025-02-01T08:00:00Z") in set(kept["timestamp"])
    assert pd.Timestamp("2025-02-01T00:00:00Z") in set(kept["timestamp"])  # ISO basic format, not epoch
    assert kept["segment"].isna().sum() == 2


def test_user_csv_with_custom_column_mapping(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(ingest={"columns": {"text": "body", "label": "intent", "timestamp": "created_at", "segment": None}})
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = [f"{msg(i, 'refund')},refund_request,{1735689600 + i * 60},extra" for i in range(12)]
    (landing / "export_20250101.csv").write_text("body,intent,created_at,other\n" + "\n".join(rows) + "\n")
    res = _run(cfg, landing, tmp_path / "out")
    assert res.files == ("export_20250101.csv",) and res.rows_kept == 12 and res.quarantine_uri is None
    df = pd.concat(pd.read_parquet(u) for u in (res.train_uri, res.val_uri, res.test_uri))
    assert df["segment"].isna().all()
    assert df["timestamp"].min() == pd.Timestamp("2025-01-01T00:00:00Z")


def _assert_untouched(cfg, out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))
    assert not _ledger(cfg).exists()


def test_missing_mapped_column_names_file_and_columns(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(ingest={"columns": {"text": "body"}})
    landing = tmp_path / "landing"
    write_landing(SIM, landing)
    out = tmp_path / "out"
    with pytest.raises(IngestError) as exc:
        _run(cfg, landing, out)
    msg = str(exc.value)
    assert "support_2025-01-01.jsonl" in msg and "'body'" in msg and "'text'" in msg and "'label'" in msg
    assert "\n" not in msg
    _assert_untouched(cfg, out)


def test_missing_and_empty_landing_folder(cfg, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(IngestError, match="does not exist"):
        _run(cfg, tmp_path / "nowhere", out)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not data")
    with pytest.raises(IngestError, match=r"holds no csv/jsonl/parquet files") as exc:
        _run(cfg, tmp_path / "empty", out)
    assert not isinstance(exc.value, NoNewDataError)
    _assert_untouched(cfg, out)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("support_2025-01-20.parquet", b"\x00garbage\xff" * 50, r"cannot be read as parquet"),
        ("support_2025-01-20.jsonl", b'{"text": "fine"}\n{not json\n', r"line 2 is not valid JSON"),
        ("support_2025-01-20.csv", b"", r"cannot be read as csv"),
    ],
)
def test_unreadable_file_names_the_file(
    cfg, landing: Path, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    (landing / name).write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=expected) as exc:
        _run(cfg, landing, out)
    assert name in str(exc.value) and "\n" not in str(exc.value)
    _assert_untouched(cfg, out)


@pytest.mark.parametrize(
    ("mode", "held_out", "kept_labels"),
    [
        ("fail", set(), {"order_status", "refund_request", "warranty_claim", "loyalty_points"}),
        ("hold_out", {"warranty_claim", "loyalty_points"}, {"order_status", "refund_request"}),
        ("accept", {"loyalty_points"}, {"order_status", "refund_request", "warranty_claim"}),
    ],
)
def test_new_labels_fail_hold_out_or_accept(make_cfg, tmp_path: Path, mode, held_out, kept_labels) -> None:
    """hold_out quarantines every new label's rows; accept keeps those with enough rows to train on."""
    cfg = make_cfg(validate={"new_labels": mode, "min_rows_per_class": 3})
    rows = [
        {"text": msg(i, "where is my order"), "label": "order_status", "timestamp": 1735689600 + i} for i in range(6)
    ]
    rows += [
        {"text": msg(i, "refund please"), "label": "refund_request", "timestamp": 1735689700 + i} for i in range(6)
    ]
    rows += [
        {"text": msg(i, "warranty claim"), "label": "warranty_claim", "timestamp": 1735689800 + i} for i in range(4)
    ]
    rows += [{"text": "my loyalty points vanished", "label": "loyalty_points", "timestamp": 1735689900}]
    _jsonl(tmp_path / "landing" / "x_2025-01-01.jsonl", rows)
    res = _run(cfg, tmp_path / "landing", tmp_path / "out")
    kept = pd.concat(pd.read_parquet(u) for u in (res.train_uri, res.val_uri, res.test_uri))
    assert set(kept["label"]) == kept_labels
    if held_out:
        q = pd.read_parquet(res.quarantine_uri)
        assert set(q["label"]) == held_out and set(q["reason_code"]) == {"new_label"}
        assert all(mode in r for r in q["reason"])
    assert res.quarantine_reasons.get("new_label", 0) == sum(1 for r in rows if r["label"] in held_out)
