"""Count the SMS segments a text costs: GSM-7 when every character fits, else UCS-2 (rule F.19)."""

from __future__ import annotations

import math
from functools import lru_cache

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def is_gsm7(text: str) -> bool:
    """Say whether every character of `text` exists in the GSM 03.38 alphabet (with its extension)."""
    try:
        text.encode("gsm03.38")
    except UnicodeEncodeError:
        return False
    return True


@lru_cache(maxsize=1024)
def segments(text: str) -> int:
    """Return how many segments `text` is billed as (cached: a flow's texts are few, and sent to every number)."""
    if is_gsm7(text):
        septets = len(text.encode("gsm03.38"))  # extension characters (€ [ ] ...) take two
        return 1 if septets <= GSM7_SINGLE else math.ceil(septets / GSM7_PART)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= UCS2_SINGLE else math.ceil(units / UCS2_PART)


def ucs2_characters(text: str) -> list[str]:
    """Return the characters that force UCS-2, in order of appearance, once each."""
    return list(dict.fromkeys(c for c in text if not is_gsm7(c)))
