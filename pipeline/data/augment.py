"""Augmentation for rare classes: more training rows for labels below a minimum count.

Only the training rows are augmented (the finetune step calls this after choosing new and replayed
rows); validation, test, the evaluation pool and the drift reference never see a synthetic row, and
``train_data.parquet`` (the next replay pool and lineage) keeps the real rows only: the synthetic
ones go to ``augmented.parquet`` beside it.

For each label with fewer than ``min_count`` rows, rows are added until it has ``min_count``, in
this order of preference:

1. **templates** the data source provides (a file of ``text, label`` examples, ``finetune.augment_templates``);
2. **back-translation**, only when a translation hook is configured (``finetune.augment_back_translation``:
   ``"module:function"``, a callable ``list[str] -> list[str]``, e.g. two MarianMT models through a
   pivot language); nothing is downloaded otherwise;
3. **simple perturbations** of the label's real rows (as in EDA, Wei & Zou 2019): random swap of two
   words, random deletion of a word, synonym replacement from a small bundled dictionary
   (:mod:`pipeline.data.synonyms`). Placeholders such as ``[EMAIL]`` are never touched.

Pure and seeded (no I/O besides the template file the caller reads): the same rows give the same
augmentation. Each added row carries ``augmented`` (its method) and ``augmented_from`` (the source
row's ``example_id`` or template index).
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable, Sequence

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.data.synonyms import SYNONYMS
from pipeline.errors import TrainingError

log = logging.getLogger(__name__)

METHODS = ("template", "back_translation", "swap", "delete", "synonym")


def _words(text: str) -> list[str]:
    return text.split()


def _movable(word: str) -> bool:
    return not (word.startswith("[") and word.endswith("]"))  # a PII placeholder stays where it is


def swap(text: str, rng: random.Random) -> str:
    w = _words(text)
    idx = [i for i, x in enumerate(w) if _movable(x)]
    if len(idx) < 2:
        return text
    i, j = rng.sample(idx, 2)
    w[i], w[j] = w[j], w[i]
    return " ".join(w)


def delete(text: str, rng: random.Random) -> str:
    w = _words(text)
    idx = [i for i, x in enumerate(w) if _movable(x)]
    if len(w) < 3 or not idx:
        return text
    del w[rng.choice(idx)]
    return " ".join(w)


def synonym(text: str, rng: random.Random) -> str:
    w = _words(text)
    idx = [i for i, x in enumerate(w) if x.lower().strip(".,!?") in SYNONYMS]
    if not idx:
        return text
    i = rng.choice(idx)
    core = w[i].strip(".,!?")
    tail = w[i][len(core) :] if w[i].startswith(core) else ""
    new = rng.choice(SYNONYMS[core.lower()])
    w[i] = (new.capitalize() if core[:1].isupper() else new) + tail
    return " ".join(w)


PERTURB: dict[str, Callable[[str, random.Random], str]] = {"swap": swap, "delete": delete, "synonym": synonym}


def load_hook(spec: str) -> Callable[[list[str]], list[str]]:
    """The back-translation callable named ``module:function``; a one-line TrainingError otherwise."""
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise TrainingError(f"finetune.augment_back_translation {spec!r}: cannot be imported ({exc})") from exc
    if not callable(fn):
        raise TrainingError(f"finetune.augment_back_translation {spec!r}: not a callable")
    return fn


def augment(
    train: pd.DataFrame,
    *,
    min_count: int,
    seed: int,
    templates: pd.DataFrame | None = None,
    back_translate: Callable[[list[str]], list[str]] | None = None,
) -> pd.DataFrame:
    """The synthetic rows (same columns as ``train`` plus ``augmented``, ``augmented_from``) that bring
    every label of ``train`` to ``min_count`` rows; empty when none is short."""
    rng = random.Random(seed)
    counts = train["label"].value_counts()
    added: list[dict[str, object]] = []
    for label in sorted(counts.index):
        need = int(min_count - counts[label])
        if need > 0:
            rows = train[train["label"] == label]
            pool = None if templates is None else templates[templates["label"] == label]["text"].astype(str).tolist()
            added += _for_label(rows, need, rng, pool, back_translate, start=len(added))
    if not added:
        return train.iloc[0:0].assign(augmented=pd.Series(dtype=str), augmented_from=pd.Series(dtype=str))
    return pd.DataFrame(added).reindex(columns=[*train.columns, "augmented", "augmented_from"])


def _for_label(
    rows: pd.DataFrame,
    need: int,
    rng: random.Random,
    templates: list[str] | None,
    back_translate: Callable[[list[str]], list[str]] | None,
    start: int,
) -> list[dict[str, object]]:
    """``need`` new rows of one label: templates, then back-translations, then perturbations."""
    base, seen = rows.iloc[0].to_dict(), set(rows["text"])
    out: list[dict[str, object]] = []

    def add(text: str, method: str, source: str) -> None:
        if text and text not in seen and len(out) < need:
            seen.add(text)
            out.append({**base, "text": text, "augmented": method, "augmented_from": source,
                        "example_id": f"aug-{method}-{start + len(out)}-{source}"})  # fmt: skip

    pool = templates or []
    for i in rng.sample(range(len(pool)), len(pool)):
        add(pool[i], "template", f"template:{i}")
    texts, ids = rows["text"].astype(str).tolist(), _ids(rows)
    if back_translate is not None and len(out) < need:
        k = need - len(out)
        for text, src in zip(back_translate(texts[:k]), ids[:k], strict=True):
            add(str(text), "back_translation", src)
    tries = 0
    while len(out) < need and tries < 20 * need:
        tries += 1
        k = rng.randrange(len(texts))
        method = rng.choice(tuple(PERTURB))
        add(PERTURB[method](texts[k], rng), method, ids[k])
    return out


def _ids(rows: pd.DataFrame) -> list[str]:
    if "example_id" in rows.columns:
        return rows["example_id"].astype(str).tolist()
    return [f"row:{i}" for i in rows.index]


def counts_by_method(aug: pd.DataFrame) -> dict[str, int]:
    return {m: int((aug["augmented"] == m).sum()) for m in METHODS if len(aug) and (aug["augmented"] == m).any()}


def read_templates(path: str, required: Sequence[str] = ("text", "label")) -> pd.DataFrame:
    """A templates file (CSV, JSONL or Parquet with ``text`` and ``label``); one-line TrainingError otherwise."""
    try:
        if path.endswith(".parquet"):
            df = pd.read_parquet(path)
        elif path.endswith((".jsonl", ".json")):
            df = pd.read_json(path, lines=path.endswith(".jsonl"))
        else:
            df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"finetune.augment_templates {path}: cannot be read ({str(exc).splitlines()[0]})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TrainingError(
            f"finetune.augment_templates {path}: no column {missing[0]!r} (columns: {list(df.columns)})"
        )
    return df.assign(label=df["label"].astype(str), text=df["text"].astype(str))


def for_training(cfg: PipelineConfig, train: pd.DataFrame) -> pd.DataFrame:
    """Synthetic rows for labels under ``finetune.augment_min_count`` (:mod:`pipeline.data.augment`),
    cleaned like ingest's rows (templates and translations come from outside the curated store)."""
    from pipeline.data.pii import custom_kinds
    from pipeline.data.text import clean_text

    ft = cfg.finetune
    if not ft.augment_min_count:
        return train.iloc[0:0]
    templates = read_templates(ft.augment_templates) if ft.augment_templates else None
    hook = load_hook(ft.augment_back_translation) if ft.augment_back_translation else None
    aug = augment(train, min_count=ft.augment_min_count, seed=ft.seed, templates=templates, back_translate=hook)
    if len(aug):
        extra = custom_kinds(cfg.ingest.pii_patterns)
        scrub, chars = cfg.ingest.scrub_pii, cfg.ingest.max_text_chars
        aug["text"] = [clean_text(t, max_chars=chars, scrub=scrub, extra=extra)[0] for t in aug["text"]]
        aug = aug[aug["text"].str.strip() != ""].drop_duplicates("text").reset_index(drop=True)
        log.info("augmentation: %d synthetic row(s) for labels under %d rows %s", len(aug), ft.augment_min_count,
                 counts_by_method(aug))  # fmt: skip
    return aug
