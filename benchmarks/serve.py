"""Serving load: `retrain serve` in its own process on loopback, driven by a bounded asyncio client.

A MiniLM intent model (the packaged base model with an 8-label head; weights do not change the
cost) is registered three times. The server loads ``champion`` by alias; while the batch-1 load
runs, ``champion`` moves twice (1 → 2 → 3; the server polls every second). Reported per batch size
(1 and 32): requests/s, texts/s, p50/p95/p99 latency, failed requests; and the ratio of texts/s
against calling the same pyfunc in this process with no HTTP (the baseline, measured in the same
run). After the server stops, the prediction log must hold every served text exactly once.

Run: ``.venv/bin/python benchmarks/serve.py [--seconds 20] [--concurrency 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

from benchmarks.common import table  # noqa: E402

TEXTS = [
    "where is my order? it was due last week",
    "i want a refund for the broken blender",
    "cannot log in to my account after the password reset",
    "do you price match the store down the road",
    "my gift card balance shows zero",
    "the parcel is stuck in customs since monday",
    "how do i return a jacket that does not fit",
    "is this laptop compatible with a usb-c dock",
]


def _intent_model(out: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.config import DEFAULT_LABELS, FinetuneConfig
    from pipeline.modeling.base import resolve_base_model
    from pipeline.modeling.pyfunc import write_model_meta

    base = resolve_base_model(FinetuneConfig().base_model)
    labels = tuple(DEFAULT_LABELS[:8])
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)}
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    write_model_meta(out, labels=labels, max_length=64)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms) if ms else np.asarray([np.nan])
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99))}  # fmt: skip


def in_process(model, batch: int, seconds: float) -> dict[str, float]:
    import pandas as pd

    lat, texts, end = [], 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        df = pd.DataFrame({"text": [TEXTS[(texts + i) % len(TEXTS)] for i in range(batch)]})
        t0 = time.perf_counter()
        model.predict(df)
        lat.append(1000 * (time.perf_counter() - t0))
        texts += batch
    return {"requests_s": len(lat) / seconds, "texts_s": texts / seconds, **_percentiles(lat), "failed": 0}


async def over_http(url: str, batch: int, seconds: float, concurrency: int, moves=None) -> dict[str, float]:
    import httpx

    lat: list[float] = []
    failed, texts, sent = 0, 0, 0
    end = time.perf_counter() + seconds

    async def worker(k: int, client: httpx.AsyncClient) -> None:
        nonlocal failed, texts, sent
        i = 0
        while time.perf_counter() < end:
            body = {"user_id": f"user{k}-{i % 50}"}
            body |= (
                {"text": TEXTS[i % len(TEXTS)]} if batch == 1 else {"texts": [TEXTS[(i + j) % 8] for j in range(batch)]}
            )
            t0 = time.perf_counter()
            try:
                r = await client.post(f"{url}/predict", json=body, timeout=60)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            sent += 1
            if ok:
                lat.append(1000 * (time.perf_counter() - t0))
                texts += batch
            else:
                failed += 1
            i += 1

    async with httpx.AsyncClient() as client:
        tasks = [asyncio.create_task(worker(k, client)) for k in range(concurrency)]
        if moves is not None:
            tasks.append(asyncio.create_task(moves(seconds)))
        await asyncio.gather(*tasks)
    return {"requests_s": len(lat) / seconds, "texts_s": texts / seconds, **_percentiles(lat), "failed": failed,
            "texts_ok": texts}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import httpx
    import mlflow
    import sqlalchemy as sa

    from pipeline import servers, tracking
    from pipeline.config import load_config
    from pipeline.modeling.pyfunc import log_intent_model

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    port = _free_port()
    env = {**os.environ, "RETRAIN_HOME": str(tmp), "RETRAIN_SERVE__RELOAD_INTERVAL_S": "1",
           "RETRAIN_SERVE__PORT": str(port), "RETRAIN_SERVE__MAX_BATCH": "64"}  # fmt: skip
    os.environ.update({k: v for k, v in env.items() if k.startswith("RETRAIN_")})
    cfg = load_config()
    model_dir = _intent_model(tmp / "minilm-intent")
    exp = tracking.configure(cfg)
    name = cfg.register.model_name
    for _ in range(3):
        with mlflow.start_run(experiment_id=exp):
            info = log_intent_model(model_dir, tags={"pipeline_run_id": "serve-bench"})
        mlflow.register_model(info.model_uri, name)
    c = tracking.client(cfg)
    c.set_registered_model_alias(name, "champion", "1")

    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    for b in (1, 32, 1, 32):  # warm up: the first calls pay for lazy initialisation
        model.predict(pd.DataFrame({"text": TEXTS * 4})[:b])
    rows = []
    base = {b: in_process(model, b, args.seconds / 2) for b in (1, 32)}
    for b in (1, 32):
        rows.append({"path": "in-process pyfunc", "batch": b, **base[b], "ratio_texts_s": 1.0, "ratio_p50": 1.0})

    proc = servers.start_group(
        [sys.executable, "-c", "from pipeline.cli import app; app()", "serve"], env=env, stdout=sys.stderr
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not servers.wait_http_ok(f"{url}/ready", timeout=120):
            raise SystemExit("the server did not become ready in 120 s")
        seen_versions: list[str] = []

        async def moves(seconds: float) -> None:
            for version in ("2", "3"):
                await asyncio.sleep(seconds / 3)
                c.set_registered_model_alias(name, "champion", version)
                seen_versions.append(version)

        served = 0
        for b in (1, 32):
            res = asyncio.run(over_http(url, b, args.seconds, args.concurrency, moves if b == 1 else None))
            served += int(res.pop("texts_ok"))
            rows.append({"path": f"HTTP ({args.concurrency} clients)", "batch": b, **res,
                         "ratio_texts_s": res["texts_s"] / base[b]["texts_s"],
                         "ratio_p50": res["p50_ms"] / base[b]["p50_ms"]})  # fmt: skip
        ready = httpx.get(f"{url}/ready", timeout=5).json()
    finally:
        servers.stop_group(proc)
    with sa.create_engine(cfg.serving_log_url).connect() as conn:
        logged = conn.execute(sa.text("select count(*), count(distinct request_id) from serving_predictions")).one()
    text = (
        "# Serving load: `retrain serve` on loopback\n\n"
        f"`python benchmarks/serve.py --seconds {args.seconds:g} --concurrency {args.concurrency}` on "
        f"{platform.machine()}, {os.cpu_count()} cores; MiniLM-L6 with an 8-label head, max_length 64; "
        "in-process baseline measured in the same run.\n\n"
        + table(rows)
        + "\nratio_texts_s: throughput against one in-process caller with no HTTP (the HTTP rows also pay "
        "for JSON, the prediction log and the alias moves, on the same 2 cores as the clients); "
        "ratio_p50: a request's median latency against one in-process call.\n"
        + f"\nDuring the batch-1 load `champion` moved 1 → 2 → 3 ({len(seen_versions)} moves); the server "
        f"ended on v{ready.get('champion')}. Failed requests: {sum(int(r['failed']) for r in rows)}. "
        f"Prediction log: {logged[0]} rows, {logged[1]} distinct request ids, {served} texts served "
        f"({'every text exactly once' if logged[0] == logged[1] == served else 'MISMATCH'}).\n"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.md").write_text(text)
    (RESULTS / "serve.json").write_text(json.dumps({"rows": rows, "log_rows": logged[0], "served": served,
                                                    "champion_after": ready.get("champion")}, indent=2))  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
