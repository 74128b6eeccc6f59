"""Typed configuration: one frozen root ``PipelineConfig`` with a section per step.

Sources, lowest to highest priority: the typed field defaults (the section models in
:mod:`pipeline.config_sections` and its siblings ``config_ingest``, ``config_finetune`` and
``config_online``, the one place defaults live;
the README's table is generated from them), the YAML file (``RETRAIN_CONFIG`` or
``configs/default.yaml``, which holds no values of its own) layered over them key by key, then
``RETRAIN_*`` environment variables with ``__`` between levels
(``RETRAIN_FINETUNE__EPOCHS=2``). Every model forbids unknown keys, so a typo is an error that
names the key instead of a silently ignored setting.

Light module: safe to import from DAG files (pydantic and yaml only, no I/O at import).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.config_finetune import FinetuneConfig
from pipeline.config_ingest import (  # noqa: F401  (re-exported)
    ColumnMap,
    FeedbackSource,
    HfDiskSource,
    IngestConfig,
    LandingSource,
    SplitConfig,
    SqlSource,
)
from pipeline.config_online import AbConfig, ServeConfig
from pipeline.config_policy import PolicyConfig
from pipeline.config_sections import (  # noqa: F401  (re-exported: import sections from here)
    DEFAULT_LABELS,
    GATE_KEYS,
    DriftConfig,
    EvaluateConfig,
    RegisterConfig,
    ScheduleConfig,
    Section,
    SimulatorConfig,
    TrackingConfig,
    ValidateConfig,
)
from pipeline.errors import ConfigError

# `register` is a section name here; pydantic warns that it shadows an ABC helper on BaseSettings.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "default.yaml"
DEFAULT_HOME = REPO_ROOT / ".retrain"


class PipelineConfig(BaseSettings):
    """Root configuration. Build it with :func:`load_config` inside tasks, never at parse time."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix="RETRAIN_", env_nested_delimiter="__", env_parse_none_str="null"
    )

    home: str = Field(
        str(DEFAULT_HOME),
        description="Project-local folder for Airflow home, MLflow store, artifacts, landing and watermarks.",
        json_schema_extra={"doc_default": ".retrain"},
    )
    artifact_root: str | None = Field(
        None,
        description="Curated data, reports, the eval pool: a path or any fsspec URL (s3://bucket/prefix, shared by "
        "workers); default {home}/artifacts.",
    )
    state_dir: str | None = Field(
        None, description="Ingest watermarks: a path or any fsspec URL; default {home}/state."
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Reading landing files.")
    # `validate` would shadow BaseModel.validate: stored as validate_, spelled `validate` in YAML and env
    validate_: ValidateConfig = Field(
        default_factory=ValidateConfig,
        validation_alias=AliasChoices("validate", "retrain_validate"),
        description="The Great Expectations suite's thresholds.",
    )
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift check.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="When a drift check retrains.")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig, description="Fine-tuning.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Promotion gate.")
    register: RegisterConfig = Field(default_factory=RegisterConfig, description="Model registry.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow stores.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="When the DAGs run.")
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig, description="The demo's data simulator.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The serving app (online A/B).")
    ab: AbConfig = Field(default_factory=AbConfig, description="The online A/B test's decision.")

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.ingest.split.val_fraction + self.ingest.split.test_fraction >= 0.8:
            raise ValueError("ingest.split: val_fraction + test_fraction must leave at least 20% for training")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the YAML passed as init kwargs
        return (env_settings, init_settings)

    def gate_warnings(self) -> list[str]:
        """One line per gate threshold set to null: each one means no model is ever promoted by it."""
        out = []
        for key in GATE_KEYS:
            if getattr(self.evaluate, key) is None:
                who = "a first model" if key == "first_model_min_macro_f1" else "a challenger over a champion"
                out.append(f"evaluate.{key} is null: {who} is never promoted (the gate fails closed)")
        return out

    # ---- resolved locations: the one place that fills in defaults under `home` ----
    @property
    def validate_cfg(self) -> ValidateConfig:
        return self.validate_

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def artifact_root_uri(self) -> str:
        return self.artifact_root or str(self.home_path / "artifacts")

    @property
    def state_dir_uri(self) -> str:
        """``state_dir`` as a resolved local path or a URL (``s3://...``); default {home}/state."""
        from pipeline import paths

        if not self.state_dir:
            return str(self.home_path / "state")
        return (
            str(Path(self.state_dir).expanduser().resolve()) if paths.scheme(self.state_dir) == "" else self.state_dir
        )

    @property
    def serving_log_url(self) -> str:
        return self.serve.log_url or f"sqlite:///{self.home_path / 'serving.db'}"

    @property
    def landing_dir_path(self) -> Path:
        d = self.ingest.landing_dir
        return Path(d).expanduser().resolve() if d else self.home_path / "landing"

    @property
    def tracking_uri(self) -> str:
        return self.tracking.tracking_uri or f"sqlite:///{self.home_path / 'mlflow.db'}"

    @property
    def drift_history_url(self) -> str:
        return self.drift.history_url or f"sqlite:///{self.home_path / 'drift_history.db'}"

    @property
    def registry_history_url(self) -> str:
        return self.register.history_url or f"sqlite:///{self.home_path / 'registry_history.db'}"

    @property
    def registry_uri(self) -> str:
        return self.tracking.registry_uri or self.tracking_uri

    @property
    def mlflow_artifact_location(self) -> str:
        return self.tracking.artifact_location or (self.home_path / "mlartifacts").as_uri()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _describe(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]).replace("validate_", "validate")
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            parts.append(f"'{loc}': {err['msg']} (got {err.get('input')!r})")
    return f"config {source}: " + "; ".join(parts)


def config_path() -> Path:
    return Path(os.environ.get("RETRAIN_CONFIG", str(DEFAULT_CONFIG_PATH)))


def load_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """Build the config from YAML + environment (+ keyword overrides, deepest-merged).

    Raises :class:`ConfigError` naming the file and the offending key.
    """
    p = Path(path) if path else config_path()
    data = _read_yaml(p) if p.exists() or path else {}
    data = _merge(data, overrides)
    try:
        return PipelineConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"{p} (+ RETRAIN_* environment)")) from exc


def load_schedule() -> ScheduleConfig:
    """Only the schedule section, for DAG files at parse time (a small YAML read, no heavy imports)."""
    return load_config().schedule
