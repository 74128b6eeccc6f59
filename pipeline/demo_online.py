"""The demo's online phase: after the replayed year, real traffic through ``retrain serve`` and the
``ab_test`` DAG's decision.

The challenger is the registry's standing ``challenger``, else the newest version that is not the
champion (its alias move is recorded, actor ``demo``). Simulated users send the newest window's
held-out test messages (never trained on) and correct each answer with the true label. The
feedback watcher (an asset watcher in Airflow's triggerer, ``ab.trigger_feedback``) starts the
``ab_test`` DAG on that volume; if it has not within two minutes, the demo triggers the run. Light
until run.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

from pipeline import servers
from pipeline.airflow_local import Airflow, free_port


def _challenger(cfg: Any) -> tuple[str | None, str | None]:
    from pipeline import registry, tracking

    c = tracking.client(cfg)
    name = cfg.register.model_name
    champion = registry.alias_version(c, name, registry.CHAMPION)
    challenger = registry.alias_version(c, name, registry.CHALLENGER)
    if champion is None or challenger is not None:
        return champion, challenger
    others = sorted(int(v.version) for v in c.search_model_versions(f"name = '{name}'") if str(v.version) != champion)
    if not others:
        return champion, None
    challenger = str(others[-1])
    registry.move_alias(cfg, registry.CHALLENGER, challenger, actor="demo", pipeline_run_id="demo_online",
                        reason="demo: the newest version that is not champion meets live traffic")  # fmt: skip
    return champion, challenger


def _messages(cfg: Any) -> list[tuple[str, str]]:
    import pandas as pd

    from pipeline import paths

    root = paths.local_path(cfg.artifact_root_uri)  # the demo runs on a local artifact_root
    tests = sorted(root.glob("*/ingest/test.parquet"), key=lambda p: p.stat().st_mtime)
    if not tests:
        return []
    df = pd.read_parquet(tests[-1], columns=["text", "label"])
    return list(zip(df["text"].astype(str), df["label"].astype(str), strict=True))


def run(cfg: Any, af: Airflow, env: dict[str, str], day: date, requests: int) -> str:
    """Serve, send ``requests`` predictions with feedback, let ``ab_test`` decide; returns a summary."""
    import httpx

    from pipeline import registry, tracking

    champion, challenger = _challenger(cfg)
    if champion is None or challenger is None:
        return "online A/B skipped: the registry has no champion or no other version to test"
    messages = _messages(cfg)
    if not messages:
        return "online A/B skipped: no held-out messages"
    port = free_port(8090)
    server_env = {**env, "RETRAIN_SERVE__PORT": str(port), "RETRAIN_SERVE__RELOAD_INTERVAL_S": "2"}
    (Path(cfg.home_path) / "logs").mkdir(parents=True, exist_ok=True)
    log_file = open(Path(cfg.home_path) / "logs" / "serve.log", "ab")  # closed in the finally below
    proc = servers.start_group([sys.executable, "-c", "from pipeline.cli import app; app()", "serve"],
                               env=server_env, stdout=log_file, stderr=log_file)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    judged = 0
    before = set(af.run_ids("ab_test", "asset_triggered"))
    try:
        if not servers.wait_http_ok(f"{url}/ready", timeout=180):
            return f"online A/B skipped: the server did not become ready (see {log_file.name})"
        print(f"[demo] online: serving v{champion} (champion) and v{challenger} (challenger) on {url}; "
              f"{requests} simulated requests with feedback", flush=True)  # fmt: skip
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(requests):
                text, label = messages[i % len(messages)]
                r = client.post("/predict", json={"text": text, "user_id": f"user{i % 500}"})
                if r.status_code != 200:
                    continue
                rid = r.json()["request_id"]
                judged += client.post("/feedback", json={"request_id": rid, "label": label}).status_code == 200
    finally:
        servers.stop_group(proc)
        log_file.close()
    # the ab_test run the feedback watcher's asset event started (the triggerer polls the log)
    run_id, how = af.new_run("ab_test", "asset_triggered", before, timeout=120), "started by the feedback watcher"
    if run_id is None:  # the watcher did not fire (fewer judged predictions than ab.trigger_feedback)
        run_id, how = f"demo_ab_test_{day.isoformat()}", "triggered by the demo"
        af.trigger("ab_test", run_id, day, {})
    state = af.wait_run("ab_test", run_id)
    c = tracking.client(cfg)
    name = cfg.register.model_name
    exp = c.get_experiment_by_name(cfg.tracking.experiment_name)
    runs = c.search_runs([exp.experiment_id], filter_string="tags.step = 'ab_test'", max_results=1,
                         order_by=["attributes.start_time DESC"]) if exp else []  # fmt: skip
    summary = runs[0].data.tags.get("ab.summary", "") if runs else "(no decision recorded)"
    after = registry.alias_version(c, name, registry.CHAMPION)
    guarded = ""
    if after != champion and cfg.serve.guard_share > 0:
        guarded = (f"; guard: v{champion} (previous) keeps {cfg.serve.guard_share:.0%} of users for "
                   f"{cfg.ab.guard_days:g} days, and a live regression rolls back")  # fmt: skip
    return (f"online A/B ({judged} judged predictions): ab_test ({how}) {state}; {summary}; champion v{champion} -> v{after}"
            f"{guarded}")  # fmt: skip
