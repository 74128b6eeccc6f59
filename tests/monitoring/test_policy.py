"""The drift policy, a pure function: each rule, each guard, and their interplay."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.monitoring.policy import CheckInput, PastRecord, PerformanceCheck, Rules, SignalTest, decide

D0 = date(2025, 6, 1)
RULES = Rules(alpha=0.01, hysteresis=0.25, persist_k=2, persist_m=3, perf_margin=0.03, cooldown_days=14)
DRIFT = SignalTest("text", 0.001, 0.2, 0.05)
INC = Rules(**{**RULES.__dict__, "incremental": True})  # incremental scope on (policy.incremental_epochs)
QUIET = SignalTest("text", 0.4, 0.01, 0.05)


def check(day=D0, **kw):
    return CheckInput(day=day, **kw)


def test_first_model_and_forced_and_season_start_always_retrain():
    assert decide(check(has_champion=False), [], RULES).rule == "first_model"
    assert decide(check(forced=True), [], RULES).rule == "forced"
    d = decide(check(trigger="schedule"), [PastRecord(D0 - timedelta(days=1), "retrain")], RULES)
    assert d.retrain and d.rule == "season_start" and d.suppressed_by is None  # no cooldown for the calendar
    assert not decide(check(trigger="schedule"), [], Rules(on_season_start=False)).retrain


def test_one_noisy_window_does_not_retrain_but_persistence_does():
    first = decide(check(tests=(DRIFT,)), [], RULES)
    assert not first.retrain and first.signals_on == ("text",)
    past = [PastRecord(D0, "check", ("text",))]
    second = decide(check(D0 + timedelta(days=7), tests=(DRIFT,)), past, RULES)
    assert second.retrain and second.rule == "distribution_drift"
    assert any(r.signal == "distribution_drift" and r.fired for r in second.reasons)


def test_the_effect_floor_holds_back_a_significant_but_tiny_shift():
    tiny = SignalTest("label_prior", 1e-9, 0.01, 0.05)
    past = [PastRecord(D0 - timedelta(days=7), "check", ("label_prior",))]
    d = decide(check(tests=(tiny,)), past, RULES)
    assert not d.retrain and d.signals_on == ()


def test_hysteresis_keeps_a_signal_on_near_the_threshold():
    near = SignalTest("text", 0.02, 0.2, 0.05)  # above alpha 0.01 but below alpha^0.75 = 0.0316
    off = decide(check(tests=(near,)), [], RULES)
    assert off.signals_on == ()
    was_on = decide(check(tests=(near,)), [PastRecord(D0 - timedelta(days=7), "check", ("text",))], RULES)
    assert was_on.signals_on == ("text",) and was_on.retrain  # 2 of the last 3 checks


def test_a_retrain_resets_the_reference_so_the_same_drift_does_not_fire_again():
    past = [
        PastRecord(D0 - timedelta(days=21), "check", ("text",)),
        PastRecord(D0 - timedelta(days=14), "check", ("text",), retrain=True),
        PastRecord(D0 - timedelta(days=14), "retrain"),
    ]
    d = decide(check(tests=(DRIFT,)), past, RULES)
    assert not d.retrain  # only this check since the retrain: 1 of 3


def test_performance_drop_needs_margin_and_a_ci_below_the_baseline():
    fired = decide(check(performance=PerformanceCheck(0.78, 0.74, 0.82, baseline=0.88)), [], RULES)
    assert fired.retrain and fired.rule == "performance_drop"
    wide = decide(check(performance=PerformanceCheck(0.78, 0.60, 0.90, baseline=0.88)), [], RULES)
    assert not wide.retrain  # the CI reaches the baseline: the drop is not established
    small = decide(check(performance=PerformanceCheck(0.86, 0.85, 0.87, baseline=0.88)), [], RULES)
    assert not small.retrain  # within the margin
    recent = decide(check(performance=PerformanceCheck(0.78, 0.74, 0.82, baseline=None, recent=0.9)), [], RULES)
    assert recent.retrain
    est = decide(check(performance=PerformanceCheck(0.7, 0.7, 0.7, baseline=0.88, estimated=True)), [], RULES)
    assert est.retrain and any(r.signal == "performance_estimate" for r in est.reasons)


def test_cooldown_and_budget_hold_back_drift_rules_and_say_so():
    drop = PerformanceCheck(0.7, 0.65, 0.75, baseline=0.9)
    past = [PastRecord(D0 - timedelta(days=5), "retrain")]
    d = decide(check(performance=drop), past, RULES)
    assert not d.retrain and d.rule == "performance_drop" and "cooldown" in (d.suppressed_by or "")
    assert d.cooldown_until == D0 + timedelta(days=9)
    later = decide(check(D0 + timedelta(days=10), performance=drop), past, RULES)
    assert later.retrain
    budget = Rules(cooldown_days=0, budget=1, budget_days=90)
    b = decide(check(performance=drop), [PastRecord(D0 - timedelta(days=30), "retrain")], budget)
    assert not b.retrain and "budget" in (b.suppressed_by or "")


def test_new_label_retrains_and_the_summary_names_it():
    d = decide(check(new_labels=("gift_cards",)), [], RULES)
    assert d.retrain and d.rule == "new_label" and "gift_cards" in d.summary


def test_a_drift_event_run_is_not_decided_twice():
    assert decide(check(trigger="drift"), [], RULES).rule == "drift_event"


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    p=st.lists(st.floats(0, 1), min_size=1, max_size=4),
    days=st.lists(st.integers(1, 60), max_size=6),
)
def test_quiet_windows_never_retrain(p, days):
    """No rule fires without a signal: p-values with no effect never retrain, whatever the history."""
    tests = tuple(
        SignalTest(name, pv, 0.0, 0.05)
        for name, pv in zip(("text", "embedding", "label_prior", "prediction"), p, strict=False)
    )
    past = [PastRecord(D0 - timedelta(days=d), "check", ("text",)) for d in days]
    assert not decide(check(tests=tests), past, RULES).retrain


def test_a_strong_signal_does_not_wait_for_a_second_check():
    strong = SignalTest("text", 1e-6, 0.3, 0.05)  # p < alpha^2 and 6x the floor
    d = decide(check(tests=(strong,)), [], RULES)
    assert d.retrain and d.rule == "distribution_drift" and "strong at once: text" in d.summary + str(d.reasons)
    mild = SignalTest("text", 1e-6, 0.1, 0.05)  # significant, but only 2x the floor: persistence applies
    assert not decide(check(tests=(mild,)), [], RULES).retrain
    assert not decide(check(tests=(strong,)), [], Rules(strong_multiple=None)).retrain


def test_distribution_drift_is_vetoed_only_when_labelled_accuracy_is_shown_non_inferior():
    past = [PastRecord(D0 - timedelta(days=7), "check", ("text",))]
    holds = PerformanceCheck(0.90, 0.88, 0.92, baseline=0.90)  # CI low 0.88 ≥ 0.90 − 0.03
    d = decide(check(tests=(DRIFT,), performance=holds), past, RULES)
    assert not d.retrain and d.rule == "none" and d.signals_on == ("text",)  # reported, not retrained on
    assert any(r.signal == "performance_holds" and r.fired for r in d.reasons)
    wide = PerformanceCheck(0.90, 0.70, 0.99, baseline=0.90)  # a small window proves nothing
    assert decide(check(tests=(DRIFT,), performance=wide), past, RULES).rule == "distribution_drift"
    est = PerformanceCheck(0.90, 0.90, 0.90, baseline=0.90, estimated=True)  # CBPE never vetoes
    assert decide(check(tests=(DRIFT,), performance=est), past, RULES).retrain
    recent_higher = PerformanceCheck(0.90, 0.88, 0.92, baseline=0.90, recent=0.95)  # the stricter baseline
    assert decide(check(tests=(DRIFT,), performance=recent_higher), past, RULES).retrain
    off = Rules(**{**RULES.__dict__, "performance_veto": False})
    assert decide(check(tests=(DRIFT,), performance=holds), past, off).retrain
    assert decide(check(tests=(DRIFT,), performance=holds, new_labels=("x",)), past, RULES).rule == "new_label"


def test_drift_retrains_only_while_a_gain_is_not_ruled_out_by_the_headroom():
    past = [PastRecord(D0 - timedelta(days=7), "check", ("text",))]
    drop = dict(value=0.78, low=0.74, high=0.82, baseline=0.88)
    harder = PerformanceCheck(**drop, headroom=(-0.04, -0.07, -0.01))  # a model that saw it would do worse
    d = decide(check(tests=(DRIFT,), performance=harder), past, RULES)
    assert not d.retrain and d.rule == "none"
    assert any(r.signal == "headroom" and r.fired for r in d.reasons)
    assert any(r.signal == "performance_drop" and "vetoed" in r.rule for r in d.reasons)
    assert "headroom (accuracy vs the champion) -0.040" in d.summary
    unclear = PerformanceCheck(**drop, headroom=(-0.01, -0.04, +0.02))  # a gain is not ruled out
    assert decide(check(tests=(DRIFT,), performance=unclear), past, RULES).rule == "performance_drop"
    assert decide(check(performance=PerformanceCheck(**drop)), [], RULES).retrain  # not measured: no veto
    off = Rules(**{**RULES.__dict__, "min_headroom": None})
    assert decide(check(tests=(DRIFT,), performance=harder), past, off).retrain
    stricter = Rules(**{**RULES.__dict__, "min_headroom": 0.03})  # demand room for a 3-point gain
    assert not decide(check(tests=(DRIFT,), performance=unclear), past, stricter).retrain
    # a new label, the calendar and forced runs are never vetoed by the headroom
    assert decide(check(performance=harder, new_labels=("x",)), past, RULES).rule == "new_label"
    assert decide(check(performance=harder, trigger="schedule"), past, RULES).rule == "season_start"


def test_the_shown_rule_retrains_only_where_the_headroom_shows_a_gain_of_min_headroom():
    past = [PastRecord(D0 - timedelta(days=7), "check", ("text",))]
    drop = dict(value=0.78, low=0.74, high=0.82, baseline=0.88)
    shown = Rules(**{**RULES.__dict__, "min_headroom": 0.02, "headroom_rule": "shown"})
    unclear = PerformanceCheck(**drop, headroom=(0.03, 0.005, 0.055), headroom_view="macro_f1 vs the champion")
    d = decide(check(tests=(DRIFT,), performance=unclear), past, shown)
    assert not d.retrain and any(
        r.signal == "headroom" and r.fired and "CI low must reach" in r.rule for r in d.reasons
    )
    assert decide(check(tests=(DRIFT,), performance=unclear), past, RULES).retrain  # not ruled out: retrains
    clear = PerformanceCheck(**drop, headroom=(0.07, 0.045, 0.095))
    assert decide(check(tests=(DRIFT,), performance=clear), past, shown).rule == "performance_drop"
    unmeasured = PerformanceCheck(**drop, headroom=(float("nan"),) * 3)  # a record from before the view existed
    assert decide(check(tests=(DRIFT,), performance=unmeasured), past, shown).retrain
    # the calendar, a new label and the first model are never held back by it
    assert decide(check(performance=unclear, new_labels=("x",)), past, shown).rule == "new_label"
    assert decide(check(performance=unclear, trigger="schedule"), past, shown).rule == "season_start"


def test_adaptive_headroom_asks_for_a_shown_gain_only_after_a_retrain_that_lost():
    adaptive = Rules(**{**RULES.__dict__, "min_headroom": 0.02, "headroom_rule": "adaptive"})
    drop = dict(value=0.78, low=0.74, high=0.82, baseline=0.88)
    unclear = PerformanceCheck(**drop, headroom=(0.01, -0.01, 0.03))  # a 2-point gain: possible, not shown
    day = D0 + timedelta(days=30)  # past the cooldown

    def past(version):
        return [
            PastRecord(D0, "retrain", model_version=version),
            PastRecord(D0 + timedelta(days=20), "check", ("text",)),
        ]

    won = decide(check(day, tests=(DRIFT,), performance=unclear, champion_version="4"), past("4"), adaptive)
    assert won.retrain and won.rule == "performance_drop"  # the last retrain is serving: benefit of the doubt
    lost = decide(check(day, tests=(DRIFT,), performance=unclear, champion_version="3"), past("4"), adaptive)
    assert not lost.retrain and lost.rule == "none"
    assert "drift held back: a gain is not shown by the headroom" in lost.summary
    why = next(r for r in lost.reasons if r.signal == "headroom")
    assert why.fired and "version 4 was not promoted" in why.rule and "CI low must reach" in why.rule
    clear = PerformanceCheck(**drop, headroom=(0.06, 0.03, 0.09))
    assert decide(check(day, tests=(DRIFT,), performance=clear, champion_version="3"), past("4"), adaptive).retrain
    # no retrain to learn from yet (only the champion's own data): not ruled out is enough
    assert decide(check(day, tests=(DRIFT,), performance=unclear, champion_version="3"), past(None), adaptive).retrain


def test_drift_alone_retrains_incrementally_everything_else_in_full():
    drop = PerformanceCheck(value=0.78, low=0.74, high=0.82, baseline=0.88)
    d = decide(check(performance=drop, champion_version="3"), [], INC)
    assert d.retrain and d.rule == "performance_drop" and d.scope == "incremental"
    assert "(performance_drop, incremental)" in d.summary
    assert any(r.signal == "scope" and "incremental update" in r.rule for r in d.reasons)
    assert decide(check(has_champion=False), [], INC).scope == "full"
    assert decide(check(forced=True, performance=drop), [], INC).scope == "full"
    assert decide(check(trigger="schedule", performance=drop), [], INC).scope == "full"
    grown = decide(check(performance=drop, new_labels=("travel",)), [], INC)
    assert grown.fired == ("new_label", "performance_drop") and grown.scope == "full"  # the head grows
    assert decide(check(), [], INC).scope is None  # no retrain, no scope
    assert decide(check(performance=drop), [], RULES).scope == "full"  # off by default
    big = PerformanceCheck(value=0.78, low=0.74, high=0.82, baseline=0.88, headroom=(0.12, 0.08, 0.16))
    d = decide(check(performance=big), [], INC)  # the window has much to teach: the full recipe
    assert d.scope == "full" and any("large gain" in r.rule for r in d.reasons if r.signal == "scope")
    some = PerformanceCheck(value=0.78, low=0.74, high=0.82, baseline=0.88, headroom=(0.06, 0.03, 0.09))
    assert decide(check(performance=some), [], INC).scope == "incremental"
    assert decide(check(performance=big), [], Rules(**{**INC.__dict__, "full_headroom": None})).scope == "incremental"


def test_an_incremental_retrain_that_lost_escalates_the_next_one_to_full():
    drop = PerformanceCheck(value=0.78, low=0.74, high=0.82, baseline=0.88)
    day = D0 + timedelta(days=30)  # past the cooldown

    def after(scope, champion):
        past = [PastRecord(D0, "retrain", model_version="4", scope=scope)]
        return decide(check(day, performance=drop, champion_version=champion), past, INC)

    assert after("incremental", "4").scope == "incremental"  # it won: keep updating lightly
    lost = after("incremental", "3")
    assert lost.retrain and lost.scope == "full"
    assert any(r.signal == "scope" and "escalated" in r.rule and "version 4" in r.rule for r in lost.reasons)
    assert after("full", "3").scope == "incremental"  # a full retrain that lost does not escalate further
    assert after(None, "3").scope == "incremental"  # a record from before scopes: unknown, no escalation


def test_a_drift_event_run_keeps_the_scope_its_monitor_check_chose():
    day = D0 + timedelta(days=30)
    for chosen in ("incremental", "full"):
        past = [PastRecord(D0, "retrain"), PastRecord(day, "check", ("text",), retrain=True, scope=chosen)]
        d = decide(check(day, trigger="drift"), past, INC)
        assert d.rule == "drift_event" and d.scope == chosen
    unknown = decide(check(day, trigger="drift"), [PastRecord(D0, "retrain")], INC)
    assert unknown.scope == "full"
