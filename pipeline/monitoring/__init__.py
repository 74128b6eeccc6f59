"""Drift monitoring: size-aware signal statistics, the retrain policy and the drift history.

``stats`` and ``policy`` are pure (no I/O); ``history`` stores every decision through SQLAlchemy;
``signals`` computes a window's signals from data and the champion; ``chart`` draws the history.
"""
