"""The bad-input matrix: every kind of bad input a user can hand the pipeline, one fixture each.

Each kind ends in a named one-line error (an :class:`~pipeline.errors.PipelineError`, never a
traceback), or in rows set aside with a reason code while the rest goes on. In every case the
accounting balances (no row lost or counted twice) and no model version is registered.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from messages import msg

from pipeline import tracking
from pipeline.errors import DataValidationError, IngestError, NoNewDataError, PipelineError
from pipeline.steps import ingest, validate

LABELS = ("order_status", "refund_request", "gift_card")
FILE = "support_2025-01-02.jsonl"


def good(n: int = 24, start: int = 0, labels: tuple[str, ...] = LABELS) -> list[dict[str, Any]]:
    return [
        {
            "text": msg(i, labels[i % len(labels)].replace("_", " ")),
            "label": labels[i % len(labels)],
            "timestamp": f"2025-01-02T{i % 24:02d}:00:00Z",
            "segment": "web",
        }
        for i in range(start, start + n)
    ]


def jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def with_row(**row: Any) -> Callable[[Path], None]:
    def write(landing: Path) -> None:
        base = {"text": "where is my blue kettle that I ordered on monday", "label": "order_status",
                "timestamp": "2025-01-02T10:00:00Z", "segment": "web"}  # fmt: skip
        jsonl(landing / FILE, [*good(), {**base, **row}])

    return write


@dataclass
class Kind:
    write: Callable[[Path], None]
    error: type[PipelineError] | None = None  # the named error, or None: the run goes on
    match: str = ""  # regex the error message matches
    reasons: tuple[str, ...] = ()  # reason codes expected in quarantine
    ingest: dict[str, Any] = field(default_factory=dict)
    before: Callable[[Any, Path], None] | None = None  # e.g. a first ingest, committed
    extra: Callable[[pd.DataFrame, dict[str, Any]], None] | None = None  # more checks on the curated rows


# ---------------------------------------------------------------- the kinds' fixtures
def missing_folder(landing: Path) -> None:
    pass


def empty_folder(landing: Path) -> None:
    landing.mkdir(parents=True)


def empty_file(landing: Path) -> None:
    landing.mkdir(parents=True)
    (landing / "support_2025-01-02.csv").write_bytes(b"")


def missing_column(landing: Path) -> None:
    landing.mkdir(parents=True)
    pd.DataFrame(good()).drop(columns=["label"]).to_csv(landing / "support_2025-01-02.csv", index=False)


def corrupt_parquet(landing: Path) -> None:
    landing.mkdir(parents=True)
    (landing / "support_2025-01-02.parquet").write_bytes(b"PAR1 this is not parquet PAR1")


def truncated_gzip(landing: Path) -> None:
    landing.mkdir(parents=True)
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in good()).encode())
    (landing / "support_2025-01-02.jsonl.gz").write_bytes(data[: len(data) // 2])


def broken_jsonl_line(landing: Path) -> None:
    landing.mkdir(parents=True)
    lines = [json.dumps(r) for r in good()]
    lines[2] = lines[2][:-5]
    (landing / FILE).write_text("\n".join(lines) + "\n")


def jsonl_array_line(landing: Path) -> None:
    landing.mkdir(parents=True)
    (landing / FILE).write_text(json.dumps(good(1)[0]) + "\n" + json.dumps(["not", "an", "object"]) + "\n")


def unsupported_only(landing: Path) -> None:
    landing.mkdir(parents=True)
    (landing / "support_2025-01-02.xlsx").write_bytes(b"PK\x03\x04")
    (landing / ".support_2025-01-02.jsonl.tmp").write_text("{}")


def directory_named_like_a_file(landing: Path) -> None:
    (landing / "support_2025-01-02.jsonl").mkdir(parents=True)


def ragged_csv(landing: Path) -> None:
    landing.mkdir(parents=True)
    text = "text,label,timestamp\nwhere is my parcel,order_status,2025-01-02\na,b,c,d,e\n"
    (landing / "support_2025-01-02.csv").write_text(text)


def bom_semicolon_csv(landing: Path) -> None:
    landing.mkdir(parents=True)
    pd.DataFrame(good()).to_csv(landing / "support_2025-01-02.csv", index=False, sep=";", encoding="utf-8-sig")


def mixed_encodings(landing: Path) -> None:
    landing.mkdir(parents=True)
    rows = good()
    rows[0]["text"] = "mon café crème order from the warehouse never came"
    pd.DataFrame(rows[:12]).to_csv(landing / "support_2025-01-02.csv", index=False, encoding="utf-8")
    pd.DataFrame(rows[12:] + [rows[0] | {"text": "the señor's jacket (talla XL) is wrong colour again"}]).to_csv(
        landing / "support_2025-01-03.csv", index=False, encoding="cp1252"
    )


def renamed_resent(landing: Path) -> None:
    jsonl(landing / FILE, good())


def resend_renamed(cfg: Any, tmp: Path) -> None:
    _first_commit(cfg, tmp)
    landing = tmp / "landing"
    (landing / FILE).rename(landing / "resent_2025-01-05.jsonl")


def appended(cfg: Any, tmp: Path) -> None:
    _first_commit(cfg, tmp)
    path = tmp / "landing" / FILE
    path.write_text(path.read_text() + json.dumps(good(1, start=500)[0]) + "\n")


def _first_commit(cfg: Any, tmp: Path) -> None:
    res = ingest.run(cfg, out_dir=str(tmp / "first"), pipeline_run_id="first", consumer="retrain")
    ingest.commit(cfg, res)


def sql_missing_table(landing: Path) -> None:
    landing.mkdir(parents=True)


def sql_changed_type(landing: Path) -> None:
    landing.mkdir(parents=True)
    engine = sa.create_engine(f"sqlite:///{landing / 'crm.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE tickets (body TEXT, intent TEXT, created INTEGER)"))
        conn.execute(sa.text("INSERT INTO tickets VALUES ('where is my parcel', 'order_status', 1735689600)"))
    engine.dispose()


def feedback_unknown_message(landing: Path) -> None:
    jsonl(landing / FILE, [{**r, "id": f"m{i}"} for i, r in enumerate(good())])
    engine = sa.create_engine(f"sqlite:///{landing.parent / 'fb.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE fixes (message_id TEXT, label TEXT, timestamp DATETIME)"))
        conn.execute(sa.text("INSERT INTO fixes VALUES ('nobody', 'gift_card', '2025-01-02 12:00:00')"))
    engine.dispose()


def no_pii_text(df: pd.DataFrame, manifest: dict[str, Any]) -> None:
    blob = " ".join(df["text"])
    assert "DE89 3704 0044 0532 0130 00" not in blob and "192.168.10.20" not in blob and "2001:db8::1" not in blob
    assert "4111 1111 1111 1111" not in blob and "[IBAN]" in blob and "[IP]" in blob and "[CARD]" in blob


def no_pii_label(df: pd.DataFrame, manifest: dict[str, Any]) -> None:
    assert "jane.doe@example.com" not in json.dumps(manifest)


def rtl_cleaned(df: pd.DataFrame, manifest: dict[str, Any]) -> None:
    assert not df["text"].str.contains("[\u200b\u200f\u202e\ufeff]").any()


def mixed_read(df: pd.DataFrame, manifest: dict[str, Any]) -> None:
    assert df["text"].str.contains("señor's").any() and df["text"].str.contains("café").any()


SQL = {"text": "body", "label": "intent", "timestamp": "created", "segment": None}
KINDS: dict[str, Kind] = {
    "missing_folder": Kind(missing_folder, IngestError, r"landing folder .* does not exist"),
    "empty_folder": Kind(empty_folder, IngestError, r"holds no csv/jsonl/parquet files"),
    "empty_file": Kind(
        empty_file, IngestError, r"support_2025-01-02\.csv: cannot be read as csv \(the file is empty\)"
    ),
    "missing_mapped_column": Kind(
        missing_column, IngestError, r"column\(s\) 'label' \(ingest\.columns\.label\) not found"
    ),
    "corrupt_parquet": Kind(corrupt_parquet, IngestError, r"cannot be read as parquet"),
    "truncated_gzip": Kind(truncated_gzip, IngestError, r"jsonl\.gz: cannot be read as jsonl"),
    "jsonl_broken_line": Kind(broken_jsonl_line, IngestError, r"line 3 is not valid JSON"),
    "jsonl_array_line": Kind(jsonl_array_line, IngestError, r"line 2 is a JSON list, not an object"),
    "unsupported_and_temp_only": Kind(unsupported_only, IngestError, r"holds no .* not read"),
    "directory_named_like_a_file": Kind(directory_named_like_a_file, IngestError, r"not a regular file"),
    "ragged_csv": Kind(ragged_csv, IngestError, r"cannot be read as csv \(.*Expected 3 fields"),
    "bom_semicolon_csv": Kind(bom_semicolon_csv),
    "mixed_encodings": Kind(mixed_encodings, extra=mixed_read),
    "renamed_resent_file": Kind(
        renamed_resent, NoNewDataError, r"all 24 row\(s\) ingested before", before=resend_renamed
    ),
    # only the appended row is new: too little to train on, and validation says so
    "one_row_appended": Kind(
        renamed_resent,
        DataValidationError,
        r"error row_count: .*observed 1 rows .*at support_2025-01-02\.jsonl row 24",
        before=appended,
    ),
    "empty_text": Kind(with_row(text="   \n\t "), reasons=("empty_text",)),
    "text_too_short": Kind(with_row(text="ok"), reasons=("text_too_short",)),
    "null_label": Kind(with_row(label=None), reasons=("missing_label",)),
    "blank_label": Kind(with_row(label="   "), reasons=("missing_label",)),
    "bad_timestamp": Kind(with_row(timestamp="last tuesday"), reasons=("bad_timestamp",)),
    "epoch_milliseconds": Kind(with_row(timestamp=1735689600000 * 1000), reasons=("bad_timestamp",)),
    "unknown_label": Kind(with_row(label="warranty_claim"), reasons=("new_label",)),
    "label_holding_pii": Kind(with_row(label="jane.doe@example.com"), reasons=("new_label",), extra=no_pii_label),
    "foreign_language": Kind(
        with_row(text="Hola, ¿dónde está mi pedido? Lo compré hace dos semanas y todavía no ha llegado."),
        reasons=("language",),
    ),
    "exact_duplicate": Kind(with_row(text=good(1)[0]["text"].upper()), reasons=("duplicate",)),
    "near_duplicate": Kind(with_row(text=good(1)[0]["text"] + " again??"), reasons=("near_duplicate",)),
    "10k_character_token": Kind(with_row(text="refund " + "x" * 10_000), reasons=("long_token",)),
    "pii_iban_ip_card_in_text": Kind(
        with_row(
            text="refund to DE89 3704 0044 0532 0130 00 from 192.168.10.20 or 2001:db8::1, card 4111 1111 1111 1111"
        ),
        extra=no_pii_text,
    ),
    "quadratic_regex_bait": Kind(with_row(text="a@" * 500_000), reasons=("long_token",)),
    "zero_width_and_rtl_only": Kind(with_row(text="\u200b\u200f\u202e\ufeff \u200b"), reasons=("empty_text",)),
    "zero_width_and_rtl_in_text": Kind(
        with_row(text="where\u200b is my \u202eparcel\u202c from the \u200fwarehouse monday"), extra=rtl_cleaned
    ),
    "control_characters_only": Kind(with_row(text="\x00\x01\x02\x1b"), reasons=("empty_text",)),
    "sql_missing_table": Kind(
        sql_missing_table,
        IngestError,
        r"source crm: table nope at sqlite:.*: table nope does not exist",
        ingest={
            "sources": [
                {"kind": "sql", "name": "crm", "url": "sqlite:///{landing}/crm.db", "table": "nope", "columns": SQL}
            ]
        },
    ),  # fmt: skip
    "sql_column_type_changed": Kind(
        sql_changed_type,
        IngestError,
        r"column 'created' \(timestamp\) has type INTEGER, not a date/time type",
        ingest={
            "sources": [
                {"kind": "sql", "name": "crm", "url": "sqlite:///{landing}/crm.db", "table": "tickets", "columns": SQL}
            ]
        },
    ),  # fmt: skip
    "feedback_for_unknown_message": Kind(
        feedback_unknown_message,
        reasons=("unknown_message",),
        ingest={
            "sources": [
                {"kind": "landing", "name": "shop", "path": "{landing}", "columns": {"id": "id"}},
                {
                    "kind": "feedback",
                    "name": "fixes",
                    "url": "sqlite:///{landing}/../fb.db",
                    "table": "fixes",
                    "columns": {"text": None},
                },
            ]
        },
    ),  # fmt: skip
    "future_timestamp": Kind(
        with_row(timestamp="2099-01-01T00:00:00Z"),
        DataValidationError,
        r"error future_timestamps: .* 1 rows in the future .* at support_2025-01-02\.jsonl row 24",
    ),  # fmt: skip
    "single_class_window": Kind(
        lambda landing: jsonl(landing / FILE, good(labels=("order_status",))),
        DataValidationError,
        r"error min_classes: .*observed 1 distinct label",
    ),  # fmt: skip
    "too_few_rows": Kind(
        lambda landing: jsonl(landing / FILE, good(6)), DataValidationError, r"error row_count: .*observed 6 rows"
    ),
}


def _fill(value: Any, landing: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{landing}", str(landing))
    if isinstance(value, list):
        return [_fill(v, landing) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, landing) for k, v in value.items()}
    return value


def test_the_matrix_has_at_least_30_kinds() -> None:
    assert len(KINDS) >= 30


@pytest.mark.parametrize("name", sorted(KINDS))
def test_bad_input(name: str, make_cfg, mlflow_store, tmp_path: Path) -> None:
    kind = KINDS[name]
    landing = tmp_path / "landing"
    kind.write(landing)
    cfg = make_cfg(
        tracking=mlflow_store,
        ingest={"landing_dir": str(landing), **_fill(kind.ingest, landing)},
        validate={"min_rows": 12, "min_rows_per_class": 2},
    )
    if kind.before is not None:
        kind.before(cfg, tmp_path)
    run_id = f"matrix__{name}"
    out = tmp_path / "ingest"
    try:
        res = ingest.run(cfg, out_dir=str(out), pipeline_run_id=run_id, consumer="retrain")
        val = validate.run(
            cfg, data_uris=[res.train_uri, res.val_uri, res.test_uri], out_dir=str(tmp_path / "val"),
            pipeline_run_id=run_id,
        )  # fmt: skip
    except PipelineError as exc:
        message = str(exc)
        assert kind.error is not None, f"{name}: unexpected {type(exc).__name__}: {message}"
        assert isinstance(exc, kind.error), f"{name}: {type(exc).__name__} is not {kind.error.__name__}: {message}"
        assert "\n" not in message and "Traceback" not in message
        assert re.search(kind.match, message), f"{name}: {message!r} does not match {kind.match!r}"
        if isinstance(exc, IngestError):
            assert not out.exists()  # nothing half-written
    else:
        assert kind.error is None, f"{name}: expected {kind.error.__name__}, the run went on"
        assert val.success
        manifest = json.loads(Path(res.manifest_uri).read_text())
        acc = manifest["accounting"]
        assert acc["balanced"] and acc["rows_read"] == res.rows_read
        parts = [acc["kept"], *acc["quarantined"].values(), *acc["duplicates"].values(), acc["repeated"]]
        assert sum(parts) + acc["corrections_applied"] == res.rows_read
        if kind.reasons:
            q = pd.read_parquet(res.quarantine_uri)
            assert set(kind.reasons) <= set(q["reason_code"]), f"{name}: {sorted(set(q['reason_code']))}"
            assert q["reason"].notna().all() and q["source_file"].notna().all()
        if kind.extra is not None:
            curated = pd.concat(pd.read_parquet(u) for u in (res.train_uri, res.val_uri, res.test_uri))
            kind.extra(curated, manifest)
    # nothing trains or registers on bad input
    client = tracking.client(cfg)
    assert not client.search_model_versions(f"tags.{tracking.TAG_RUN} = '{run_id}'")
