from __future__ import annotations

import re

import pytest

from pipeline.data.pii import KINDS, find_pii, scrub_pii
from pipeline.data.text import dedup_key, example_id, normalize_text


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("mail me at john.doe42@gmail.com now", "mail me at [EMAIL] now", "email"),
        ("Reply to M.Rossi+shop@mail.co.uk.", "Reply to [EMAIL].", "email"),
        ("call (415) 555-0134.", "call [PHONE].", "phone"),
        ("my number is 415-555-0134", "my number is [PHONE]", "phone"),
        ("text 415.555.0134 please", "text [PHONE] please", "phone"),
        ("phone: 4155550134", "phone: [PHONE]", "phone"),
        ("ring +1 415 555 0134", "ring [PHONE]", "phone"),
        ("uk office +44 20 7946 0958", "uk office [PHONE]", "phone"),
        ("card 4111 1111 1111 1111 declined", "card [CARD] declined", "card"),
        ("card 5500-0000-0000-0004", "card [CARD]", "card"),
        ("charged to 5500000000000004", "charged to [CARD]", "card"),
        ("amex 3782 822463 10005", "amex [CARD]", "card"),
        ("order #A1234567 is late", "order [ORDER] is late", "order_number"),
        ("order #a1234567 is late", "order [ORDER] is late", "order_number"),
        ("order 123-4567890 please", "order [ORDER] please", "order_number"),
        ("ref 123-4567890-1234567", "ref [ORDER]", "order_number"),
        ("ref # 12345678", "ref [ORDER]", "order_number"),
        ("order B12345678", "order [ORDER]", "order_number"),
        ("iban DE89 3704 0044 0532 0130 00 thanks", "iban [IBAN] thanks", "iban"),
        ("iban DE89370400440532013000.", "iban [IBAN].", "iban"),
        ("pay to GB82 WEST 1234 5698 7654 32", "pay to [IBAN]", "iban"),
        ("from 192.168.1.20 today", "from [IP] today", "ip"),
        ("ip 10.0.0.1.", "ip [IP].", "ip"),
        ("from 2001:db8::8a2e:370:7334 ok", "from [IP] ok", "ip"),
        ("loopback ::1 here", "loopback [IP] here", "ip"),
    ],
)
def test_scrub_pii_replaces_each_kind(text: str, expected: str, kind: str) -> None:
    clean, counts = scrub_pii(text)
    assert clean == expected
    assert counts[kind] == 1
    assert sum(counts.values()) == 1
    assert find_pii(clean) == []


@pytest.mark.parametrize(
    "text",
    [
        "I ordered 2 items",
        "it cost $45.99",
        "size 10 please",
        "I paid $1,299.00 on 2024-12-25",
        "3 days ago at 10:30",
        "delivered 12/25/2024",
        "zip 94107",
        "took 14 days, 1234 dollars",
        "version 3.14.15",
        "timestamp 2024-12-25T10:00:00Z",
        "1,000,000 points",
        "[EMAIL] [PHONE] [CARD] [ORDER] [IBAN] [IP]",
        "created 1735689600",  # epoch seconds: 10 digits, but no phone number starts with 1
        "at 10:30:45 and a :: b",
        "version 1.2.3.456",
    ],
)
def test_scrub_pii_leaves_plain_numbers(text: str) -> None:
    clean, counts = scrub_pii(text)
    assert clean == text
    assert counts == dict.fromkeys(KINDS, 0)


def test_scrub_pii_counts_several_and_cards_win_over_phones() -> None:
    clean, counts = scrub_pii("a@b.io, 4111 1111 1111 1111, 415-555-0134 and c@d.org")
    assert clean == "[EMAIL], [CARD], [PHONE] and [EMAIL]"
    assert counts == {"email": 2, "iban": 0, "ip": 0, "card": 1, "order_number": 0, "phone": 1}


def test_a_spaced_iban_is_one_token_not_a_card_in_the_middle() -> None:
    assert scrub_pii("DE89 3704 0044 0532 0130 00")[0] == "[IBAN]"  # was "DE89 [CARD] 00"
    # a wrong checksum is no IBAN, and its card-shaped middle fails the Luhn check: checksums decide
    clean, counts = scrub_pii("DE89 3704 0044 0532 0130 01")
    assert counts["iban"] == 0 and counts["card"] == 0
    # a Luhn-valid card number inside a text that is no IBAN is still a card
    assert scrub_pii("DE89 4111 1111 1111 1111 01")[1]["card"] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello   World \n", "Hello World"),
        ("tab\tand\r\nnewline", "tab and newline"),
        ("zero\u200bwidth\u00a0space", "zerowidth space"),
        ("ﬁne Ｆｕｌｌwidth", "fine Fullwidth"),
        ("bell\x07 and nul\x00", "bell and nul"),
        ("Keep CASE", "Keep CASE"),
        ("   ", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_dedup_key_ignores_case_and_whitespace_only() -> None:
    assert dedup_key("Where is  my ORDER?\n") == dedup_key("where is my order?") == "where is my order?"
    assert dedup_key("where is my order") != dedup_key("where is my order?")


def test_example_id_depends_on_key_and_label() -> None:
    a = example_id("Where is my order?", "order_status")
    assert a == example_id("  where is MY order? ", "order_status")
    assert a != example_id("Where is my order?", "shipping_delay")
    assert re.fullmatch(r"[0-9a-f]{40}", a)
