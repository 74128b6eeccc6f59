"""The drift-policy section of the typed config: when a check retrains, and how much
(pipeline/monitoring/policy.py, pipeline/monitoring/scope.py). Light module: pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config_sections import Section


class PolicyConfig(Section):
    """When a check retrains (pipeline/monitoring/policy.py). Drift rules: performance, distribution, new label."""

    perf_margin: float = Field(
        0.03, ge=0, lt=1, description="Retrain when accuracy drops by more than this (and its CI excludes no drop)."
    )
    recent_windows: int = Field(3, ge=1, description="Checks averaged as the champion's recent accuracy baseline.")
    persist_k: int = Field(2, ge=1, description="Distribution drift must be on in persist_k ...")
    persist_m: int = Field(3, ge=1, description="... of the last persist_m checks since the reference changed.")
    strong_multiple: float | None = Field(
        3.0,
        gt=1,
        description=(
            "A signal with p < alpha^2 and an effect this many times its floor is persistent drift at once "
            "(a season change does not wait for a second check); null: always wait for persist_k."
        ),
    )
    hysteresis: float = Field(
        0.25, ge=0, lt=1, description="A signal that is on stays on while p < alpha^(1-h) and effect >= floor*(1-h)."
    )
    cooldown_days: int = Field(14, ge=0, description="After a retrain, drift rules are held back this many days.")
    budget: int | None = Field(
        None, ge=1, description="At most this many drift-started retrains per budget_days (null: no cap)."
    )
    budget_days: int = Field(90, ge=1, description="Period of the retrain budget.")
    retrain_on_season_start: bool = Field(True, description="A season start (the seasonal timetable) always retrains.")
    retrain_on_new_label: bool = Field(
        True, description="An accepted new label retrains (validate.new_labels: accept)."
    )
    performance_veto: bool = Field(
        True,
        description=(
            "Distribution drift alone does not retrain when the labelled window shows the champion's accuracy "
            "non-inferior to its baselines (CI low >= baseline - perf_margin)."
        ),
    )

    min_headroom: float | None = Field(
        0.02,
        ge=-1,
        le=1,
        description=(
            "Performance and distribution drift retrain only when the labelled window's headroom (a linear "
            "probe that saw the window, on rows it did not see) carries the burden headroom_rule sets for a "
            "gain of this size (default: the gate's min_effect); null: off."
        ),
    )
    headroom_rule: Literal["not_ruled_out", "shown", "adaptive"] = Field(
        "adaptive",
        description=(
            "not_ruled_out: veto a drift retrain when the headroom's CI high is below min_headroom; shown: "
            "retrain only when its CI low reaches min_headroom; adaptive: not_ruled_out while the last "
            "retrain's model is the champion, shown after its challenger was not promoted."
        ),
    )
    headroom_basis: Literal["champion", "window"] = Field(
        "champion",
        description=(
            "The probe that saw the window against the champion, or against a probe fitted on the reference "
            "alone (what the window's rows add; the probe's own edge over the champion's head cancels)."
        ),
    )
    headroom_metric: Literal["accuracy", "macro_f1"] = Field(
        "macro_f1",
        description="The headroom's metric: macro-F1 (paired bootstrap CI; the gate's default) or accuracy (normal CI).",
    )
    incremental_epochs: int | None = Field(
        None,
        ge=1,
        description=(
            "Epochs of an incremental retrain (capped by finetune.epochs): one started by drift alone "
            "(performance or distribution drift) warm-starts from the champion with replay and trains this "
            "long. First models, season starts, new labels, forced runs, a headroom that shows a gain of "
            "full_headroom, and the retrain after an incremental one that was not promoted are full "
            "(finetune.epochs). null (default: on the real replays, 1 of 2 epochs lost macro-F1 where a retrain "
            "mattered): every retrain is full."
        ),
    )
    full_headroom: float | None = Field(
        0.05,
        ge=-1,
        le=1,
        description=(
            "A drift retrain is full, not incremental, when the window's headroom shows a gain this large "
            "(its CI low, in headroom_metric): the window has much to teach. null: drift alone is always incremental."
        ),
    )

    @model_validator(mode="after")
    def _k_of_m(self) -> PolicyConfig:
        if self.persist_k > self.persist_m:
            raise ValueError(f"policy.persist_k ({self.persist_k}) cannot exceed policy.persist_m ({self.persist_m})")
        return self
