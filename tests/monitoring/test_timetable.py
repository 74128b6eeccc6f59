"""The seasonal timetable over whole years, across year boundaries and DST, and its serialization."""

from __future__ import annotations

from datetime import date, timedelta

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from pipeline.timetable import SeasonalTimetable

SEASONS = ("03-01", "06-01", "09-01", "11-20", "12-27")


def runs(tt, start, end, catchup=True):
    r = TimeRestriction(start, end, catchup)
    info, out = None, []
    while info := tt.next_dagrun_info(last_automated_data_interval=info and info.data_interval, restriction=r):
        out.append(info)
        assert len(out) < 100
    return out


def test_a_whole_year_in_utc():
    tt = SeasonalTimetable(SEASONS)
    got = runs(tt, pendulum.datetime(2025, 1, 1, tz="UTC"), pendulum.datetime(2025, 12, 31, 23, tz="UTC"))
    assert [i.logical_date.date().isoformat() for i in got] == [f"2025-{md}" for md in SEASONS]
    assert all(i.run_after == i.logical_date == i.data_interval.end for i in got)


def test_every_day_of_a_year_maps_to_the_right_next_and_previous_season():
    tt = SeasonalTimetable(SEASONS)
    starts = [date(2024, 12, 27)] + [date(2025, int(m), int(d)) for m, d in (s.split("-") for s in SEASONS)]
    starts.append(date(2026, 3, 1))
    day = date(2025, 1, 1)
    while day <= date(2025, 12, 31):
        at = pendulum.datetime(day.year, day.month, day.day, 12, tz="UTC")
        nxt = tt.next_start(at).date()
        prev = tt.previous_start(at).date()
        assert nxt == min(s for s in starts if s > day)
        assert prev == max(s for s in starts if s <= day)
        assert tt.season_of(at) == prev.strftime("%m-%d")
        day += timedelta(days=1)


def test_year_boundary_and_dst_in_a_local_timezone():
    tt = SeasonalTimetable(("03-30", "10-26", "12-31"), timezone="Europe/Berlin")
    got = runs(tt, pendulum.datetime(2025, 1, 1, tz="UTC"), pendulum.datetime(2026, 4, 1, tz="UTC"))
    local = [i.run_after.in_timezone("Europe/Berlin") for i in got]
    assert [d.date().isoformat() for d in local] == ["2025-03-30", "2025-10-26", "2025-12-31", "2026-03-30"]
    assert all((d.hour, d.minute) == (0, 0) for d in local)
    # 2025-03-30 is the DST switch day (midnight is still CET, UTC+1); 10-26 too (midnight is CEST, UTC+2)
    assert [i.run_after.hour for i in got[:2]] == [23, 22]


def test_leap_day_falls_on_feb_28_in_common_years():
    tt = SeasonalTimetable(("02-29",))
    got = runs(tt, pendulum.datetime(2027, 1, 1, tz="UTC"), pendulum.datetime(2028, 12, 31, tz="UTC"))
    assert [i.logical_date.date().isoformat() for i in got] == ["2027-02-28", "2028-02-29"]


def test_no_catchup_schedules_the_next_future_start_only():
    tt = SeasonalTimetable(SEASONS)
    info = tt.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(pendulum.datetime(2020, 1, 1, tz="UTC"), None, False),
    )
    assert info is not None and info.run_after >= pendulum.now("UTC")
    assert info.run_after <= pendulum.now("UTC").add(days=120)


def test_end_date_and_no_start_date():
    tt = SeasonalTimetable(SEASONS)
    assert tt.next_dagrun_info(last_automated_data_interval=None, restriction=TimeRestriction(None, None, True)) is None
    last = DataInterval(pendulum.datetime(2025, 12, 27, tz="UTC"), pendulum.datetime(2025, 12, 27, tz="UTC"))
    r = TimeRestriction(pendulum.datetime(2025, 1, 1, tz="UTC"), pendulum.datetime(2026, 1, 31, tz="UTC"), True)
    assert tt.next_dagrun_info(last_automated_data_interval=last, restriction=r) is None


def test_manual_runs_get_the_season_so_far():
    tt = SeasonalTimetable(SEASONS)
    run = pendulum.datetime(2025, 7, 4, 9, tz="UTC")
    assert tt.infer_manual_data_interval(run_after=run) == DataInterval(pendulum.datetime(2025, 6, 1, tz="UTC"), run)


def test_summary_description_and_round_trip():
    tt = SeasonalTimetable(("11-20", "03-01"), timezone="America/New_York")
    assert tt.summary == "seasons 03-01 11-20 (America/New_York)"
    assert tt.description == "At 00:00 America/New_York on each season start: Mar 1, Nov 20"
    assert SeasonalTimetable.deserialize(tt.serialize()) == tt
    with pytest.raises(ValueError):
        SeasonalTimetable(("13-01",))


def test_registered_as_an_airflow_plugin_and_serializable_inside_asset_or_time():
    from airflow import plugins_manager
    from airflow.sdk import Asset, AssetOrTimeSchedule
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    assert "pipeline.timetable.SeasonalTimetable" in plugins_manager.get_timetables_plugins()
    sched = AssetOrTimeSchedule(timetable=SeasonalTimetable(SEASONS), assets=[Asset(name="a", uri="x://a")])
    back = decode_timetable(encode_timetable(sched))
    assert back.timetable == SeasonalTimetable(SEASONS)
    assert back.timetable.summary == "seasons 03-01 06-01 09-01 11-20 12-27 (UTC)"
