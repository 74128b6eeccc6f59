"""The seasonal timetable: one run at local midnight of each season start, registered as a plugin.

``SeasonalTimetable(("03-01", "06-01", ...), timezone="Europe/Berlin")`` schedules a run at 00:00
local time on each date, every year. Each run is *exact* (like ``CronTriggerTimetable``): its
logical date, ``run_after`` and data interval are the season start, so a backfill over a year
creates one run per season start in it. The window a run works on is not the data interval but
what the DAG's watermark has not consumed by then.

- Time zones and DST: season starts are built as local wall-clock midnights (pendulum resolves a
  midnight that DST skips to the first valid instant) and converted to UTC, so the UTC hour moves
  with DST while the local time stays 00:00.
- Year boundaries: candidates are generated for the years around the asked instant, so a season
  that starts 12-27 is followed by the next year's first season.
- ``02-29`` falls on 02-28 in common years.
- ``catchup=False``: the next season start at or after now; a missed one is not run late.
- Manual runs: the data interval is [the latest season start at or before the run, the run].

Registered with Airflow through the ``airflow.plugins`` entry point (``pipeline.airflow_plugin``),
which the scheduler and API server need to deserialize a DAG that uses it.

Light module: imports pendulum and Airflow's timetable base only (both loaded by any DAG parse).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from pendulum import DateTime

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month_day(md: str) -> tuple[int, int]:
    month, day = (int(p) for p in md.split("-"))
    pendulum.date(2024, month, day)  # raises on a date no leap year has
    return month, day


class SeasonalTimetable(Timetable):
    """Runs at 00:00 (in ``timezone``) on each ``MM-DD`` of ``season_starts``, every year."""

    periodic = True
    can_be_scheduled = True
    run_ordering = ("logical_date", "data_interval_end")

    def __init__(self, season_starts: Sequence[str], timezone: str = "UTC") -> None:
        self.season_starts = tuple(sorted(dict.fromkeys(season_starts), key=_month_day))
        self.timezone = str(timezone)
        self._tz = pendulum.timezone(self.timezone)
        names = ", ".join(f"{_MONTHS[m - 1]} {d}" for m, d in map(_month_day, self.season_starts))
        self.description = f"At 00:00 {self.timezone} on each season start: {names}"

    # ---- identity and (de)serialization ----
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeasonalTimetable):
            return NotImplemented
        return (self.season_starts, self.timezone) == (other.season_starts, other.timezone)

    def __hash__(self) -> int:
        return hash((self.season_starts, self.timezone))

    @property
    def summary(self) -> str:
        return f"seasons {' '.join(self.season_starts)} ({self.timezone})"

    def serialize(self) -> dict[str, Any]:
        return {"season_starts": list(self.season_starts), "timezone": self.timezone}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SeasonalTimetable:
        return cls(data["season_starts"], data.get("timezone", "UTC"))

    def validate(self) -> None:
        from airflow.exceptions import AirflowTimetableInvalid

        if not self.season_starts:
            raise AirflowTimetableInvalid("SeasonalTimetable needs at least one season start (MM-DD)")
        for md in self.season_starts:
            try:
                _month_day(md)
            except ValueError as exc:
                raise AirflowTimetableInvalid(f"season start {md!r} is not a MM-DD date") from exc

    # ---- the calendar ----
    def starts_in_year(self, year: int) -> list[DateTime]:
        """The season starts of ``year`` as UTC instants, in order."""
        out = []
        for md in self.season_starts:
            month, day = _month_day(md)
            if (month, day) == (2, 29) and not pendulum.date(year, 1, 1).is_leap_year():
                day = 28
            local = pendulum.datetime(year, month, day, tz=self._tz)
            out.append(local.in_timezone("UTC"))
        return sorted(out)

    def next_start(self, after: DateTime, *, strict: bool = False) -> DateTime:
        """The first season start at (``strict``: after) the instant ``after``."""
        year = after.in_timezone(self._tz).year
        for y in (year - 1, year, year + 1, year + 2):
            for s in self.starts_in_year(y):
                if s > after or (not strict and s == after):
                    return s
        raise AssertionError("unreachable: every year has a season start")

    def previous_start(self, before: DateTime, *, strict: bool = False) -> DateTime:
        """The last season start at (``strict``: before) the instant ``before``."""
        year = before.in_timezone(self._tz).year
        for y in (year + 1, year, year - 1, year - 2):
            for s in reversed(self.starts_in_year(y)):
                if s < before or (not strict and s == before):
                    return s
        raise AssertionError("unreachable: every year has a season start")

    def season_of(self, at: DateTime) -> str:
        """The ``MM-DD`` of the season ``at`` falls in."""
        start = self.previous_start(at).in_timezone(self._tz)
        for md in self.season_starts:
            month, day = _month_day(md)
            if start.month == month and (start.day == day or (month, day) == (2, 29)):
                return md
        return self.season_starts[-1]

    # ---- Airflow's interface ----
    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval(start=self.previous_start(run_after), end=run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            candidate = self.next_start(pendulum.instance(last_automated_data_interval.end), strict=True)
        elif restriction.earliest is None:
            return None
        else:
            candidate = self.next_start(pendulum.instance(restriction.earliest))
        if restriction.earliest is not None and candidate < restriction.earliest:
            candidate = self.next_start(pendulum.instance(restriction.earliest))
        if not restriction.catchup:
            candidate = max(candidate, self.next_start(pendulum.now("UTC")))
        if restriction.latest is not None and candidate > restriction.latest:
            return None
        return DagRunInfo.exact(candidate)
