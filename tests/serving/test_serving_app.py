"""The serving app with in-process models: assignment, bounds, feedback, logs, reloads, faults."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pipeline.serving import assign
from pipeline.serving.log import FEEDBACK, PREDICTIONS, counts, wait_flushed

LABELS = ("order_status", "refund_request", "account_access")


class FakeModel:
    """Predicts one fixed label; exposes ``labels`` like the project's pyfunc."""

    def __init__(self, label: str) -> None:
        self.labels = LABELS
        self.label = label

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"label": [self.label] * len(df), "confidence": [0.9] * len(df)})


class FakeSource:
    def __init__(self, aliases: dict[str, str]) -> None:
        self.map = dict(aliases)
        self.down = False
        self.loads: list[str] = []

    def aliases(self) -> dict[str, str]:
        if self.down:
            raise ConnectionError("registry unreachable")
        return dict(self.map)

    def load(self, version: str) -> Any:
        self.loads.append(version)
        return FakeModel(LABELS[int(version) % len(LABELS)])


def _client(make_cfg, source: FakeSource, **serve: Any) -> TestClient:
    from pipeline.serving.app import create_app

    cfg = make_cfg(serve={"reload_interval_s": 3600, **serve})
    return TestClient(create_app(cfg, source=source, start_threads=False))


def _rows(client: TestClient) -> list[dict[str, Any]]:
    plog = client.app.state.log  # type: ignore[attr-defined]
    assert wait_flushed(plog)
    with sa.create_engine(plog.url).connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(PREDICTIONS)).mappings()]


def test_assignment_is_sticky_and_honours_the_share():
    users = [f"user-{i}" for i in range(20_000)]
    share = sum(assign.variant(u, 0.1, "7") == assign.CHALLENGER for u in users) / len(users)
    assert 0.09 < share < 0.11
    assert all(assign.variant(u, 0.1, "7") == assign.variant(u, 0.1, "7") for u in users[:500])
    assert {assign.variant(u, 0.1, None) for u in users[:500]} == {assign.CHAMPION}  # no test: all champion
    moved = sum(assign.variant(u, 0.1, "7") != assign.variant(u, 0.1, "8") for u in users) / len(users)
    assert 0.1 < moved < 0.3  # a new test draws users afresh


def test_the_guard_draws_its_share_independently_of_the_test():
    users = [f"user-{i}" for i in range(20_000)]

    def routes(**kw: Any) -> list[str]:
        return [assign.route(u, challenger_share=0.1, **kw) for u in users]

    both = routes(challenger_key="7", guard_share=0.05, guard_key="6")
    assert 0.09 < both.count(assign.CHALLENGER) / len(users) < 0.11
    assert 0.04 < both.count(assign.PREVIOUS) / len(users) < 0.06  # 5% of the 90% outside the test: 4.5%
    assert both == routes(challenger_key="7", guard_share=0.05, guard_key="6")  # sticky
    assert assign.PREVIOUS not in routes(challenger_key="7", guard_share=0.05, guard_key=None)  # no guard running
    alone = routes(challenger_key=None, guard_share=0.05, guard_key="6")
    assert assign.CHALLENGER not in alone and 0.04 < alone.count(assign.PREVIOUS) / len(users) < 0.06


def test_while_a_guard_runs_previous_keeps_its_share_and_is_logged(make_cfg):
    source = FakeSource({"champion": "2", "previous": "1"})
    with _client(make_cfg, source, guard_share=0.3) as client:
        assert client.get("/ready").json()["previous"] == "1"
        got = [client.post("/predict", json={"text": "refund please", "user_id": f"u{i}"}).json() for i in range(60)]
        variants = {(b["variant"], b["model_version"]) for b in got}
        assert variants == {("champion", "2"), ("previous", "1")}
        rows = _rows(client)
        assert {(r["variant"], r["model_version"]) for r in rows} == variants and len(rows) == 60
        source.map = {"champion": "2"}  # the guard ended (kept): previous leaves the traffic
        client.app.state.holder.refresh()  # type: ignore[attr-defined]
        again = [client.post("/predict", json={"text": "refund", "user_id": f"u{i}"}).json() for i in range(30)]
        assert {b["variant"] for b in again} == {"champion"} and client.get("/ready").json()["previous"] is None


def test_predict_routes_users_stickily_and_logs_every_text_once(make_cfg):
    with _client(make_cfg, FakeSource({"champion": "1", "challenger": "2"}), challenger_share=0.5) as client:
        seen: dict[str, set[str]] = {}
        for i in range(40):
            user = f"u{i % 8}"
            r = client.post("/predict", json={"text": "where is my parcel", "user_id": user})
            assert r.status_code == 200, r.text
            body = r.json()
            seen.setdefault(user, set()).add(body["variant"])
            assert body["model_version"] == ("2" if body["variant"] == "challenger" else "1")
        assert all(len(v) == 1 for v in seen.values())  # sticky
        assert {v for s in seen.values() for v in s} == {"champion", "challenger"}
        r = client.post("/predict", json={"texts": ["a", "b", "c"], "request_id": "batch-1"})
        assert [p["request_id"] for p in r.json()["predictions"]] == ["batch-1:0", "batch-1:1", "batch-1:2"]
        rows = _rows(client)
    assert len(rows) == 43 and len({r["request_id"] for r in rows}) == 43
    assert all(len(r["user_key"]) == 32 and not r["user_key"].startswith("u") for r in rows)  # ids are hashed


def test_no_pii_reaches_the_log(make_cfg):
    with _client(make_cfg, FakeSource({"champion": "1"})) as client:
        client.post("/predict", json={"text": "mail me at jane.doe@example.com or +44 20 7946 0958"})
        (row,) = _rows(client)
    assert "example.com" not in row["text"] and "7946" not in row["text"] and "[EMAIL]" in row["text"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x" * 2001}, "text"),
        ({"texts": ["a"] * 65}, "texts"),
        ({"texts": ["ok", ""]}, "texts[1]"),
        ({"text": "a", "texts": ["b"]}, "exactly one"),
        ({"text": "a", "colour": "red"}, "colour"),
        ({"text": "a", "request_id": "has space"}, "request_id"),
    ],
)
def test_bad_predict_input_is_a_422_naming_the_field(make_cfg, body, field):
    with _client(make_cfg, FakeSource({"champion": "1"})) as client:
        r = client.post("/predict", json=body)
    assert r.status_code == 422 and field in r.text


def test_feedback_counts_once_and_refuses_what_it_cannot_use(make_cfg):
    with _client(make_cfg, FakeSource({"champion": "1", "challenger": "2"}), challenger_share=0.5) as client:
        ids = {}
        for user in ("a", "b", "c", "d", "e", "f"):
            body = client.post("/predict", json={"text": "refund please", "user_id": user}).json()
            ids[user] = (body["request_id"], body["predictions"][0]["label"])
        rid, label = ids["a"]
        assert client.post("/feedback", json={"request_id": rid, "label": label}).json()["correct"] is True
        assert client.post("/feedback", json={"request_id": rid, "label": label}).status_code == 409
        assert client.post("/feedback", json={"request_id": "nope", "correct": True}).status_code == 404
        r = client.post("/feedback", json={"request_id": ids["b"][0], "label": "not_a_label"})
        assert r.status_code == 422 and "not_a_label" in r.text
        assert client.post("/feedback", json={"request_id": ids["b"][0]}).status_code == 422  # neither field
        assert client.post("/feedback", json={"request_id": ids["c"][0], "correct": False}).json()["correct"] is False
        url = client.app.state.log.url  # type: ignore[attr-defined]
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar() == 2
    arms = {(a.variant, a.model_version): (a.n, a.successes) for a in counts(url)}
    assert sum(n for n, _ in arms.values()) == 2 and sum(s for _, s in arms.values()) == 1


def test_alias_moves_under_load_drop_no_request_and_log_each_once(make_cfg):
    source = FakeSource({"champion": "1"})
    with _client(make_cfg, source, challenger_share=0.5) as client:
        holder = client.app.state.holder  # type: ignore[attr-defined]
        failures, sent, versions = [], [], set()
        stop = threading.Event()

        def hammer(k: int) -> None:
            i = 0
            while not stop.is_set():
                rid = f"w{k}-{i}"
                r = client.post("/predict", json={"text": "hello", "user_id": f"user{i % 13}", "request_id": rid})
                (sent if r.status_code == 200 else failures).append(rid)
                versions.add(r.json().get("model_version"))
                i += 1

        workers = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for w in workers:
            w.start()
        for move in ({"champion": "1", "challenger": "2"}, {"champion": "2"}):
            threading.Event().wait(0.3)
            source.map = move
            assert holder.refresh() is True
        threading.Event().wait(0.3)
        stop.set()
        for w in workers:
            w.join()
        rows = _rows(client)
    assert failures == [] and len(sent) > 50
    assert {"1", "2"} <= versions
    assert sorted(r["request_id"] for r in rows) == sorted(sent)  # each logged exactly once
    assert source.loads == ["1", "2"]  # a version is loaded once, then reused


def test_the_log_database_down_never_blocks_predictions(make_cfg):
    down = "postgresql+psycopg2://nobody@127.0.0.1:9/none?connect_timeout=1"
    with _client(make_cfg, FakeSource({"champion": "1"}), log_url=down, log_buffer_max=3) as client:
        for _ in range(5):
            assert client.post("/predict", json={"text": "hello"}).status_code == 200
        plog = client.app.state.log  # type: ignore[attr-defined]
        assert plog.flush() == 0 and plog.last_error
        assert len(plog.buffer) == 3 and plog.dropped == 2
        metrics = client.get("/metrics").text
        assert "retrain_serving_log_dropped_total 2.0" in metrics and "retrain_serving_log_buffered 3.0" in metrics
        ready = client.get("/ready").json()
        assert ready["ready"] is True and ready["log_error"]
        rid = client.post("/predict", json={"text": "hello"}).json()["request_id"]
        assert client.post("/feedback", json={"request_id": rid, "correct": True}).status_code == 503


def test_registry_down_at_start_is_not_ready_and_says_why_then_recovers(make_cfg):
    source = FakeSource({"champion": "1"})
    source.down = True
    with _client(make_cfg, source) as client:
        r = client.get("/ready")
        assert r.status_code == 503 and "registry unreachable" in r.json()["reason"]
        assert client.post("/predict", json={"text": "hi"}).status_code == 503
        assert client.get("/health").status_code == 200
        source.down = False
        client.app.state.holder.refresh()  # type: ignore[attr-defined]
        assert client.get("/ready").status_code == 200
        source.down = True  # down later: the loaded model keeps serving
        client.app.state.holder.refresh()  # type: ignore[attr-defined]
        assert client.post("/predict", json={"text": "hi"}).status_code == 200
        assert "registry unreachable" in client.get("/ready").json()["registry_error"]
