"""The served model: an MLflow pyfunc that turns raw message text into an intent label.

A logged intent model holds one artifact, ``hf_model``: a Hugging Face folder (weights, config,
tokenizer) plus ``intent_model.json`` with the label order and ``max_length``. So

    mlflow.pyfunc.load_model("models:/support-intent-classifier@champion").predict(
        pd.DataFrame({"text": ["where is my parcel"]}))

returns a DataFrame with ``label`` (str) and ``confidence`` (float, the top softmax probability).

The model is logged as *models from code*: MLflow stores a three-line script that imports
:class:`IntentClassifier` from this installed package, not a cloudpickle of the object. MLflow 3.17
refuses to unpickle a python_model unless ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true``, and a pickle
would also tie the model to the exact class layout at logging time. The script needs the
``pipeline`` package wherever the model is loaded, which holds for every place this project loads
it (Airflow workers, the CLI, tests).

Heavy module (imports mlflow; torch and transformers are imported when a model is loaded).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

log = logging.getLogger(__name__)

ARTIFACT_KEY = "hf_model"
META_FILE = "intent_model.json"
DEFAULT_BATCH_SIZE = 64
REQUIREMENTS = ("torch", "transformers", "pandas", "mlflow")

# The script MLflow stores with the model and runs at load time ("models from code").
_MODEL_CODE = """\
# Written by pipeline.modeling.pyfunc.log_intent_model: the model's class lives in the installed package.
from mlflow.models import set_model

from pipeline.modeling.pyfunc import IntentClassifier

set_model(IntentClassifier())
"""

INPUT_EXAMPLE_TEXTS = ("where is my order", "i want a refund for the jacket")


def signature() -> ModelSignature:
    """String ``text`` in; string ``label`` and double ``confidence`` out; optional ``batch_size``."""
    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]),
        outputs=Schema([ColSpec("string", "label"), ColSpec("double", "confidence")]),
        params=ParamSchema([ParamSpec("batch_size", "long", DEFAULT_BATCH_SIZE)]),
    )


def pinned_requirements() -> list[str]:
    """``name==version`` of the serving dependencies as installed here (local tags like ``+cpu`` dropped)."""
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in REQUIREMENTS]


DEFAULT_MAX_TEXT_CHARS = 1000


def write_model_meta(
    model_dir: str | Path,
    *,
    labels: Sequence[str],
    max_length: int,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    scrub_pii: bool = True,
    temperature: float = 1.0,
    pii_patterns: dict[str, str] | None = None,
    precision: str = "auto",
) -> None:
    """Record the label order, token budget and input cleaning next to the HF files (read by
    :class:`IntentClassifier`): the served model cleans raw text exactly as ingest cleaned its
    training text (normalization, PII placeholders, the same cut)."""
    meta = {
        "labels": list(labels),
        "max_length": int(max_length),
        "cleaning": {
            "max_text_chars": int(max_text_chars),
            "scrub_pii": bool(scrub_pii),
            "pii_patterns": dict(pii_patterns or {}),
        },
        "temperature": float(temperature),
        "precision": precision,  # inference: auto = bf16 where the serving hardware has it natively
    }
    (Path(model_dir) / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_model_meta(model_dir: str | Path) -> dict[str, Any]:
    """``{"labels": [...], "max_length": int, "cleaning": {...}}`` of an intent model folder.

    Falls back to the HF config's ``id2label`` (and 128 tokens) for a folder without the json.
    """
    path = Path(model_dir) / META_FILE
    cleaning = {"max_text_chars": DEFAULT_MAX_TEXT_CHARS, "scrub_pii": True}
    if path.is_file():
        meta = json.loads(path.read_text())
        return {
            "labels": list(meta["labels"]),
            "max_length": int(meta["max_length"]),
            "cleaning": {**cleaning, **(meta.get("cleaning") or {})},
            "temperature": float(meta.get("temperature") or 1.0),
            "precision": str(meta.get("precision") or "fp32"),  # models saved before it: as they were served
        }
    config = json.loads((Path(model_dir) / "config.json").read_text())
    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    return {"labels": labels, "max_length": 128, "cleaning": cleaning, "precision": "fp32"}


def _texts(model_input: Any) -> list[str]:
    import numpy as np

    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            column = model_input["text"]
        elif model_input.shape[1] == 1:
            column = model_input.iloc[:, 0]
        else:
            raise ValueError(f"input DataFrame needs a 'text' column; got columns {list(model_input.columns)}")
        return ["" if v is None else str(v) for v in column.tolist()]
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, (pd.Series, np.ndarray, list, tuple)):
        return ["" if v is None else str(v) for v in list(model_input)]
    raise ValueError(
        f"expected a DataFrame with a 'text' column or a list of strings, got {type(model_input).__name__}"
    )


class IntentClassifier(PythonModel):
    """Tokenizer + sequence classifier behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model_dir = context.artifacts[ARTIFACT_KEY]
        meta = read_model_meta(model_dir)
        self.labels: list[str] = meta["labels"]
        self.max_length: int = meta["max_length"]
        self.cleaning: dict[str, Any] = meta["cleaning"]
        self.temperature: float = float(meta.get("temperature", 1.0))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        from pipeline.modeling.precision import bf16_supported

        # auto (or bf16) runs in bf16 where this hardware has it natively, else in fp32: serving never refuses
        wanted = str(meta.get("precision", "fp32"))
        self.precision = "bf16" if wanted in ("auto", "bf16") and bf16_supported(self.device) else "fp32"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        n_out = int(self.model.config.num_labels)
        if n_out != len(self.labels):
            raise ValueError(f"{model_dir}: {META_FILE} lists {len(self.labels)} labels, the model has {n_out} outputs")

    def _ids(self, raw: Sequence[Any]) -> list[list[int]]:
        """Token ids (unpadded) of ``raw`` texts, cleaned like ingest first (serving sees what training
        saw, and never keeps raw PII)."""
        from pipeline.data.pii import custom_kinds
        from pipeline.data.text import clean_text

        max_chars, scrub = int(self.cleaning["max_text_chars"]), bool(self.cleaning["scrub_pii"])
        extra = custom_kinds(self.cleaning.get("pii_patterns"))
        texts = [clean_text(str(t), max_chars=max_chars, scrub=scrub, extra=extra)[0] for t in raw]
        if not texts:
            return []
        return [list(x) for x in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]

    def _path(self, batch_size: int) -> dict[str, Any]:
        return {"batch_size": batch_size, "pad_id": self.pad_id, "device": self.device, "precision": self.precision}

    # MLflow 3 reads the type hint of `model_input`: `Any` or none makes it warn, `list[str]` would
    # switch on its type-hint conversion; `pd.DataFrame` is taken as "no inference", and the explicit
    # signature given at logging time stays the contract.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per input text: the top ``label`` and its softmax probability ``confidence`` (at the
        temperature fitted on the validation split when the model was trained: calibrated).

        Through ``mlflow.pyfunc.load_model`` pass a DataFrame with a ``text`` column (MLflow's schema
        check rejects a bare list); called directly, lists, Series and arrays of strings work too.
        """
        import numpy as np

        texts = _texts(model_input)
        batch_size = int((params or {}).get("batch_size") or DEFAULT_BATCH_SIZE)
        probs = self.probabilities(texts, batch_size)
        pred = probs.argmax(axis=1) if len(texts) else np.zeros(0, dtype=np.int64)
        conf = probs.max(axis=1) if len(texts) else np.zeros(0)
        return pd.DataFrame({"label": pd.Series([self.labels[i] for i in pred], dtype=object), "confidence": conf})

    def probabilities(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
        """Calibrated class probabilities (rows × ``labels``, softmax at the fitted temperature), in
        input order. The serving app returns them with each prediction."""
        import numpy as np
        import torch

        from pipeline.modeling.inference import logits

        if not len(texts):
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        z = torch.from_numpy(logits(self.model, self._ids(list(texts)), **self._path(batch_size)))
        return torch.softmax(z / self.temperature, dim=-1).numpy().astype(np.float64)

    def probe(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[Any, Any]:
        """Logits (rows × labels) and mean-pooled last-layer embeddings (rows × hidden) of ``texts``,
        in input order, for the drift check; batched under ``torch.inference_mode``."""
        import numpy as np

        from pipeline.modeling.inference import logits_and_embeddings

        if not len(texts):
            return np.zeros((0, len(self.labels))), np.zeros((0, int(self.model.config.hidden_size)))
        return logits_and_embeddings(self.model, self._ids(list(texts)), **self._path(batch_size))


def log_intent_model(
    model_dir: str | Path,
    *,
    name: str = "model",
    tags: dict[str, str] | None = None,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log the HF folder ``model_dir`` (with ``intent_model.json``) as a pyfunc model in the active run.

    Returns MLflow's ``ModelInfo``; ``model_info.model_uri`` (``models:/m-...``) works with
    ``mlflow.register_model`` and ``mlflow.pyfunc.load_model``. ``tags`` go on the LoggedModel.
    """
    model_dir = Path(model_dir)
    if not (model_dir / META_FILE).is_file():
        raise FileNotFoundError(f"{model_dir}: no {META_FILE}; save the model with write_model_meta first")
    with tempfile.TemporaryDirectory() as tmp:
        code_path = Path(tmp) / "intent_model.py"
        code_path.write_text(_MODEL_CODE)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code_path),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            signature=signature(),
            input_example=pd.DataFrame({"text": list(INPUT_EXAMPLE_TEXTS)}),
            pip_requirements=pinned_requirements(),
            tags=tags,
            registered_model_name=registered_model_name,
        )
    log.info("logged intent model %s from %s", info.model_uri, model_dir)
    return info


def load_hf_from_model_uri(model_uri: str, dst_dir: str | Path | None = None) -> str:
    """Download a logged intent model and return its local HF folder (for warm starts).

    ``dst_dir`` defaults to a new temporary folder that the caller owns.
    """
    from mlflow.models import Model

    dst = Path(dst_dir) if dst_dir is not None else Path(tempfile.mkdtemp(prefix="intent-model-"))
    dst.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    try:
        rel = flavor["artifacts"][ARTIFACT_KEY]["path"]
    except KeyError as exc:
        raise ValueError(f"{model_uri}: not an intent model (no '{ARTIFACT_KEY}' artifact)") from exc
    hf_dir = local / rel
    if not (hf_dir / "config.json").is_file():
        raise ValueError(f"{model_uri}: artifact {rel} holds no config.json")
    log.info("downloaded %s to %s", model_uri, hf_dir)
    return str(hf_dir)
