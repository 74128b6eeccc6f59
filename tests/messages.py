"""Distinct test messages: far from each other, so near-duplicate removal keeps them all."""

from __future__ import annotations

import random

WORDS = (
    "parcel kettle blender jacket sneakers lamp umbrella backpack scarf monitor tripod charger pillow mug "
    "yesterday monday tracking courier warehouse invoice voucher receipt colour size broken missing late "
    "cracked wrong blue green heavy tiny urgent twice again"
).split()


def msg(i: int, topic: str, words: int = 7) -> str:
    """A message about ``topic``: the topic and ``words`` words drawn for ``(topic, i)``."""
    return f"{topic} " + " ".join(random.Random(f"{topic}{i}").sample(WORDS, words))
