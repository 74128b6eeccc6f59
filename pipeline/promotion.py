"""Moving ``champion``: promotion by the gate, standing challengers, approval, rollback.

Every move goes through :func:`pipeline.registry.move_alias`, so it lands in the alias history
(who, why, the numbers) and on the versions. Heavy module (imports mlflow through the registry).

- :func:`apply_outcome`: what register does with the gate's outcome (see :mod:`pipeline.steps.register`).
- :func:`reassess`: a standing challenger (``insufficient_evidence`` against the current champion)
  is scored on a new window's rows, never on rows of an earlier look; the group-sequential test decides
  with every look so far. Promote, reject (the alias is removed), or stand on.
- :func:`approve`: a promotion that waited for a person (``register.require_approval``).
- :func:`rollback`: ``champion`` back to the last known-good version: the latest earlier champion
  that was not itself rolled back from, never merely the numerically previous version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pipeline import lineage, paths, registry, registry_history, tracking
from pipeline.config import PipelineConfig
from pipeline.errors import PipelineError, RegistryError
from pipeline.results import ChampionInfo, EvaluateResult, IngestResult

log = logging.getLogger(__name__)
ROLLBACK = "rollback"


def _numbers(ev: EvaluateResult) -> dict[str, Any]:
    keys = ("outcome", "look", "challenger_macro_f1", "champion_macro_f1", "macro_f1_diff", "ci_low", "ci_high",
            "p_value", "power", "test_rows", "champion_version", "decision_uri")  # fmt: skip
    return {k: getattr(ev, k) for k in keys}


def promote(
    cfg: PipelineConfig, version: str, *, expected_champion: str | None, actor: str, reason: str, run_id: str,
    numbers: dict[str, Any] | None = None,
) -> bool:  # fmt: skip
    """``previous`` to the old champion, ``champion`` to ``version``, ``challenger`` removed.

    Raises :class:`RegistryError` when the champion moved since the decision was made (stale).
    Idempotent: False when ``version`` is already champion.
    """
    name = cfg.register.model_name
    c = tracking.client(cfg)
    now = registry.alias_version(c, name, registry.CHAMPION)
    if now == version:
        if registry.alias_version(c, name, registry.CHALLENGER) == version:
            registry.move_alias(cfg, registry.CHALLENGER, None, actor=actor, reason="promoted", pipeline_run_id=run_id)
        return False
    if now != expected_champion:
        raise RegistryError(
            f"{name} champion is version {now or 'none'}, but the decision compared against "
            f"{expected_champion or 'no champion'}; evaluate again before promoting"
        )
    kw = {"actor": actor, "pipeline_run_id": run_id, "numbers": numbers}
    # previous first, champion last: a crash in between leaves the old champion serving
    if now is not None:
        from datetime import UTC, datetime

        from pipeline.ab import guard

        registry.move_alias(cfg, registry.PREVIOUS, now, reason=f"champion before v{version}", **kw)  # type: ignore[arg-type]
        # the guard: live traffic may still roll this promotion back; the tags are inert until champion moves
        for key, value in guard.start_tags(now, datetime.now(UTC)).items():
            c.set_model_version_tag(name, version, key, value)
    registry.move_alias(cfg, registry.CHAMPION, version, reason=reason, **kw)  # type: ignore[arg-type]
    if registry.alias_version(c, name, registry.CHALLENGER) is not None:
        registry.move_alias(cfg, registry.CHALLENGER, None, reason=f"v{version} promoted; nothing stands", **kw)  # type: ignore[arg-type]
    return True


def apply_outcome(cfg: PipelineConfig, version: str, ev: EvaluateResult, *, run_id: str, window_end: str | None,
                  actor: str = "pipeline") -> str:  # fmt: skip
    """Move aliases as the outcome says; record this look's evidence. Returns what happened."""
    name = cfg.register.model_name
    if ev.champion_version is not None and ev.macro_f1_diff is not None and ev.primary_variance is not None:
        registry_history.record_evidence(
            cfg.registry_history_url,
            registry_history.Evidence(
                name,
                version,
                ev.champion_version,
                run_id,
                window_end,
                ev.macro_f1_diff,
                ev.primary_variance,
                ev.test_rows,
                ev.outcome,
            ),  # fmt: skip
        )
    c = tracking.client(cfg)
    standing_now = registry.alias_version(c, name, registry.CHALLENGER)
    if ev.outcome == "promote" and not cfg.register.require_approval:
        promote(cfg, version, expected_champion=ev.champion_version, actor=actor, reason=ev.summary or "gate: promote",
                run_id=run_id, numbers=_numbers(ev))  # fmt: skip
        return "promoted"
    if ev.outcome == "promote":
        registry.move_alias(cfg, registry.CHALLENGER, version, actor=actor, pipeline_run_id=run_id,
                            reason="gate: promote, awaiting approval (register.require_approval)", numbers=_numbers(ev))  # fmt: skip
        return "awaiting_approval"
    if ev.outcome == "insufficient_evidence":
        reason = ev.summary or "gate: insufficient evidence"
        if standing_now not in (None, version) and standing(cfg, registry.alias_version(c, name, registry.CHAMPION)):
            if not (ev.rival_version == standing_now and ev.replaces_standing):
                log.info("promotion: v%s keeps standing; v%s did not take its place (see %s)", standing_now, version,
                         ev.decision_uri)  # fmt: skip
                return f"insufficient_evidence (v{standing_now} keeps standing)"
            reason = f"replaces standing v{standing_now} (not significantly worse on the same rows, fresher); {reason}"
        registry.move_alias(cfg, registry.CHALLENGER, version, actor=actor, pipeline_run_id=run_id, reason=reason,
                            numbers=_numbers(ev))  # fmt: skip
        return "standing" if standing_now in (None, version) else f"standing (replaces v{standing_now})"
    return "rejected"


@dataclass(frozen=True)
class Standing:
    version: str
    model_uri: str
    train_data_uri: str | None
    looks: tuple[registry_history.Evidence, ...]


def standing(cfg: PipelineConfig, champion_version: str | None) -> Standing | None:
    """The challenger that stands against this champion with insufficient evidence, if any."""
    if champion_version is None:
        return None
    name = cfg.register.model_name
    c = tracking.client(cfg)
    version = registry.alias_version(c, name, registry.CHALLENGER)
    if version is None or version == champion_version:
        return None
    mv = c.get_model_version(name, version)
    tags = mv.tags or {}
    if tags.get("evaluated_against_version") != champion_version:
        return None
    looks = registry_history.evidence(cfg.registry_history_url, name, version, champion_version)
    if not looks or looks[-1].outcome != "insufficient_evidence":
        return None
    train_data = lineage.resolve(c, tags.get(registry.TAG_TRAIN_DATA), mv.run_id, lineage.TRAIN_DATA)
    return Standing(version, registry.model_version_uri(name, version), train_data, tuple(looks))


def reassess(cfg: PipelineConfig, run_id: str, ing: IngestResult, champ: ChampionInfo, window_end: str | None) -> dict[str, Any] | None:  # fmt: skip
    """Score the standing challenger on this window's rows and decide with every look so far.

    ``evaluate.reassess_rows: window`` (default) scores every split of the new window: the champion
    and the standing challenger were both trained before it arrived, so all its labelled rows are
    unseen by both (rows near-duplicating either model's training data are excluded as always); the
    window's own new challenger, trained on its train split, is judged on test rows only."""
    from pipeline.gate.rule import Look
    from pipeline.steps import evaluate

    st = standing(cfg, champ.version)
    if st is None or not ing.split_sizes.get("test"):
        return None
    if any(x.pipeline_run_id == run_id for x in st.looks):  # a retry: this look is recorded already
        looks = tuple(x for x in st.looks if x.pipeline_run_id != run_id)
    else:
        looks = st.looks
    rows: str | tuple[str, ...] = ing.test_uri
    if cfg.evaluate.reassess_rows == "window":
        rows = tuple(
            u for u, split in ((ing.train_uri, "train"), (ing.val_uri, "val"), (ing.test_uri, "test"))
            if u and ing.split_sizes.get(split, 1)
        )  # fmt: skip
    ev = evaluate.run(
        cfg, test_uri=rows, challenger_uri=st.model_uri, champion_uri=champ.model_uri,
        champion_version=champ.version, out_dir=str(paths.step_dir(cfg.artifact_root_uri, run_id, "reassess")),
        pipeline_run_id=run_id, window_end=window_end,
        train_uris=tuple(u for u in (st.train_data_uri, champ.train_data_uri) if u), use_pool=False,
        earlier_looks=tuple(Look(x.estimate, x.variance, x.n, x.window_end or "") for x in looks),
    )  # fmt: skip
    what = apply_outcome(cfg, st.version, ev, run_id=run_id, window_end=window_end)
    if ev.outcome == "reject":  # futile, or its looks are used up: nothing stands any more
        registry.move_alias(cfg, registry.CHALLENGER, None, actor="pipeline", pipeline_run_id=run_id,
                            reason=ev.summary or "gate: reject", numbers=_numbers(ev))  # fmt: skip
    log.info("promotion: standing v%s after look %d: %s", st.version, ev.look, what)
    return {"version": st.version, "result": what, "evaluate": ev.to_dict()}


def approve(cfg: PipelineConfig, version: str, *, actor: str, run_id: str) -> bool:
    """Promote a version whose gate said promote and that waits for approval."""
    name = cfg.register.model_name
    c = tracking.client(cfg)
    tags = c.get_model_version(name, version).tags or {}
    if tags.get("outcome") != "promote":
        raise PipelineError(f"approve: {name} v{version} was not promoted by the gate (outcome {tags.get('outcome')})")
    return promote(cfg, version, expected_champion=tags.get("evaluated_against_version"), actor=actor,
                   reason=f"approved by {actor}", run_id=run_id)  # fmt: skip


def last_known_good(cfg: PipelineConfig) -> str | None:
    """The latest earlier champion that no rollback moved away from, other than the current one."""
    moves = registry_history.moves(cfg.registry_history_url, cfg.register.model_name, registry.CHAMPION)
    bad = {m.from_version for m in moves if m.reason.startswith(ROLLBACK)}
    current = moves[-1].to_version if moves else None
    for m in reversed(moves):
        for v in (m.to_version, m.from_version):
            if v is not None and v != current and v not in bad:
                return v
    return None


def rollback(cfg: PipelineConfig, *, to: str | None, actor: str, why: str, run_id: str,
             numbers: dict[str, Any] | None = None) -> tuple[str | None, str]:  # fmt: skip
    """Move ``champion`` to ``to`` (default: the last known-good version); returns (from, to)."""
    name = cfg.register.model_name
    c = tracking.client(cfg)
    now = registry.alias_version(c, name, registry.CHAMPION)
    target = to or last_known_good(cfg)
    if target is None:
        raise PipelineError(f"rollback: {name} has no earlier known-good champion (alias history is empty)")
    c.get_model_version(name, target)  # raises when the version does not exist
    if target == now:
        raise PipelineError(f"rollback: {name} v{target} is the champion already")
    registry.move_alias(
        cfg,
        registry.CHAMPION,
        target,
        actor=actor,
        reason=f"{ROLLBACK}: {why}",
        pipeline_run_id=run_id,
        numbers=numbers,
    )
    return now, target
