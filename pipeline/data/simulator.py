"""A seasonal support-ticket simulator for an online shop: the stand-in for real traffic.

Each day's messages come from ``random.Random`` seeded with the simulator seed and that date, so a
day looks the same whichever range is asked for. What changes over the year:

============  ===============  =========================================================
season        dates            what changes
============  ===============  =========================================================
winter        12-27 .. 02-end  coats, boots, scarves; gift returns: returns and refunds
                               spike until the end of January, gift-card redemptions
spring        03-01 .. 05-31   rain jackets, garden tools; Easter and Mother's Day phrasing
summer        06-01 .. 08-31   swimwear, sandals, fans; vacation and heatwave phrasing
autumn        09-01 .. 11-19   backpacks, laptops, sweaters; back-to-school, Halloween
holiday       11-20 .. 12-26   toys, gifts, electronics; shipping delays spike, gift cards
                               in December, ``price_match`` (Black Friday) only 11-20 .. 12-31
============  ===============  =========================================================

The season starts line up with ``ScheduleConfig.season_starts``, the days the retrain DAG runs.
Three user segments write differently: ``mobile`` (short, lowercase, abbreviations, more typos),
``web`` and ``business`` (formal, longer, signed). Noise (typos, casing, whitespace), PII (emails,
phones, order and card numbers), resent duplicates (half of them with a small edit: near-duplicates)
and the odd empty message give cleaning work.

Rows are plain dicts ``{text, label, timestamp, segment}``; ``timestamp`` is ISO 8601 UTC.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from pipeline.config import DEFAULT_LABELS, SimulatorConfig
from pipeline.data.simulator_noise import _add_noise, _card, _email, _order_number, _phone, _typo
from pipeline.data.simulator_vocab import (  # the tables: data only
    _ABBREVIATIONS,
    _AMBIGUOUS,
    _BODIES,
    _BUSINESS_ASKS,
    _BUSINESS_NEUTRAL,
    _BUSINESS_OPENERS,
    _BUSINESS_TOPIC,
    _BUSINESS_WE,
    _CARRIERS,
    _CLOSINGS,
    _COLORS,
    _COMPANIES,
    _CONFUSABLE,
    _CONTEXT,
    _FIRST,
    _GENERIC_ORDERS,
    _GREETINGS,
    _LAST,
    _NUMBER_WORDS,
    _SEASON_BODIES,
    _SHORT,
    _SIZES,
    _WEB_ASKS,
    _WEEKDAYS,
    PRODUCTS,
)

# the tables read best compact: the formatter leaves them as written
# fmt: off
FIELDS = ("text", "label", "timestamp", "segment")
SEGMENTS = ("mobile", "web", "business")
SEASONS = ("winter", "spring", "summer", "autumn", "holiday")
# (MM-DD, season starting that day); must match ScheduleConfig.season_starts (a test checks it)
SEASON_STARTS = (
    ("03-01", "spring"), ("06-01", "summer"), ("09-01", "autumn"), ("11-20", "holiday"), ("12-27", "winter"),
)
PRICE_MATCH_WINDOW = ("11-20", "12-31")

DUPLICATE_RATE = 0.015  # customers resending the same message
RESEND_EDIT_RATE = 0.5  # ... half of them with a small edit (a typo, "again:", "??"): near-duplicates
EMPTY_RATE = 0.002  # an empty or whitespace-only message
AMBIGUOUS_RATE = 0.10  # messages that could honestly be either of two intents
LABEL_NOISE = 0.03  # agents pick a neighbouring intent now and then (see _CONFUSABLE)

# ---------------------------------------------------------------- intent priors (weights, any scale)
_PRIORS: dict[str, dict[str, float]] = {
    # late Dec - Jan: gift returns and refunds
    "post_holiday": dict(order_status=10, refund_request=20, return_item=23, shipping_delay=7, payment_problem=8,
                         account_access=8, product_question=10, gift_card=10, price_match=4),
    "winter": dict(order_status=18, refund_request=12, return_item=12, shipping_delay=10, payment_problem=11,
                   account_access=12, product_question=20, gift_card=5),
    "spring": dict(order_status=20, refund_request=9, return_item=10, shipping_delay=10, payment_problem=10,
                   account_access=12, product_question=24, gift_card=5),
    "summer": dict(order_status=19, refund_request=10, return_item=12, shipping_delay=13, payment_problem=10,
                   account_access=10, product_question=21, gift_card=5),
    "autumn": dict(order_status=21, refund_request=9, return_item=9, shipping_delay=11, payment_problem=12,
                   account_access=12, product_question=22, gift_card=4),
    # Nov 20 - 30: Black Friday and Cyber Monday
    "black_friday": dict(order_status=16, refund_request=6, return_item=5, shipping_delay=17, payment_problem=12,
                         account_access=8, product_question=14, gift_card=7, price_match=15),
    # Dec 1 - 26: everything late, gift cards as last-minute presents
    "december": dict(order_status=16, refund_request=5, return_item=5, shipping_delay=23, payment_problem=9,
                     account_access=7, product_question=12, gift_card=15, price_match=8),
}
_SEGMENT_PRIORS = {"default": (45, 40, 15), "holiday": (52, 38, 10)}
# fmt: on


# ---------------------------------------------------------------- calendar
def season_of(d: date) -> str:
    """The season ``d`` falls in (see the module docstring)."""
    md = f"{d.month:02d}-{d.day:02d}"
    season = SEASON_STARTS[-1][1]  # before 03-01: the winter that started on 12-27 of the previous year
    for start, name in SEASON_STARTS:
        if md >= start:
            season = name
    return season


def price_match_active(d: date) -> bool:
    md = f"{d.month:02d}-{d.day:02d}"
    return PRICE_MATCH_WINDOW[0] <= md <= PRICE_MATCH_WINDOW[1]


def _phase(d: date) -> str:
    season = season_of(d)
    if season == "winter" and d.month in (12, 1):
        return "post_holiday"
    if season == "holiday":
        return "black_friday" if d.month == 11 else "december"
    return season


def intent_priors(d: date) -> dict[str, float]:
    """Probability of each label on day ``d`` (sums to 1; ``price_match`` is 0 outside its window)."""
    weights = {label: float(_PRIORS[_phase(d)].get(label, 0.0)) for label in DEFAULT_LABELS}
    if not price_match_active(d):
        weights["price_match"] = 0.0
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def _black_friday(year: int) -> date:
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


def _volume(d: date, per_day: int, rng: random.Random) -> int:
    factor = (1.15, 1.05, 1.0, 1.0, 0.95, 0.8, 0.85)[d.weekday()]
    bf = _black_friday(d.year)
    if d in (bf, bf + timedelta(days=3)):  # Black Friday, Cyber Monday
        factor *= 1.6
    elif d.month == 12 and d.day in (24, 25):
        factor *= 0.7
    elif price_match_active(d):
        factor *= 1.25
    elif d.month == 1 and d.day <= 10:
        factor *= 1.3
    return max(1, round(per_day * factor * rng.uniform(0.9, 1.1)))


# ---------------------------------------------------------------- PII
_PII_KINDS_BY_INTENT = {
    "account_access": (("email", 6), ("phone", 3), ("order", 1)),
    "payment_problem": (("card", 5), ("order", 3), ("email", 2)),
    "gift_card": (("card", 4), ("email", 3), ("order", 3)),
}
_PII_KINDS_DEFAULT = (("order", 6), ("email", 2), ("phone", 2))
_PII_SENTENCES = {
    "email": (
        "My email is {email}.",
        "Contact me at {email}",
        "Account email: {email}",
        "I registered with {email}.",
        "Please reply to {email}",
    ),
    "phone": ("Call me at {phone}.", "My number is {phone}", "You can text me on {phone}.", "Phone: {phone}"),
    "card": ("The card number is {card}.", "I used card {card}.", "It was charged to {card}", "card {card}"),
    "order": ("Order number: {order}.", "It's order {order}.", "Ref {order}"),
}


# ---------------------------------------------------------------- one message
def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]] | dict[str, float]) -> str:
    items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def _product(rng: random.Random, season: str, phase: str, label: str) -> str:
    if phase == "post_holiday" and label in ("return_item", "refund_request") and rng.random() < 0.5:
        return rng.choice(PRODUCTS["holiday"])  # the gifts coming back
    return rng.choice(PRODUCTS[season] if rng.random() < 0.75 else PRODUCTS["evergreen"])


def _when(rng: random.Random) -> str:
    return rng.choice(
        (
            "yesterday",
            "last week",
            f"on {rng.choice(_WEEKDAYS)}",
            f"{rng.randint(2, 12)} days ago",
            "two weeks ago",
            "a few days ago",
            f"on the {rng.randint(1, 28)}th",
            "this morning",
        )
    )


def _amount(rng: random.Random) -> str:
    value = rng.choice((rng.randint(5, 300) + rng.choice((0.0, 0.99, 0.5, 0.49)), float(rng.randint(10, 500))))
    return rng.choice((f"${value:.2f}", f"${value:.2f}", f"{value:.2f} dollars", f"€{value:.2f}", f"${int(value)}"))


def _fill(template: str, rng: random.Random, slots: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in slots:
            slots[name] = {
                "when": _when,
                "amount": _amount,
                "days": lambda r: str(r.randint(2, 21)) if r.random() < 0.7 else r.choice(_NUMBER_WORDS),
                "weekday": lambda r: r.choice(_WEEKDAYS),
                "carrier": lambda r: r.choice(_CARRIERS),
                "size": lambda r: r.choice(_SIZES),
                "color": lambda r: r.choice(_COLORS),
                "name": lambda r: f"{r.choice(_FIRST).title()} {r.choice(_LAST).title()}",
                "company": lambda r: r.choice(_COMPANIES),
            }[name](rng)
        return slots[name]

    # "a advent calendar" -> "an advent calendar"
    return _ARTICLE.sub(r"\1n ", re.sub(r"\{(\w+)\}", one, template))


_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _message(rng: random.Random, d: date, label: str, segment: str, cfg: SimulatorConfig) -> tuple[str, str]:
    """``(text, label)`` for one message; the label may change when an ambiguous template is drawn."""
    season, phase = season_of(d), _phase(d)
    pm_ok = price_match_active(d)
    has_pii = rng.random() < cfg.pii_rate
    pii_kind = _pick(rng, _PII_KINDS_BY_INTENT.get(label, _PII_KINDS_DEFAULT)) if has_pii else None
    numbered_ref = pii_kind == "order" and rng.random() < 0.8
    slots: dict[str, str] = {
        "order_ref": f"order {_order_number(rng)}" if numbered_ref else rng.choice(_GENERIC_ORDERS),
    }
    slots["product"] = _product(rng, season, phase, label)

    if rng.random() < AMBIGUOUS_RATE:
        template, labels = rng.choice(_AMBIGUOUS)
        labels = {k: v for k, v in labels.items() if pm_ok or k != "price_match"}
        label = _pick(rng, labels)
    elif segment == "mobile" and rng.random() < 0.5:
        template = rng.choice(_SHORT[label])
    else:
        pool = _BODIES[label] + _SEASON_BODIES.get(season, {}).get(label, ()) * 2
        template = rng.choice(pool)
    body = _fill(template, rng, slots)

    parts: list[str] = []
    if segment == "business":
        if rng.random() < 0.9:
            parts.append(rng.choice(_GREETINGS["business"]))
        if rng.random() < 0.7:
            topic = _BUSINESS_TOPIC[label] if rng.random() < 0.6 else rng.choice(_BUSINESS_NEUTRAL)
            slots["topic"] = topic
            parts.append(_fill(rng.choice(_BUSINESS_OPENERS), rng, slots))
        for pattern, repl in _BUSINESS_WE:
            if rng.random() < 0.6:
                body = re.sub(pattern, repl, body)
        parts.append(body[:1].upper() + body[1:])
    elif segment == "web":
        if rng.random() < 0.5:
            parts.append(rng.choice(_GREETINGS["web"]))
        parts.append(body)
    else:
        if rng.random() < 0.2:
            parts.append(rng.choice(_GREETINGS["mobile"]))
        parts.append(body)

    context_p = {"mobile": 0.3, "web": 0.55, "business": 0.5}[segment]
    if rng.random() < context_p:
        parts.append(_fill(rng.choice(_CONTEXT[season]), rng, slots))
    if segment != "mobile" and rng.random() < 0.3:
        parts.append(rng.choice(_BUSINESS_ASKS if segment == "business" else _WEB_ASKS))
    if pii_kind is not None and not (numbered_ref and "{order_ref}" in template):
        value = {"email": _email, "phone": _phone, "card": _card, "order": _order_number}[pii_kind](rng)
        parts.append(rng.choice(_PII_SENTENCES[pii_kind]).format(**{pii_kind: value}))
    if segment == "business" and rng.random() < 0.35:  # signature with contact details
        parts.append(f"Tel. {_phone(rng)}" if rng.random() < 0.5 else _email(rng))
    closing_p = {"mobile": 0.15, "web": 0.45, "business": 0.85}[segment]
    if rng.random() < closing_p:
        parts.append(_fill(rng.choice(_CLOSINGS[segment]), rng, slots))

    text = ("\n" if segment == "business" and rng.random() < 0.3 else " ").join(parts)
    noise = cfg.noise * {"mobile": 2.0, "web": 1.0, "business": 0.4}[segment]
    if segment == "mobile":
        if rng.random() < 0.6:
            text = text.lower()
        for pattern, repl in _ABBREVIATIONS:
            if rng.random() < 0.4:
                text = re.sub(pattern, repl, text)
        if rng.random() < 0.5:
            text = text.rstrip(".!?")
    if rng.random() < min(noise, 1.0):
        text = _add_noise(text, rng)
    if rng.random() < LABEL_NOISE:
        label = rng.choice([c for c in _CONFUSABLE[label] if pm_ok or c != "price_match"])
    return text, label


def _resend_edit(text: str, rng: random.Random) -> str:
    """A resent message: the same text, or with a small edit (its own generator, so the day's other
    messages do not change with it)."""
    if rng.random() >= RESEND_EDIT_RATE:
        return text
    op = rng.random()
    if op < 0.35:
        words = text.split(" ")
        j = max(range(len(words)), key=lambda k: (len(words[k]), -k))  # the longest word gets a typo
        words[j] = _typo(words[j], rng)
        return " ".join(words)
    if op < 0.7:
        return rng.choice(("again: ", "hello? ", "pls ")) + text
    return text.rstrip() + rng.choice((" ??", "!!", " - still waiting"))


# ---------------------------------------------------------------- days and ranges
def _day_rows(cfg: SimulatorConfig, d: date) -> list[dict[str, str]]:
    rng = random.Random(f"support-simulator:{cfg.seed}:{d.isoformat()}")
    priors = intent_priors(d)
    seg_w = _SEGMENT_PRIORS["holiday" if season_of(d) == "holiday" else "default"]
    hours = [1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 10, 9, 9, 9, 8, 8, 8, 8, 8, 7, 5, 3, 2]
    midnight = datetime.combine(d, time(0), tzinfo=UTC)

    events: list[tuple[datetime, str, str, str]] = []
    for _ in range(_volume(d, cfg.messages_per_day, rng)):
        label = _pick(rng, priors)
        segment = rng.choices(SEGMENTS, weights=seg_w)[0]
        hour = rng.choices(range(24), weights=hours)[0]
        ts = midnight + timedelta(hours=hour, seconds=rng.randrange(3600))
        if rng.random() < EMPTY_RATE:
            text = rng.choice(("", " ", "  \n"))
        else:
            text, label = _message(rng, d, label, segment, cfg)
        events.append((ts, text, label, segment))
    resent = []
    for n, (ts, text, label, segment) in enumerate(events):
        if text.strip() and rng.random() < DUPLICATE_RATE:  # the customer hits send again a bit later
            later = min(ts + timedelta(seconds=rng.randint(30, 3 * 3600)), midnight + timedelta(seconds=86399))
            resent.append((later, _resend_edit(text, random.Random(f"resend:{cfg.seed}:{d}:{n}")), label, segment))
    events.extend(resent)
    events.sort(key=lambda e: e[0])
    return [
        {"text": text, "label": label, "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "segment": segment}
        for ts, text, label, segment in events
    ]


def simulate_messages(cfg: SimulatorConfig, start: date, end: date) -> list[dict[str, str]]:
    """Every message from ``start`` to ``end`` (both inclusive), ordered by timestamp.

    Pure and deterministic: the same ``cfg`` gives the same rows, and a day's rows do not depend on
    the range they were asked for.
    """
    rows: list[dict[str, str]] = []
    d = start
    while d <= end:
        rows.extend(_day_rows(cfg, d))
        d += timedelta(days=1)
    return rows


def _encode(rows: list[dict[str, str]], file_format: str) -> bytes:
    if file_format == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    if file_format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().encode("utf-8")
    if file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(f, pa.string()) for f in FIELDS])
        table = pa.Table.from_pylist(rows, schema=schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()
    raise ValueError(f"unknown file format {file_format!r}; expected csv, jsonl or parquet")


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless the file already holds exactly these bytes."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def write_landing(
    cfg: SimulatorConfig, landing_dir: str | Path, *, start: date | None = None, end: date | None = None
) -> list[Path]:
    """Write ``support_YYYY-MM-DD.<cfg.file_format>`` files into ``landing_dir``; return their paths.

    Files cover ``cfg.days_per_file`` days on a grid anchored at ``cfg.start_date``, so any range
    yields the same file names and contents as the full year (a file at the edge of a range that
    cuts a grid period covers only the days asked for, and is named after its first day).
    Defaults: ``cfg.start_date`` to ``cfg.start_date + cfg.days - 1``. Writes are atomic
    (temporary name, then rename) and idempotent: a file that already holds the same bytes is left
    alone, so its modification time and hash do not change.
    """
    first = start or cfg.start_date
    last = end or (cfg.start_date + timedelta(days=cfg.days - 1))
    if last < first:
        raise ValueError(f"write_landing: end {last} is before start {first}")
    out = Path(landing_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = cfg.days_per_file
    paths: list[Path] = []
    offset = (first - cfg.start_date).days
    period_start = cfg.start_date + timedelta(days=(offset // step) * step)
    while period_start <= last:
        chunk_start = max(period_start, first)
        chunk_end = min(period_start + timedelta(days=step - 1), last)
        rows = simulate_messages(cfg, chunk_start, chunk_end)
        path = out / f"support_{chunk_start.isoformat()}.{cfg.file_format}"
        _write_if_changed(path, _encode(rows, cfg.file_format))
        paths.append(path)
        period_start += timedelta(days=step)
    return paths
