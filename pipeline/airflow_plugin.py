"""The Airflow plugin of this package: registers :class:`~pipeline.timetable.SeasonalTimetable`.

Found through the ``airflow.plugins`` entry point in ``pyproject.toml``, so every Airflow process
of an environment where the package is installed (scheduler, API server, DAG processor) can
serialize and deserialize DAGs that use the timetable; no file in a plugins folder is needed.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipeline.timetable import SeasonalTimetable


class SeasonalTimetablePlugin(AirflowPlugin):
    name = "retrain_seasonal_timetable"
    timetables = [SeasonalTimetable]
