"""Config sections of the online side: the serving app (``serve``). Re-exported by :mod:`pipeline.config`."""

from __future__ import annotations

from pydantic import Field

from pipeline.config_sections import Section


class ServeConfig(Section):
    host: str = Field("127.0.0.1", description="Address `retrain serve` binds to.")
    port: int = Field(8080, ge=1, le=65535, description="Port `retrain serve` listens on.")
    challenger_share: float = Field(
        0.1, ge=0, le=1, description="Share of users sent to the `challenger` alias while one exists (sticky by user)."
    )
    log_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the prediction and feedback logs; default sqlite:///{home}/serving.db.",
    )
    guard_share: float = Field(
        0.05, ge=0, le=0.5, description="After a promotion, share of users the `previous` version keeps for the guard "
        "period (`ab.guard_days`): its live accuracy is what a rollback is judged against. 0 turns the guard off.",
    )  # fmt: skip
    reload_interval_s: float = Field(10.0, gt=0, description="Seconds between polls of the registry's aliases.")
    max_text_chars: int = Field(2000, ge=1, description="Longest text `/predict` accepts (422 beyond).")
    max_batch: int = Field(64, ge=1, description="Most texts in one `/predict` call (422 beyond).")
    log_buffer_max: int = Field(
        100_000, ge=1, description="Log rows held in memory while the database is down; beyond it rows are dropped "
        "and counted (`retrain_serving_log_dropped_total`).",
    )  # fmt: skip
    log_flush_interval_s: float = Field(0.5, gt=0, description="Seconds between writes of buffered log rows.")


class AbConfig(Section):
    """The online A/B test's decision (:mod:`pipeline.ab.rule`), run by ``retrain ab`` and the ``ab_test`` DAG."""

    alpha: float = Field(0.05, gt=0, lt=1, description="Error level of the always-valid test (two-sided).")
    tau: float = Field(0.03, gt=0, description="Scale of the mSPRT's mixing prior: the accuracy gain it is tuned for.")
    min_effect: float = Field(0.02, ge=0, description="Futility: stop once an accuracy gain this large is ruled out.")
    min_per_arm: int = Field(100, ge=1, description="Judged predictions per variant before the test may decide.")
    max_samples: int = Field(50_000, ge=1, description="Judged predictions over both variants that end the test.")
    max_days: float = Field(28.0, gt=0, description="Days that end the test as inconclusive.")
    guard_days: float = Field(7.0, gt=0, description="Days after a promotion that the guard may roll it back.")
    trigger_feedback: int = Field(
        500, ge=0, description="Feedback events since the last decision that start an `ab_test` run before its hour "
        "(an Airflow asset watcher on the serving log). 0: the schedule alone.",
    )  # fmt: skip
    trigger_poll_s: float = Field(
        60.0, gt=0, description="Seconds between the asset watcher's counts of the feedback log."
    )
    look_every: int = Field(50, ge=1, description="Feedback events between two looks when the log is replayed.")
