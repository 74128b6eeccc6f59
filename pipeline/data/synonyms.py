"""A small bundled synonym dictionary for augmentation (:mod:`pipeline.data.augment`): everyday words
of customer messages, each with replacements that keep the intent. Lower case; data only."""

from __future__ import annotations

# fmt: off
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("want", "would like", "need"), ("help", "assist", "support"), ("order", "purchase"),
    ("package", "parcel", "shipment"), ("late", "delayed", "overdue"), ("arrived", "come", "shown up"),
    ("refund", "reimbursement", "money back"), ("return", "send back"), ("broken", "damaged", "faulty"),
    ("wrong", "incorrect"), ("item", "product", "article"), ("buy", "purchase", "get"),
    ("cancel", "call off", "stop"), ("charged", "billed"), ("card", "credit card"), ("payment", "charge"),
    ("account", "profile"), ("password", "passcode"), ("login", "sign in", "log in"), ("email", "e-mail"),
    ("problem", "issue", "trouble"), ("quick", "fast", "speedy"), ("please", "kindly"),
    ("question", "query"), ("price", "cost"), ("cheaper", "less expensive", "lower priced"),
    ("delivery", "shipping"), ("tracking", "tracking info"), ("still", "yet"), ("received", "got"),
    ("replacement", "exchange", "new one"), ("size", "fit"), ("gift", "present"),
    ("voucher", "coupon", "code"), ("balance", "remaining amount"), ("immediately", "right away", "asap"),
    ("days", "days now"), ("week", "seven days"), ("status", "progress"), ("locked", "blocked"),
    ("missing", "lost"), ("hi", "hello", "hey"), ("thanks", "thank you", "cheers"),
)
# fmt: on


def _build() -> dict[str, tuple[str, ...]]:
    out: dict[str, set[str]] = {}
    for group in _GROUPS:
        for word in group:
            if " " not in word:  # single words are looked up; phrases are replacements only
                out.setdefault(word, set()).update(w for w in group if w != word)
    return {k: tuple(sorted(v)) for k, v in out.items() if v}


SYNONYMS: dict[str, tuple[str, ...]] = _build()
