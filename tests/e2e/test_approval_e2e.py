"""Human approval of a promotion in the real retrain DAG, through Airflow's human-in-the-loop
operator under ``dag.test()``.

With ``register.require_approval: true`` the first model passes the gate but only takes the
``challenger`` alias; ``approve_promotion`` parks in AWAITING_INPUT with the decision record as its
body; a person answers (here a thread records the answer as the HITL REST API does); then
``promote_approved`` moves ``champion``, the alias history names the approver, and
``announce_champion`` updates the champion asset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _answer(option: str, user: str, timeout_s: float = 300) -> str:
    """Wait for the parked HITL task, then record ``option`` from ``user`` and resume it."""
    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with create_session() as s:
            detail = s.scalars(select(HITLDetail).where(HITLDetail.responded_at.is_(None))).first()
            ti = None if detail is None else s.get(TaskInstance, detail.ti_id)
            if ti is not None and ti.state in (TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED):
                body = detail.body or ""
                detail.responded_by = {"id": user, "name": user}
                detail.responded_at = timezone.utcnow()
                detail.chosen_options = [option]
                detail.params_input = {}
                s.add(detail)
                handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=s)
                return body
        time.sleep(0.5)
    raise AssertionError("no human-in-the-loop task waited for input")


def test_a_passed_first_model_waits_for_approval_then_becomes_champion(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "RETRAIN_HOME": str(tmp_path / "home"),
        "RETRAIN_SIMULATOR__MESSAGES_PER_DAY": "14",
        "RETRAIN_FINETUNE__BASE_MODEL": str(tiny_model_dir),
        "RETRAIN_FINETUNE__EPOCHS": "8",
        "RETRAIN_FINETUNE__BATCH_SIZE": "8",
        "RETRAIN_FINETUNE__FREEZE_EMBEDDINGS": "false",
        "RETRAIN_FINETUNE__FREEZE_LAYERS": "0",
        "RETRAIN_FINETUNE__LEARNING_RATE": "0.003",
        "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "300",
        "RETRAIN_EVALUATE__BOOTSTRAP_SAMPLES": "200",
        "RETRAIN_EVALUATE__FIRST_MODEL_MIN_MACRO_F1": "0.05",
        "RETRAIN_SCHEDULE__TIME_TRIGGERS": "false",
        "RETRAIN_REGISTER__REQUIRE_APPROVAL": "true",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    from airflow.dag_processing.dagbag import DagBag

    from pipeline import registry, registry_history
    from pipeline.config import load_config
    from pipeline.data import simulator

    cfg = load_config()
    simulator.write_landing(cfg.simulator, cfg.landing_dir_path, start=date(2025, 1, 1), end=date(2025, 1, 29))
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors
    retrain = bag.dags["retrain"]
    assert {"approval_request", "approve_promotion", "promote_approved"} <= set(retrain.task_ids)

    # import in this thread what both threads need: two threads importing Airflow's models at once deadlock
    import airflow.models.hitl
    import airflow.models.trigger
    import airflow.serialization.serialized_objects  # noqa: F401
    from airflow.models import import_all_models

    import_all_models()
    answered: dict = {}
    person = threading.Thread(target=lambda: answered.update(body=_answer("Approve", "alice")), daemon=True)
    person.start()  # a person answers while dag.test() (main thread: it installs signal handlers) waits
    run = retrain.test(run_conf={"window_end": "2025-01-29"})
    person.join(timeout=10)
    assert run.state == "success"
    assert answered["body"].startswith("**promote**")  # the approver saw the decision record
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert {k: states[k] for k in ("register", "approval_request", "approve_promotion", "promote_approved",
                                   "announce_champion")} == dict.fromkeys(
        ("register", "approval_request", "approve_promotion", "promote_approved", "announce_champion"), "success"
    )  # fmt: skip
    champ = registry.get_champion(cfg)
    assert champ.version == "1"
    moves = registry_history.moves(cfg.registry_history_url, cfg.register.model_name)
    assert [(m.alias, m.to_version, m.actor) for m in moves] == [
        ("challenger", "1", "pipeline"),  # the gate said promote: it waits as challenger
        ("champion", "1", "airflow:alice"),  # the person approved
        ("challenger", None, "airflow:alice"),
    ]
