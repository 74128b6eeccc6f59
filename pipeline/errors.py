"""The project's exceptions. Each message names what failed and where (file, column, check, value).

Light module: safe to import from DAG files.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: an expected failure with a readable one-line message."""


class ConfigError(PipelineError):
    """A config file or environment variable is wrong (unknown key, bad value)."""


class IngestError(PipelineError):
    """Landing data cannot be read: missing folder, no files, unreadable file, column mapping mismatch."""


class NothingToDoError(PipelineError):
    """Not a failure: the window holds nothing to work on. The CLI exits with ``EXIT_NOTHING_TO_DO``
    and one line; Airflow skips the rest of the run."""


EXIT_NOTHING_TO_DO = 3


class NoNewDataError(NothingToDoError, IngestError):
    """The window holds no landing file that this consumer has not ingested yet."""


class EmptyWindowError(NothingToDoError, IngestError):
    """Every row of the window's new files went to quarantine: nothing is left to validate or train on."""


class DataValidationError(PipelineError):
    """A Great Expectations suite failed; the message lists each failed expectation and observed value."""


class DriftCheckError(PipelineError):
    """The drift report could not be computed (no usable reference or current data)."""


class TrainingError(PipelineError):
    """Fine-tuning could not start or finish (no usable training rows, base model not found)."""


class GateRejected(PipelineError):
    """Raised only where a caller asks for the gate to be enforced; the evaluate step itself returns a decision."""


class TrackingError(PipelineError):
    """The MLflow tracking or registry store cannot be reached (after bounded retries)."""


class RegistryError(PipelineError):
    """The MLflow registry is in a state the pipeline cannot safely act on."""
