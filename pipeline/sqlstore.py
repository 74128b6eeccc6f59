"""One SQLAlchemy engine per URL per process, with the given tables created on first use.

SQLite by default (the parent folder is created), PostgreSQL or any SQLAlchemy URL otherwise. Used by
the drift history and the registry history. Light module (SQLAlchemy only).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

_ENGINES: dict[str, sa.Engine] = {}
_CREATED: set[tuple[str, int]] = set()


def engine(url: str, metadata: sa.MetaData) -> sa.Engine:
    if url not in _ENGINES:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        _ENGINES[url] = sa.create_engine(url, future=True, pool_pre_ping=True)
    if (url, id(metadata)) not in _CREATED:
        metadata.create_all(_ENGINES[url])
        _CREATED.add((url, id(metadata)))
    return _ENGINES[url]
