"""Read pinyin in a query as the Chinese words of the knowledge base it spells.

Customers type pinyin when their input method is slow or they are on a foreign keyboard:
full syllables (``kuajing licaitong menkan``, ``zhangdanri xiugai``) or initials (``ckzm``,
``ggt``), alone or between Chinese words. The finance lexicon's fixed abbreviation list covers a
few of these; every other spelling can only be resolved against the words a KB actually uses.
So the vocabulary here is built from the indexed articles' own words and kept in step with
every upsert and removal: ``kuajing`` becomes 跨境 because an article says 跨境, and a KB that
never mentions 跨境 never gets it.

A Latin token is read as pinyin only when it is not an English word the KB or the stopword list
knows, and the whole token splits into vocabulary spellings. When several words share a spelling
(homophones), the one more articles use wins: in a bank's KB, ``dai`` is 贷.

The same vocabulary repairs Chinese typos that the lexicon's homophone table does not know:
a misspelt stretch becomes a KB word read alike (结习日 → 结息日), or a dictionary word that the
KB's text contains (炸骗 → 诈骗); see `homophone`. It keeps one count per distinct word, not a
copy of each article's words: the search engine, which has those as keyword terms, hands the
same words back on removal.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, pinyin
from pypinyin.constants import PINYIN_DICT
from pypinyin.style import convert as convert_style

_CJK_WORD = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{1,8}$")
_LATIN_TOKEN = re.compile(r"(?<![0-9a-z])[a-z]+(?![0-9a-z])")
_VOWEL = re.compile(r"[aeiouv]")
_MAX_TOKEN = 24  # longer Latin strings are not pinyin a customer typed
_MAX_READINGS = 8  # heteronym combinations kept per word (还款: hai kuan, huan kuan …)
_MIXED_UP_TO = 3  # words this short also match with some syllables written as initials

# Costs of a segmentation piece: fewer, longer, fully spelt pieces read most naturally.
_PIECE = 1.0
_SINGLE_CHARACTER = 0.6  # one-character words are the most ambiguous homophones
_ABBREVIATED = 0.3  # a piece with initials is a weaker reading than a spelt one


def _article_words(words: Iterable[str]) -> frozenset[str]:
    """The words worth knowing: Chinese words and Latin-letter words, each once."""
    return frozenset(w for w in words if _CJK_WORD.match(w) or (w.isascii() and w.isalpha()))


def _reads_as_pinyin(read: int, unknown: Iterable[str], text: str) -> bool:
    """Whether an all-Latin query is pinyin rather than English with a word the KB lacks.

    An English word the KB never uses (make) may still spell some Chinese: a query is pinyin
    when it is one token, or when at least two tokens read and most of the tokens that are
    not known English words are made of pinyin syllables (shui, zenme, le count: a customer
    typing pinyin types function words too, which no KB word spells).
    """
    if len(_LATIN_TOKEN.findall(text)) == 1:
        return True
    unknown = list(unknown)
    syllabic = sum(_is_syllables(token) for token in unknown)
    return read >= 2 and 2 * syllabic > len(unknown)


@lru_cache(maxsize=4096)
def _toneless(reading: str) -> str:
    """A tone-marked pinyin reading without its tone (zhuàng → zhuang).

    pypinyin's table lists some 41,000 characters with about 1,500 distinct readings:
    converting each distinct reading once keeps building the tables below to milliseconds.
    """
    return convert_style(reading, Style.NORMAL, strict=False)


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    """Every toneless pinyin syllable (ba, zhuang …), from pypinyin's character table."""
    out = set()
    for readings in PINYIN_DICT.values():
        for reading in readings.split(","):
            syllable = _toneless(reading)
            if _VOWEL.search(syllable):  # not the interjections m, n, ng, hm
                out.add(syllable)
    return frozenset(out)


@lru_cache(maxsize=1)
def _characters_by_reading() -> dict[str, str]:
    """Common Chinese characters (U+4E00-U+9FFF) by their first (usual) toneless reading."""
    out: dict[str, list[str]] = {}
    for codepoint, readings in PINYIN_DICT.items():
        if 0x4E00 <= codepoint <= 0x9FFF:
            out.setdefault(_first_reading(readings), []).append(chr(codepoint))
    return {syllable: "".join(chars) for syllable, chars in out.items()}


def _first_reading(listed: str) -> str:
    """The usual (first) toneless reading of a character's entry in pypinyin's table."""
    return _toneless(listed.split(",", 1)[0])


def _usual_reading(character: str, readings: Collection[str]) -> list[str]:
    """The character's first reading in pypinyin's table, or all given when it has none."""
    listed = PINYIN_DICT.get(ord(character))
    return sorted(readings) if listed is None else [_first_reading(listed)]


def _characters_read(syllable: str) -> str:
    return _characters_by_reading().get(syllable, "")


@lru_cache(maxsize=4096)
def _is_syllables(token: str) -> bool:
    """Whether `token` splits completely into pinyin syllables."""
    syllables = _syllables()
    reachable = [True] + [False] * len(token)
    for end in range(1, len(token) + 1):
        reachable[end] = any(
            reachable[start] and token[start:end] in syllables
            for start in range(max(0, end - 6), end)
        )
    return reachable[-1]


def _plausible(token: str) -> bool:
    if not 2 <= len(token) <= _MAX_TOKEN:
        return False
    # A long consonant string is a code, not initials.
    return _VOWEL.search(token) is not None or len(token) <= 6


@dataclass(frozen=True)
class _Spelling:
    word: str
    abbreviated: bool


@lru_cache(maxsize=65_536)
def _spellings(word: str) -> tuple[_Spelling, ...]:
    """Every way a customer may type `word` in pinyin: spelt out, as initials, or mixed."""
    per_character = [sorted(set(r)) for r in pinyin(word, style=Style.NORMAL, heteronym=True)]
    if not all(s and s[0].isalpha() for s in per_character):
        return ()
    readings = list(itertools.islice(itertools.product(*per_character), _MAX_READINGS))
    out: dict[str, bool] = {}
    for syllables in readings:
        out.setdefault("".join(syllables), False)
        if len(word) >= 2:
            out.setdefault("".join(s[0] for s in syllables), True)
        if 2 <= len(word) <= _MIXED_UP_TO:
            for mask in itertools.product((False, True), repeat=len(word)):
                if any(mask) and not all(mask):
                    key = "".join(
                        s[0] if short else s for s, short in zip(syllables, mask, strict=True)
                    )
                    out.setdefault(key, True)
    return tuple(_Spelling(k, abbreviated) for k, abbreviated in out.items())


class RomanizedVocabulary:
    """The KB's Chinese words by pinyin spelling, and its English words; updated per article.

    Not thread-safe by itself: the search engine changes it under its write lock and reads it
    under its read lock.
    """

    def __init__(
        self,
        known_latin: Iterable[str] = (),
        function_words: Iterable[str] = (),
        pair_frequency: Callable[[str], int] | None = None,
        is_word: Callable[[str], bool] = lambda _: True,
    ) -> None:
        self._fixed_latin = frozenset(known_latin)
        # How many articles contain a pair of Chinese characters (the keyword index knows).
        self._pair_frequency = pair_frequency
        self._is_word = is_word  # a word of the segmenter's dictionary
        self._document_frequency: Counter[str] = Counter()
        self._by_spelling: dict[str, dict[str, bool]] = {}
        # Chinese function words (怎么, 什么, 多少) are no keyword terms, so no article lists
        # them, yet "zenme jiesuo" reads naturally only with them: they are always readable,
        # and lose to any KB word spelt alike.
        self._function_words = frozenset(w for w in function_words if _CJK_WORD.match(w))
        for word in self._function_words:
            self._add_spellings(word)

    def __len__(self) -> int:
        return len(self._document_frequency)

    def add(self, words: Iterable[str]) -> None:
        """Count one article's words (each once, however often the article uses it)."""
        for word in _article_words(words):
            self._document_frequency[word] += 1
            if self._document_frequency[word] == 1 and not word.isascii():
                self._add_spellings(word)

    def _add_spellings(self, word: str) -> None:
        for spelling in _spellings(word):
            self._by_spelling.setdefault(spelling.word, {})[word] = spelling.abbreviated

    def remove(self, words: Iterable[str]) -> None:
        """Uncount one article's words: the same words `add` was given for it.

        The caller keeps each article's words (the search engine has them as keyword terms),
        so the vocabulary does not hold a second copy per article.
        """
        for word in _article_words(words):
            if self._document_frequency[word] <= 0:
                continue
            self._document_frequency[word] -= 1
            if self._document_frequency[word] > 0:
                continue
            del self._document_frequency[word]
            if word.isascii() or word in self._function_words:
                continue
            for spelling in _spellings(word):
                words_spelt = self._by_spelling.get(spelling.word)
                if words_spelt is not None:
                    words_spelt.pop(word, None)
                    if not words_spelt:
                        del self._by_spelling[spelling.word]

    def convert(self, text: str) -> str:
        """Replace the pinyin tokens of normalised (lower-case) text with the words they spell."""
        if not self._by_spelling or not _LATIN_TOKEN.search(text):
            return text
        has_chinese = any(ord(ch) >= 0x3400 for ch in text)
        readings: dict[str, list[str]] = {}
        unknown: list[str] = []
        for token in set(_LATIN_TOKEN.findall(text)):
            if self._is_english(token):
                continue
            unknown.append(token)
            reading = self._segment(token) if _plausible(token) else None
            # One syllable alone (pin, long, can) is as likely an English word: a reading needs
            # a word of two characters or more.
            if reading is not None and max(len(w) for w in reading) >= 2:
                readings[token] = reading
        if not readings:
            return text
        if not has_chinese and not _reads_as_pinyin(len(readings), unknown, text):
            return text
        return _LATIN_TOKEN.sub(lambda m: "".join(readings.get(m[0], [m[0]])), text)

    def homophone(self, piece: str, readings: Sequence[Collection[str]]) -> str | None:
        """A word the KB uses that reads like `piece` (继成 → 继承, 反现 → 返现), if any.

        For typo repair: a whole KB word read alike (full spellings only, never a function
        word), else, for two characters, a character pair the KB's text contains with one of
        the two characters kept (the KB may write 返现 where segmentation sees 返 and 现).
        The caller keeps only a target that shares a character with the piece.
        """
        # The piece's usual readings only: a misspelt character is mistaken for its common
        # sound (还 as hai or huan, never its archaic fu).
        usual = [_usual_reading(ch, options) for ch, options in zip(piece, readings, strict=True)]
        keys = [""]
        for options in usual:
            keys = [k + o for k in keys for o in options][:_MAX_READINGS]
        for key in keys:
            words = {
                w: False
                for w, abbreviated in self._by_spelling.get(key, {}).items()
                if not abbreviated and len(w) == len(piece) and self._document_frequency[w] > 0
            }
            if words:
                return self._most_used(words)[0]
        if len(piece) != 2 or self._pair_frequency is None or self._is_word(piece):
            return None
        pairs: dict[str, int] = {}
        for kept in (0, 1):
            other = 1 - kept
            for reading in usual[other]:
                for character in _characters_read(reading):
                    pair = piece[kept] + character if kept == 0 else character + piece[kept]
                    # Only a real word: a pair the KB's text merely contains across two
                    # words (设立的) must not replace correct text (里的).
                    if pair != piece and self._is_word(pair):
                        pairs[pair] = self._pair_frequency(pair)
        best = max(pairs, key=lambda p: (pairs[p], p), default=None)
        return best if best is not None and pairs[best] > 0 else None

    def _is_english(self, token: str) -> bool:
        return token in self._fixed_latin or token in self._document_frequency

    def _segment(self, token: str) -> list[str] | None:
        """Cheapest split of `token` into vocabulary spellings, or None when none covers it."""
        n = len(token)
        # A token with vowels is spelt pinyin: its pieces may shorten a syllable to its initial
        # (dkuan) but a run of bare initials inside it (fr in freeze) is no reading.
        spelt = _VOWEL.search(token) is not None
        best: list[tuple[float, int, str] | None] = [None] * (n + 1)
        best[0] = (0.0, 0, "")
        for start in range(n):
            here = best[start]
            if here is None:
                continue
            for end in range(start + 1, min(n, start + _MAX_TOKEN) + 1):
                piece = token[start:end]
                candidates = self._by_spelling.get(piece)
                if not candidates or (spelt and not _VOWEL.search(piece)):
                    continue
                word, abbreviated = self._most_used(candidates)
                cost = here[0] + _PIECE
                cost += _SINGLE_CHARACTER if len(word) == 1 else 0.0
                cost += _ABBREVIATED if abbreviated else 0.0
                if best[end] is None or cost < best[end][0]:  # type: ignore[index]
                    best[end] = (cost, start, word)
        if best[n] is None:
            return None
        words: list[str] = []
        end = n
        while end > 0:
            _, start, word = best[end]  # type: ignore[misc]
            words.append(word)
            end = start
        return words[::-1]

    def _most_used(self, candidates: dict[str, bool]) -> tuple[str, bool]:
        # Homophones: the word more articles use; ties go to the longer, then the first in order.
        word = max(candidates, key=lambda w: (self._document_frequency[w], len(w), w))
        return word, candidates[word]
