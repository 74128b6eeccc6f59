"""One SQLAlchemy engine per URL per process, with the given tables created on first use.

SQLite by default (the parent folder is created), PostgreSQL or any SQLAlchemy URL otherwise. Used by
the drift history and the registry history. Light module (SQLAlchemy only).

Additive migrations only: a nullable column the metadata has and an existing table lacks is added
with ``ALTER TABLE ... ADD COLUMN`` (a table made by an older release keeps its rows, which read the
new column as NULL). Anything else (a dropped, renamed or retyped column) is not done here.
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
        add_missing_columns(_ENGINES[url], metadata)
        _CREATED.add((url, id(metadata)))
    return _ENGINES[url]


def add_missing_columns(eng: sa.Engine, metadata: sa.MetaData) -> list[str]:
    """Add the nullable columns ``metadata`` has and the database's tables lack; the ``table.column``s added."""
    inspector = sa.inspect(eng)
    added = []
    with eng.begin() as conn:
        for table in metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
            for col in table.columns:
                if col.name in have:
                    continue
                if not col.nullable:
                    raise RuntimeError(
                        f"{table.name}: column {col.name} is missing and NOT NULL; migrate the table by hand"
                    )
                ddl = col.type.compile(dialect=eng.dialect)
                name = eng.dialect.identifier_preparer
                conn.execute(sa.text(f"ALTER TABLE {name.format_table(table)} ADD COLUMN {name.quote(col.name)} {ddl}"))
                added.append(f"{table.name}.{col.name}")
    return added
