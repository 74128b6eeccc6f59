"""The promotion gate, calibrated by simulation: false promotions, power, windows to a decision.

Paired predictions with correlated errors go through the project's own comparisons
(:mod:`pipeline.gate.compare`) and rule (:mod:`pipeline.gate.rule`), guardrails included (per
class, per segment, fairness). A trial: 9 intents with uneven priors, a champion right on about
85% of rows, a challenger that copies the champion's answer except that it *fixes* a share of the
champion's errors and *breaks* a share of its right answers (so errors are correlated, as between
two fine-tunes of one model; about 8% of rows change correctness). A/A: fixes and breaks balance.

Parts, each a table in ``benchmarks/results/gate.md``:

1. **A/A**: false promotion rate at one window (250 rows) and with the default pool (3,200 rows:
   ``evaluate.pool_max_rows`` 3,000 + a window); and through accumulation (look 1 on the pool, then
   up to ``max_looks − 1`` new 250-row windows with the group-sequential test). Goal ≤ alpha.
2. **Power** at +2, +3, +5 points of accuracy (the realized macro-F1 gain is reported) for one window
   and for the pool, at look 1. Goal ≥ 80% at +2 points with the default pool.
3. **Windows to a decision** with accumulation when there is no pool (250 new rows per window).
4. **The seeds' worked z-test**: 5 runs averaging 40 against 37 with σ 3.2.
5. **The old rule** (two-sided McNemar gated on direction AND a 95% bootstrap CI above 0), in the
   same process on the same trials, as the baseline.

``--guardrails`` runs only the guardrail tables: false blocks (A/A), blocks of a real per-class
regression, and blocks of a class whose labels moved, under each ``evaluate.guardrail_test``
(``harm`` with and without ``class_shift_alpha``, ``beyond_margin``): ``gate_guardrails.md``.

``--reassess`` runs only the accumulation when each later look scores the whole new window
(``evaluate.reassess_rows: window``) against its test split alone: ``gate_reassess.md``.

Resamples are cut to 300 (bootstrap) and 500 (permutations) per trial to run thousands of trials;
the product defaults are 1,000 and 2,000. Run: ``.venv/bin/python benchmarks/gate.py [--trials N]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

from benchmarks.common import table  # noqa: E402
from pipeline.config import EvaluateConfig  # noqa: E402
from pipeline.gate import compare, rule, stats  # noqa: E402
from pipeline.stats.paired import mcnemar_exact, paired_bootstrap_diff  # noqa: E402

K = 9
PRIORS = np.array([0.2, 0.16, 0.14, 0.12, 0.1, 0.09, 0.08, 0.06, 0.05])
ACC = 0.85
DISCORD = 0.08  # share of rows whose correctness differs between the two models
EV = EvaluateConfig(bootstrap_samples=300, permutations=500, latency_rows=0)
RULES = compare.rules_from(EV)
POOL, WINDOW = 3200, 250


def pair(n: int, gain: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(truth, champion, challenger, segment) with an expected accuracy gain ``gain``."""
    y = rng.choice(K, size=n, p=PRIORS)
    ca = rng.random(n) < ACC
    # fixes f of the (1-ACC) wrong rows, breaks g of the ACC right rows: f(1-ACC) + g·ACC = DISCORD,
    # f(1-ACC) - g·ACC = gain
    f = (DISCORD + gain) / 2 / (1 - ACC)
    g = (DISCORD - gain) / 2 / ACC
    flip = np.where(ca, rng.random(n) < g, rng.random(n) < f)
    cb = ca ^ flip
    wrong_a = (y + rng.integers(1, K, n)) % K
    wrong_b = np.where(~ca & ~cb, wrong_a, (y + rng.integers(1, K, n)) % K)  # both wrong: mostly the same error
    a = np.where(ca, y, wrong_a)
    b = np.where(cb, y, wrong_b)
    seg = rng.choice(np.array(["terse", "polite", "angry"], dtype=object), size=n)
    return y.astype(str), a.astype(str), b.astype(str), seg


def gate_input(y, a, b, seg, looks=(), recent=None) -> rule.GateInput:
    mem = np.zeros(len(y), dtype=bool)
    conf = np.full(len(y), np.nan)
    return compare.build_input(EV, y_true=y, segments=seg, memory=mem, challenger=(b, conf), champion=(a, conf),
                               latency_p95_ms={}, earlier_looks=tuple(looks), recent=recent)  # fmt: skip


def old_rule(y, a, b, seed: int) -> bool:
    m = mcnemar_exact(a == y, b == y)
    boot = paired_bootstrap_diff(y, a, b, metric="macro_f1", n_resamples=300, seed=seed)
    return m.b01 > m.b10 and m.p_value < 0.05 and boot.ci_low > 0


def fixed(n: int, gain: float, trials: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {"promote": 0, "insufficient_evidence": 0, "reject": 0, "old_rule": 0, "f1_gain": []}
    for i in range(trials):
        y, a, b, seg = pair(n, gain, rng)
        inp = gate_input(y, a, b, seg)
        d = rule.decide(inp, RULES)
        out[d.outcome] += 1
        out["old_rule"] += old_rule(y, a, b, i)
        out["f1_gain"].append(inp.primary.diff if inp.primary else 0.0)
    return {
        "rows": n, "accuracy_gain": gain, "trials": trials, "macro_f1_gain": float(np.mean(out["f1_gain"])),
        "promote": out["promote"] / trials, "insufficient": out["insufficient_evidence"] / trials,
        "reject": out["reject"] / trials, "old_rule_promote": out["old_rule"] / trials,
    }  # fmt: skip


def accumulate(first: int, later: int, gain: float, trials: int, seed: int) -> dict:
    """Look 1 on ``first`` rows, then new ``later``-row windows until a decision or max_looks."""
    rng = np.random.default_rng(seed)
    promoted, rejected, looks_to_decide = 0, 0, []
    for _ in range(trials):
        looks: list[rule.Look] = []
        for k in range(RULES.max_looks):
            y, a, b, seg = pair(first if k == 0 else later, gain, rng)
            inp = gate_input(y, a, b, seg, looks)
            d = rule.decide(inp, RULES)
            if d.outcome != "insufficient_evidence":
                promoted += d.outcome == "promote"
                rejected += d.outcome == "reject"
                looks_to_decide.append(k + 1)
                break
            p = inp.primary
            assert p is not None
            looks.append(rule.Look(p.diff, p.se**2, p.n))
    return {"first_rows": first, "later_rows": later, "accuracy_gain": gain, "trials": trials,
            "promote": promoted / trials, "reject": rejected / trials,
            "undecided": (trials - promoted - rejected) / trials,
            "median_looks_to_decision": float(np.median(looks_to_decide)) if looks_to_decide else float("nan")}  # fmt: skip


def main_reassess(trials: int) -> int:
    """Accumulation when each later look scores the whole new window (``evaluate.reassess_rows: window``:
    4 x a 250-row test split at ``split.test_fraction`` 0.25) against test splits only, same seeds."""
    t0 = time.time()
    whole = 4 * WINDOW
    n_pow = max(100, trials // 4)
    aa = [accumulate(first, later, 0.0, trials, 300 + i)
          for i, (first, later) in enumerate(((POOL, whole), (WINDOW, whole)))]  # fmt: skip
    power = [accumulate(WINDOW, later, g, n_pow, 400 + i)
             for i, (later, g) in enumerate((later, g) for g in (0.02, 0.03) for later in (WINDOW, whole))]  # fmt: skip
    md = [f"# Standing challengers reassessed on the whole window\n\n`python benchmarks/gate.py --reassess --trials "
          f"{trials}`, alpha={RULES.alpha}, sequential_share={RULES.sequential_share}, max_looks={RULES.max_looks}. "
          f"Look 1 on the first rows, then each later window adds `later_rows`: {WINDOW} (its test split) or "
          f"{whole} (every split, `evaluate.reassess_rows: window`).\n\n## A/A: no true difference\n\n",
          table(aa), f"\nGoal: false promotion ≤ alpha = {RULES.alpha}.\n\n## With a true gain\n\n", table(power),
          f"\nTotal {time.time() - t0:.0f}s.\n"]  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gate_reassess.md").write_text("".join(md))
    (RESULTS / "gate_reassess.json").write_text(json.dumps({"aa": aa, "power": power}, indent=1))
    print("".join(md))
    return 0


MODES = {  # the guardrail tests compared: the default, the default without the class shift, beyond_margin
    "harm": {},
    "harm_no_shift": {"class_shift_alpha": None},
    "beyond_margin": {"guardrail_test": "beyond_margin"},
}


def guard(n: int, gain: float, drop: float, trials: int, seed: int, moved: bool = False) -> dict:
    """Every guardrail test on the same trials: the challenger gains ``gain`` overall and then misses
    a share ``drop`` of the rows of class 1 (prior 0.16) it had right: a real per-class regression.
    The last quarter of the rows is the new window (the rest the pool's older rows). ``moved``: the
    class's labels moved instead: the challenger misses those rows only among the older rows, and on
    the new window it is the champion that misses them (the challenger learned the new labels)."""
    rng = np.random.default_rng(seed)
    rules = {m: replace(RULES, **kw) for m, kw in MODES.items()}
    blocked = dict.fromkeys(MODES, 0)
    promoted = dict.fromkeys(MODES, 0)
    class_diff = []
    recent = np.arange(n) >= n - n // 4
    for _ in range(trials):
        y, a, b, seg = pair(n, gain, rng)
        hit = (y == "1") & (b == y) & (rng.random(n) < drop) & (~recent if moved else True)
        b = np.where(hit, ((1 + rng.integers(1, K, n)) % K).astype(str), b)
        if moved:
            miss = (y == "1") & (a == y) & (rng.random(n) < drop) & recent
            a = np.where(miss, ((1 + rng.integers(1, K, n)) % K).astype(str), a)
        inp = gate_input(y, a, b, seg, recent=recent)
        class_diff.append(next((g.diff for g in inp.guardrails if g.name == "class:1"), float("nan")))
        for m in MODES:
            d = rule.decide(inp, rules[m])
            blocked[m] += any(c.status == "fail" and c.name.startswith("class:") for c in d.checks)
            promoted[m] += d.promote
    return {"rows": n, "accuracy_gain": gain, "class_1_recall_lost": drop, "labels_moved": moved, "trials": trials,
            "class_1_f1_diff": round(float(np.nanmean(class_diff)), 4),
            **{f"blocked_{m}": blocked[m] / trials for m in MODES},
            **{f"promote_{m}": promoted[m] / trials for m in MODES}}  # fmt: skip


def main_guardrails(trials: int) -> int:
    """What each guardrail test blocks: A/A (no regression anywhere), a real class-1 regression, and
    a class whose labels moved."""
    t0 = time.time()
    aa = [guard(n, 0.0, 0.0, trials, 500 + n) for n in (WINDOW, 800, POOL)]
    real = [guard(800, 0.03, d, trials, 600 + i) for i, d in enumerate((0.0, 0.15, 0.3, 0.5))]
    moved = [guard(800, 0.03, d, trials, 700 + i, moved=True) for i, d in enumerate((0.3, 0.5))]
    md = [f"# Guardrail tests: what each one blocks\n\n`python benchmarks/gate.py --guardrails --trials {trials}`, "
          f"class_f1_margin={EV.class_f1_margin}, guardrail_alpha={RULES.guardrail_alpha}, min_support="
          f"{RULES.min_support}, class_shift_alpha={RULES.class_shift_alpha}. `harm` (the default): a class blocks when "
          "its drop is significant (H0: no drop, Holm) and its estimate passes the margin, judged on the new "
          "window's rows alone when the class's labels moved (its F1 gap is significantly larger on the window "
          "than on the older rows); `harm_no_shift`: the same, always on all rows; `beyond_margin`: when the drop is "
          "significantly larger than the margin (H0: drop ≤ margin, Holm), with the class shift. The last quarter of the rows is the "
          "new window. Same trials for all.\n\n## A/A: no regression anywhere (a block is a false "
          "block)\n\n", table(aa), "\n## +3 points overall, class 1 (prior 0.16) loses a share of the rows it had "
          "right (a block is right)\n\n", table(real), "\n## +3 points overall, class 1's labels moved: the "
          "challenger misses that share of class 1 only on the older rows, the champion on the new window (a "
          "block holds back the model that serves the class as it is now)\n\n", table(moved),
          f"\nTotal {time.time() - t0:.0f}s.\n"]  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gate_guardrails.md").write_text("".join(md))
    (RESULTS / "gate_guardrails.json").write_text(json.dumps({"aa": aa, "regression": real, "moved": moved}, indent=1))
    print("".join(md))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=2000, help="A/A trials per setting (power uses a quarter)")
    ap.add_argument("--reassess", action="store_true", help="only the whole-window reassessment tables")
    ap.add_argument("--guardrails", action="store_true", help="only the guardrail-test tables (harm, beyond_margin)")
    a = ap.parse_args()
    if a.reassess:
        return main_reassess(a.trials)
    if a.guardrails:
        return main_guardrails(a.trials)
    t0 = time.time()
    n_pow = max(100, a.trials // 4)
    md = [f"# Promotion gate calibration\n\n`python benchmarks/gate.py --trials {a.trials}` on {platform.machine()} "
          f"({platform.python_version()}), alpha={RULES.alpha}, sequential_share={RULES.sequential_share}, "
          f"min_effect={RULES.min_effect}, max_looks={RULES.max_looks}, guardrail_alpha={RULES.guardrail_alpha}; "
          f"resamples cut to {EV.bootstrap_samples} bootstrap / {EV.permutations} permutations per trial.\n"]  # fmt: skip

    aa = [fixed(n, 0.0, a.trials, 1 + n) for n in (WINDOW, POOL)]
    print(table(aa), file=sys.stderr)
    aa_acc = [accumulate(POOL, WINDOW, 0.0, a.trials, 7), accumulate(WINDOW, WINDOW, 0.0, a.trials, 8)]
    md += ["\n## 1. A/A: no true difference\n\n", table(aa), "\nThrough accumulation (look 1, then new windows "
           "with the group-sequential test, until a decision or max_looks):\n\n", table(aa_acc),
           f"\nGoal: false promotion ≤ alpha = {RULES.alpha}.\n"]  # fmt: skip

    power = [
        fixed(n, g, n_pow, 100 + i)
        for i, (n, g) in enumerate((n, g) for n in (WINDOW, POOL) for g in (0.02, 0.03, 0.05))
    ]
    print(table(power), file=sys.stderr)
    md += ["\n## 2. Power at look 1 (old rule: two-sided McNemar in the challenger's favour AND bootstrap CI > 0, "
           "same trials)\n\n", table(power), "\nGoal: ≥ 80% at +2 points with the default pool.\n"]  # fmt: skip

    acc = [accumulate(WINDOW, WINDOW, g, n_pow, 200 + i) for i, g in enumerate((0.02, 0.03, 0.05))]
    print(table(acc), file=sys.stderr)
    md += ["\n## 3. Windows to a decision, accumulating 250-row windows (no pool)\n\n", table(acc)]

    z = stats.z_test_mean(40, 37, 3.2, 5)
    md += [f"\n## 4. The worked z-test\n\n5 runs averaging 40 against a baseline of 37 with σ 3.2: z = {z.statistic:.2f}, "
           f"one-sided p = {z.p_value:.3f} (`pipeline.gate.stats.z_test_mean`).\n"]  # fmt: skip
    md.append(f"\nTotal {time.time() - t0:.0f}s.\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gate.md").write_text("".join(md))
    (RESULTS / "gate.json").write_text(json.dumps({"aa": aa, "aa_accumulated": aa_acc, "power": power,
                                                   "accumulation": acc}, indent=1))  # fmt: skip
    print("".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
