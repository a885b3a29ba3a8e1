"""Which language a customer writes in: the hub answers in it."""

from __future__ import annotations

import re

SUPPORTED_LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def detect_language(text: str, fallback: str = DEFAULT_LANGUAGE) -> str:
    """Return "zh" when the text has Chinese characters, "en" for Latin-script text.

    Mixed messages ("LPR下调了我房贷月供会自动变少吗") are Chinese: customers who mix in
    English terms still expect a Chinese answer.
    """
    if _HAN.search(text):
        return "zh"
    if _LATIN_WORD.search(text):
        return "en"
    return fallback
