"""The simulator's noise: PII it plants (cards, phones, emails, order numbers) and typing noise.

Data generators only, each driven by the caller's seeded ``random.Random``.
"""

from __future__ import annotations

import random

from pipeline.data.simulator_vocab import _DOMAINS, _FIRST, _KEYBOARD_NEIGHBORS, _LAST


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 0:
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    body = rng.choice("4455") + "".join(rng.choice("0123456789") for _ in range(14))
    last = _luhn_digit(body) if rng.random() < 0.5 else rng.choice("0123456789")
    digits = body + last
    sep = rng.choice((" ", " ", "-", ""))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def _phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        (
            f"({a}) {b}-{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"+1 {a} {b} {c:04d}",
            f"{a}.{b}.{c:04d}",
            f"{a}{b}{c:04d}",
            f"+44 20 {rng.randint(7000, 8999)} {c:04d}",
        )
    )


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    user = rng.choice(
        (f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{last}.{first}{rng.randint(70, 99)}")
    )
    return f"{user}@{rng.choice(_DOMAINS)}"


def _order_number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return f"#{rng.choice('ABCDEFGHKMNPRSTW')}{rng.randint(1_000_000, 9_999_999)}"
    if kind < 0.75:
        return f"{rng.randint(100, 999)}-{rng.randint(1_000_000, 9_999_999)}"
    if kind < 0.9:
        return f"#{rng.randint(10_000_000, 99_999_999)}"
    return f"{rng.choice('ABCDEFGHKMNPRSTW')}{rng.randint(10_000_000, 99_999_999)}"


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.random()
    if op < 0.3:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if op < 0.55:
        return word[:i] + word[i + 1 :]  # drop
    if op < 0.75:
        return word[:i] + word[i] + word[i:]  # double
    return word[:i] + _KEYBOARD_NEIGHBORS.get(word[i].lower(), word[i]) + word[i + 1 :]  # fat finger


def _add_noise(text: str, rng: random.Random) -> str:
    for _ in range(rng.choice((1, 1, 2))):
        op = rng.random()
        if op < 0.5:
            words = text.split(" ")
            for _ in range(rng.randint(1, 2)):
                j = rng.randrange(len(words))
                words[j] = _typo(words[j], rng)
            text = " ".join(words)
        elif op < 0.75:
            shouted = text.upper() if len(text) < 60 else text.lower()
            text = rng.choice((text.lower(), shouted, text[:1].lower() + text[1:]))
        else:
            words = text.split(" ")
            j = rng.randrange(len(words))
            words[j] = words[j] + rng.choice(("  ", "   ", "\n", "\t", " \n "))
            text = rng.choice(("", " ", "  ")) + " ".join(words) + rng.choice(("", " ", "\n"))
    return text
