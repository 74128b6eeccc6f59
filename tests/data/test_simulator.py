from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from pipeline.config import DEFAULT_LABELS, ColumnMap, ScheduleConfig, SimulatorConfig
from pipeline.data.pii import find_pii
from pipeline.data.simulator import (
    PRODUCTS,
    SEASON_STARTS,
    intent_priors,
    season_of,
    simulate_messages,
    write_landing,
)
from pipeline.data.sources import file_date, read_landing_file
from pipeline.data.text import normalize_text


def _words(rows: list[dict[str, str]]) -> str:
    return " ".join(r["text"].lower() for r in rows)


@pytest.fixture(scope="module")
def year() -> list[dict[str, str]]:
    return simulate_messages(SimulatorConfig(messages_per_day=8), date(2025, 1, 1), date(2025, 12, 31))


def test_same_seed_same_rows_other_seed_differs() -> None:
    cfg = SimulatorConfig(messages_per_day=20)
    a = simulate_messages(cfg, date(2025, 3, 1), date(2025, 3, 3))
    assert a == simulate_messages(cfg, date(2025, 3, 1), date(2025, 3, 3))
    b = simulate_messages(SimulatorConfig(messages_per_day=20, seed=7), date(2025, 3, 1), date(2025, 3, 3))
    assert [r["text"] for r in a] != [r["text"] for r in b]


def test_a_day_does_not_depend_on_the_range_asked() -> None:
    cfg = SimulatorConfig(messages_per_day=15)
    week = simulate_messages(cfg, date(2025, 5, 1), date(2025, 5, 7))
    day = simulate_messages(cfg, date(2025, 5, 4), date(2025, 5, 4))
    assert [r for r in week if r["timestamp"].startswith("2025-05-04")] == day


def test_rows_have_the_contract_fields(year: list[dict[str, str]]) -> None:
    assert {tuple(r) for r in year} == {("text", "label", "timestamp", "segment")}
    assert {r["segment"] for r in year} == {"mobile", "web", "business"}
    for r in year[:200]:
        ts = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0
    assert [r["timestamp"] for r in year] == sorted(r["timestamp"] for r in year)


def test_all_labels_over_a_year(year: list[dict[str, str]]) -> None:
    assert set(Counter(r["label"] for r in year)) == set(DEFAULT_LABELS)


def test_price_match_only_from_black_friday_to_new_year(year: list[dict[str, str]]) -> None:
    days = {r["timestamp"][5:10] for r in year if r["label"] == "price_match"}
    assert days and all("11-20" <= d <= "12-31" for d in days)
    assert intent_priors(date(2025, 7, 1))["price_match"] == 0
    assert intent_priors(date(2025, 11, 28))["price_match"] > 0.05


def test_seasons_line_up_with_the_schedule() -> None:
    assert tuple(start for start, _ in SEASON_STARTS) == ScheduleConfig().season_starts
    days = [(1, 15), (3, 1), (6, 1), (9, 1), (11, 20), (12, 26), (12, 27)]
    assert [season_of(date(2025, m, d)) for m, d in days] == [
        "winter",
        "spring",
        "summer",
        "autumn",
        "holiday",
        "holiday",
        "winter",
    ]


def test_intent_priors_move_with_the_calendar() -> None:
    jan, may, dec = (intent_priors(date(2025, m, 10)) for m in (1, 5, 12))
    assert jan["return_item"] > 1.5 * may["return_item"] and jan["refund_request"] > 1.5 * may["refund_request"]
    assert dec["shipping_delay"] > 1.5 * may["shipping_delay"]
    assert dec["gift_card"] > 2 * may["gift_card"]
    assert abs(sum(jan.values()) - 1) < 1e-9


def test_seasonal_vocabulary(year: list[dict[str, str]]) -> None:
    jan = _words([r for r in year if r["timestamp"][5:7] == "01"])
    jul = _words([r for r in year if r["timestamp"][5:7] == "07"])
    for word in ("parka", "snow boots", "wool scarf"):
        assert word in jan and word not in jul
    for word in ("swimsuit", "sandals", "desk fan"):
        assert word in jul and word not in jan
    assert "christmas" in jan and "christmas" not in jul
    assert "vacation" in jul


def test_noise_pii_duplicates_and_empty_texts(year: list[dict[str, str]]) -> None:
    texts = [r["text"] for r in year]
    with_pii = [t for t in texts if find_pii(normalize_text(t))]
    assert 0.2 < len(with_pii) / len(texts) < 0.5
    kinds = {k for t in with_pii for k, _ in find_pii(normalize_text(t))}
    assert kinds == {"email", "phone", "card", "order_number"}
    assert any(t != t.strip() or "  " in t for t in texts)  # whitespace noise
    assert any(not t.strip() for t in texts)  # the odd empty message
    assert len(set(texts)) < len(texts)  # resent duplicates
    assert len(set(texts)) > 0.9 * len(texts)  # but mostly distinct surface forms


def test_segments_write_differently(year: list[dict[str, str]]) -> None:
    def mean_len(seg: str) -> float:
        lens = [len(r["text"]) for r in year if r["segment"] == seg]
        return sum(lens) / len(lens)

    assert mean_len("mobile") < mean_len("web") < mean_len("business")


def test_products_are_distinct_between_seasons() -> None:
    seasonal = [set(v) for k, v in PRODUCTS.items() if k != "evergreen"]
    for i, a in enumerate(seasonal):
        for b in seasonal[i + 1 :]:
            assert not a & b


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_write_landing_dated_files_idempotent(tmp_path: Path, fmt: str) -> None:
    cfg = SimulatorConfig(messages_per_day=5, days=10, days_per_file=4, start_date=date(2025, 1, 1), file_format=fmt)
    paths = write_landing(cfg, tmp_path)
    assert [p.name for p in paths] == [f"support_2025-01-0{d}.{fmt}" for d in (1, 5, 9)]
    assert [file_date(p) for p in paths] == [date(2025, 1, 1), date(2025, 1, 5), date(2025, 1, 9)]
    df = read_landing_file(paths[0], ColumnMap())
    assert set(df["timestamp"].str[:10]) == {"2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"}
    rows = simulate_messages(cfg, date(2025, 1, 1), date(2025, 1, 4))
    assert len(df) == len(rows) and list(df["label"]) == [r["label"] for r in rows]

    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
    again = write_landing(cfg, tmp_path)
    assert again == paths
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths} == before  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_write_landing_subrange_matches_full_grid(tmp_path: Path) -> None:
    cfg = SimulatorConfig(messages_per_day=5, days=21, days_per_file=7, start_date=date(2025, 1, 1))
    full = write_landing(cfg, tmp_path / "full")
    part = write_landing(cfg, tmp_path / "part", start=date(2025, 1, 8), end=date(2025, 1, 14))
    assert [p.name for p in part] == ["support_2025-01-08.jsonl"]
    assert part[0].read_bytes() == (tmp_path / "full" / "support_2025-01-08.jsonl").read_bytes()
    assert len(full) == 3
    first = json.loads(part[0].read_text().splitlines()[0])
    assert first["timestamp"].startswith("2025-01-08")
