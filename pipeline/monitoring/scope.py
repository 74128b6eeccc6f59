"""How much a retrain trains: its scope, ``full`` or ``incremental``. Pure, like the policy it serves.

A retrain started by drift alone (``performance_drop``, ``distribution_drift``) answers a shift the
champion already half-knows: it warm-starts from the champion with replay, so a short update is
usually enough. Such a retrain is ``incremental`` (the monitor maps it to
``policy.incremental_epochs``); every other retrain is ``full`` (``finetune.epochs``):

- ``first_model``, ``forced``, ``season_start``: there is nothing to update, the caller asked for a
  retrain, or the business calendar schedules the season's full refresh;
- ``new_label``: the classifier's head grows, and the new class needs the full recipe to be learnt;
- **escalation**: the latest retrain was incremental and its challenger was not promoted (rejected,
  or still standing): the short update did not win, so the next one (which, under the adaptive
  headroom rule, also needs a gain *shown*) is full;
- **a large gain shown**: the window's headroom (:mod:`pipeline.monitoring.headroom`) shows a gain
  of at least ``full_headroom`` (its CI's lower end): the window has much to teach, and a short
  update would leave part of it on the table;
- ``drift_event``: the monitor's check that emitted the event already chose; its scope stands.

``Rules.incremental`` off (``policy.incremental_epochs: null``, the default): every retrain is full.
The real replays (``benchmarks/drift_replay.py``) measured why it is off by default: incremental
retrains of 1 of 2 epochs cut HuffPost's compute to 38% of always-retrain's but served 0.017 less
macro-F1, because the one drift retrain that mattered (2019-03) needed the full recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

Scope = Literal["full", "incremental"]
FULL_RULES = ("first_model", "forced", "season_start", "new_label")
INCREMENTAL_RULES = ("performance_drop", "distribution_drift")


class _Past(Protocol):  # a PastRecord (read-only fields)
    @property
    def model_version(self) -> str | None: ...

    @property
    def scope(self) -> str | None: ...


def choose(
    fired: Sequence[str],
    *,
    incremental: bool,
    champion_version: str | None,
    last_retrain: _Past | None,
    emitting_check: _Past | None = None,
    headroom_low: float | None = None,
    full_headroom: float | None = None,
) -> tuple[Scope, str]:
    """The scope of a retrain whose rules ``fired`` (in order; the first decided), and why.

    ``last_retrain``: the latest retrain record (its ``scope`` and ``model_version``);
    ``emitting_check``: for a ``drift_event`` run, the monitor's latest check that retrained;
    ``headroom_low``: the lower end of the window's headroom CI (None: not measured)."""
    if not incremental:
        return "full", "policy.incremental_epochs is null: a full retrain"
    full = [r for r in fired if r in FULL_RULES]
    if full:
        return "full", f"{full[0]}: a full retrain"
    if "drift_event" in fired:
        chosen = emitting_check.scope if emitting_check is not None else None
        if chosen in ("full", "incremental"):
            return (
                "incremental" if chosen == "incremental" else "full"
            ), f"drift_event: the monitor's check chose {chosen}"
        return "full", "drift_event: the monitor's check is not on record, so a full retrain"
    if not any(r in INCREMENTAL_RULES for r in fired):
        return "full", "no drift rule fired: a full retrain"
    if (
        last_retrain is not None
        and last_retrain.scope == "incremental"
        and last_retrain.model_version is not None
        and champion_version is not None
        and last_retrain.model_version != champion_version
    ):
        return "full", (
            f"escalated: the last retrain (version {last_retrain.model_version}) was incremental and not "
            f"promoted (champion {champion_version}), so this one is full"
        )
    if full_headroom is not None and headroom_low is not None and headroom_low >= full_headroom:
        return "full", (
            f"the headroom shows a large gain (CI low {headroom_low:+.3f} ≥ {full_headroom:+.3f}): a full retrain"
        )
    return "incremental", "drift alone: an incremental update of the champion (warm start, replay, fewer epochs)"
