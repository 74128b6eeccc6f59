"""Ingest plus validate on simulated rows, against a plain pyarrow read of the same rows in the same run.

For each size (default 100k and 1M rows), in its own process (so its peak RSS is its own):

1. a simulated year at the volume that gives that many messages (its own resends, edited resends
   and templated repeats included) is written as Parquet landing files of 100k rows;
2. **baseline**: ``pyarrow.parquet.read_table`` of every file (the plain read);
3. **ingest** (:func:`pipeline.steps.ingest.run`, the real step: sources, row watermark, cleaning with
   ftfy and PII scrubbing, lingua, MinHash near-duplicates, split, Parquet, manifest, MLflow run), then
   **validate** (the real GX suites);
4. rows/s per stage (read, clean = repair + normalize + PII + labels + timestamps, PII alone,
   language, near-dup, validate), the total as a ratio to the plain read, and the peak RSS.

The PII stage is also timed alone (``scrub_pii`` over the same texts) because it runs inside
cleaning. Goal (issue 10): ingest plus validate at most 5x the plain read at 1M rows.

Run: ``.venv/bin/python benchmarks/ingest.py [--sizes 100000,1000000] [--quick]``; the table goes to
stdout and ``benchmarks/results/ingest.md`` (+ ``.json``), progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
FILE_ROWS = 100_000
GOAL = 5.0

from benchmarks.common import table  # noqa: E402


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _landing(folder: Path, rows: int) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.config import SimulatorConfig
    from pipeline.data.simulator import simulate_messages

    per_day = -(-rows // 365)  # a simulated year at the volume that gives `rows` messages
    base = simulate_messages(SimulatorConfig(messages_per_day=per_day), date(2025, 1, 1), date(2025, 12, 31))
    folder.mkdir(parents=True)
    files = []
    for part, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        picked = [base[(start + i) % len(base)] for i in range(n)]
        table_ = pa.table(
            {
                "text": [r["text"] for r in picked],
                "label": [r["label"] for r in picked],
                "timestamp": [r["timestamp"] for r in picked],
                "segment": [r["segment"] for r in picked],
            }
        )
        path = folder / f"support_2025-01-{part + 1:02d}.parquet"
        pq.write_table(table_, path)
        files.append(path)
    return files


def one(rows: int) -> dict:
    """Measure one size in this process; the result row as JSON on stdout."""
    import pyarrow.parquet as pq

    from pipeline.config import load_config
    from pipeline.data.pii import scrub_pii
    from pipeline.steps import ingest, validate

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        home = Path(tmp) / "home"
        files = _landing(home / "landing", rows)
        t0 = time.perf_counter()
        plain_rows = sum(pq.read_table(f).num_rows for f in files)
        plain_s = time.perf_counter() - t0
        assert plain_rows == rows
        cfg = load_config(home=str(home))
        _say(f"[{rows}] plain read {plain_s:.3f}s; ingest ...")
        t0 = time.perf_counter()
        res = ingest.run(cfg, out_dir=str(home / "out" / "ingest"), pipeline_run_id="bench", consumer="bench")
        ingest_s = time.perf_counter() - t0
        _say(f"[{rows}] ingest {ingest_s:.1f}s; validate ...")
        t0 = time.perf_counter()
        validate.run(cfg, data_uris=[res.train_uri, res.val_uri, res.test_uri],
                     out_dir=str(home / "out" / "validate"), pipeline_run_id="bench")  # fmt: skip
        validate_s = time.perf_counter() - t0
        from mlflow.tracking import MlflowClient

        metrics = MlflowClient(cfg.tracking_uri).get_run(res.mlflow_run_id).data.metrics
        texts = [t for f in files[:1] for t in pq.read_table(f, columns=["text"]).column(0).to_pylist()][:50_000]
        t0 = time.perf_counter()
        for t in texts:
            scrub_pii(t)
        pii_rate = len(texts) / (time.perf_counter() - t0)
    total = ingest_s + validate_s

    def rate(seconds: float | None) -> float:
        return round(rows / seconds, 1) if seconds else float("nan")

    return {
        "rows": rows,
        "plain read s": round(plain_s, 3),
        "read rows/s": rate(metrics.get("read_s")),
        "clean rows/s": rate(metrics.get("clean_s")),
        "PII alone rows/s": round(pii_rate, 1),
        "language rows/s": rate(metrics.get("language_s")),
        "near-dup rows/s": rate(metrics.get("near_dup_s")),
        "validate rows/s": rate(validate_s),
        "ingest s": round(ingest_s, 1),
        "validate s": round(validate_s, 1),
        "ratio to plain read": round(total / plain_s, 1),
        "kept": res.rows_kept,
        "peak RSS MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--quick", action="store_true", help="20k rows only")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        _say(f"measuring {n} rows in a fresh process ...")
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        sys.stderr.write(out.stderr[-2000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    text = (
        f"# Ingest + validate vs a plain pyarrow read ({platform.processor() or platform.machine()}, "
        f"{platform.python_version()})\n\n"
        + table(rows)
        + f"\nGoal: ingest + validate at most {GOAL:.0f}x the plain read at 1M rows. "
        + ", ".join(f"{r['rows']} rows: {r['ratio to plain read']}x" for r in rows)
        + ("  (goal met)\n" if all(r["ratio to plain read"] <= GOAL for r in rows) else "  (goal NOT met)\n")
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "ingest_quick" if args.quick else "ingest"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
