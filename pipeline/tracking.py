"""MLflow plumbing shared by the steps: one parent run per pipeline run, one child run per step.

Every run is tagged ``pipeline_run_id`` and ``git_sha`` so that anything in the MLflow UI can be
traced back to the Airflow run that produced it. Heavy module (imports mlflow): use from steps only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from pipeline.config import REPO_ROOT, PipelineConfig
from pipeline.errors import TrackingError

log = logging.getLogger(__name__)

TAG_RUN = "pipeline_run_id"
TAG_STEP = "step"
TAG_KIND = "kind"
TAG_SHA = "git_sha"


@functools.cache
def git_sha() -> str:
    """The commit the code runs from: ``GIT_SHA`` if set (containers), else ``git rev-parse``."""
    if sha := os.environ.get("GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def redact(uri: str) -> str:
    """``uri`` without a password (``postgresql://user:***@host/db``)."""
    parsed = urlsplit(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urlunsplit(parsed._replace(netloc=netloc))


def _bound_http(cfg: PipelineConfig) -> None:
    """MLflow reads its HTTP retry settings from the environment at each request: bound them, so an
    unreachable server fails in about a minute instead of retrying for minutes."""
    t = cfg.tracking
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(t.http_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(t.http_timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(t.http_backoff_factor)
    # urllib3 logs a multi-line warning per retry; the one-line TrackingError says it all
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def configure(cfg: PipelineConfig) -> str:
    """Point mlflow at the configured stores and return the experiment id (created if missing).

    Raises :class:`TrackingError`, one line naming the URI, when the store cannot be reached after
    ``tracking.http_max_retries`` retries (or a database URL cannot be connected to).
    """
    _bound_http(cfg)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_registry_uri(cfg.registry_uri)
    try:
        client = MlflowClient()
        exp = client.get_experiment_by_name(cfg.tracking.experiment_name)
        if exp is not None:
            return exp.experiment_id
        try:
            return client.create_experiment(
                cfg.tracking.experiment_name, artifact_location=cfg.mlflow_artifact_location
            )
        except mlflow.exceptions.MlflowException:  # created concurrently by another task
            exp = client.get_experiment_by_name(cfg.tracking.experiment_name)
            if exp is None:
                raise
            return exp.experiment_id
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise TrackingError(
            f"MLflow tracking store {redact(cfg.tracking_uri)} cannot be reached "
            f"(tracking.http_max_retries={cfg.tracking.http_max_retries}): {type(exc).__name__}: {reason[:300]}"
        ) from exc


def client(cfg: PipelineConfig) -> MlflowClient:
    configure(cfg)
    return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.registry_uri)


def _find_runs(c: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    return list(c.search_runs([experiment_id], filter_string=filter_string, max_results=50))


def parent_run_id(cfg: PipelineConfig, pipeline_run_id: str) -> str:
    """The MLflow run that groups all steps of one pipeline run (found, or created once)."""
    exp_id = configure(cfg)
    c = MlflowClient()
    found = _find_runs(c, exp_id, f"tags.{TAG_RUN} = '{pipeline_run_id}' and tags.{TAG_KIND} = 'pipeline'")
    if found:
        return found[0].info.run_id
    run = c.create_run(
        exp_id,
        run_name=pipeline_run_id,
        tags={TAG_RUN: pipeline_run_id, TAG_KIND: "pipeline", TAG_SHA: git_sha()},
    )
    # the parent stays open while steps run; it is a folder, its status is not meaningful
    c.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def fail_stale_runs(cfg: PipelineConfig, experiment_id: str, pipeline_run_id: str, step: str) -> int:
    """Mark FAILED the runs of this step still RUNNING: attempts that were killed before they could end
    their run. Attempts of one step never overlap, so a RUNNING one is dead. Returns how many."""
    c = MlflowClient()
    stale = _find_runs(
        c,
        experiment_id,
        f"tags.{TAG_RUN} = '{pipeline_run_id}' and tags.{TAG_STEP} = '{step}' and attributes.status = 'RUNNING'",
    )
    for run in stale:
        c.set_tag(run.info.run_id, "ended_by", "a later attempt: this attempt was killed before it finished")
        c.set_terminated(run.info.run_id, "FAILED")
        log.warning(
            "mlflow run %s (%s of %s) was left RUNNING by a killed attempt: marked FAILED",
            run.info.run_id,
            step,
            pipeline_run_id,
        )
    return len(stale)


@contextlib.contextmanager
def step_run(cfg: PipelineConfig, pipeline_run_id: str, step: str) -> Iterator[mlflow.ActiveRun]:
    """Start the child run of ``step``; it ends FAILED if the body raises, FINISHED otherwise."""
    exp_id = configure(cfg)
    parent = parent_run_id(cfg, pipeline_run_id)
    fail_stale_runs(cfg, exp_id, pipeline_run_id, step)
    tags = {
        TAG_RUN: pipeline_run_id,
        TAG_STEP: step,
        TAG_KIND: "step",
        TAG_SHA: git_sha(),
        "mlflow.parentRunId": parent,
    }
    # steps run in separate task processes, but dag.test() runs them all in one: never inherit a run
    while mlflow.active_run() is not None:
        mlflow.end_run()
    run = mlflow.start_run(experiment_id=exp_id, run_name=step, tags=tags)
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")
    log.info("mlflow run %s (%s) of %s finished", run.info.run_id, step, pipeline_run_id)
