"""Small frozen results that steps return and Airflow tasks pass on through XCom.

Plain values only (str, int, float, bool, None, tuples and dicts of those): never a DataFrame, a
model or a report object. ``to_dict``/``from_dict`` round-trip through JSON, which is how a step's
``_SUCCESS`` marker stores its result for idempotent retries.

Light module: safe to import from DAG files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T", bound="StepResult")


@dataclass(frozen=True)
class StepResult:
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for k, v in data.items():
            if k not in names:
                continue
            # JSON turns tuples into lists; restore them so results compare equal after a round trip
            kwargs[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        return cls(**kwargs)


@dataclass(frozen=True)
class IngestResult(StepResult):
    pipeline_run_id: str
    consumer: str
    window_start: str | None
    window_end: str | None
    train_uri: str
    val_uri: str
    test_uri: str
    manifest_uri: str
    quarantine_uri: str | None
    files: tuple[str, ...]
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    label_counts: dict[str, int] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)  # {"train": n, "val": n, "test": n}
    quarantine_reasons: dict[str, int] = field(default_factory=dict)  # reason code -> rows
    pii_replacements: dict[str, int] = field(default_factory=dict)  # PII kind -> replacements
    manifest_sha256: str | None = None  # tags the model versions trained on this window
    rows_repeated: int = 0  # rows whose record was ingested before (row watermark)
    corrections_applied: int = 0  # feedback corrections that relabelled a row of this run
    mlflow_run_id: str | None = None  # the ingest run (manifest artifact, accounting metrics)


@dataclass(frozen=True)
class ValidateResult(StepResult):
    success: bool
    expectations_evaluated: int
    expectations_failed: int
    result_uri: str
    data_docs_uri: str | None
    quarantine_uri: str | None
    rows_quarantined: int
    mlflow_run_id: str | None
    rows_validated: int = 0
    warnings: tuple[str, ...] = ()  # warning-severity checks that failed: reported, the run went on


@dataclass(frozen=True)
class DriftResult(StepResult):
    drift_detected: bool
    has_reference: bool
    text_drift_score: float | None
    label_drift_score: float | None
    text_drift_detected: bool
    label_drift_detected: bool
    report_html_uri: str | None
    report_json_uri: str | None
    reference_rows: int
    current_rows: int
    mlflow_run_id: str | None
    # size-aware tests per reference: {"training": {signal: {"p_value", "effect", "effect_floor", ...}},
    # "seasonal": {...}}; the policy decides on `reference_used`
    tests: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    reference_used: str = "training"
    seasonal_reference: str | None = None  # the season whose previous-cycle data was compared, if any
    performance: dict[str, Any] | None = None  # the champion on the labelled window (accuracy, macro-F1, CIs)
    estimate: dict[str, Any] | None = None  # CBPE from calibrated probabilities (no labels needed)
    new_labels: tuple[str, ...] = ()  # labels in the window the reference never had
    reference_uri: str | None = None


@dataclass(frozen=True)
class DecisionResult(StepResult):
    """The drift policy's verdict on one check (pipeline/monitoring/policy.py), as recorded."""

    retrain: bool
    rule: str
    summary: str
    reasons: tuple[dict[str, Any], ...]
    signals_on: tuple[str, ...]
    suppressed_by: str | None
    cooldown_until: str | None
    recorded: bool  # False: a drift event's run, decided by the monitor (not recorded twice)
    reference_uri: str | None = None
    validation_warnings: tuple[str, ...] = ()  # warning-severity checks the window failed (validate)
    scope: str | None = None  # a retrain's: full / incremental (pipeline.monitoring.scope); None: no retrain


@dataclass(frozen=True)
class FinetuneResult(StepResult):
    model_uri: str
    mlflow_run_id: str
    model_dir: str
    labels: tuple[str, ...]
    train_rows: int
    replay_rows: int
    val_rows: int
    epochs_run: int
    stopped_early: bool
    best_val_macro_f1: float
    warm_started_from: str | None
    train_data_uri: str
    augmented_rows: int = 0  # synthetic rows also trained on (augmented.parquet), not counted in train_rows
    scope: str = "full"  # the drift policy's: full / incremental (policy.incremental_epochs)


@dataclass(frozen=True)
class EvaluateResult(StepResult):
    promote: bool
    is_first_model: bool
    reasons: tuple[str, ...]
    decision_uri: str
    challenger_accuracy: float
    challenger_macro_f1: float
    champion_accuracy: float | None
    champion_macro_f1: float | None
    champion_version: str | None
    p_value: float | None
    macro_f1_diff: float | None
    ci_low: float | None
    ci_high: float | None
    test_rows: int
    mlflow_run_id: str | None
    # promote | insufficient_evidence (the challenger stands and is scored on the next window) | reject
    outcome: str = "reject"
    look: int = 1
    power: float | None = None  # of the primary test at evaluate.min_effect
    rows: dict[str, int] = field(default_factory=dict)  # window / pool / memory / excluded_* rows
    summary: str = ""
    primary_variance: float | None = None  # this look's estimate variance, for the group-sequential test
    # the standing challenger (the rival), scored on the same rows: may this challenger take its place?
    rival_version: str | None = None
    replaces_standing: bool | None = None


@dataclass(frozen=True)
class RegisterResult(StepResult):
    model_name: str
    version: str
    promoted: bool
    reused: bool
    champion_version: str | None
    previous_version: str | None
    model_version_uri: str | None = None
    registration_uri: str | None = None
    outcome: str = ""  # promoted | awaiting_approval | standing | rejected | ...


@dataclass(frozen=True)
class ChampionInfo(StepResult):
    """What the registry says about the current champion (or that there is none)."""

    model_name: str
    version: str | None
    model_uri: str | None
    train_data_uri: str | None
    accuracy: float | None = None  # on its evaluation split when it was registered

    @property
    def exists(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class AbResult(StepResult):
    """The online A/B decision at one run (see :mod:`pipeline.ab.online`)."""

    outcome: str  # no_test | continue | promote | stop_harm | stop_futility | inconclusive
    champion_version: str | None
    challenger_version: str | None
    summary: str
    applied: bool  # whether the aliases moved (False on a dry run or when nothing was to move)
    n_champion: int = 0
    n_challenger: int = 0
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    looks: int = 0
    guard_outcome: str | None = None  # the post-promotion guard, when one ran: continue | rollback | keep
    guard_summary: str | None = None
