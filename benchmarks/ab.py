"""The online A/B rule, calibrated by simulation: false promotions under continuous peeking, power,
and the feedback it needs to decide.

Each simulated test is a stream of judged predictions (feedback events): a share of users goes to
the challenger (sticky assignment makes that share of events), each prediction is right with its
variant's accuracy (champion 80%). The project's own rule (:func:`pipeline.ab.rule.decide`) looks
after every 50 events, up to ``AbRules.max_samples``.

Parts, each a table in ``benchmarks/results/ab.md``:

1. **A/A under continuous peeking** (no difference): how often the rule promotes, beside the naive
   fixed-horizon one-sided z-test (pooled two-proportion, α) looked at after every 50 events the
   same way. Goal: false promotion ≤ α.
2. **Power and feedback to a decision** at +2 and +5 accuracy points: promotion rate within
   ``max_samples``, median events to a decision (tests that never decide count at ``max_samples``),
   and the size a fixed-horizon test of the *same* power needs (one-sided at α/2, the rule's
   promotion level), with the ratio.

Run: ``.venv/bin/python benchmarks/ab.py [--trials N]`` (about a minute at 1,000 trials).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

from benchmarks.common import table  # noqa: E402
from pipeline.ab.rule import AbRules, Look, decide  # noqa: E402
from pipeline.stats.sequential import Arm, fixed_horizon_n  # noqa: E402

BASE = 0.80
PEEK = 50


def stream(gain: float, share: float, events: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    on_b = rng.random(events) < share
    right = rng.random(events) < np.where(on_b, BASE + gain, BASE)
    return np.cumsum(~on_b), np.cumsum(right & ~on_b), np.cumsum(on_b), np.cumsum(right & on_b)


def one_test(gain: float, share: float, rules: AbRules, rng: np.random.Generator) -> tuple[str, int, bool]:
    """(the rule's outcome, events when it stopped, whether the naive peeked z-test ever promoted)."""
    na, sa, nb, sb = stream(gain, share, rules.max_samples, rng)
    idx = np.arange(PEEK - 1, rules.max_samples, PEEK)
    d = decide((Look(Arm(int(na[i]), int(sa[i])), Arm(int(nb[i]), int(sb[i]))) for i in idx), rules)
    stopped = int(d.n_champion + d.n_challenger)
    a, b, xa, xb = na[idx], nb[idx], sa[idx], sb[idx]
    ok = (a > 30) & (b > 30)
    pool = (xa + xb) / np.maximum(a + b, 1)
    se = np.sqrt(np.maximum(pool * (1 - pool), 1e-12) * (1 / np.maximum(a, 1) + 1 / np.maximum(b, 1)))
    z = (xb / np.maximum(b, 1) - xa / np.maximum(a, 1)) / se
    return d.outcome, stopped, bool(np.any(ok & (z > 1.6448536269514722)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--max-samples", type=int, default=AbRules().max_samples)
    args = ap.parse_args()
    rules = AbRules(max_samples=args.max_samples, max_days=float("inf"))
    t0 = time.perf_counter()
    aa_rows, power_rows = [], []
    for share in (0.1, 0.5):
        for gain in (0.0, 0.02, 0.05):
            rng = np.random.default_rng(int(1000 * share + 100 * gain))
            outcomes, stops, naive = [], [], 0
            for _ in tqdm(range(args.trials), desc=f"share {share} gain {gain:+.2f}", file=sys.stderr):
                o, s, nv = one_test(gain, share, rules, rng)
                outcomes.append(o)
                stops.append(s)
                naive += nv
            rate = {
                k: outcomes.count(k) / args.trials for k in ("promote", "stop_harm", "stop_futility", "inconclusive")
            }
            if gain == 0:
                aa_rows.append({
                    "challenger_share": share, "trials": args.trials, "false_promotion": rate["promote"],
                    "false_harm_stop": rate["stop_harm"], "futility_stop": rate["stop_futility"],
                    "naive_peeked_false_promotion": naive / args.trials, "alpha": rules.alpha,
                    "median_events_to_stop": float(np.median(stops)),
                })  # fmt: skip
                continue
            power = rate["promote"]
            decided = [s for s, o in zip(stops, outcomes, strict=True) if o == "promote"]
            fixed = fixed_horizon_n(gain, BASE, rules.alpha / 2, min(power, 0.99), share) if power > 0.5 else None
            median = float(np.median(stops))
            power_rows.append({
                "challenger_share": share, "gain": gain, "power": power,
                "median_events_to_decision": median,
                "median_events_when_promoted": float(np.median(decided)) if decided else float("nan"),
                "fixed_horizon_events_same_power": fixed if fixed is not None else "n/a",
                "ratio_sequential_to_fixed": median / fixed if fixed else float("nan"),
            })  # fmt: skip
    seconds = time.perf_counter() - t0
    text = (
        "# Online A/B: the sequential rule by simulation\n\n"
        f"`python benchmarks/ab.py --trials {args.trials}` on {platform.machine()}: champion accuracy {BASE}, "
        f"a look after every {PEEK} feedback events, at most {rules.max_samples} events per test, "
        f"rules {rules}.\n\n"
        "## A/A under continuous peeking (goal: false promotion ≤ alpha)\n\n"
        + table(aa_rows)
        + "\nnaive_peeked_false_promotion: a fixed-horizon one-sided z-test at alpha, looked at after every "
        "50 events the same way.\n\n## Power and feedback to a decision\n\n"
        + table(power_rows)
        + "\nmedian_events_to_decision counts tests that never promote at the limit. fixed_horizon_events: "
        "the events a one-sided fixed-horizon z-test at alpha/2 needs for the same power (99% where the "
        f"rule's is 100%; n/a where it is ≤ 50%).\n\nTotal {seconds:.0f}s.\n"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ab.md").write_text(text)
    (RESULTS / "ab.json").write_text(json.dumps({"aa": aa_rows, "power": power_rows}, indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
