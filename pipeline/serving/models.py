"""The models the app serves, by registry alias, reloaded when an alias moves.

``champion`` always; ``challenger`` while an A/B test runs; ``previous`` while the guard of the last
promotion runs (:mod:`pipeline.ab.guard`).

:class:`ModelHolder` keeps one immutable :class:`Served` snapshot (champion, and challenger when the
alias exists). A request takes the snapshot once and uses it to the end, so swapping in a new one
(after loading it completely, off the request path) never drops or fails a request. A background
thread polls the registry every ``serve.reload_interval_s``. If the registry cannot be reached at
start, the holder has nothing and says why (``/ready`` answers 503 with that reason); if it goes
down later, the loaded models keep serving and the error is reported.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.config import PipelineConfig

log = logging.getLogger(__name__)


class Source(Protocol):
    def aliases(self) -> dict[str, str]:
        """alias -> version of the served model's ``champion``, ``challenger`` (when set) and
        ``previous`` (only while a post-promotion guard runs)."""
        ...

    def load(self, version: str) -> Any:
        """The model of ``version``: ``predict(DataFrame with 'text') -> DataFrame(label, confidence)``."""
        ...


class MlflowSource:
    """The registry of ``cfg``: ``models:/<name>/<version>`` through the registry's own pyfunc."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg

    def aliases(self) -> dict[str, str]:
        from pipeline import registry, tracking
        from pipeline.ab import guard

        c = tracking.client(self.cfg)
        model = registry.get_registered_model(c, self.cfg.register.model_name)
        if model is None:
            return {}
        wanted = (registry.CHAMPION, registry.CHALLENGER)
        out = {a: str(v) for a, v in (model.aliases or {}).items() if a in wanted}
        g = guard.active(self.cfg, c) if registry.CHAMPION in out else None
        return out | ({registry.PREVIOUS: g.previous} if g is not None else {})

    def load(self, version: str) -> Any:
        import mlflow.pyfunc

        from pipeline import registry

        return mlflow.pyfunc.load_model(registry.model_version_uri(self.cfg.register.model_name, version))


@dataclass(frozen=True)
class Loaded:
    version: str
    model: Any

    def labels(self) -> tuple[str, ...]:
        inner = _inner(self.model)
        return tuple(getattr(inner, "labels", ()) or ())

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Per text: ``label``, ``confidence`` and, where the model exposes them, ``probabilities``."""
        inner = _inner(self.model)
        if hasattr(inner, "probabilities"):
            probs = np.asarray(inner.probabilities(texts))
            labels = list(inner.labels)
            top = probs.argmax(axis=1)
            return [
                {"label": labels[t], "confidence": float(p[t]),
                 "probabilities": {lab: round(float(x), 6) for lab, x in zip(labels, p, strict=True)}}
                for t, p in zip(top, probs, strict=True)
            ]  # fmt: skip
        out = self.model.predict(pd.DataFrame({"text": texts}))
        return [
            {"label": str(r.label), "confidence": float(r.confidence), "probabilities": None} for r in out.itertuples()
        ]


def _inner(model: Any) -> Any:
    unwrap = getattr(model, "unwrap_python_model", None)
    try:
        return unwrap() if unwrap is not None else model
    except Exception:  # not a python-function model: use its predict
        return model


SLOTS = ("champion", "challenger", "previous")


@dataclass(frozen=True)
class Served:
    champion: Loaded
    challenger: Loaded | None
    previous: Loaded | None = None  # the version a guard compares the champion with

    def versions(self) -> dict[str, str]:
        return {s: m.version for s in SLOTS if (m := getattr(self, s)) is not None}

    def labels(self) -> set[str]:
        out: set[str] = set()
        for s in SLOTS:
            if (m := getattr(self, s)) is not None:
                out |= set(m.labels())
        return out


class ModelHolder:
    def __init__(self, source: Source, reload_interval_s: float) -> None:
        self.source = source
        self.interval = reload_interval_s
        self.current: Served | None = None
        self.error: str | None = "not loaded yet"
        self.reloads = 0
        self.reload_errors = 0
        self._cache: dict[str, Loaded] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()

    def refresh(self) -> bool:
        """Poll the aliases; load and swap in what moved. True when the served set changed."""
        with self._refresh_lock:
            try:
                aliases = self.source.aliases()
                if "champion" not in aliases:
                    raise LookupError("the registry has no champion alias for the served model")
                wanted = {a: aliases[a] for a in SLOTS if a in aliases}
                have = {} if self.current is None else self.current.versions()
                if wanted == have:
                    self.error = None
                    return False
                loaded = {a: self._load(v) for a, v in wanted.items()}
            except Exception as exc:  # the registry or a model is unavailable: keep serving what is loaded
                self.reload_errors += 1
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("serving: reload failed (%s); %s", self.error,
                            "still serving the loaded models" if self.current else "nothing to serve")  # fmt: skip
                return False
            self.current = Served(loaded["champion"], loaded.get("challenger"), loaded.get("previous"))
            self._cache = {x.version: x for x in loaded.values()}
            self.error = None
            self.reloads += 1
            log.info("serving: %s", ", ".join(f"{a} v{v}" for a, v in wanted.items()))
            return True

    def _load(self, version: str) -> Loaded:
        return self._cache.get(version) or Loaded(version, self.source.load(version))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="serving-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
