"""Real data through the real loop: the drift policy against always-retrain and never-retrain.

Each dataset in ``../shared/data`` is cut into time windows (SemEval tweets by year, HuffPost news
by quarter) and written as dated landing files. For every strategy, in its own home (its own MLflow
store, registry and drift history), each window runs through ``pipeline.flow.run_cycle``: ingest,
validate, drift, the policy's decision, and when it says so fine-tune (MiniLM, warm start + replay;
a retrain started by drift alone is incremental: ``policy.incremental_epochs``), the promotion gate
and register. Strategies:

- ``policy``: the drift policy decides (the first window is forced: there is no champion);
- ``always``: ``force_retrain`` on every window (the gate still decides promotion);
- ``always_promote``: like ``always``, and every challenger becomes champion (the gate's baseline);
- ``never``: only the first window trains;
- ``oracle`` (computed, not run): retrain only where always-retrain promoted. A rejected retrain leaves
  the champion unchanged, so this serves always's champions for the least compute that can: the bound.

After each window, the served champion is scored on the next window (macro-F1 over the classes
present there); at each change of champion, its predecessor is scored on the same next window too
(``worst_change``: the largest drop a promotion caused). Compute is the rows trained on (new + replayed + synthetic rows × epochs run) and the fine-tune
seconds. (Results from before 2026-12-06 counted replayed rows twice.)
HuffPost's new categories go through ``validate.new_labels: accept``.

Run: ``.venv/bin/python benchmarks/drift_replay.py [--dataset semeval|huffpost] [--max-rows N]``;
writes ``benchmarks/results/drift_replay.md``. Skips with a message when ``../shared/data`` is absent.
``--keep DIR`` keeps each strategy's home (registry, runs, every decision record and its
``predictions.parquet`` per slice) under ``DIR/<dataset>/<strategy>`` to study the gate's decisions.
Minutes per window on 2 CPU cores: sized by ``--max-rows`` and the fine-tune caps below.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

from benchmarks.common import table  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
FINETUNE = {"max_train_rows": 300, "epochs": 2, "freeze_layers": 3, "max_length": 48, "frozen_cache_mb": 1024}
# the first model's macro-F1 floor: the demo's 0.6 is for 9 support intents; 3 sentiments and 29
# news categories from a few hundred rows start far lower (without a champion nothing is served)
FIRST_MODEL_FLOOR = {"semeval": 0.3, "huffpost": 0.05}


def semeval(max_rows: int) -> tuple[list[tuple[str, pd.DataFrame]], tuple[str, ...]]:
    df = pd.read_csv(SHARED / "semeval_twitter_sentiment" / "tweets_2011_2016.csv")
    df["ts"] = pd.to_datetime(df["created_at_utc_from_snowflake"], utc=True, errors="coerce")
    df = df.dropna(subset=["ts", "text", "label"])
    wins = []
    for year, g in sorted(df.groupby(df["ts"].dt.year)):
        if len(g) >= 500:
            g = g.sample(n=min(len(g), max_rows), random_state=0)
            wins.append((f"{year}-12-31", g.assign(timestamp=g["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))))
    return wins, ("negative", "neutral", "positive")


def huffpost(max_rows: int) -> tuple[list[tuple[str, pd.DataFrame]], tuple[str, ...]]:
    df = pd.read_json(SHARED / "huffpost_news_2018_2022" / "news_2018_2022.jsonl", lines=True)
    df["text"] = df["headline"].astype(str) + ". " + df["short_description"].astype(str)
    df["label"] = df["category"].astype(str)
    df["ts"] = pd.to_datetime(df["date"], utc=True)
    wins = []
    for q, g in sorted(df.groupby(df["ts"].dt.to_period("Q"))):
        if len(g) >= 150:
            g = g.sample(n=min(len(g), max_rows), random_state=0)
            end = q.end_time.date().isoformat()
            wins.append((end, g.assign(timestamp=g["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))))
    first = wins[0][1]
    counts = first["label"].value_counts()
    return wins, tuple(sorted(counts[counts >= 3].index))  # the first window's categories are the known set


def macro_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    labels = sorted(set(truth))
    return float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))


def served_f1(cfg, window: pd.DataFrame, model_uri: str | None = None) -> float:
    import mlflow

    from pipeline import registry, tracking

    tracking.configure(cfg)
    uri = model_uri or registry.get_champion(cfg).model_uri
    if uri is None:
        return float("nan")  # nothing served yet
    model = mlflow.pyfunc.load_model(uri)
    sample = window.sample(n=min(len(window), 800), random_state=1)
    pred = model.predict(pd.DataFrame({"text": sample["text"].astype(str)}))["label"].astype(str).to_numpy()
    return macro_f1(sample["label"].astype(str).to_numpy(), pred)


def run_strategy(
    name: str,
    wins: list,
    labels: tuple[str, ...],
    root: Path,
    floor: float,
    gate: dict | None = None,
    policy: dict | None = None,
) -> dict:
    from pipeline import flow, promotion, registry
    from pipeline.config import load_config

    home = root / name
    landing = home / "landing"
    landing.mkdir(parents=True)
    cfg = load_config(
        home=str(home),
        finetune=FINETUNE,
        # categories die out in HuffPost: one row of a known class must not fail its whole window
        validate={"labels": list(labels), "new_labels": "accept", "max_duplicate_share": 0.5, "min_rows_per_class": 1},
        evaluate={"first_model_min_macro_f1": floor, **(gate or {})},
        policy=policy or {},
    )
    rows_trained, seconds, f1s, decisions, promoted_rows = 0, 0.0, [], [], 0
    changes: list[float] = []  # per champion change: new champion's next-window F1 minus its predecessor's
    for i, (end, df) in enumerate(wins):
        before = registry.get_champion(cfg)
        df[["text", "label", "timestamp"]].to_json(landing / f"window_{end}.jsonl", orient="records", lines=True)
        if name == "never" and i > 0:
            decisions.append("-")
        else:
            plan = flow.make_plan(
                dag_id="replay", run_id=f"w{i}", run_type="manual",
                params={"window_end": end, "force_retrain": i == 0 or name in ("always", "always_promote")},
            )  # fmt: skip
            t0 = time.perf_counter()
            out = flow.run_cycle(cfg, plan)
            ft = out.get("finetune")
            if ft:
                # train_rows already holds the replayed rows; synthetic rows train too
                rows_trained += (ft["train_rows"] + ft.get("augmented_rows", 0)) * ft["epochs_run"]
                seconds += time.perf_counter() - t0
            promoted = (out.get("register") or {}).get("promoted") or (out.get("reassess") or {}).get(
                "result"
            ) == "promoted"
            reg = out.get("register") or {}
            if name == "always_promote" and ft and not promoted and reg.get("version"):
                promotion.promote(cfg, reg["version"], expected_champion=before.version, actor="benchmark",
                                  reason="always-promote baseline", run_id=f"w{i}")  # fmt: skip
                promoted = True
            if ft and promoted:
                promoted_rows += (ft["train_rows"] + ft.get("augmented_rows", 0)) * ft["epochs_run"]
            inc = "[inc]" if ft and ft.get("scope") == "incremental" else ""
            decisions.append(
                f"{out['decision']['rule']}{inc}{'+' if promoted else ('-' if ft else '')}"
                if out.get("decision")
                else "?"
            )
            if out.get("decision"):
                print(f"[{name}] {end} policy: {out['decision'].get('summary', '')}", file=sys.stderr)
            h = ((out.get("drift") or {}).get("performance") or {}).get("headroom")
            if h:  # every view of the headroom, against what the retrain then did (for choosing the policy's view)
                views = {"acc": (h["gain"], h["low"], h["high"]), "f1": h.get("f1"), "win_acc": h.get("window"),
                         "win_f1": h.get("window_f1")}  # fmt: skip
                print(f"[{name}] {end} headroom: " + "; ".join(
                    f"{k} {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" for k, v in views.items() if v), file=sys.stderr)  # fmt: skip
            for key in ("reassess", "evaluate"):  # why the gate held a challenger back, for the log
                ev = out.get(key) or {}
                ev = ev.get("evaluate", ev)
                if ev and ev.get("outcome") != "promote":
                    print(f"[{name}] {end} {key}: {ev.get('summary', '')}", file=sys.stderr)
                    for r in ev.get("reasons") or ():
                        print(f"[{name}]     {r}", file=sys.stderr)
        if i + 1 < len(wins):
            f1s.append(served_f1(cfg, wins[i + 1][1]))
            after = registry.get_champion(cfg)
            if i > 0 and before.model_uri is not None and after.version != before.version:
                changes.append(f1s[-1] - served_f1(cfg, wins[i + 1][1], before.model_uri))
        print(f"[{name}] window {end}: {decisions[-1]} next-window macro-F1 {f1s[-1] if f1s else float('nan'):.3f}",
              file=sys.stderr, flush=True)  # fmt: skip
    return {
        "mean_next_macro_f1": float(np.mean(f1s)),
        "rows_trained": rows_trained,
        "train_cycle_s": seconds,
        "promoted_rows": promoted_rows,
        "champion_changes": len(changes),
        "worst_change": min(changes) if changes else float("nan"),
        "per_window": " ".join(f"{d}:{f:.3f}" for d, f in zip(decisions, f1s, strict=False)),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=["semeval", "huffpost", "all"], default="all")
    ap.add_argument("--max-rows", type=int, default=1200, help="rows sampled per window")
    ap.add_argument("--strategies", default="policy,always,always_promote,never", help="comma-separated")
    ap.add_argument("--max-windows", type=int, default=0, help="only the first N windows (0: all)")
    ap.add_argument("--evaluate", default="", help="gate overrides, KEY=VALUE,... (e.g. ece_margin=0.1)")
    ap.add_argument("--policy", default="", help="drift-policy overrides, KEY=VALUE,... (e.g. headroom_rule=shown)")
    ap.add_argument("--tag", default="", help="suffix of the results file")
    ap.add_argument("--keep", default="", help="keep each strategy's home (registry, decisions) under this folder")
    a = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent", file=sys.stderr)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    t0 = time.time()
    gate: dict = dict(kv.split("=", 1) for kv in a.evaluate.split(",") if kv)  # pydantic parses the strings
    pol: dict = dict(kv.split("=", 1) for kv in a.policy.split(",") if kv)  # pydantic parses the strings
    md = [f"# Real data through the real loop\n\n`python benchmarks/drift_replay.py --dataset {a.dataset} --max-rows "
          f"{a.max_rows} --strategies {a.strategies} --max-windows {a.max_windows} --evaluate '{a.evaluate}' --policy '{a.policy}' --tag '{a.tag}'` on {platform.machine()}, fine-tune {FINETUNE}, first-model floor {FIRST_MODEL_FLOOR}.\n"]  # fmt: skip
    datasets = {"semeval": semeval, "huffpost": huffpost}
    chosen = list(datasets) if a.dataset == "all" else [a.dataset]
    results = {}
    for ds in chosen:
        wins, labels = datasets[ds](a.max_rows)
        wins = wins[: a.max_windows] if a.max_windows else wins
        with tempfile.TemporaryDirectory(prefix=f"replay-{ds}-") as tmp:
            root = Path(a.keep) / ds if a.keep else Path(tmp)
            res = {
                s: run_strategy(s, wins, labels, root, FIRST_MODEL_FLOOR[ds], gate, pol)
                for s in a.strategies.split(",")
            }
        if "always" in res:
            # the oracle: retrain only where always-retrain promoted. A rejected retrain leaves the champion as
            # it was, so the oracle serves always's champions (same F1) for the least compute that can: the bound
            res["oracle"] = {**res["always"], "rows_trained": res["always"]["promoted_rows"],
                             "train_cycle_s": float("nan"), "per_window": "always's promoted windows only"}  # fmt: skip
        results[ds] = res
        rows = [{"strategy": k, **v} for k, v in res.items()]
        md += [f"\n## {ds}: {len(wins)} windows ({', '.join(w for w, _ in wins)})\n\n", table(rows)]
        if "policy" in res and "always" in res:
            ratio = res["policy"]["rows_trained"] / max(1, res["always"]["rows_trained"])
            gap = res["policy"]["mean_next_macro_f1"] - res["always"]["mean_next_macro_f1"]
            bound = res["oracle"]["rows_trained"] / max(1, res["always"]["rows_trained"])
            md.append(f"\nDrift policy vs always-retrain: macro-F1 {gap:+.3f}, compute {ratio:.0%} of always-retrain's "
                      f"rows; the oracle (retrain only where always promoted, same F1) needs {bound:.0%}.\n")  # fmt: skip
        if "always" in res and "always_promote" in res:
            gap = res["always"]["mean_next_macro_f1"] - res["always_promote"]["mean_next_macro_f1"]
            md.append(f"\nPromotion gate (always-retrain, the gate decides) vs always-promote: macro-F1 {gap:+.3f}; "
                      f"worst change of the served champion at a promotion {res['always']['worst_change']:+.3f} "
                      f"(always-promote: {res['always_promote']['worst_change']:+.3f}).\n")  # fmt: skip
        print(table(rows))
    md.append(f"\nper_window: the policy's rule per window ([inc]: an incremental retrain, policy.incremental_epochs; "
              f"+ promoted, - not promoted), then the served champion's macro-F1 on the next window. "
              f"Total {time.time() - t0:.0f}s.\n")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if a.dataset == "all" else f"_{a.dataset}"  # one file per dataset when run one at a time
    if set(a.strategies.split(",")) == {"always", "always_promote", "never"} or "policy" not in a.strategies:
        suffix += "_gate"  # the gate's replay (no drift policy): its own file
    suffix += f"_{a.tag}" if a.tag else ""
    (RESULTS / f"drift_replay{suffix}.md").write_text("".join(md))
    (RESULTS / f"drift_replay{suffix}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
