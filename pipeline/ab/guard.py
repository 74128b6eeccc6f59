"""The guard after a promotion: the new champion against the version it replaced, on live traffic.

Every promotion (:func:`pipeline.promotion.promote`: the offline gate, a standing challenger, an
approval, the online A/B test) starts a guard: tags on the new champion say against which version
(``guard.against``, the old champion, which the ``previous`` alias holds), since when
(``guard.since``) and its state (``guard.state``: ``running``, then ``kept`` or ``rolled_back``).

While a guard runs (:func:`active`), the serving app sends ``serve.guard_share`` of users to
``previous``. :func:`run` replays the guard's feedback from the prediction log and applies
:func:`pipeline.ab.rule.guard`: a significant drop of the new champion's accuracy below
``previous`` **rolls back** (:func:`pipeline.promotion.rollback`, recorded in the alias history with
the numbers); once ``ab.guard_days`` pass without one the promotion is **kept**. A guard is over
when the champion or ``previous`` moved since it began (another promotion starts its own).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline import registry, tracking
from pipeline.ab import rule
from pipeline.config import PipelineConfig

log = logging.getLogger(__name__)
AGAINST, SINCE, STATE = "guard.against", "guard.since", "guard.state"
RUNNING, KEPT, ROLLED_BACK = "running", "kept", "rolled_back"


@dataclass(frozen=True)
class Guard:
    champion: str  # the promoted version under guard
    previous: str  # the version it replaced, which keeps a share of traffic
    since: datetime


@dataclass(frozen=True)
class GuardResult:
    outcome: str  # continue | rollback | keep
    summary: str
    applied: bool
    champion_version: str
    previous_version: str


def start_tags(previous: str, since: datetime) -> dict[str, str]:
    """The tags :func:`pipeline.promotion.promote` sets on a new champion."""
    return {AGAINST: previous, SINCE: since.isoformat(), STATE: RUNNING}


def from_tags(champion: str, tags: dict[str, str], previous_alias: str | None) -> Guard | None:
    """The running guard these champion tags describe, if it still applies. Pure."""
    if tags.get(STATE) != RUNNING or not tags.get(AGAINST) or not tags.get(SINCE):
        return None
    if previous_alias != tags[AGAINST] or previous_alias == champion:
        return None  # previous moved (a rollback, a later promotion): this guard is over
    try:
        since = datetime.fromisoformat(tags[SINCE])
    except ValueError:
        return None
    return Guard(champion, previous_alias, since)


def active(cfg: PipelineConfig, c: Any | None = None) -> Guard | None:
    """The running guard of the served model, or None (also when ``serve.guard_share`` is 0)."""
    if cfg.serve.guard_share <= 0:
        return None
    c = c or tracking.client(cfg)
    name = cfg.register.model_name
    model = registry.get_registered_model(c, name)
    aliases = {a: str(v) for a, v in ((model.aliases or {}) if model is not None else {}).items()}
    champion = aliases.get(registry.CHAMPION)
    if champion is None:
        return None
    tags = c.get_model_version(name, champion).tags or {}
    return from_tags(champion, tags, aliases.get(registry.PREVIOUS))


def run(cfg: PipelineConfig, *, run_id: str, apply: bool, now: datetime) -> GuardResult | None:
    """Decide the running guard, if any; roll back or keep it when ``apply``."""
    from pipeline import promotion
    from pipeline.ab.online import rules_from
    from pipeline.serving import log as serving_log

    c = tracking.client(cfg)
    g = active(cfg, c)
    if g is None:
        return None
    day = 86400.0
    # the rule's "challenger" is the new champion, its "champion" the previous version
    names = {"champion": "challenger", "previous": "champion"}
    events = serving_log.events(cfg.serving_log_url, {"champion": g.champion, "previous": g.previous}, g.since)
    looks = rule.looks_from([((e.ts - g.since).total_seconds() / day, names[e.variant], e.correct) for e in events],
                            cfg.ab.look_every, now_days=(now - g.since).total_seconds() / day)  # fmt: skip
    rules = rules_from(cfg)
    outcome, d = rule.guard(looks, rules)
    summary = (f"guard of v{g.champion} against v{g.previous}: {outcome.upper()}: accuracy "
               f"{d.champion_accuracy:.4f} ({d.n_champion}) -> {d.challenger_accuracy:.4f} ({d.n_challenger}), "
               f"CS [{d.low:+.4f}, {d.high:+.4f}]")  # fmt: skip
    log.info("ab: %s", summary)
    applied = False
    name = cfg.register.model_name
    if apply and outcome == "rollback":
        numbers = {"outcome": "rollback", "n_previous": d.n_champion, "n_champion": d.n_challenger} | {
            k: (float(v) if math.isfinite(v) else None)
            for k, v in (("estimate", d.estimate), ("low", d.low), ("high", d.high), ("p_value", d.p_value))
        }
        promotion.rollback(cfg, to=g.previous, actor="ab_guard", why=summary, run_id=run_id, numbers=numbers)
        c.set_model_version_tag(name, g.champion, STATE, ROLLED_BACK)
        applied = True
    elif apply and outcome == "keep":
        c.set_model_version_tag(name, g.champion, STATE, KEPT)
        applied = True
    return GuardResult(outcome, summary, applied, g.champion, g.previous)
