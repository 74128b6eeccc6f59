"""Sticky variant assignment. Pure.

A user's variant is a function of (user id, test key): the first 8 bytes of SHA-256 of both, as a
number in [0, 1), against the challenger's share. The test key is the challenger's version, so a
user keeps one variant for the whole of a test and is drawn afresh for the next one.

While the guard of a promotion runs, a second, independent draw (keyed by the guarded champion's
version) sends ``guard_share`` of the users who are not in the challenger arm to ``previous``.
"""

from __future__ import annotations

import hashlib

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


def bucket(user_id: str, test_key: str) -> float:
    digest = hashlib.sha256(f"{test_key}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def variant(user_id: str, share: float, test_key: str | None) -> str:
    """``challenger`` for a ``share`` of users while a test runs (``test_key`` not None), else ``champion``."""
    if test_key is None or share <= 0:
        return CHAMPION
    return CHALLENGER if bucket(user_id, test_key) < share else CHAMPION


def user_key(user_id: str) -> str:
    """What the logs keep of a user id: a hash (an id may be an email or a phone number)."""
    return hashlib.sha256(f"retrain-user\x00{user_id}".encode()).hexdigest()[:32]


def route(user_id: str, *, challenger_share: float, challenger_key: str | None, guard_share: float = 0.0,
          guard_key: str | None = None) -> str:  # fmt: skip
    """``challenger`` (the A/B test), ``previous`` (the guard) or ``champion``; sticky per user."""
    if variant(user_id, challenger_share, challenger_key) == CHALLENGER:
        return CHALLENGER
    if guard_key is not None and guard_share > 0 and bucket(user_id, f"guard:{guard_key}") < guard_share:
        return PREVIOUS
    return CHAMPION
