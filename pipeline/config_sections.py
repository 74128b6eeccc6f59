"""The sections of the typed configuration: one pydantic model per step, with every default.

:mod:`pipeline.config` assembles them into ``PipelineConfig`` and loads YAML and environment over
them; import the sections from there. Light module: pydantic only.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_LABELS = (
    "order_status",
    "refund_request",
    "return_item",
    "shipping_delay",
    "payment_problem",
    "account_access",
    "product_question",
    "gift_card",
    "price_match",
)


class Section(BaseModel):
    """Base for config sections: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidateConfig(Section):
    labels: tuple[str, ...] = Field(DEFAULT_LABELS, description="The known label set; other labels fail validation.")
    min_text_chars: int = Field(3, ge=1, description="Lower bound of text length.")
    max_text_chars: int = Field(1000, ge=10, description="Upper bound of text length.")
    min_rows_per_class: int = Field(
        3,
        ge=0,
        description=(
            "Each label present in the window needs at least this many rows; a training-row cap keeps at least "
            "this many of every class."
        ),
    )
    min_classes: int = Field(2, ge=1, description="A window with fewer distinct labels fails validation.")
    max_duplicate_share: float = Field(0.05, ge=0, le=1, description="Largest tolerated share of repeated texts.")
    min_rows: int = Field(20, ge=1, description="A window with fewer rows fails validation.")
    new_labels: Literal["fail", "hold_out", "accept"] = Field(
        "hold_out",
        description=(
            "A label outside `labels`: fail the window; hold_out its rows in quarantine (reason new_label) and train "
            "on the rest; or accept it (the head grows, a warning is logged, the policy retrains)."
        ),
    )
    severity: dict[str, Literal["error", "warning"]] = Field(
        default_factory=dict,
        description=(
            "Severity per check, overriding the defaults (an error stops the run before training; a warning is "
            "reported in the decision record and the task log). Checks: see the Validation section of the README."
        ),
    )
    future_skew_s: int = Field(300, ge=0, description="Rows stamped later than now plus this fail future_timestamps.")
    max_lateness_days: int | None = Field(
        45,
        ge=0,
        description="Rows older than the window start minus this many days fail stale_timestamps; null: off.",
    )
    segments: tuple[str, ...] = Field(
        (), description="Valid segment values; empty: the reference's segments (when a segment column is mapped)."
    )
    length_factor: float = Field(
        2.0, gt=1, description="Learned bound: each text-length quantile within [ref / f, ref * f]."
    )
    max_class_shift: float = Field(
        0.25, gt=0, le=1, description="Learned bound: Jensen-Shannon distance of class shares to the reference."
    )
    language_tolerance: float = Field(
        0.1, ge=0, le=1, description="Learned bound: the reference's main language share may fall this much."
    )
    duplicate_tolerance: float = Field(
        0.02, ge=0, le=1, description="Learned bound: duplicate share at most the reference's plus this."
    )

    @field_validator("severity")
    @classmethod
    def _known_checks(cls, value: dict[str, str]) -> dict[str, str]:
        from pipeline.data.checks import CHECKS

        unknown = sorted(set(value) - set(CHECKS))
        if unknown:
            raise ValueError(f"validate.severity: unknown check(s) {unknown}; known: {sorted(CHECKS)}")
        return value


class DriftConfig(Section):
    """The signals of a drift check. Every distribution signal is a test with a p-value (size-aware)
    and an effect floor (so a huge window does not alarm on a negligible difference)."""

    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="Significance level of each distribution test (text, embedding, label, prediction).",
    )
    text_drift_threshold: float = Field(
        0.55,
        gt=0.5,
        lt=1,
        description=(
            "Effect floor of text drift: the ROC AUC of a domain classifier telling reference from current messages "
            "(Evidently 'abs_text_content_drift'; 0.5 = no difference). Drift needs its Mann-Whitney p < alpha too."
        ),
    )
    label_drift_threshold: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Effect floor of label-prior drift: Jensen-Shannon distance of the label shares (natural log, 0 to 0.83). "
            "Drift needs the chi-square p < alpha too; labels the reference never saw count as new labels instead."
        ),
    )
    prediction_drift_threshold: float = Field(
        0.05, gt=0, le=1, description="Effect floor (JS distance) of drift in the champion's predicted labels."
    )
    embedding_drift_threshold: float = Field(
        0.0,
        ge=0,
        description="Effect floor (unbiased MMD², RBF kernel) of drift in the champion's mean-pooled embeddings.",
    )
    reference: Literal["training", "seasonal"] = Field(
        "training",
        description=(
            "Which reference the policy decides on: the window the latest retrain answered (the champion's training "
            "data before any), or the same "
            "season of the previous cycle (falls back to training when that season has no data yet). Both are reported."
        ),
    )
    reference_sample_size: int = Field(2000, ge=10, description="Rows sampled from the reference to bound cost.")
    max_current_rows: int = Field(
        5000,
        ge=10,
        description="Rows sampled from the current window for text and model-based signals (counts use all).",
    )
    model_sample_size: int = Field(
        300, ge=10, description="Rows per side scored by the champion for embedding and prediction drift."
    )
    mmd_permutations: int = Field(200, ge=20, description="Permutations of the embedding MMD test.")
    performance_resamples: int = Field(400, ge=50, description="Bootstrap resamples of the macro-F1 CI.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the performance CIs.")
    history_url: str | None = Field(
        None, description="SQLAlchemy URL of the drift-history table; default sqlite:///{home}/drift_history.db."
    )
    seed: int = Field(7, description="Seed of samples, bootstrap and permutations.")


class EvaluateConfig(Section):
    """Promotion gate (pipeline/gate/rule.py). A threshold set to null means: do not promote (the gate fails
    closed); the run says so at its start."""

    metric: Literal["macro_f1", "accuracy"] = Field(
        "macro_f1", description="Primary metric: one one-sided paired test on it decides (permutation / McNemar)."
    )
    alpha: float | None = Field(
        0.05,
        gt=0,
        lt=1,
        description="Chance of promoting a challenger that is not better, over all its looks (null: never promote).",
    )
    sequential_share: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="Share of alpha spent over later windows (group-sequential, equal parts per look); the rest "
        "is the first look's test.",
    )
    min_effect: float = Field(
        0.02, gt=0, lt=1, description="Smallest gain worth promoting: power is reported at it; CI below it is futile."
    )
    max_looks: int = Field(4, ge=1, description="Windows a standing challenger may gather evidence before rejection.")
    reassess_rows: Literal["window", "test"] = Field(
        "window",
        description="Rows a standing challenger is reassessed on at each later window: every labelled row of it "
        "(train, val and test splits: neither model trained on them, so four times the evidence of a "
        "test split at test_fraction 0.25) or its test split only.",
    )
    guardrail_alpha: float = Field(
        0.05, gt=0, lt=1, description="Family-wise level (Holm) at which a guardrail regression blocks promotion."
    )
    guardrail_test: Literal["harm", "beyond_margin"] = Field(
        "harm",
        description="When a guardrail blocks: harm = a significant drop (H0: no drop) whose estimate passes the "
        "margin; beyond_margin = a drop significantly larger than the margin (H0: drop ≤ margin).",
    )
    class_f1_margin: float = Field(0.05, ge=0, description="Guardrail margin: per-class F1 may drop this much.")
    class_shift_alpha: float | None = Field(
        0.01,
        gt=0,
        lt=1,
        description="Level at which a class counts as moved (its challenger-minus-champion F1 gap larger on the new "
        "window than on the pool's older rows, or its share of the rows changed): it is then gated on the window's "
        "rows alone; null: always on every row.",
    )
    segment_accuracy_margin: float = Field(0.03, ge=0, description="Guardrail margin: per-segment accuracy drop.")
    memory_accuracy_margin: float = Field(0.03, ge=0, description="Guardrail margin: memory-holdout accuracy drop.")
    ece_margin: float = Field(
        0.03, ge=0, description="Guardrail margin: calibration error increase (debiased ℓ2, equal-mass bins)."
    )
    min_support: int = Field(
        20, ge=1, description="Rows a class or segment needs to be gated; smaller ones are reported, not gated."
    )
    min_disparate_impact: float | None = Field(
        0.8, ge=0, le=1, description="Floor of min/max per-segment accuracy (four-fifths rule); null: not checked."
    )
    max_latency_ratio: float | None = Field(
        1.5, gt=0, description="Challenger p95 latency at most this times the champion's; null: not checked."
    )
    latency_rows: int = Field(64, ge=0, description="Rows predicted one at a time to measure p95 latency (0: off).")
    first_model_min_macro_f1: float | None = Field(
        0.6,
        ge=0,
        le=1,
        description="Absolute macro-F1 floor of the first model, when there is no champion (null: never).",
    )
    bootstrap_samples: int = Field(1000, ge=100, description="Paired bootstrap resamples (CIs, standard errors).")
    permutations: int = Field(2000, ge=100, description="Resamples of the paired permutation test.")
    seed: int = Field(11, description="Seed of the bootstrap and permutation tests.")
    pool_max_rows: int = Field(
        3000, ge=0, description="Evaluation pool: recent test rows (never trained on) added to the window's test split."
    )
    pool_max_age_days: int = Field(
        400,
        ge=1,
        description="Pool rows older than this move to the memory holdout (a year and a month: every season).",
    )
    pool_half_life_days: float | None = Field(
        None,
        gt=0,
        description="Recency of the pool: a row this many days older than the window is kept with chance 1/2 "
        "(a fixed draw per row); null: every row kept (fewer rows cost power: see the README).",
    )
    memory_max_rows: int = Field(
        1000, ge=0, description="Memory holdout (earlier seasons) rows, to measure forgetting."
    )
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="MinHash Jaccard at which an evaluation row counts as a training row's duplicate."
    )

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: object) -> object:
        removed = {
            "min_macro_f1_gain": "the gate is one one-sided test now; see evaluate.alpha and evaluate.min_effect",
            "max_class_f1_drop": "per-class guardrails are tested with evaluate.class_f1_margin",
            "min_class_support": "renamed evaluate.min_support",
        }
        if isinstance(data, dict):
            for key, why in removed.items():
                if key in data:
                    raise ValueError(f"evaluate.{key} was removed: {why}")
        return data


GATE_KEYS = ("alpha", "first_model_min_macro_f1")


class RegisterConfig(Section):
    model_name: str = Field("support-intent-classifier", description="Registered model name.")
    ready_timeout_s: int = Field(
        300, ge=1, description="Seconds to wait for a new model version to become READY before failing."
    )
    history_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the alias-history and gate-evidence tables; default "
        "sqlite:///{home}/registry_history.db.",
    )
    require_approval: bool = Field(
        False,
        description="A promotion waits for a person's approval (Airflow human-in-the-loop) before champion moves.",
    )


class TrackingConfig(Section):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default sqlite:///{home}/mlflow.db.")
    registry_uri: str | None = Field(None, description="MLflow registry URI; default: the tracking URI.")
    artifact_location: str | None = Field(None, description="Experiment artifact root; default {home}/mlartifacts.")
    experiment_name: str = Field("support-intent-retraining", description="MLflow experiment of every run.")
    http_max_retries: int = Field(
        3, ge=0, description="Retries of a request to an MLflow server (exponential backoff) before the step fails."
    )
    http_timeout_s: int = Field(10, ge=1, description="Seconds one request to an MLflow server may take.")
    http_backoff_factor: int = Field(1, ge=0, description="Backoff between retries: factor * 2^attempt seconds.")


class ScheduleConfig(Section):
    """When the DAGs run. Read at DAG parse time, so it stays a tiny section."""

    season_starts: tuple[str, ...] = Field(
        ("03-01", "06-01", "09-01", "11-20", "12-27"),
        description="Month-day dates (MM-DD) that start a season; retrain runs at 00:00 UTC on each.",
    )
    timezone: str = Field("UTC", description="IANA timezone of the season starts (midnight local time).")
    monitor_cron: str | None = Field("@daily", description="Cron of the monitor DAG; null: only triggered runs.")
    ab_cron: str | None = Field("@hourly", description="Cron of the ab_test DAG; null: only triggered runs.")
    time_triggers: bool = Field(
        True, description="Off: DAGs run only on drift events and manual triggers (the demo replays time itself)."
    )
    start_date: date = Field(date(2025, 1, 1), description="First date the DAGs are scheduled from.")
    retry_delay_s: int = Field(
        30, ge=0, description="Seconds before a failed task with retries (the I/O steps) runs again."
    )

    @field_validator("season_starts")
    @classmethod
    def _month_days(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for s in v:
            try:
                month, day = (int(p) for p in s.split("-"))
                date(2024, month, day)  # leap year: accepts 02-29
            except ValueError as exc:
                raise ValueError(f"season start {s!r} is not a MM-DD date") from exc
        if not v:
            raise ValueError("season_starts needs at least one MM-DD date")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {v!r} is not an IANA timezone name") from exc
        return v


class SimulatorConfig(Section):
    seed: int = Field(2024, description="Same seed, same files.")
    start_date: date = Field(date(2025, 1, 1), description="First simulated day.")
    days: int = Field(365, ge=1, description="Simulated days.")
    messages_per_day: int = Field(40, ge=1, description="Messages per simulated day.")
    file_format: Literal["csv", "jsonl", "parquet"] = Field("jsonl", description="Format of the landing files written.")
    days_per_file: int = Field(7, ge=1, description="One landing file per this many days.")
    noise: float = Field(0.15, ge=0, le=1, description="Probability of a typo or casing change per message.")
    pii_rate: float = Field(0.3, ge=0, le=1, description="Share of messages carrying PII.")
