"""The serving app (FastAPI): champion and challenger by alias, sticky A/B, logs, feedback, metrics.

Endpoints:

- ``POST /predict`` ``{"text": ...}`` or ``{"texts": [...]}``, optional ``user_id`` and
  ``request_id``: per text the label, its confidence, the class probabilities, the variant and the
  model version, and the ``request_id`` to send feedback with (one per text: ``<id>`` for one text,
  ``<id>:<i>`` in a batch). Bounded: ``serve.max_text_chars`` per text, ``serve.max_batch`` texts;
  beyond, or malformed, 422 naming the field.
- ``POST /feedback`` ``{"request_id": ..., "label": ...}`` or ``{"request_id": ..., "correct": bool}``
  (thumbs up/down): 404 for an unknown id, 409 for a second feedback on one id, 422 for a label
  outside the served models' labels, 503 while the log database is down.
- ``GET /health`` (the process is up), ``GET /ready`` (a champion is loaded; 503 and why otherwise),
  ``GET /metrics`` (Prometheus text).

A user (``user_id``, else the request id) keeps one variant for the whole test
(:mod:`pipeline.serving.assign`); with no challenger every request goes to the champion. After a
promotion, ``serve.guard_share`` of users go to ``previous`` while the guard runs.
"""

# no `from __future__ import annotations`: FastAPI must resolve the request models defined in create_app
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Self

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config import PipelineConfig
from pipeline.serving import assign
from pipeline.serving.log import DuplicateFeedback, PredictionLog, UnknownRequest, now
from pipeline.serving.models import MlflowSource, ModelHolder, Source

log = logging.getLogger(__name__)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("retrain_serving_requests", "Predict calls", ["variant", "status"], registry=r)
        self.texts = Counter("retrain_serving_texts", "Texts predicted", ["variant"], registry=r)
        self.latency = Histogram("retrain_serving_latency_seconds", "Predict latency", ["variant"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))  # fmt: skip
        self.feedback = Counter("retrain_serving_feedback", "Feedback calls", ["status"], registry=r)
        self.dropped = Gauge("retrain_serving_log_dropped_total", "Log rows dropped (buffer full)", registry=r)
        self.buffered = Gauge("retrain_serving_log_buffered", "Log rows waiting for the database", registry=r)
        self.reload_errors = Gauge("retrain_serving_reload_errors_total", "Failed registry polls", registry=r)


def create_app(cfg: PipelineConfig, *, source: Source | None = None, start_threads: bool = True) -> FastAPI:
    """The app for ``cfg``. ``source``: where models come from (default: the MLflow registry)."""
    sc = cfg.serve
    holder = ModelHolder(source or MlflowSource(cfg), sc.reload_interval_s)
    plog = PredictionLog(cfg.serving_log_url, buffer_max=sc.log_buffer_max, flush_interval_s=sc.log_flush_interval_s)
    metrics = _Metrics()

    class PredictIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str | None = Field(None, min_length=1, max_length=sc.max_text_chars)
        texts: list[str] | None = Field(None, min_length=1, max_length=sc.max_batch)
        user_id: str | None = Field(None, max_length=200)
        request_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")

        @model_validator(mode="after")
        def _one(self) -> Self:
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' and 'texts'")
            for i, t in enumerate(self.texts or []):
                if not t or len(t) > sc.max_text_chars:
                    raise ValueError(f"texts[{i}]: length {len(t)} must be 1..{sc.max_text_chars}")
            return self

    class FeedbackIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        request_id: str = Field(min_length=1, max_length=80)
        label: str | None = Field(None, min_length=1, max_length=200)
        correct: bool | None = None

        @model_validator(mode="after")
        def _one(self) -> Self:
            if (self.label is None) == (self.correct is None):
                raise ValueError("give exactly one of 'label' (the true label) and 'correct' (thumbs up/down)")
            return self

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        holder.refresh()
        if start_threads:
            holder.start()
            plog.start()
        yield
        holder.stop()
        plog.stop()

    app = FastAPI(title="retrain serving", lifespan=lifespan)
    app.state.holder, app.state.log, app.state.metrics = holder, plog, metrics

    @app.post("/predict")
    def predict(body: PredictIn) -> dict[str, Any]:
        served = holder.current  # one snapshot for the whole request
        if served is None:
            metrics.requests.labels("none", "503").inc()
            raise HTTPException(503, f"no model loaded: {holder.error}")
        rid = body.request_id or uuid.uuid4().hex
        name = assign.route(
            body.user_id or rid,
            challenger_share=sc.challenger_share,
            challenger_key=None if served.challenger is None else served.challenger.version,
            guard_share=sc.guard_share,
            guard_key=None if served.previous is None else served.champion.version,
        )
        model = getattr(served, name) or served.champion
        texts = [body.text] if body.text is not None else list(body.texts or [])
        t0 = time.perf_counter()
        try:
            preds = model.predict(texts)
        except Exception as exc:
            metrics.requests.labels(name, "500").inc()
            log.exception("serving: v%s failed to predict", model.version)
            raise HTTPException(500, f"model v{model.version} failed: {type(exc).__name__}") from exc
        seconds = time.perf_counter() - t0
        metrics.requests.labels(name, "200").inc()
        metrics.texts.labels(name).inc(len(texts))
        metrics.latency.labels(name).observe(seconds)
        ids = [rid] if body.text is not None else [f"{rid}:{i}" for i in range(len(texts))]
        plog.record(_rows(ids, texts, preds, body.user_id or rid, name, model.version, seconds, cfg))
        items = [{"request_id": i, **p} for i, p in zip(ids, preds, strict=True)]
        return {"request_id": rid, "variant": name, "model_version": model.version, "predictions": items}

    @app.post("/feedback")
    def feedback(body: FeedbackIn) -> dict[str, Any]:
        served = holder.current
        if body.label is not None and served is not None and served.labels() and body.label not in served.labels():
            metrics.feedback.labels("422").inc()
            raise HTTPException(422, f"label: {body.label!r} is not one of the served labels {sorted(served.labels())}")
        try:
            out = plog.feedback(body.request_id, label=body.label, correct=body.correct)
        except UnknownRequest as exc:
            metrics.feedback.labels("404").inc()
            raise HTTPException(404, str(exc)) from exc
        except DuplicateFeedback as exc:
            metrics.feedback.labels("409").inc()
            raise HTTPException(409, str(exc)) from exc
        except sa.exc.SQLAlchemyError as exc:
            metrics.feedback.labels("503").inc()
            raise HTTPException(503, f"the feedback log is unavailable ({type(exc).__name__}); retry later") from exc
        metrics.feedback.labels("200").inc()
        return out

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready(response: Response) -> dict[str, Any]:
        served = holder.current
        if served is None:
            response.status_code = 503
            return {"ready": False, "reason": holder.error}
        return {
            "ready": True,
            "champion": served.champion.version,
            "challenger": None if served.challenger is None else served.challenger.version,
            "previous": None if served.previous is None else served.previous.version,
            "registry_error": holder.error,
            "log_buffered": len(plog.buffer),
            "log_error": plog.last_error,
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        metrics.dropped.set(plog.dropped)
        metrics.buffered.set(len(plog.buffer))
        metrics.reload_errors.set(holder.reload_errors)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _rows(ids: list[str], texts: list[str], preds: list[dict[str, Any]], user: str, variant: str, version: str,
          seconds: float, cfg: PipelineConfig) -> list[dict[str, Any]]:  # fmt: skip
    """Log rows; the text as the model saw it (normalized, PII replaced), the user id hashed."""
    from pipeline.data.pii import custom_kinds
    from pipeline.data.text import clean_text

    extra = custom_kinds(cfg.ingest.pii_patterns)
    ts, who, ms = now(), assign.user_key(user), 1000 * seconds / max(len(texts), 1)
    return [
        {"request_id": i, "ts": ts, "user_key": who, "variant": variant, "model_version": version,
         "label": p["label"], "confidence": p["confidence"], "latency_ms": ms,
         "text": clean_text(t, max_chars=cfg.ingest.max_text_chars, extra=extra)[0]}
        for i, t, p in zip(ids, texts, preds, strict=True)
    ]  # fmt: skip
