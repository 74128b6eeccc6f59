"""A whole simulated year through ingest and validate: no PII a user typed persists anywhere under
the home folder (curated data, quarantine, manifests, ledgers, GX reports, the MLflow store and its
artifacts). The end-to-end test scans its home the same way after training, evaluation and registry."""

from __future__ import annotations

from datetime import date

from pii_scan import leaks, planted

from pipeline.config import SimulatorConfig
from pipeline.data.simulator import write_landing
from pipeline.errors import NothingToDoError
from pipeline.steps import ingest, validate

SEASONS = (("2025-01-01", "2025-02-28"), ("2025-03-01", "2025-05-31"), ("2025-06-01", "2025-08-31"),
           ("2025-09-01", "2025-11-19"), ("2025-11-20", "2025-12-31"))  # fmt: skip


def test_a_simulated_year_leaves_no_pii_under_home(make_cfg, tmp_path) -> None:
    home = tmp_path / "home"
    cfg = make_cfg(home=str(home))  # the MLflow store lives under home too
    sim = SimulatorConfig(messages_per_day=6, days=365, days_per_file=7, start_date=date(2025, 1, 1), pii_rate=0.5)
    write_landing(sim, cfg.landing_dir_path)
    values = planted(cfg.landing_dir_path)
    assert len(values) > 300  # emails, phones, cards, order numbers typed by the simulated users
    for n, (start, end) in enumerate(SEASONS):
        run_id = f"year__{n}"
        try:
            res = ingest.run(cfg, out_dir=str(home / "artifacts" / run_id / "ingest"), pipeline_run_id=run_id,
                             consumer="retrain", window_start=start, window_end=end)  # fmt: skip
        except NothingToDoError:
            continue
        validate.run(cfg, data_uris=[res.train_uri, res.val_uri, res.test_uri],
                     out_dir=str(home / "artifacts" / run_id / "validate"), pipeline_run_id=run_id)  # fmt: skip
        ingest.commit(cfg, res)
    assert (home / "mlflow.db").is_file() and any((home / "state").iterdir())
    assert leaks(home, values, skip=[cfg.landing_dir_path]) == []
