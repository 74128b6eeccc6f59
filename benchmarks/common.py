"""What the benchmarks share: a Markdown table of result rows."""

from __future__ import annotations


def table(rows: list[dict]) -> str:
    """One Markdown table; floats with 3 decimals."""
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(
        ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    ) + "\n"  # fmt: skip
