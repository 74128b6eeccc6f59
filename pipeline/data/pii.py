"""Personal data in free text: find it and replace it with a placeholder token.

``scrub_pii`` is the one definition of what counts as personal data in a message: ingest scrubs
every persisted string column with it, the validate step checks with :func:`find_pii` that nothing
is left, and the served model applies it to its input, so serving sees what training saw.

Each kind is a *candidate* regex plus, where a library can decide better than a pattern, a
validator: IBANs must pass their ISO 13616 checksum and card numbers the Luhn check (python-stdnum), IP addresses must parse
(``ipaddress``), phone numbers must be possible numbers for their country (phonenumbers), so an
epoch timestamp such as ``1735689600`` is not a phone number.

Every pattern runs in linear time (a test feeds each one a megabyte of adversarial text): the only
unbounded pattern, the email's local part, may start only where a run of local-part characters
starts, so no start position rescans a run; every other pattern has bounded repetitions.

Light module: stdlib, phonenumbers and python-stdnum only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

# Order matters: a match is replaced by its token before the next kind runs, so the more specific
# kinds go first: an email may hold digits, an IBAN holds card-shaped digit groups, an IP address
# holds phone-shaped groups, and "123-4567890" (order) is phone-shaped.
KINDS = ("email", "iban", "ip", "card", "order_number", "phone")
PII_TOKENS: dict[str, str] = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "ip": "[IP]",
    "card": "[CARD]",
    "order_number": "[ORDER]",
    "phone": "[PHONE]",
}
DEFAULT_PHONE_REGION = "US"

_LOCAL = r"A-Za-z0-9._%+\-"
_EMAIL = rf"(?<![{_LOCAL}])[{_LOCAL}]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{{2,63}}(?![A-Za-z0-9\-])"
# two letters, two check digits, then 11 to 30 letters or digits in groups of four (spaces allowed
# between groups); the checksum decides
_IBAN = r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?(?![A-Za-z0-9])"
_IPV4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"
_IPV6 = r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])"
# 13-16 digits as four-digit groups (space or dash between groups, or none), or Amex-style 4-6-5
_CARD = r"(?<![\w-])(?:\d{4}[ -]?\d{6}[ -]?\d{5}|(?:\d{4}[ -]?){3}\d{1,4})(?![\w-])"
# "#A1234567", "# 12345678", "A1234567", "AB-12345678", "123-4567890" (and "123-4567890-1234567")
_ORDER = (
    r"(?:#\s?[A-Za-z]{0,3}-?\d{5,12}(?!\w)"
    r"|(?<![\w-])[A-Za-z]{1,3}-?\d{7,12}(?![\w-])"
    r"|(?<![\w-])\d{3}-\d{7}(?:-\d{7})?(?![\w-]))"
)
# "(415) 555-0134", "415-555-0134", "415.555.0134", "4155550134", "+1 415 555 0134",
# "+44 20 7946 0958"; the look-arounds keep "$45.99", "2 items", "size 10" and dates out
_PHONE = r"(?<![\w+.$-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{4}(?!\w|[.-]\d)"


def _valid_iban(candidate: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(candidate.replace(" ", "").upper()))


def _valid_card(candidate: str) -> bool:
    from stdnum import luhn

    return bool(luhn.is_valid("".join(ch for ch in candidate if ch.isdigit())))


def _valid_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return any(ch.isalnum() for ch in candidate)  # not a bare "::"


_NANP = re.compile(r"[2-9]\d{2}[2-9]\d{6}")


def _valid_phone(candidate: str, region: str = DEFAULT_PHONE_REGION) -> bool:
    """A possible number for its country (libphonenumber). A bare run of digits must also be a valid
    number, or fit the North American plan (area code and exchange start with 2-9): libphonenumber's
    "possible" is only a length check there, and epoch seconds (``1735689600``) have the length."""
    import phonenumbers

    try:
        number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return False
    if not phonenumbers.is_possible_number(number):
        return False
    if not candidate.isdigit() or phonenumbers.is_valid_number(number):
        return True
    return number.country_code != 1 or bool(_NANP.fullmatch(str(number.national_number)))


@dataclass(frozen=True)
class _Kind:
    name: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] | None = None
    # spans inside a candidate to replace (a library finds the item within a bounded candidate)
    within: Callable[[str], list[tuple[int, int]]] | None = None


# "+49 30 901820", "+33 1 42 68 53 00", "+44 (0)20 7946 0958": an international number in any grouping;
# a bounded candidate, in which libphonenumber's matcher finds the valid numbers
_PHONE_INTL = r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}(?!\w)"


def _intl_numbers(candidate: str) -> list[tuple[int, int]]:
    import phonenumbers

    return [
        (m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(candidate, None, leniency=phonenumbers.Leniency.VALID)
    ]


_IP_PATTERN = re.compile(f"{_IPV6}|{_IPV4}")
PII_KINDS: tuple[_Kind, ...] = (
    _Kind("email", re.compile(_EMAIL)),
    _Kind("iban", re.compile(_IBAN), _valid_iban),
    _Kind("ip", _IP_PATTERN, _valid_ip),
    _Kind("card", re.compile(_CARD), _valid_card),
    _Kind("order_number", re.compile(_ORDER)),
    _Kind("phone", re.compile(_PHONE_INTL), within=_intl_numbers),
    _Kind("phone", re.compile(_PHONE), _valid_phone),
)
PII_PATTERNS: dict[str, re.Pattern[str]] = {f"{k.name}{'_intl' if k.within else ''}": k.pattern for k in PII_KINDS}
_TOKEN_RX = re.compile("|".join(re.escape(t) for t in PII_TOKENS.values()))


@lru_cache(maxsize=16)
def _custom(items: tuple[tuple[str, str], ...]) -> tuple[_Kind, ...]:
    return tuple(_Kind(name, re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])")) for name, pattern in items)


def custom_kinds(patterns: Mapping[str, str] | None) -> tuple[_Kind, ...]:
    """Kinds for ``ingest.pii_patterns`` (name -> bounded regex, checked linear by the config), token ``[NAME]``.
    They run before the built-in kinds (after emails), whole words only."""
    return _custom(tuple(sorted((patterns or {}).items())))


def token_of(kind: str) -> str:
    return PII_TOKENS.get(kind) or f"[{kind.upper()}]"


def _kinds(extra: tuple[_Kind, ...]) -> tuple[_Kind, ...]:
    return (PII_KINDS[0], *extra, *PII_KINDS[1:]) if extra else PII_KINDS


_MAX_PASSES = 4


def _one_pass(kind: _Kind, s: str) -> tuple[str, int]:
    """One linear pass of ``kind`` over ``s``: accepted matches replaced by the kind's token."""
    count = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal count
        text = m.group(0)
        if kind.within is not None:
            spans = kind.within(text)
            for start, end in reversed(spans):
                text = text[:start] + token_of(kind.name) + text[end:]
            count += len(spans)
            return text
        if kind.accept is not None and not kind.accept(text):
            return text
        count += 1
        return token_of(kind.name)

    return kind.pattern.sub(replace, s), count


def _scrub(
    s: str, found: list[tuple[str, str]] | None = None, extra: tuple[_Kind, ...] = ()
) -> tuple[str, dict[str, int]]:
    """Every kind in order, round after round until a round replaces nothing (at most ``_MAX_PASSES``
    rounds, each linear): a look-behind sees the text as it was (in ``a@b.io.c@d.io`` the second
    address is a match only once the first is a token), and a token can complete a new match next to
    it (``[ORDER]::a``), so one round is not always enough."""
    kinds = _kinds(extra)
    counts = dict.fromkeys((k.name for k in kinds), 0)
    for _ in range(_MAX_PASSES):
        replaced = 0
        for kind in kinds:
            if found is not None:
                for m in kind.pattern.finditer(s):
                    if kind.within is not None:
                        found.extend((kind.name, m.group(0)[a:b]) for a, b in kind.within(m.group(0)))
                    elif kind.accept is None or kind.accept(m.group(0)):
                        found.append((kind.name, m.group(0)))
            s, n = _one_pass(kind, s)
            counts[kind.name] += n
            replaced += n
        if not replaced:
            break
    return s, counts


def scrub_pii(s: str, extra: tuple[_Kind, ...] = ()) -> tuple[str, dict[str, int]]:
    """``s`` with every PII match replaced by its token (``[EMAIL]``, ``[IBAN]``, ``[IP]``, ``[CARD]``,
    ``[ORDER]``, ``[PHONE]``), and the number of replacements per kind (every kind, zeros included)."""
    return _scrub(s, None, extra)


def find_pii(s: str, extra: tuple[_Kind, ...] = ()) -> list[tuple[str, str]]:
    """Every ``(kind, matched text)`` in ``s``, found as :func:`scrub_pii` replaces them in turn;
    empty when ``s`` is clean."""
    found: list[tuple[str, str]] = []
    _scrub(s, found, extra)
    return found


def pii_kinds(s: object, extra: tuple[_Kind, ...] = ()) -> list[str]:
    """The distinct PII kinds in ``s`` (a non-string has none), in :data:`KINDS` order."""
    if not isinstance(s, str):
        return []
    seen = {kind for kind, _ in find_pii(s, extra)}
    return list(dict.fromkeys(k.name for k in _kinds(extra) if k.name in seen))


def mask_pii(s: str, extra: tuple[_Kind, ...] = ()) -> str:
    """``s`` with PII replaced by ``[PII:<kind>]``: for reports that must say what was found, not what it
    was. Scrubbed first, so it hides everything :func:`scrub_pii` would."""
    s, _ = scrub_pii(s, extra)
    for name in dict.fromkeys(k.name for k in _kinds(extra)):
        s = s.replace(token_of(name), f"[PII:{name}]")
    return s


def is_token(s: str) -> bool:
    """True when ``s`` holds a placeholder token (text that was scrubbed)."""
    return bool(_TOKEN_RX.search(s))
