"""Text handling for KB search: normalisation, language detection, finance vocabulary, tokens."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Literal, Protocol

import jieba
from pypinyin import Style, lazy_pinyin, pinyin

from knowledge.aspects import AspectLexicon, aspect_lexicon

Lang = Literal["zh", "en"]


class KbWords(Protocol):
    """The words a knowledge base uses, for reading a query (`knowledge.romanized`)."""

    def convert(self, text: str) -> str:
        """Replace pinyin tokens with the KB words they spell."""
        ...

    def homophone(self, piece: str, readings: Sequence[Collection[str]]) -> str | None:
        """A KB word read like `piece` (each character's pinyin `readings`), if any."""
        ...


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN_LETTER = re.compile(r"[a-z]")
_LATIN_TOKEN = re.compile(r"(?<![0-9a-z])[a-z]+(?![0-9a-z])")
_CJK_OR_LATIN = re.compile(r"[a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPACES = re.compile(r"\s+")
CONCEPT_PREFIX = "@"  # keyword term of a lexicon concept: "@" + its canonical name
BIGRAM_PREFIX = "~"  # keyword term of a Chinese character bigram


def _data_lines(name: str) -> list[list[str]]:
    """Read a tab-separated data file, skipping blank lines and comments."""
    text = resources.files("knowledge.data").joinpath(name).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def _single_pass_replacer(table: dict[str, str]) -> re.Pattern[str] | None:
    if not table:
        return None
    alternatives = sorted(table, key=len, reverse=True)
    return re.compile("|".join(re.escape(a) for a in alternatives))


@cache
def _typo_table() -> tuple[dict[str, str], re.Pattern[str] | None]:
    table = {_basic_normalize(row[0]): _basic_normalize(row[1]) for row in _data_lines("typos.txt")}
    return table, _single_pass_replacer(table)


@cache
def stopwords() -> frozenset[str]:
    """Return the stopword set (Chinese function words and English stopwords)."""
    return frozenset(row[0] for row in _data_lines("stopwords.txt"))


def _basic_normalize(text: str) -> str:
    # NFKC folds full-width letters, digits and punctuation (ＡＴＭ, １２３，) into ASCII.
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def normalize(text: str) -> str:
    """Fold width and case, collapse spaces and fix common finance misspellings."""
    text = _basic_normalize(text)
    table, pattern = _typo_table()
    if pattern is None:
        return text
    return pattern.sub(lambda m: table[m.group(0)], text)


def detect_lang(text: str) -> Lang:
    """Guess whether a text is Chinese or English from its letters."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN_LETTER.findall(text.lower()))
    # A Chinese question often carries a Latin acronym (LPR, ETF, app): count CJK characters
    # double since one character carries about as much as a short English word.
    return "zh" if cjk * 2 >= latin and cjk > 0 else "en"


@dataclass(frozen=True)
class Concept:
    """One finance concept: its canonical name and whether it is an entity a question is about."""

    index: int
    canonical: str
    is_entity: bool


class Lexicon:
    """Finance vocabulary: synonym groups across Chinese and English, abbreviations, pinyin keys."""

    def __init__(
        self, groups: Iterable[tuple[str, list[str], list[str]]], abbreviations: dict[str, str]
    ) -> None:
        self.concepts: list[Concept] = []
        self.term_concept: dict[str, int] = {}
        broader: list[tuple[int, list[str]]] = []
        for kind, terms, parents in groups:
            concept = Concept(len(self.concepts), _basic_normalize(terms[0]), kind == "e")
            self.concepts.append(concept)
            broader.append((concept.index, parents))
            for term in terms:
                self.term_concept.setdefault(_basic_normalize(term), concept.index)
        # narrower[c] = every concept below c, so coverage is one set intersection.
        self.narrower: dict[int, frozenset[int]] = {}
        for child, parents in broader:
            for parent in parents:
                index = self.term_concept[_basic_normalize(parent)]
                self.narrower[index] = self.narrower.get(index, frozenset()) | {child}
        self.shorthand_of = self._shorthands()
        names: dict[str, list[str]] = {}
        for term, index in self.term_concept.items():
            names.setdefault(self.concepts[index].canonical, []).append(term)
        # Every name of a concept, by its canonical name (what keyword terms carry).
        self.names_of = {canonical: tuple(terms) for canonical, terms in names.items()}
        self.abbreviations = {
            _basic_normalize(k): _basic_normalize(v) for k, v in abbreviations.items()
        }
        self._abbreviation_pattern = _bounded_alternation(self.abbreviations)
        latin = [t for t in self.term_concept if not _CJK.search(t)]
        # English terms also match their inflections (codes, cancelled, withdrawing).
        pattern = _bounded_alternation(latin, suffix=_INFLECTION)
        if pattern is None:
            raise ValueError("the finance lexicon has no Latin-script terms")
        self._latin_pattern = pattern
        self._latin_lookup = {t: i for t, i in self.term_concept.items() if not _CJK.search(t)}
        self.chinese_terms = sorted(t for t in self.term_concept if _CJK.search(t))
        self._initials = self._unique_initials()
        self._by_pinyin = self._pinyin_keys()

    def _unique_initials(self) -> dict[str, str]:
        """Map pinyin initials (xyk) to the one all-Chinese term they abbreviate."""
        seen: dict[str, set[str]] = {}
        for term in self.chinese_terms:
            if len(term) >= 3 and all(_CJK.match(ch) for ch in term):
                key = "".join(p[0] for p in lazy_pinyin(term, style=Style.FIRST_LETTER))
                seen.setdefault(key, set()).add(term)
        return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}

    def _pinyin_keys(self) -> dict[str, str]:
        """Map the toneless pinyin of each Chinese term to the term (homophone typo repair)."""
        keys: dict[str, set[str]] = {}
        for term in self.chinese_terms:
            if len(term) >= 2:
                keys.setdefault(" ".join(lazy_pinyin(term)), set()).add(term)
        # Homophones among canonical terms themselves (e.g. two products read alike) are
        # ambiguous: repair only to a term that is the single reading of its key.
        return {k: next(iter(v)) for k, v in keys.items() if len(v) == 1}

    def _shorthands(self) -> dict[int, frozenset[int]]:
        """Map each entity to the unrelated entities whose names its own names contain.

        An article titled 个人养老金 writes 养老金 for short in its body; 社保卡 articles write
        社保. Those mentions name the article's own product, not the shorter-named one (the
        basic state pension, social insurance), unless the lexicon declares one narrower than
        the other (港股通 is a way to buy 港股: that article does cover 港股).
        """
        names: dict[int, list[str]] = {}
        for term, index in self.term_concept.items():
            if self.concepts[index].is_entity and _CJK.search(term) and len(term) >= 2:
                names.setdefault(index, []).append(term)
        out: dict[int, set[int]] = {}
        for longer, long_names in names.items():
            for shorter, short_names in names.items():
                if longer == shorter or self.related(longer, shorter):
                    continue
                if any(s in n and s != n for s in short_names for n in long_names):
                    out.setdefault(longer, set()).add(shorter)
        return {k: frozenset(v) for k, v in out.items()}

    def related(self, a: int, b: int) -> bool:
        """True when one concept is declared narrower than the other (or they are the same)."""
        return a == b or self.covers(frozenset({a}), b) or self.covers(frozenset({b}), a)

    def subject_concepts(
        self, concepts: frozenset[int], heading_concepts: frozenset[int]
    ) -> frozenset[int]:
        """The concepts an article covers, leaving out body shorthand for its heading's entities.

        `heading_concepts` are those of the title, the other-language title and the questions;
        a concept only in the body that a heading entity's name contains (养老金 under the title
        个人养老金账户) is that entity written short, so it does not count as covered.
        """
        shorthand = {
            short
            for entity in heading_concepts
            for short in self.shorthand_of.get(entity, ())
            if short not in heading_concepts
        }
        return concepts - shorthand

    def covers(self, article_concepts: frozenset[int], entity: int) -> bool:
        """True when an article naming `article_concepts` covers the query entity `entity`."""
        if entity in article_concepts:
            return True
        return not self.narrower.get(entity, frozenset()).isdisjoint(article_concepts)

    def concept_of(self, term: str) -> Concept | None:
        """Return the concept a normalised term belongs to, if any."""
        index = self.term_concept.get(term)
        return None if index is None else self.concepts[index]

    def latin_terms(self, text: str) -> list[tuple[int, int, int]]:
        """Find Latin-script lexicon phrases in normalised text as (start, end, concept)."""
        return [
            (m.start(), m.end(), self._latin_lookup[m.group(1)])
            for m in self._latin_pattern.finditer(text)
        ]

    def expand_abbreviations(self, text: str) -> str:
        """Replace abbreviations (xyk, gjj, acct) with the words they stand for."""
        if self._abbreviation_pattern is not None:
            text = self._abbreviation_pattern.sub(lambda m: self.abbreviations[m.group(1)], text)

        def expand_initials(m: re.Match[str]) -> str:
            word = m.group(0)
            if word in self.term_concept or not 3 <= len(word) <= 6 or _has_vowel(word):
                return word
            return self._initials.get(word, word)

        return _LATIN_TOKEN.sub(expand_initials, text)

    def repair_homophones(self, words: list[str], kb_words: KbWords | None = None) -> str:
        """Rejoin segmented words, replacing misheard finance terms (理培 → 理赔, 车代 → 车贷).

        Only stretches that segmentation left as single characters are candidates: a typo
        breaks a word into characters, while correct text segments into real words, so the
        repair cannot rewrite a correct word that merely sounds like a term (钱保险 ≠ 钱包险).
        With `kb_words`, a stretch that reads like no lexicon term may also become a word the
        KB uses (继成 → 继承 in a KB about inheriting deposits).
        """
        out: list[str] = []
        i = 0
        while i < len(words):
            j = i
            while j < len(words) and len(words[j]) == 1 and _CJK_OR_LATIN.match(words[j]):
                j += 1
            if j - i >= 2:
                out.append(self._repair_run("".join(words[i:j]), kb_words))
                i = j
            else:
                out.append(words[i])
                i += 1
        return "".join(out)

    def _repair_run(self, run: str, kb_words: KbWords | None) -> str:
        readings = [set(r) for r in pinyin(run, style=Style.NORMAL, heteronym=True)]
        i, result = 0, []
        while i < len(run):
            for size in (4, 3, 2):
                piece = run[i : i + size]
                if len(piece) < size:
                    continue
                keys = _reading_keys(readings[i : i + size])
                target = next((self._by_pinyin[k] for k in keys if k in self._by_pinyin), None)
                if target is None and kb_words is not None:
                    target = kb_words.homophone(piece, readings[i : i + size])
                if target is not None and target != piece and _shares_a_character(piece, target):
                    result.append(target)
                    i += size
                    break
            else:
                result.append(run[i])
                i += 1
        return "".join(result)


def _reading_keys(readings: list[set[str]]) -> list[str]:
    """Every combination of heteronym readings, space-separated (runs are ≤ 4 characters)."""
    keys = [""]
    for options in readings:
        keys = [f"{k} {o}".strip() for k in keys for o in sorted(options)][:64]
    return keys


def _shares_a_character(a: str, b: str) -> bool:
    # A typo keeps most of the word (理培 → 理赔): requiring one shared character stops a
    # correct but unrelated word that merely sounds like a term from being rewritten.
    return any(x == y for x, y in zip(a, b, strict=True))


def _has_vowel(word: str) -> bool:
    # Pinyin initials are consonant strings (xyk, gjj); a vowel marks an English word.
    return re.search(r"[aeiou]", word) is not None


def _bounded_alternation(terms: Iterable[str], suffix: str = "") -> re.Pattern[str] | None:
    """Compile a longest-first alternation (group 1) of terms that must not touch other letters."""
    ordered = sorted(terms, key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(re.escape(t) for t in ordered)
    return re.compile(rf"(?<![0-9a-z])({body}){suffix}(?![0-9a-z])")


_INFLECTION = r"(?:s|es|d|ed|led|ing)?"


@cache
def finance_lexicon() -> Lexicon:
    """Load the bundled finance lexicon (shared, read-only)."""
    groups = [
        (row[0], row[1].split("|"), row[2].split(",") if len(row) > 2 else [])
        for row in _data_lines("finance_terms.txt")
    ]
    abbreviations = {row[0]: row[1] for row in _data_lines("abbreviations.txt")}
    return Lexicon(groups, abbreviations)


@dataclass(frozen=True)
class Analysis:
    """What the keyword side knows about one text."""

    text: str
    lang: Lang
    terms: tuple[str, ...]
    concepts: frozenset[int]
    entities: frozenset[int]
    # Question aspects asked (fee, tax, refund …); only analysed for queries.
    aspects: frozenset[str] = frozenset()


class Analyzer:
    """Turn queries and articles into keyword terms and finance concepts (jieba + lexicon)."""

    def __init__(
        self,
        lexicon: Lexicon | None = None,
        bigrams: bool = True,
        aspects: AspectLexicon | None = None,
    ) -> None:
        self.lexicon = lexicon or finance_lexicon()
        self.aspects = aspects or aspect_lexicon()
        self.bigrams = bigrams
        self._stop = stopwords()
        self._jieba = _finance_jieba(tuple(self.lexicon.chinese_terms))

    def words(self, text: str) -> list[str]:
        """Segment normalised text into words (jieba with the finance user dictionary)."""
        return [w for w in self._jieba.lcut(text, HMM=False) if _WORD.search(w)]

    def latin_words(self) -> frozenset[str]:
        """Latin-script words this analyser knows as English (never read as pinyin)."""
        words = {w for w in self._stop if w.isascii()}
        for term in self.lexicon.term_concept:
            if term.isascii():
                words.update(_LATIN_TOKEN.findall(term))
        return frozenset(words)

    def is_word(self, text: str) -> bool:
        """Whether the segmenter's dictionary (jieba's, with the finance terms) has `text`."""
        return bool(self._jieba.FREQ.get(text))

    def function_words(self) -> frozenset[str]:
        """Chinese words this analyser drops as stopwords (怎么, 什么, 多少 …)."""
        return frozenset(w for w in self._stop if _CJK.search(w))

    def prepare_query(self, text: str, kb_words: KbWords | None = None) -> str:
        """Normalise a customer's query, expand abbreviations, read pinyin, repair typos.

        `kb_words` (the search engine passes its KB's) reads the pinyin the lexicon's
        abbreviations leave and repairs misspelt words to words the KB uses.
        """
        text = self.lexicon.expand_abbreviations(normalize(text))
        if kb_words is not None:
            text = kb_words.convert(text)
        return self.lexicon.repair_homophones(self._jieba.lcut(text, HMM=False), kb_words)

    def analyze_query(self, text: str, kb_words: KbWords | None = None) -> Analysis:
        """Analyse a customer's query, including the aspects it asks about."""
        prepared = self.prepare_query(text, kb_words)
        asked = self.aspects.asked(prepared, self._jieba.lcut(prepared, HMM=False))
        return replace(self._analyze(prepared), aspects=asked)

    def analyze_document(self, text: str) -> Analysis:
        """Analyse article text (edited, so no typo guessing beyond the fixed table)."""
        return self._analyze(normalize(text))

    def _analyze(self, text: str) -> Analysis:
        terms: list[str] = []
        concepts: set[int] = set()
        rest = list(text)
        for start, end, index in self.lexicon.latin_terms(text):
            concepts.add(index)
            rest[start:end] = " " * (end - start)
        for word in self.words("".join(rest)):
            concept = self.lexicon.concept_of(word)
            if concept is not None:
                concepts.add(concept.index)
            elif word not in self._stop:
                terms.append(_stem(word))
        lex = self.lexicon
        terms.extend(CONCEPT_PREFIX + lex.concepts[i].canonical for i in sorted(concepts))
        if self.bigrams:
            terms.extend(_cjk_bigrams(text))
        entities = frozenset(i for i in concepts if lex.concepts[i].is_entity)
        return Analysis(text, detect_lang(text), tuple(terms), frozenset(concepts), entities)


_jieba_lock = threading.Lock()


@cache
def _finance_jieba(chinese_terms: tuple[str, ...]) -> jieba.Tokenizer:
    """Build one jieba tokenizer with the finance user dictionary (built once; ~1 s)."""
    with _jieba_lock:
        jieba.setLogLevel(40)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        with resources.as_file(resources.files("knowledge.data").joinpath("userdict.txt")) as path:
            tokenizer.load_userdict(str(path))
        for term in chinese_terms:
            # High frequency so the lexicon term wins over a split (保险箱, not 保险/箱).
            tokenizer.add_word(term, freq=max(tokenizer.FREQ.get(term, 0), 50_000))
        return tokenizer


def _stem(word: str) -> str:
    # Plural folding only: enough for FAQ English, and never merges unrelated words.
    if word.isascii() and len(word) > 3:
        if word.endswith("ies"):
            return word[:-3] + "y"
        if word.endswith("s") and not word.endswith("ss"):
            return word[:-1]
    return word


def _cjk_bigrams(text: str) -> list[str]:
    # Character bigrams match across segmentation differences (转钱 / 转账 share nothing, but
    # 到账时间 / 到账 do) and across words jieba has never seen.
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        grams.extend(BIGRAM_PREFIX + run[i : i + 2] for i in range(len(run) - 1))
    return grams


_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=\.)\s+")
CHUNK_CHARS = 220


def article_views(
    title: str, body: str, title_alt: str | None, questions: Iterable[str], max_views: int
) -> list[tuple[str, str]]:
    """List the (kind, text) pieces of an article that each get their own vector."""
    views: list[tuple[str, str]] = [("title", title)]
    if title_alt:
        views.append(("title_alt", title_alt))
    views.extend(("question", q) for q in questions if q.strip())
    # Each chunk carries the title: a body sentence alone ("可在手机银行查看") says little.
    views.extend(("chunk", f"{title}\n{chunk}") for chunk in chunk_body(body))
    return views[:max_views]


def chunk_body(body: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split a body into chunks of whole sentences, each at most about `size` characters."""
    sentences = [s.strip() for s in _SENTENCE_END.split(body) if s and s.strip()]
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        if current and len(current) + len(sentence) > size:
            chunks.append(current)
            current = ""
        current = (
            f"{current} {sentence}".strip()
            if current and sentence.isascii()
            else current + sentence
        )
    if current:
        chunks.append(current)
    return chunks or ([body] if body.strip() else [])
