"""Every DAG imports, is wired as documented, and parsing loads no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "great_expectations", "evidently", "mlflow", "pandas", "sklearn", "datasets")

PARSE = f"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag({str(REPO / "dags")!r})
print(json.dumps({{
    "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "dags": sorted(bag.dags),
    "heavy": [m for m in {HEAVY!r} if m in sys.modules],
    "value": (EXPR),
}}))
"""


def _parse(env_extra: dict[str, str] | None = None, expr: str = "None") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN_")}
    env.update(env_extra or {})
    code = PARSE.replace("(EXPR)", f"({expr})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_folder_parses_without_heavy_imports() -> None:
    res = _parse()
    assert res["errors"] == {}
    assert res["dags"] == ["ab_test", "monitor", "retrain"]
    assert res["heavy"] == [], f"heavy modules imported at parse time: {res['heavy']}"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    b = DagBag(str(REPO / "dags"))
    assert not b.import_errors
    return b


def test_retrain_is_wired_as_documented(bag) -> None:
    dag = bag.dags["retrain"]
    assert set(dag.tags) == {"retraining", "support-intent"}
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.doc_md and "retrain" in dag.doc_md
    order = [
        "plan",
        "ingest",
        "validate",
        "champion",
        "drift_check",
        "decide",
        "should_train",
        "finetune",
        "evaluate",
        "register",
        "commit",
    ]
    assert {t.task_id for t in dag.tasks} == set(order) | {"reassess", "announce_champion"}
    # the data flows in that order: each task is downstream of the one before it
    for up, down in zip(order, order[1:]):
        assert down in {t.task_id for t in dag.get_task(up).get_flat_relatives(upstream=False)}, (up, down)
    assert set(dag.params.keys()) >= {"force_retrain", "window_start", "window_end"}
    # the watermark is committed last, and only when nothing before it failed (skips are fine)
    assert dag.get_task("commit").trigger_rule == "none_failed"
    assert dag.get_task("should_train").ignore_downstream_trigger_rules is False


def test_monitor_commits_its_watermark_last(bag) -> None:
    dag = bag.dags["monitor"]
    commit = dag.get_task("commit")
    assert commit.trigger_rule == "none_failed"
    assert {"emit_drift", "ingest"} <= commit.upstream_task_ids
    assert "decide" in dag.get_task("emit_drift").upstream_task_ids


def test_gates_have_no_retries_and_io_steps_do(bag) -> None:
    for dag_id in ("retrain", "monitor"):
        dag = bag.dags[dag_id]
        assert dag.get_task("validate").retries == 0
        assert dag.get_task("ingest").retries >= 1
    retrain = bag.dags["retrain"]
    assert retrain.get_task("evaluate").retries == 0
    assert retrain.get_task("register").retries >= 1


def test_retrain_schedule_is_seasons_or_drift(bag) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    tt = bag.dags["retrain"].timetable
    assert "AssetOrTimeSchedule" in type(tt).__name__ or isinstance(tt, AssetOrTimeSchedule)
    from pipeline.timetable import SeasonalTimetable

    assert tt.timetable == SeasonalTimetable(("03-01", "06-01", "09-01", "11-20", "12-27"), timezone="UTC")
    assert "support_intent_drift" in repr(tt)


def test_a_standing_challenger_is_reassessed_first_and_promotions_update_the_champion_asset(bag) -> None:
    retrain, monitor = bag.dags["retrain"], bag.dags["monitor"]
    assert "reassess" in retrain.get_task("finetune").upstream_task_ids  # finetune starts from the champion after
    assert "champion" in retrain.get_task("reassess").upstream_task_ids
    for dag in (retrain, monitor):
        announce = dag.get_task("announce_champion")
        assert [o.name for o in announce.outlets] == ["support_intent_champion"]
        assert announce.trigger_rule == "none_failed"  # announces a reassess promotion when nothing trained
    assert "register" in retrain.get_task("announce_champion").upstream_task_ids
    assert "reassess" in monitor.get_task("commit").upstream_task_ids


def test_monitor_emits_on_the_drift_asset(bag) -> None:
    dag = bag.dags["monitor"]
    outlets = dag.get_task("emit_drift").outlets
    assert [o.name for o in outlets] == ["support_intent_drift"]
    assert "@daily" in repr(dag.timetable) or "0 0 * * *" in repr(dag.timetable)


def test_finetune_alone_runs_on_the_training_queue(bag) -> None:
    dag = bag.dags["retrain"]
    queues = {t.task_id: t.queue for t in dag.tasks}
    assert queues.pop("finetune") == "training"
    assert set(queues.values()) == {"default"}  # AIRFLOW__OPERATORS__DEFAULT_QUEUE in the compose stack
    moved = _parse({"RETRAIN_FINETUNE__QUEUE": "gpu"}, "bag.dags['retrain'].get_task('finetune').queue")
    assert moved["value"] == "gpu"
    assert not dag.get_task("finetune").executor_config  # nothing for the KubernetesExecutor unless asked


def test_a_gpu_pod_template_goes_to_finetune_alone() -> None:
    # KubernetesExecutor (docker/helm/values-kubernetes.yaml): finetune's pod from the GPU template
    expr = "{t.task_id: t.executor_config for t in bag.dags['retrain'].tasks if t.executor_config}"
    got = _parse({"RETRAIN_FINETUNE__POD_TEMPLATE_FILE": "/opt/airflow/pod_templates/gpu.yaml"}, expr)
    assert got["value"] == {"finetune": {"pod_template_file": "/opt/airflow/pod_templates/gpu.yaml"}}


def test_ab_test_decides_hourly_and_announces_a_promotion(bag) -> None:
    dag = bag.dags["ab_test"]
    assert "@hourly" in repr(dag.timetable) or "0 * * * *" in repr(dag.timetable)
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.get_task("ab_decide").upstream_task_ids == {"champion"}
    announce = dag.get_task("announce_champion")
    assert [o.name for o in announce.outlets] == ["support_intent_champion"]
    assert announce.upstream_task_ids == {"ab_decide", "champion"}


def test_ab_test_also_runs_on_feedback_volume_through_an_asset_watcher(bag) -> None:
    """The hourly cron OR the feedback asset, whose watcher survives the scheduler's serialization
    (the triggerer rebuilds it from its classpath and kwargs)."""
    from airflow.serialization.serialized_objects import DagSerialization

    from pipeline.ab.trigger import CLASSPATH, FeedbackVolumeTrigger
    from pipeline.config import load_config

    dag = bag.dags["ab_test"]
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.name == "support_intent_feedback"
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, FeedbackVolumeTrigger)
    cfg = load_config()
    assert watcher.trigger.every == cfg.ab.trigger_feedback and watcher.trigger.log_url == cfg.serving_log_url
    back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    (sasset,) = back.timetable.asset_condition.objects
    (sw,) = sasset.watchers
    assert sw.trigger["classpath"] == CLASSPATH and sw.trigger["kwargs"]["every"] == cfg.ab.trigger_feedback
    import importlib

    module, _, name = sw.trigger["classpath"].rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**sw.trigger["kwargs"])
    assert rebuilt.serialize() == watcher.trigger.serialize()


def test_ab_test_schedule_without_a_watcher_or_a_cron() -> None:
    from pipeline.config import AbConfig, ScheduleConfig
    from pipeline.schedules import ab_schedule

    url = "sqlite:///feedback.db"
    assert ab_schedule(ScheduleConfig(), AbConfig(trigger_feedback=0), url) == "@hourly"
    (asset,) = ab_schedule(ScheduleConfig(time_triggers=False), AbConfig(), url)
    assert asset.name == "support_intent_feedback" and asset.watchers[0].trigger.every == 500
    assert ab_schedule(ScheduleConfig(time_triggers=False), AbConfig(trigger_feedback=0), url) is None


def test_time_triggers_can_be_switched_off() -> None:
    from pipeline.config import ScheduleConfig
    from pipeline.schedules import ab_schedule, monitor_schedule, retrain_schedule, seasonal_timetable

    off = ScheduleConfig(time_triggers=False)
    assert monitor_schedule(off) is None and ab_schedule(off) is None
    assert monitor_schedule(ScheduleConfig(monitor_cron=None)) is None
    assert [a.name for a in retrain_schedule(off)] == ["support_intent_drift"]
    tt = seasonal_timetable(ScheduleConfig(season_starts=("11-20", "02-29"), timezone="Europe/Berlin"))
    assert tt.season_starts == ("02-29", "11-20") and tt.timezone == "Europe/Berlin"


def test_the_retry_delay_of_every_dag_is_configured() -> None:
    expr = "{d: int(bag.dags[d].default_args['retry_delay'].total_seconds()) for d in bag.dags}"
    assert set(_parse(expr=expr)["value"].values()) == {30}
    assert set(_parse({"RETRAIN_SCHEDULE__RETRY_DELAY_S": "5"}, expr)["value"].values()) == {5}
