"""artifact_root and state_dir as fsspec URLs: joins, atomic publishing, the watermark and the eval pool.

``memory://`` stands for any object store here (no rename, one PUT per object); the S3 path through
s3fs against a loopback S3 server is in tests/integration/test_s3_artifact_root.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import paths, storage
from pipeline.data import eval_pool
from pipeline.data.watermark import Watermark
from pipeline.results import ValidateResult


@pytest.fixture
def root(tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    url = f"memory://retrain-{uuid.uuid4().hex[:8]}/artifacts"
    yield url
    fs, path = paths.filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _result() -> ValidateResult:
    return ValidateResult(
        success=True, expectations_evaluated=3, expectations_failed=0, result_uri="r", data_docs_uri=None,
        quarantine_uri=None, rows_quarantined=0, mlflow_run_id="m",
    )  # fmt: skip


def test_join_keeps_a_urls_double_slash_and_local_paths_stay_paths(tmp_path) -> None:
    assert paths.step_dir("s3://bucket/a/", "run:1", "ingest") == "s3://bucket/a/run_1/ingest"
    assert paths.join("file:///x/y", "z") == "/x/y/z"
    assert paths.step_dir(str(tmp_path), "r", "drift") == str(tmp_path / "r" / "drift")
    assert paths.is_local(tmp_path) and paths.is_local("file:///x") and not paths.is_local("memory://b/x")
    with pytest.raises(ValueError, match="unknown step"):
        paths.step_dir("s3://b", "r", "nope")


@given(st.lists(st.text(alphabet="abc_-.", min_size=1, max_size=5), min_size=1, max_size=4))
def test_a_joined_url_splits_back_into_its_parts(parts) -> None:
    url = paths.join("s3://bucket/root", *parts)
    assert url.startswith("s3://bucket/root/") and url.split("/")[4:] == [p.strip("/") for p in parts]


def test_a_remote_step_is_published_with_its_marker_last_and_read_back(root) -> None:
    out = paths.step_dir(root, "r1", "validate")
    assert storage.load_done(out, ValidateResult) is None
    with storage.staged_dir(out) as stage:
        (stage / "docs").mkdir()
        (stage / "docs" / "index.html").write_text("<p>ok</p>")
        pd.DataFrame({"text": ["a"], "label": ["x"]}).to_parquet(stage / "q.parquet")
        storage.write_done(stage, _result())
    assert storage.load_done(out, ValidateResult) == _result()
    assert paths.local_path(paths.join(out, "docs", "index.html")).read_text() == "<p>ok</p>"
    assert pd.read_parquet(paths.local_path(paths.join(out, "q.parquet")))["label"].tolist() == ["x"]
    assert paths.listdir(out, "*.parquet") == [paths.join(out, "q.parquet")]


def test_a_failed_remote_step_uploads_nothing_and_a_leftover_is_replaced(root) -> None:
    out = paths.step_dir(root, "r2", "ingest")
    with pytest.raises(RuntimeError), storage.staged_dir(out) as stage:
        (stage / "train.parquet").write_bytes(b"half")
        raise RuntimeError("killed")
    assert not paths.exists(out)
    # an attempt killed mid-upload leaves files without a marker: the next publish clears them
    fs, path = paths.filesystem(out)
    fs.pipe_file(paths.join(path, "stale.parquet"), b"x")
    with storage.staged_dir(out) as stage:
        (stage / "train.parquet").write_bytes(b"whole")
        storage.write_done(stage, _result())
    assert sorted(Path(p).name for p in paths.listdir(out)) == ["_SUCCESS", "train.parquet"]


def test_the_marker_is_the_last_object_written(root, monkeypatch) -> None:
    fs, _ = paths.filesystem(root)
    order: list[str] = []
    real = type(fs).put_file

    def spy(self, lpath, rpath, *a, **k):
        order.append(Path(rpath).name)
        return real(self, lpath, rpath, *a, **k)

    monkeypatch.setattr(type(fs), "put_file", spy)
    with storage.staged_dir(paths.step_dir(root, "r3", "drift")) as stage:
        for name in ("b.json", "a.html", "c.parquet"):
            (stage / name).write_text("x")
        storage.write_done(stage, _result())
    assert order[-1] == storage.MARKER and len(order) == 4


def test_the_watermark_ledger_lives_under_a_remote_state_dir(root, tmp_path) -> None:
    state = root.rsplit("/", 1)[0] + "/state"
    landing = tmp_path / "support_2025-01-01.jsonl"
    landing.write_text('{"text": "hi", "label": "x"}\n')
    wm = Watermark.load(state, "retrain")
    pending = wm.pending([landing], "run-1")
    assert [p.path for p in pending] == [landing]
    wm.commit([(p.path, p.sha256) for p in pending], "run-1")
    again = Watermark.load(state, "retrain")
    assert again.pending([landing], "run-2") == []
    assert json.loads(storage.read_text(again.path) or "{}")["consumer"] == "retrain"
    assert not paths.is_local(again.path)


def test_an_unreadable_remote_ledger_is_one_line_naming_it(root) -> None:
    from pipeline.errors import IngestError

    fs, path = paths.filesystem(root)
    fs.pipe_file(paths.join(path, "watermark-retrain.json"), b"{not json")
    with pytest.raises(IngestError, match=r"watermark memory://.*watermark-retrain.json: cannot be read"):
        Watermark.load(root, "retrain")


def test_the_eval_pool_is_shared_through_a_remote_root(root, make_cfg, tmp_path) -> None:
    cfg = make_cfg(artifact_root=root)
    test = paths.join(root, "w1", "ingest", "test.parquet")
    frame = pd.DataFrame({"example_id": ["1", "2"], "text": ["a", "b"], "label": ["x", "y"], "segment": ["s", "s"]})
    with fsspec.open(test, "wb") as fh:
        frame.to_parquet(fh)
    assert eval_pool.add(cfg, test, "w1", "2025-01-07") == 2
    assert eval_pool.add(cfg, test, "w1", "2025-01-07") == 0  # once per window
    pool, memory = eval_pool.load(cfg, as_of="2025-01-08", exclude_ids=["2"])
    assert pool["example_id"].tolist() == ["1"] and memory.empty


def test_a_scheme_without_a_driver_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no filesystem for 'nosuchfs://'|nosuchfs"):
        paths.exists("nosuchfs://bucket/x")


def test_a_missing_remote_object_is_file_not_found(root) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        paths.local_path(paths.join(root, "nope.parquet"))
