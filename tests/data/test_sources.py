"""Sources and the row watermark: several landing sources, SQL (SQLite here, PostgreSQL when it runs),
saved Hugging Face datasets, feedback corrections; renamed, re-sent, appended and late records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from messages import msg

from pipeline.errors import IngestError, NoNewDataError
from pipeline.results import IngestResult
from pipeline.steps import ingest

LABELS = ("order_status", "refund_request", "gift_card")


def text(i: int, salt: str = "") -> str:
    return msg(i, f"{salt}{LABELS[i % 3].replace('_', ' ')}")


def rows(n: int, start: int = 0, day: str = "2025-01-02", salt: str = "") -> list[dict]:
    return [
        {"text": text(i, salt), "label": LABELS[i % 3], "timestamp": f"{day}T{(i % 24):02d}:00:00Z", "segment": "web"}
        for i in range(start, start + n)
    ]


def jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def make(make_cfg, mlflow_store):
    def _make(**ingest_cfg):
        return make_cfg(tracking=mlflow_store, ingest=ingest_cfg)

    return _make


def run(cfg, out: Path, run_id: str, consumer: str = "retrain", **kw) -> IngestResult:
    return ingest.run(cfg, out_dir=str(out), pipeline_run_id=run_id, consumer=consumer, **kw)


def curated(res: IngestResult) -> pd.DataFrame:
    return pd.concat(pd.read_parquet(u) for u in (res.train_uri, res.val_uri, res.test_uri))


def accounted(res: IngestResult) -> dict:
    acc = json.loads(Path(res.manifest_uri).read_text())["accounting"]
    assert acc["balanced"]
    total = acc["kept"] + sum(acc["quarantined"].values()) + sum(acc["duplicates"].values())
    assert total + acc["repeated"] + acc["corrections_applied"] == acc["rows_read"] == res.rows_read
    return acc


# ---------------------------------------------------------------- landing: two sources, row watermark
def test_two_landing_sources_each_with_its_mapping(make, tmp_path: Path) -> None:
    a, b = tmp_path / "shop", tmp_path / "crm"
    jsonl(a / "support_2025-01-02.jsonl", rows(12))
    b.mkdir()
    frame = pd.DataFrame(rows(9, start=100))
    frame.rename(columns={"text": "body", "label": "intent", "timestamp": "created"}).to_csv(
        b / "export_2025-01-02.csv.gz", index=False
    )
    cfg = make(
        sources=[
            {"kind": "landing", "name": "shop", "path": str(a)},
            {
                "kind": "landing",
                "name": "crm",
                "path": str(b),
                "columns": {"text": "body", "label": "intent", "timestamp": "created", "segment": None},
            },
        ]  # fmt: skip
    )
    res = run(cfg, tmp_path / "o1", "r1")
    assert res.rows_read == 21 and res.rows_kept == 21
    df = curated(res)
    assert df.groupby("source")["source_file"].first().to_dict() == {
        "crm": "export_2025-01-02.csv.gz",
        "shop": "support_2025-01-02.jsonl",
    }
    assert df.loc[df["source"] == "crm", "segment"].isna().all()
    assert set(df["source_row"]) >= {0, 8}
    accounted(res)


def test_renamed_resent_appended_and_late_records_are_ingested_once(make, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    cfg = make(landing_dir=str(landing))
    first = jsonl(landing / "support_2025-01-02.jsonl", rows(15))
    res = run(cfg, tmp_path / "o1", "r1")
    assert res.rows_kept == 15
    ingest.commit(cfg, res)

    # renamed copy of the same content: nothing new (and the copy's hash is marked read)
    shutil.copy(first, landing / "resent_2025-01-02.jsonl")
    first.unlink()
    with pytest.raises(NoNewDataError, match="no new rows"):
        run(cfg, tmp_path / "o2", "r2")
    assert not (tmp_path / "o2").exists()

    # the same rows re-sent inside a new file with one new row: only the new row
    jsonl(landing / "support_2025-01-03.jsonl", rows(15) + rows(1, start=50))
    again = run(cfg, tmp_path / "o3", "r3")
    assert again.rows_read == 16 and again.rows_repeated == 15 and again.rows_kept == 1
    accounted(again)
    ingest.commit(cfg, again)

    # a late record (its timestamp in an earlier window) in a later file: picked up, once
    late = rows(1, start=70, day="2024-12-20")
    jsonl(landing / "support_2025-01-09.jsonl", late)
    got = run(cfg, tmp_path / "o4", "r4", window_start="2025-01-05", window_end="2025-01-10")
    assert got.rows_kept == 1 and str(curated(got)["timestamp"].iloc[0]).startswith("2024-12-20")
    ingest.commit(cfg, got)
    with pytest.raises(NoNewDataError):
        run(cfg, tmp_path / "o5", "r5")


def test_a_retry_of_the_same_run_sees_what_the_first_attempt_saw(make, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    cfg = make(landing_dir=str(landing))
    jsonl(landing / "support_2025-01-02.jsonl", rows(12))
    first = run(cfg, tmp_path / "o1", "r1")
    ingest.commit(cfg, first)  # committed, then the output is lost and the same run retries
    shutil.rmtree(tmp_path / "o1")
    again = run(cfg, tmp_path / "o1", "r1")
    assert again.rows_kept == first.rows_kept == 12


# ---------------------------------------------------------------- SQL
def _table(url: str, name: str = "tickets") -> sa.Table:
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        name,
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text),
        sa.Column("intent", sa.String(50)),
        sa.Column("created", sa.DateTime(timezone=True)),
    )
    meta.create_all(engine)
    engine.dispose()
    return table


def _insert(url: str, table: sa.Table, records: list[dict]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(table.insert(), records)
    engine.dispose()


def _sql_records(ids: range, day: str = "2025-01-02", salt: str = "") -> list[dict]:
    return [
        {"id": i, "body": text(i, salt), "intent": LABELS[i % 3],
         "created": pd.Timestamp(f"{day}T{(i % 24):02d}:00:00Z").to_pydatetime()}
        for i in ids
    ]  # fmt: skip


def _sql_incremental(make, tmp_path: Path, url: str) -> None:
    table = _table(url)
    _insert(url, table, _sql_records(range(0, 12)))
    cfg = make(
        sources=[
            {
                "kind": "sql",
                "name": "tickets",
                "url": url,
                "table": "tickets",
                "lateness_s": 3 * 86400,
                "columns": {"text": "body", "label": "intent", "timestamp": "created", "segment": None, "id": "id"},
            }
        ]  # fmt: skip
    )
    first = run(cfg, tmp_path / "s1", "r1", window_end="2025-01-05")
    assert first.rows_kept == 12 and first.files == ("table:tickets",)
    ingest.commit(cfg, first)
    with pytest.raises(NoNewDataError):
        run(cfg, tmp_path / "s2", "r2", window_end="2025-01-05")

    # a late row (older than the high-water mark, within the lateness) and a new one: each read once
    _insert(
        url, table, _sql_records(range(100, 101), day="2025-01-01") + _sql_records(range(200, 201), day="2025-01-04")
    )
    # a row after the window's end waits for its window
    _insert(url, table, _sql_records(range(300, 301), day="2025-01-20"))
    second = run(cfg, tmp_path / "s3", "r3", window_end="2025-01-05")
    assert second.rows_kept == 2 and second.rows_repeated == 12
    accounted(second)
    ingest.commit(cfg, second)
    third = run(cfg, tmp_path / "s4", "r4", window_end="2025-01-31")
    assert third.rows_kept == 1


def test_sql_table_is_read_incrementally_sqlite(make, tmp_path: Path) -> None:
    _sql_incremental(make, tmp_path, f"sqlite:///{tmp_path / 'crm.db'}")


@pytest.mark.integration
@pytest.mark.service("postgresql")
def test_sql_table_is_read_incrementally_postgres(make, tmp_path: Path, pg_db: str) -> None:
    _sql_incremental(make, tmp_path, pg_db)


@pytest.mark.integration
@pytest.mark.service("postgresql")
def test_sql_missing_table_and_changed_column_type_are_one_line_errors_postgres(
    make, tmp_path: Path, pg_db: str
) -> None:
    src = {"kind": "sql", "name": "crm", "url": pg_db, "table": "nope",
           "columns": {"text": "body", "label": "intent", "timestamp": "created"}}  # fmt: skip
    with pytest.raises(IngestError, match=r"source crm: table nope .* does not exist|table nope does not exist") as exc:
        run(make(sources=[src]), tmp_path / "x1", "r1")
    assert "\n" not in str(exc.value)

    engine = sa.create_engine(pg_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (body text, intent text, created text)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('where is my parcel', 'order_status', 'yesterday')"))
    engine.dispose()
    with pytest.raises(IngestError, match=r"column 'created' \(timestamp\) has type TEXT") as exc:
        run(make(sources=[{**src, "table": "t"}]), tmp_path / "x2", "r2")
    assert "\n" not in str(exc.value) and not (tmp_path / "x2").exists()


def test_sql_query_source(make, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    table = _table(url)
    _insert(url, table, _sql_records(range(0, 10)))
    cfg = make(
        sources=[
            {
                "kind": "sql",
                "name": "q",
                "url": url,
                "query": "SELECT body, intent, created FROM tickets WHERE id < 6",
                "columns": {"text": "body", "label": "intent", "timestamp": "created", "segment": None},
            }
        ]  # fmt: skip
    )
    res = run(cfg, tmp_path / "o", "r1")
    assert res.rows_kept == 6 and res.files == ("query",)


# ---------------------------------------------------------------- Hugging Face datasets on disk
def test_hf_dataset_saved_on_disk(make, tmp_path: Path) -> None:
    import datasets

    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows(10)),
            "extra": datasets.Dataset.from_list(rows(5, start=40)),
        }
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    cfg = make(sources=[{"kind": "hf_disk", "name": "hub", "path": str(tmp_path / "hf")}])
    res = run(cfg, tmp_path / "o1", "r1")
    assert res.rows_kept == 15 and set(res.files) == {"hf:hf/train", "hf:hf/extra"}
    ingest.commit(cfg, res)
    with pytest.raises(NoNewDataError):
        run(cfg, tmp_path / "o2", "r2")
    with pytest.raises(IngestError, match="is not a dataset saved with save_to_disk"):
        run(make(sources=[{"kind": "hf_disk", "name": "bad", "path": str(tmp_path)}]), tmp_path / "o3", "r3")


# ---------------------------------------------------------------- feedback corrections
def test_feedback_corrects_labels_and_unknown_messages_go_to_quarantine(make, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    records = [{**r, "id": f"m{i}"} for i, r in enumerate(rows(12))]
    jsonl(landing / "support_2025-01-02.jsonl", records)
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE corrections (message_id TEXT, label TEXT, timestamp DATETIME)"))
        conn.execute(
            sa.text("INSERT INTO corrections VALUES (:m, :l, :t)"),
            [
                {"m": "m0", "l": "Gift Card", "t": "2025-01-03 10:00:00"},  # label normalized, then applied
                {"m": "m1", "l": "refund_request", "t": "2025-01-03 11:00:00"},
                {"m": "m1", "l": "gift_card", "t": "2025-01-03 12:00:00"},  # the latest wins
                {"m": "ghost", "l": "order_status", "t": "2025-01-03 12:00:00"},
            ],
        )
    engine.dispose()
    cfg = make(
        sources=[
            {"kind": "landing", "name": "shop", "path": str(landing), "columns": {"id": "id"}},
            {"kind": "feedback", "name": "fixes", "url": url, "table": "corrections", "columns": {"text": None}},
        ]  # fmt: skip
    )
    res = run(cfg, tmp_path / "o", "r1")
    df = curated(res).set_index("message_id")
    assert df.loc["m0", "label"] == "gift_card" and df.loc["m1", "label"] == "gift_card"
    assert res.corrections_applied == 3 and res.rows_kept == 12
    changes = pd.read_parquet(Path(res.manifest_uri).parent / "corrections.parquet")
    assert list(changes["message_id"]) == ["m0", "m1", "m1"] and changes["old_label"].iloc[0] == "order_status"
    q = pd.read_parquet(res.quarantine_uri)
    assert list(q["reason_code"]) == ["unknown_message"] and q["message_id"].iloc[0] == "ghost"
    accounted(res)


def test_serving_feedback_with_text_trains(make, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pipeline.serving.log import PredictionLog

    cfg = make(sources=[{"kind": "feedback", "name": "serving"}], landing_dir=str(tmp_path / "none"))
    plog = PredictionLog(cfg.serving_log_url, buffer_max=100, flush_interval_s=1.0)
    plog.record(
        [{"request_id": f"q{i}", "ts": datetime(2025, 1, 2, i, tzinfo=UTC), "user_key": "u", "variant": "champion",
          "model_version": "1", "label": "order_status", "confidence": 0.5, "latency_ms": 1.0, "text": text(i)}
         for i in range(6)]
    )  # fmt: skip
    plog.flush()
    for i in range(6):
        plog.feedback(f"q{i}", label=LABELS[(i + 1) % 3], correct=False)
    res = run(cfg, tmp_path / "o", "r1")
    df = curated(res)
    assert res.rows_kept == 6 and set(df["message_id"]) == {f"q{i}" for i in range(6)}
    assert df.set_index("message_id").loc["q0", "label"] == LABELS[1]
