"""The drift policy against retrain-on-every-alarm: false alarms, detection delay, retrains, cost.

Three parts, each printed as a table and written to ``benchmarks/results/drift.md``:

1. **Simulator with known drift points** (the project's simulator; season starts are the drift
   points; within spring, summer and autumn the traffic is stationary). Signals: the drift check's
   own text test (Evidently domain classifier + Mann-Whitney p) and label-prior test (chi-square),
   and the performance rule on a champion *proxy* (TF-IDF + logistic regression trained on the
   reference, so hundreds of checks run in minutes; the rule's arithmetic is the real one), with the
   window's headroom in the policy's configured view (a probe on TF-IDF features that saw the window).
   Measured per window size (1, 3, 7, 28 days): the share of no-drift windows where a signal is on,
   the share where the policy retrains, the same for the old rule (text AUC > 0.65 or label
   JS ≥ 0.1, i.e. retrain on every alarm), and over a simulated year of weekly checks the retrains
   started, the served model's mean macro-F1 over the checked windows, the drift points detected
   (a drift rule fired, retrained or held back by the headroom) and retrained on, and the delays
   after each drift point (every day whose intent priors or season change), for the policy, the
   policy without the headroom, the policy with the seasonal calendar (the product's default: a
   season start retrains), and every alarm. After a retrain the reference is the window it
   answered, as in the product.
2. **Real data** (``../shared/data``; skipped when absent): SemEval tweets by year and HuffPost by
   quarter, replayed window by window with the same proxy champion. Per strategy (policy,
   always-retrain, never-retrain): mean macro-F1 of the served champion on the next window, and
   training compute (rows trained on).
3. **Cost**: seconds per check (text + label + embedding + prediction + performance) at 10k, 100k
   and 1M current rows, with a tiny random encoder standing in for the champion, as a ratio to the
   old check (Evidently text + label only) at the same size in the same process.

Run: ``.venv/bin/python benchmarks/drift.py [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

from benchmarks.common import table  # noqa: E402

SHARED = REPO.parent / "shared" / "data"

from pipeline.config import DriftConfig, PolicyConfig, SimulatorConfig  # noqa: E402
from pipeline.data.simulator import intent_priors, season_of, simulate_messages  # noqa: E402
from pipeline.monitoring import headroom, signals, stats  # noqa: E402
from pipeline.monitoring.policy import CheckInput, Decision, PastRecord, PerformanceCheck, Rules, decide  # noqa: E402
from pipeline.monitoring.signals import as_tests  # noqa: E402

DCFG = DriftConfig()
POLICY = PolicyConfig()
RULES = Rules(alpha=DCFG.alpha, min_headroom=POLICY.min_headroom, headroom_rule=POLICY.headroom_rule)
OLD_TEXT, OLD_LABEL = 0.65, 0.1  # the project's rule before the policy


class Proxy:
    """TF-IDF + logistic regression: the champion stand-in of this benchmark."""

    def __init__(self, df: pd.DataFrame, seed: int = 0):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        hold = df.sample(frac=0.2, random_state=seed)
        train = df.drop(hold.index)
        self.model = make_pipeline(TfidfVectorizer(min_df=1, ngram_range=(1, 2)), LogisticRegression(max_iter=300))
        self.model.fit(train["text"], train["label"])
        self.baseline = float(np.mean(self.model.predict(hold["text"]) == hold["label"]))
        self.rows = len(train)

    def perf(self, df: pd.DataFrame) -> stats.Performance:
        pred = self.model.predict(df["text"])
        labels = sorted(set(df["label"]) | set(pred))
        idx = {lab: i for i, lab in enumerate(labels)}
        return stats.performance(
            np.array([idx[v] for v in df["label"]]), np.array([idx[v] for v in pred]), resamples=200
        )


def frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df = df[df["text"].astype(str).str.len() >= 3]
    df["day"] = pd.to_datetime(df["timestamp"]).dt.date
    return df.reset_index(drop=True)


def check(cur: pd.DataFrame, ref: pd.DataFrame, proxy: Proxy) -> tuple[dict, stats.Performance]:
    new = set(cur["label"]) - set(ref["label"])
    ref_s = ref.sample(n=min(len(ref), DCFG.reference_sample_size), random_state=DCFG.seed)
    tests = signals.distribution_tests(cur, ref_s, DCFG, new)
    return tests, proxy.perf(cur)


def performance(perf: stats.Performance, proxy: Proxy, cur: pd.DataFrame, ref: pd.DataFrame) -> PerformanceCheck:
    """The policy's performance input, with the headroom of the window in the configured view: a
    probe that saw the window, on window rows it did not see. Its features stand in for the
    champion's embeddings: TF-IDF over the reference and the window (embeddings cover new words; a
    vocabulary fitted on the reference alone would not), reduced to 256 dense dimensions."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    ref_s = ref.sample(n=min(len(ref), DCFG.model_sample_size), random_state=DCFG.seed)
    cur = cur.sample(n=min(len(cur), DCFG.max_current_rows), random_state=DCFG.seed)
    both = pd.concat([ref_s["text"], cur["text"]])
    dims = min(256, len(both) - 1)
    feats = make_pipeline(TfidfVectorizer(min_df=1, ngram_range=(1, 2)), TruncatedSVD(dims, random_state=0)).fit(both)
    h = headroom.estimate(
        feats.transform(cur["text"]), cur["label"].to_numpy(), proxy.model.predict(cur["text"]),
        feats.transform(ref_s["text"]), ref_s["label"].to_numpy(), seed=DCFG.seed,
    )  # fmt: skip
    view = None if h is None else h.view(POLICY.headroom_basis, POLICY.headroom_metric)
    return PerformanceCheck(perf.accuracy, perf.accuracy_low, perf.accuracy_high, proxy.baseline, headroom=view)


def detected(d: Decision) -> bool:
    """A drift rule fired, whether or not the headroom then held the retrain back."""
    return d.retrain or d.held_by_headroom is not None


def old_alarm(tests: dict) -> bool:
    return tests["text"]["value"] > OLD_TEXT or tests["label_prior"]["value"] >= OLD_LABEL


def on(tests: dict) -> bool:
    return any(t["p_value"] < DCFG.alpha and t["effect"] >= t["effect_floor"] for t in tests.values())


def false_alarms(sim: pd.DataFrame, sizes: list[int], quick: bool) -> list[dict]:
    seasons = [("spring", date(2025, 3, 1), date(2025, 5, 31)), ("summer", date(2025, 6, 1), date(2025, 8, 31)),
               ("autumn", date(2025, 9, 1), date(2025, 11, 19))]  # fmt: skip
    out = []
    for size in sizes:
        raw = old = pol = total = checks = 0
        for _, start, end in seasons[: 1 if quick else 3]:
            ref = sim[(sim["day"] >= start) & (sim["day"] < start + timedelta(days=28))]
            proxy = Proxy(ref)
            day, history = start + timedelta(days=28), []
            step = size if size >= 7 else max(1, size)
            while day + timedelta(days=size - 1) <= end:
                cur = sim[(sim["day"] >= day) & (sim["day"] < day + timedelta(days=size))]
                tests, perf = check(cur, ref, proxy)
                total += 1
                raw += on(tests)
                old += old_alarm(tests)
                ci = CheckInput(
                    day=day, tests=as_tests(tests),
                    performance=performance(perf, proxy, cur, ref),
                )  # fmt: skip
                d = decide(ci, history, RULES)
                checks += 1
                pol += d.retrain
                history.append(PastRecord(day, "check", d.signals_on, d.retrain))
                if d.retrain:  # a false retrain moves the reference like a real one: to the window it answered
                    history.append(PastRecord(day, "retrain"))
                    ref = cur
                day += timedelta(days=step)
        out.append({"window_days": size, "windows": total, "signal_on": raw / total, "policy_retrains": pol / checks,
                    "old_rule_alarms": old / total})  # fmt: skip
    return out


def year(sim: pd.DataFrame, every: int = 7) -> dict:
    """Weekly checks over the year; the reference and the proxy move on every retrain."""
    # every day whose intent priors or season vocabulary differ from the day before (phases: post-holiday
    # to winter on 02-01, the season starts, Black Friday to December on 12-01)
    days = [date(2025, 1, 2) + timedelta(days=i) for i in range(363)]
    drift_points = [
        d
        for d in days
        if season_of(d) != season_of(d - timedelta(days=1)) or intent_priors(d) != intent_priors(d - timedelta(days=1))
    ]
    res = {}
    no_headroom = dataclasses.replace(RULES, min_headroom=None)  # the policy before the headroom
    for name in ("policy", "policy_no_headroom", "policy_calendar", "every_alarm"):
        start = date(2025, 1, 1)
        ref = sim[(sim["day"] >= start) & (sim["day"] < start + timedelta(days=28))]
        proxy, history, retrains, day = Proxy(ref), [], [], start + timedelta(days=28)
        detections: list[date] = []
        served: list[float] = []
        why: Counter[str] = Counter()
        while day + timedelta(days=every) <= date(2025, 12, 31):
            cur = sim[(sim["day"] >= day) & (sim["day"] < day + timedelta(days=every))]
            tests, perf = check(cur, ref, proxy)
            served.append(perf.macro_f1)  # the model in service on this window, before any retrain answers it
            if name != "every_alarm":  # every retrain replaces the proxy: the adaptive burden stays "not ruled out"
                # policy_calendar: the product's default, where the seasonal timetable also starts a run at
                # each season start (here: a weekly window holding one)
                season = name == "policy_calendar" and any(
                    season_of(day + timedelta(days=k)) != season_of(day + timedelta(days=k - 1)) for k in range(every)
                )
                ci = CheckInput(
                    day=day, tests=as_tests(tests), season_start=season,
                    performance=performance(perf, proxy, cur, ref),
                )  # fmt: skip
                d = decide(ci, history, RULES if name == "policy" else no_headroom)
                history.append(PastRecord(day, "check", d.signals_on, d.retrain))
                go = d.retrain
                why[d.rule] += d.retrain
                if detected(d) or d.rule == "season_start":
                    detections.append(day)
            else:
                go = old_alarm(tests)
                why["alarm"] += go
                if go:
                    detections.append(day)
            if go:
                retrains.append(day)
                history.append(PastRecord(day, "retrain"))
                ref = cur  # the reference is the window the retrain answered
                proxy = Proxy(
                    sim[(sim["day"] >= day - timedelta(days=21)) & (sim["day"] < day + timedelta(days=every))]
                )
            day += timedelta(days=every)
        # a check covers [day, day + every): the window holding a drift point is where detection starts
        first = start + timedelta(days=28)

        def index(d: date, first: date = first) -> int:
            return (d - first).days // every

        delays, missed, detail, found, seen = [], 0, [], 0, []
        for i, p in enumerate(drift_points):
            nxt = drift_points[i + 1] if i + 1 < len(drift_points) else date(2026, 1, 1)
            first_seen = [r for r in detections if index(p) <= index(r) < index(nxt)]
            found += bool(first_seen)
            seen += [index(first_seen[0]) - index(p)] if first_seen else []
            hits = [r for r in retrains if index(p) <= index(r) < index(nxt)]
            if hits:
                delays.append(index(hits[0]) - index(p))
                detail.append(f"{p:%m-%d}:{delays[-1]}")
            else:
                missed += 1
                detail.append(f"{p:%m-%d}:held")
        res[name] = {"retrains": len(retrains), "served_macro_f1": float(np.mean(served)), "detected": found,
                     "max_detection_delay": max(seen) if seen else None,
                     "median_delay_windows": float(np.median(delays)) if delays else None,
                     "max_delay_windows": max(delays) if delays else None,
                     "retrained_on": len(drift_points) - missed, "drift_points": len(drift_points),
                     "by_rule": " ".join(f"{k}={v}" for k, v in sorted(why.items()) if v),
                     "delay_per_drift_point": " ".join(detail)}  # fmt: skip
    return res


def real_windows() -> dict[str, list[pd.DataFrame]]:
    out: dict[str, list[pd.DataFrame]] = {}
    tw = SHARED / "semeval_twitter_sentiment" / "tweets_2011_2016.csv"
    if tw.is_file():
        df = pd.read_csv(tw, usecols=["created_at_utc_from_snowflake", "label", "text"])
        df["key"] = pd.to_datetime(df["created_at_utc_from_snowflake"], utc=True, errors="coerce").dt.year
        out["semeval (yearly)"] = [g[["text", "label"]].dropna().sample(n=min(len(g), 3000), random_state=0)
                                   for _, g in sorted(df.groupby("key")) if len(g) >= 200]  # fmt: skip
    hp = SHARED / "huffpost_news_2018_2022" / "news_2018_2022.jsonl"
    if hp.is_file():
        df = pd.read_json(hp, lines=True)
        df["text"] = df["headline"].astype(str) + ". " + df["short_description"].astype(str)
        df["label"] = df["category"].astype(str)
        df["key"] = pd.to_datetime(df["date"]).dt.to_period("Q")
        out["huffpost (quarterly)"] = [g[["text", "label"]] for _, g in sorted(df.groupby("key")) if len(g) >= 100]
    return out


def replay(windows: list[pd.DataFrame]) -> dict:
    res = {}
    for name in ("policy", "always", "never"):
        proxy, ref, train, history, f1s, compute = Proxy(windows[0]), windows[0], windows[0], [], [], 0
        compute += proxy.rows
        for i in range(1, len(windows) - 1):
            cur = windows[i]
            if name == "always":
                go = True
            elif name == "never":
                go = False
            else:
                tests, perf = check(cur, ref, proxy)
                ci = CheckInput(
                    day=date(2000, 1, 1) + timedelta(days=30 * i), tests=as_tests(tests),
                    performance=performance(perf, proxy, cur, ref),
                    new_labels=tuple(sorted(set(cur["label"]) - set(ref["label"]))),
                )  # fmt: skip
                d = decide(ci, history, Rules(alpha=DCFG.alpha, cooldown_days=0))
                history.append(PastRecord(ci.day, "check", d.signals_on, d.retrain))
                go = d.retrain
                if go:
                    history.append(PastRecord(ci.day, "retrain"))
            if go:  # incremental: the new window plus a replay of the old training set; the reference is the window
                train = pd.concat([cur, train.sample(n=min(len(train), len(cur) // 2), random_state=i)])
                proxy, ref = Proxy(train), cur
                compute += proxy.rows
            nxt = windows[i + 1]
            p = proxy.perf(nxt)
            f1s.append(p.macro_f1)
        res[name] = {"mean_next_macro_f1": float(np.mean(f1s)), "train_rows": compute}
    return res


def cost(sizes: list[int]) -> list[dict]:

    sim = frame(simulate_messages(SimulatorConfig(messages_per_day=200), date(2025, 3, 1), date(2025, 3, 28)))
    ref = sim.sample(n=2000, random_state=0)
    model = TinyProber(Path(tempfile.mkdtemp()), sorted(set(sim["label"])))
    out = []
    for n in sizes:
        cur = sim.sample(n=n, replace=True, random_state=1).reset_index(drop=True)
        t0 = time.perf_counter()
        old_check(cur.sample(n=min(n, 20000), random_state=0), ref)  # the old check, capped like before would not be
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample = cur.sample(n=min(n, DCFG.max_current_rows), random_state=DCFG.seed).reset_index(drop=True)
        signals.distribution_tests(sample, ref, DCFG, set())
        signals.label_test(cur["label"], ref["label"], DCFG.label_drift_threshold, set())  # full counts
        signals.model_signals(model, sample.head(2000), ref, DCFG)
        new = time.perf_counter() - t0
        out.append({"rows": n, "new_check_s": new, "old_check_s": base, "ratio": new / base})
    return out


def old_check(cur: pd.DataFrame, ref: pd.DataFrame) -> None:
    signals.text_auc(cur["text"], ref["text"])
    stats.chi2_shift(Counter(ref["label"]), Counter(cur["label"]))


class TinyProber:
    """A random tiny BERT with a linear head: the embedding and prediction cost path, not a real model."""

    def __init__(self, tmp: Path, labels: list[str]):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from pipeline.modeling.tiny import build_tiny_bert

        d = build_tiny_bert(tmp / "tiny")
        self.tok, self.enc = AutoTokenizer.from_pretrained(d), AutoModel.from_pretrained(d).eval()
        self.labels = labels
        torch.manual_seed(0)
        self.head = torch.nn.Linear(self.enc.config.hidden_size, len(labels))

    def probe(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        logits, embs = [], []
        with torch.inference_mode():
            for i in range(0, len(texts), 64):
                b = self.tok(texts[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt")
                h = self.enc(**b).last_hidden_state
                m = b["attention_mask"].unsqueeze(-1).float()
                e = (h * m).sum(1) / m.sum(1)
                embs.append(e.numpy())
                logits.append(self.head(e).numpy())
        return np.vstack(logits), np.vstack(embs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one season, fewer sizes (a smoke run)")
    a = ap.parse_args()
    t0 = time.time()
    sim = frame(simulate_messages(SimulatorConfig(), date(2025, 1, 1), date(2025, 12, 31)))
    md = [f"# Drift policy benchmark\n\n`python benchmarks/drift.py{' --quick' if a.quick else ''}` on "
          f"{platform.machine()} ({platform.python_version()}), alpha={DCFG.alpha}, policy defaults {RULES}.\n"]  # fmt: skip
    fa = false_alarms(sim, [1, 7] if a.quick else [1, 3, 7, 28], a.quick)
    md += ["\n## No-drift windows (simulator, within a season)\n\n", table(fa),
           "\nsignal_on: some distribution test on (p < alpha and effect ≥ floor); policy_retrains: the policy "
           "decided to retrain; old_rule_alarms: text AUC > 0.65 or label JS ≥ 0.1 (retrain on every alarm).\n"]  # fmt: skip
    print(table(fa))
    yr = year(sim)
    md += ["\n## A simulated year, weekly checks\n\n", table([{"rule": k, **v} for k, v in yr.items()])]
    print(table([{"rule": k, **v} for k, v in yr.items()]))
    real = real_windows()
    if not real:
        md.append("\n## Real data\n\nskipped: ../shared/data is absent\n")
    for name, wins in real.items():
        rep = replay(wins)
        md += [f"\n## Real data: {name}, {len(wins)} windows (proxy champion)\n\n",
               table([{"strategy": k, **v} for k, v in rep.items()])]  # fmt: skip
        print(name)
        print(table([{"strategy": k, **v} for k, v in rep.items()]))
    cs = cost([10_000, 100_000] if a.quick else [10_000, 100_000, 1_000_000])
    md += ["\n## Cost per check (seconds; tiny encoder as the champion)\n\n", table(cs)]
    print(table(cs))
    md.append(f"\nTotal {time.time() - t0:.0f}s.\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("drift_quick.md" if a.quick else "drift.md")).write_text("".join(md))
    (RESULTS / ("drift_quick.json" if a.quick else "drift.json")).write_text(
        json.dumps({"no_drift": fa, "year": yr, "cost": cs}, indent=1, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
