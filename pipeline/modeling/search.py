"""Hyperparameter search for the fine-tune: an Optuna study with pruning, each trial a nested MLflow run.

Optional (``finetune.search_trials`` > 0). The study maximises the validation macro-F1 of one fit
per trial on the step's own train/val rows; a median pruner stops a trial whose epoch-``k`` score is
below the median of earlier trials at ``k``. The search space is centred on the configured values:

- ``learning_rate``: log-uniform over [lr / 4, lr × 4];
- ``head_lr_multiplier``: log-uniform over [1, 30];
- ``freeze_layers`` (strategy ``freeze``): 0 … ``search_max_freeze_layers``;
- ``lora_r`` (strategy ``lora``): 4, 8 or 16.

The best trial's values replace the configured ones for the final fit (which the caller runs and
logs as usual); the study is logged to the parent run: every trial (``search/trials.csv``), the best
values as ``search_best_*`` params and ``search_best_val_macro_f1``. Seeded (TPE sampler), so a
retried step searches the same way.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow

from pipeline.config import FinetuneConfig

log = logging.getLogger(__name__)

# one fit: (config of the trial, epoch callback (epoch, val macro-F1)) -> best val macro-F1
Fit = Callable[[FinetuneConfig, Callable[[int, float], None]], float]


def space(trial: Any, ft: FinetuneConfig) -> dict[str, Any]:
    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", ft.learning_rate / 4, ft.learning_rate * 4, log=True),
        "head_lr_multiplier": trial.suggest_float("head_lr_multiplier", 1.0, 30.0, log=True),
    }
    if ft.strategy == "freeze":
        params["freeze_layers"] = trial.suggest_int("freeze_layers", 0, ft.search_max_freeze_layers)
    else:
        params["lora_r"] = trial.suggest_categorical("lora_r", [4, 8, 16])
    return params


def tune(ft: FinetuneConfig, fit: Fit) -> FinetuneConfig:
    """Run the study; return ``ft`` with the best trial's values (and the search switched off)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=ft.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )

    def objective(trial: optuna.Trial) -> float:
        params = space(trial, ft)
        trial_ft = ft.model_copy(update={**params, "search_trials": 0, "checkpoint_every_steps": 0})
        parent = mlflow.active_run()
        exp = parent.info.experiment_id if parent is not None else None  # nested runs do not inherit it
        with mlflow.start_run(nested=True, experiment_id=exp, run_name=f"trial-{trial.number}",
                              tags={"search_trial": str(trial.number)}):  # fmt: skip
            mlflow.log_params(params)

            def report(epoch: int, value: float) -> None:
                trial.report(value, epoch)
                if trial.should_prune():
                    mlflow.set_tag("pruned_at_epoch", str(epoch))
                    raise optuna.TrialPruned(f"epoch {epoch}: val macro-F1 {value:.4f} below the median")

            value = fit(trial_ft, report)
            mlflow.log_metric("best_val_macro_f1", value)
            return value

    study.optimize(objective, n_trials=ft.search_trials, timeout=ft.search_timeout_s, catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        log.warning("search: no trial completed; the configured values stay")
        return ft.model_copy(update={"search_trials": 0})
    best = study.best_trial
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    log.info("search: %d trial(s), %d pruned; best #%d val macro-F1 %.4f with %s",
             len(study.trials), pruned, best.number, best.value, best.params)  # fmt: skip
    mlflow.log_params({f"search_best_{k}": v for k, v in best.params.items()})
    mlflow.log_metrics({"search_best_val_macro_f1": float(best.value or 0.0), "search_trials": len(study.trials),
                        "search_pruned": pruned})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trials.csv"
        study.trials_dataframe().to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="search")
    return ft.model_copy(update={**best.params, "search_trials": 0})
