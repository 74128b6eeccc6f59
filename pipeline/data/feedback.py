"""User-feedback corrections: a corrected label replaces the original label of its message.

Rows of a feedback source (:class:`~pipeline.config.FeedbackSource`) carry ``message_id``, the
corrected ``label``, a ``timestamp`` and, from the serving app, the message's ``text``. For each:

- the message is a row of another source in the same run (same ``message_id``): that row's label
  becomes the correction's (the latest correction wins) and the change is recorded (message id, the
  row's file and position, old and new label, when); the correction itself is then *applied* and
  leaves the frame (the accounting counts it);
- otherwise, when it carries the text (a served prediction), it is a training row like any other;
- otherwise the message is unknown to this run: quarantine, reason ``unknown_message``.

Pure DataFrame work, used by :func:`pipeline.data.cleaning.clean`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def apply(
    df: pd.DataFrame, feedback_sources: set[str] | frozenset[str]
) -> tuple[pd.DataFrame, list[dict[str, Any]], pd.Series]:
    """``df`` with corrections applied (and their rows removed), the changes, and the mask of the
    corrections whose message is unknown (to quarantine as ``unknown_message``)."""
    is_fb = df["source"].isin(feedback_sources)
    if not feedback_sources or df.empty or not is_fb.any():
        return df, [], is_fb & False
    targets: dict[str, Any] = {}
    for idx, mid in df.loc[~is_fb & df["message_id"].notna(), "message_id"].items():
        targets[str(mid)] = idx
    changes: list[dict[str, Any]] = []
    applied: list[Any] = []
    fb = df[is_fb].sort_values(["timestamp", "_order"], kind="mergesort", na_position="first")
    for idx, row in fb.iterrows():
        target = targets.get(str(row["message_id"])) if row["message_id"] is not None else None
        if target is None or row["label"] is None:
            continue
        old = df.at[target, "label"]
        df.at[target, "label"] = row["label"]
        ts = row["timestamp"]
        changes.append(
            {
                "message_id": str(row["message_id"]),
                "source": str(df.at[target, "source"]),
                "source_file": str(df.at[target, "source_file"]),
                "source_row": int(df.at[target, "source_row"]),
                "old_label": old,
                "new_label": row["label"],
                "corrected_at": None if ts is None or ts != ts else ts.isoformat(),
                "feedback_file": str(row["source_file"]),
                "feedback_row": int(row["source_row"]),
                "applied": True,
            }
        )
        applied.append(idx)
    df = df.drop(index=applied)
    return df, changes, df["source"].isin(feedback_sources) & df["text"].isna()
