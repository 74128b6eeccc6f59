from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data import augment
from pipeline.errors import TrainingError


def frame() -> pd.DataFrame:
    rows = [
        {"example_id": f"c{i}", "text": f"where is my order number {i} please", "label": "common"} for i in range(30)
    ]
    rows += [
        {"example_id": "r0", "text": "I want a refund for the broken item [EMAIL]", "label": "rare"},
        {"example_id": "r1", "text": "please send my money back quick", "label": "rare"},
    ]
    return pd.DataFrame(rows)


def test_rare_labels_are_filled_up_to_the_minimum_and_common_ones_untouched() -> None:
    aug = augment.augment(frame(), min_count=10, seed=1)
    assert (aug["label"] == "rare").sum() == 8 and (aug["label"] == "common").sum() == 0
    assert set(aug["augmented"]) <= {"swap", "delete", "synonym"}
    assert set(aug["augmented_from"]) <= {"r0", "r1"}
    assert not set(aug["text"]) & set(frame()["text"])  # new texts only
    from_r0 = aug[aug["augmented_from"] == "r0"]["text"]
    assert len(from_r0) and all("[EMAIL]" in t for t in from_r0)  # placeholders are never deleted
    again = augment.augment(frame(), min_count=10, seed=1)
    pd.testing.assert_frame_equal(aug, again)  # seeded


def test_templates_come_first_and_back_translation_only_when_configured() -> None:
    templates = pd.DataFrame({"text": ["refund me now", "give me my money back"], "label": ["rare", "rare"]})
    calls: list[list[str]] = []

    def back(texts: list[str]) -> list[str]:
        calls.append(texts)
        return [f"{t} (translated back)" for t in texts]

    aug = augment.augment(frame(), min_count=6, seed=1, templates=templates, back_translate=back)
    assert list(aug["augmented"]) == ["template", "template", "back_translation", "back_translation"]
    assert calls == [["I want a refund for the broken item [EMAIL]", "please send my money back quick"]]
    assert "back_translation" not in set(augment.augment(frame(), min_count=6, seed=1)["augmented"])


def test_a_hook_that_cannot_be_imported_is_one_clear_error() -> None:
    with pytest.raises(TrainingError, match=r"^finetune.augment_back_translation 'nowhere:fn': cannot be imported"):
        augment.load_hook("nowhere:fn")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "refund", "[EMAIL]", "order", "late", "please", "x"]), min_size=1, max_size=8),
       st.integers(0, 10_000))  # fmt: skip
def test_perturbations_keep_placeholders_and_only_rearrange_or_replace_words(words: list[str], seed: int) -> None:
    text = " ".join(words)
    rng = random.Random(seed)
    assert sorted(augment.swap(text, rng).split()) == sorted(words)
    deleted = augment.delete(text, rng).split()
    assert deleted.count("[EMAIL]") == words.count("[EMAIL]") and len(deleted) >= len(words) - 1
    assert augment.synonym(text, rng).count("[EMAIL]") == words.count("[EMAIL]")


def test_the_step_trains_on_synthetic_rows_but_never_replays_or_evaluates_them(make_cfg, tmp_path) -> None:
    from pipeline.steps import finetune

    rows = frame().assign(timestamp=pd.Timestamp("2025-03-01", tz="UTC"))
    rows.to_parquet(tmp_path / "train.parquet", index=False)
    rows.iloc[::3].to_parquet(tmp_path / "val.parquet", index=False)
    templates = tmp_path / "templates.csv"
    pd.DataFrame({"text": ["refund to jane@example.com now"], "label": ["rare"]}).to_csv(templates, index=False)
    cfg = make_cfg(finetune={"epochs": 1, "augment_min_count": 12, "augment_templates": str(templates)})
    out = tmp_path / "out"
    result = finetune.run(cfg, train_uri=str(tmp_path / "train.parquet"), val_uri=str(tmp_path / "val.parquet"),
                          out_dir=str(out), pipeline_run_id="p-aug")  # fmt: skip
    assert result.augmented_rows == 10 and result.train_rows == len(rows)
    synthetic = pd.read_parquet(out / "augmented.parquet")
    assert "refund to [EMAIL] now" in set(synthetic["text"])  # templates are scrubbed like ingest's rows
    assert "augmented" not in pd.read_parquet(out / "train_data.parquet").columns  # replay pool: real rows only
