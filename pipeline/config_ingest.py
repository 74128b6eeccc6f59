"""The ingest section of the typed configuration: sources, cleaning, language, near-duplicates, PII.

:mod:`pipeline.config` assembles it into ``PipelineConfig``; import the sections from there.
Light module: pydantic and the stdlib only.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config_sections import Section

SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ColumnMap(Section):
    """Maps the columns of a source onto the pipeline's canonical names."""

    text: str = Field("text", description="Column holding the message text.")
    label: str = Field("label", description="Column holding the intent label.")
    timestamp: str = Field("timestamp", description="Column holding the event time (ISO 8601 or epoch seconds).")
    segment: str | None = Field("segment", description="Optional column with a user or segment id; null to omit.")
    id: str | None = Field(
        None,
        description=(
            "Optional column with a stable message id: the row watermark keys on it (else on the row's content), "
            "and feedback corrections name it."
        ),
    )


class SplitConfig(Section):
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each window used for validation.")
    test_fraction: float = Field(0.25, gt=0, lt=0.5, description="Share of each window held out for evaluation.")
    seed: int = Field(13, description="Seed of the stratified split.")


class LandingSource(Section):
    """Files in a folder: CSV, JSON lines or Parquet, compressed or not, picked by the date in their name."""

    kind: Literal["landing"] = "landing"
    name: str = Field(pattern=SOURCE_NAME, description="Source name: keys its watermark and tags its rows.")
    path: str | None = Field(None, description="The folder; default ingest.landing_dir.")
    formats: tuple[Literal["csv", "jsonl", "parquet"], ...] = ("csv", "jsonl", "parquet")
    columns: ColumnMap = Field(default_factory=ColumnMap)


class SqlSource(Section):
    """A table or a query read through SQLAlchemy, incrementally by a timestamp watermark."""

    kind: Literal["sql"] = "sql"
    name: str = Field(pattern=SOURCE_NAME)
    url: str = Field(description="SQLAlchemy URL (postgresql://..., sqlite:///...).")
    table: str | None = Field(None, description="Table name (schema.table allowed); or give `query`.")
    query: str | None = Field(None, description="A SELECT whose columns are mapped by `columns`.")
    columns: ColumnMap = Field(default_factory=ColumnMap)
    lateness_s: int = Field(
        86400,
        ge=0,
        description="Rows whose timestamp is up to this much older than the high-water mark are read again (late "
        "arrivals); the row watermark drops the ones already ingested.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError(f"ingest.sources[{self.name}]: give exactly one of table or query")
        return self


class HfDiskSource(Section):
    """A Hugging Face dataset saved with ``save_to_disk`` (read with ``datasets.load_from_disk``)."""

    kind: Literal["hf_disk"] = "hf_disk"
    name: str = Field(pattern=SOURCE_NAME)
    path: str = Field(description="Folder written by Dataset.save_to_disk or DatasetDict.save_to_disk.")
    split: str | None = Field(None, description="Split of a DatasetDict (all splits when null).")
    columns: ColumnMap = Field(default_factory=ColumnMap)


class FeedbackColumns(Section):
    message_id: str = "message_id"
    label: str = "label"
    timestamp: str = "timestamp"
    text: str | None = Field("text", description="Optional: corrections carrying their message's text can train.")


class FeedbackSource(Section):
    """User corrections (message id, corrected label, time): a correction replaces the label of its message
    (a row of any source in the same run with that id), or trains as a new row when it carries the text;
    a correction for a message the run does not know goes to quarantine (``unknown_message``)."""

    kind: Literal["feedback"] = "feedback"
    name: str = Field(pattern=SOURCE_NAME)
    url: str | None = Field(None, description="SQLAlchemy URL; default the serving app's log (serve.log_url).")
    table: str | None = Field(
        None, description="A table of that shape; null: the serving app's feedback joined with its predictions."
    )
    columns: FeedbackColumns = Field(default_factory=FeedbackColumns)
    lateness_s: int = Field(86400, ge=0)


Source = Annotated[LandingSource | SqlSource | HfDiskSource | FeedbackSource, Field(discriminator="kind")]
SOURCE_MODELS = (LandingSource, SqlSource, HfDiskSource, FeedbackSource)


class LanguageConfig(Section):
    allowed: tuple[str, ...] = Field(
        ("en",),
        description="ISO 639-1 codes kept; rows detected as another language go to quarantine (reason language). "
        "Empty: detection off.",
    )
    candidates: tuple[str, ...] = Field(
        ("en", "es", "fr", "de", "it", "pt", "nl"),
        description="Languages the detector (lingua, offline) chooses among; the allowed ones are always added.",
    )
    min_chars: int = Field(
        20, ge=0, description="Shorter texts are not judged (too little evidence): kept as language 'unknown'."
    )
    min_confidence: float = Field(
        0.6, ge=0, le=1, description="A foreign language needs this confidence to quarantine a row."
    )
    accuracy: Literal["high", "low"] = Field(
        "high", description="lingua's mode: low is about 3x faster but misjudges about 3% of short English messages."
    )


class NearDupConfig(Section):
    enabled: bool = Field(True, description="Drop near-duplicates (MinHash LSH), within a window and across windows.")
    threshold: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Estimated Jaccard similarity of character shingles at which two texts are the same.",
    )
    num_perm: int = Field(64, ge=16, le=512, description="MinHash permutations.")
    shingle_chars: int = Field(5, ge=2, le=16, description="Character shingle length (over the dedup key).")
    seed: int = Field(1, description="MinHash seed (changing it forgets the cross-window index's meaning).")


_UNBOUNDED = re.compile(r"(?<!\\)[*+]|\{\d*,\}")  # quantifiers with no upper bound


class IngestConfig(Section):
    landing_dir: str | None = Field(None, description="Folder of landing files; default {home}/landing.")
    formats: tuple[Literal["csv", "jsonl", "parquet"], ...] = Field(
        ("csv", "jsonl", "parquet"),
        description="File types read from the landing folder; compressed CSV/JSONL (.gz, .bz2, .xz, .zst, .zip) too.",
    )
    columns: ColumnMap = Field(default_factory=ColumnMap, description="Column mapping of the landing files.")
    sources: tuple[Source, ...] = Field(
        (),
        description="Sources read by every run, each with its mapping and watermark (kinds: landing, sql, hf_disk, "
        "feedback; see the Sources section). Empty: one landing source named 'landing' from landing_dir, formats, "
        "columns.",
    )
    min_text_chars: int = Field(3, ge=1, description="Rows with shorter text (after cleaning) are quarantined.")
    max_text_chars: int = Field(1000, ge=10, description="Longer texts are truncated to this many characters.")
    max_token_chars: int = Field(
        200, ge=20, description="Rows with a longer run of non-space characters are quarantined (reason long_token)."
    )
    scrub_pii: bool = Field(
        True, description="Replace emails, phones, IBANs, IPs, order and card numbers before persisting."
    )
    pii_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="Extra PII kinds, name -> regex (e.g. account: 'ACC-[0-9]{8}'), replaced by [NAME]. Bounded "
        "quantifiers only (no *, +, {n,}) and no back-references, so every pattern runs in linear time.",
    )
    label_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Label synonyms, alias -> label (e.g. refund: refund_request). Case, spaces, dashes and "
        "underscores are normalized before the lookup, so 'Refund Request' needs no alias.",
    )
    languages: LanguageConfig = Field(default_factory=LanguageConfig, description="Language detection.")
    near_duplicates: NearDupConfig = Field(default_factory=NearDupConfig, description="Near-duplicate removal.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Stratified train/val/test split.")

    @field_validator("pii_patterns")
    @classmethod
    def _linear_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
                raise ValueError(f"ingest.pii_patterns: name {name!r} must be lowercase letters, digits, '_'")
            if _UNBOUNDED.search(pattern.replace("\\\\", "")):
                raise ValueError(
                    f"ingest.pii_patterns.{name}: {pattern!r} has an unbounded quantifier (*, + or {{n,}}); "
                    "use bounded ones ({1,12}) so the pattern runs in linear time"
                )
            if re.search(r"\\[1-9]|\(\?P=", pattern):
                raise ValueError(f"ingest.pii_patterns.{name}: {pattern!r} uses a back-reference")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"ingest.pii_patterns.{name}: {pattern!r} is not a regex ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> IngestConfig:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"ingest.sources: names must be unique; repeated: {dup}")
        return self

    def resolved_sources(self) -> tuple[LandingSource | SqlSource | HfDiskSource | FeedbackSource, ...]:
        """The configured sources, or the one landing source the top-level keys describe."""
        if self.sources:
            return tuple(self.sources)
        return (LandingSource(name="landing", path=self.landing_dir, formats=self.formats, columns=self.columns),)
