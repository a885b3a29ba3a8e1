"""Question aspects: does an article address WHAT is asked (its fee, tax, refund …), not only which
product? The vocabulary is `data/aspects.txt`; this module finds aspects in questions and evidence
for them in articles, and says which asked aspects an article leaves unanswered."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Figures an article may answer a "how much" or "when" question with. Articles are normalised
# (NFKC, lower case) before matching, so full-width digits and ％ are plain ASCII here.
_CN_DIGITS = "[零一二两三四五六七八九十百千万亿半]"
_EN_NUMBERS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    "hundred|thousand|million"
)
_CN_TIME_UNITS = "工作日|交易日|自然日|天|日|小时|分钟|秒|周|星期|个月|月|年|季度"
_EN_TIME_UNITS = r"(?:business |working |calendar )?(?:days?|hours?|minutes?|weeks?|months?|years?)"
# "As posted at the branch / as approved": an article that defers a price or rate to an official
# source has addressed it (以网点公示为准, 以审批结果为准); that is what an agent would say too.
_DEFERRED = r"为准|公示|挂牌|as posted|as published|as shown"
_RATE = (
    r"\d[\d,.]*\s*(?:%|‰|个百分点)|百分之|千分之|万分之"
    r"|(?<![0-9a-z])\d[\d.]*\s*(?:percent|per cent|bp)(?![a-z])"
)
FIGURES: dict[str, re.Pattern[str]] = {
    # Any count or amount: a digit, or a Chinese numeral with a unit (两万元, 三次, 半年).
    "#number": re.compile(
        rf"\d|{_CN_DIGITS}+\s*(?:个|份|张|笔|次|元|块|万|千|%|年|月|天|日|周|小时|分钟|岁|倍|克|期|成|类|种)"
        rf"|(?<![a-z])(?:{_EN_NUMBERS}|once|twice)(?![a-z])"
    ),
    # An amount of money or a rate, an explicit "free", or a price deferred to an official source:
    # what answers "how much does it cost".
    "#money": re.compile(
        r"\d[\d,.]*\s*(?:万|千|百|亿)?\s*(?:元|块|美元|欧元|日元|英镑|港币|港元)"
        rf"|{_CN_DIGITS}+\s*(?:元|块|毛)|{_RATE}|{_DEFERRED}"
        r"|(?:cny|rmb|usd|hkd|eur|gbp|jpy|¥|\$)\s*\d"
        r"|\d[\d,.]*\s*(?:yuan|dollars?|euros?)(?![a-z])"
        r"|免费|免收|不收|零费用|免[\u4e00-\u9fff]{1,2}费"
        r"|(?<![a-z])(?:free|no charge|no fee|waived)(?![a-z])"
    ),
    # A rate (or "no interest", or a rate deferred to an official source): what answers "what is
    # the interest rate". A loan's maximum amount does not.
    "#rate": re.compile(
        rf"{_RATE}|{_DEFERRED}|免息|不计息|不计付利息|零利率"
        r"|(?<![a-z])(?:interest-free|no interest|zero interest)(?![a-z])"
    ),
    # A duration, a clock time, a date or a schedule: what answers "how long" and "when".
    "#time": re.compile(
        rf"\d+\s*个?\s*(?:{_CN_TIME_UNITS})|{_CN_DIGITS}+\s*个?\s*(?:{_CN_TIME_UNITS})"
        r"|t\s*\+\s*\d|\d{1,2}\s*[:：]\s*\d{2}|\d{1,2}\s*点"
        r"|当天|当日|即日|实时|即时|立即|立刻|马上|次日|隔日|次月|下一个?工作日|即刻|到期"
        r"|每月|每年|每季|每周|每天|按月|按年|工作日|交易日|节假日|营业时间|月底|月初|年底"
        rf"|\d+\s*{_EN_TIME_UNITS}(?![a-z])|(?<![a-z])(?:{_EN_NUMBERS})\s+{_EN_TIME_UNITS}(?![a-z])"
        r"|(?<![a-z])(?:same day|immediately|instantly|real[- ]time|next (?:business |working )?day"
        r"|day after|following day"
        r"|business days?|working days?|dates?|monthly|annually|daily|weekly)(?![a-z])"
        r"|\d\s*(?:am|pm)(?![a-z])"
    ),
}
# Where an article's statements end: a figure and an aspect named in one of them belong together.
_SENTENCE_END = re.compile(r"[。！？!?\n]+|\.(?:\s+|$)")
_CLAUSE_END = re.compile(r"[；;]+")
_LIST_HEAD = re.compile(r"^[^：:]{1,40}[：:]")
# The figure aspects that ask for an amount ("how much", "how much money"), not a time.
_AMOUNTS = frozenset({"#number", "#money"})


def _statements(text: str) -> Iterator[str]:
    """The article's sentences, cut again at semicolons; a list's items keep the list's head.

    "贷款期限最长6年；宽限期内只还利息" are two statements (the 6 is no interest rate), while in
    "年费标准如下：普通卡免年费；金卡每年10元" each item still belongs to "年费标准".
    """
    for sentence in _SENTENCE_END.split(text):
        head = _LIST_HEAD.match(sentence)
        prefix = head.group(0) if head else ""
        for clause in _CLAUSE_END.split(sentence[len(prefix) :]):
            yield prefix + clause


# English inflections a word also matches (refund → refunds, refunded; cancel → cancelled).
_INFLECTION = r"(?:s|es|d|ed|led|ing|ling)?"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class _Words:
    """A set of evidence words, matched as _evidence_pattern says.

    Substring tests run first and the regular expression only when one of its words occurs at
    all: most articles contain few of any aspect's words, so deriving an article's evidence
    costs tens of microseconds instead of a regex scan per aspect.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.pattern = _evidence_pattern(words)
        self._cjk = tuple(w for w in words if _CJK.search(w))
        self._latin = tuple(w.rstrip("*") for w in words if not _CJK.search(w))

    def occur_in(self, text: str) -> bool:
        if any(w in text for w in self._cjk):
            return True
        return any(w in text for w in self._latin) and self.found_in(text)

    def found_in(self, text: str) -> bool:
        return self.pattern is not None and self.pattern.search(text) is not None


@dataclass(frozen=True)
class Aspect:
    """One question aspect: how questions ask about it and how articles address it."""

    name: str
    # The figure that answers "how much" about this aspect (#money for fees), if any.
    quantity: str | None
    answered_by_words: _Words
    answered_by_figures: tuple[str, ...]
    # Words that contain evidence but do not address the aspect (纳税证明 is a document to
    # bring, not an answer about tax); they are blanked out before looking for evidence.
    masked: _Words

    def addressed_by(self, text: str) -> bool:
        """True when the article text names this aspect (figures are checked separately)."""
        if self.masked.pattern is not None and self.masked.occur_in(text):
            text = self.masked.pattern.sub(" ", text)
        return self.answered_by_words.occur_in(text)


@dataclass(frozen=True)
class ArticleAspects:
    """What an article addresses: aspects named by its words, and kinds of figure it quotes."""

    named: frozenset[str]
    figures: frozenset[str]
    # (aspect, figure kind) named and quoted in one statement: the article states THAT aspect's
    # figure ("年费每年10元"), not some figure of something else next to a mention of it.
    stated: frozenset[tuple[str, str]] = frozenset()


class AspectLexicon:
    """Bilingual vocabulary of question aspects (`data/aspects.txt`)."""

    def __init__(self, rows: Iterable[Sequence[str]]) -> None:
        self.aspects: dict[str, Aspect] = {}
        self._asked_cjk: dict[str, set[str]] = {}
        asked_latin: dict[str, set[str]] = {}
        for name, quantity, asked_by, answered_by in rows:
            if name in self.aspects:
                raise ValueError(f"aspect {name!r} is defined twice")
            words = [w.strip() for w in answered_by.split("|") if w.strip()]
            figures = tuple(w for w in words if w.startswith("#"))
            wanted = None if quantity == "-" else f"#{quantity}"
            unknown = [f for f in (*figures, wanted) if f is not None and f not in FIGURES]
            if unknown:
                raise ValueError(f"aspect {name!r} names unknown figures {unknown}")
            masks = [w[1:] for w in words if w.startswith("!")]
            self.aspects[name] = Aspect(
                name,
                wanted,
                _Words([w for w in words if w[0] not in "#!"]),
                figures,
                _Words(masks),
            )
            for word in (w.strip() for w in asked_by.split("|")):
                if word:
                    table = self._asked_cjk if _CJK.search(word) else asked_latin
                    table.setdefault(word, set()).add(name)
        self._longest_cjk = max((len(w) for w in self._asked_cjk), default=0)
        self._asked_latin = asked_latin
        self._latin_pattern = _latin_alternation(asked_latin)

    def asked(self, text: str, words: Sequence[str]) -> frozenset[str]:
        """Aspects a normalised question asks about; `words` is its segmentation (all of it).

        A Chinese marker must span whole words, so 退 (refund) is found in 能退吗 but not in
        退休以后 and 税 (tax) not in a word that merely contains the character. A marker may span
        several words (什么时候 = 什么 + 时候), so the segmenter needs no extra vocabulary.
        """
        found: set[str] = set()
        starts, ends, position = set(), set(), 0
        for word in words:
            starts.add(position)
            position += len(word)
            ends.add(position)
        joined = "".join(words)
        for start in starts:
            for size in range(1, self._longest_cjk + 1):
                if start + size in ends:
                    found.update(self._asked_cjk.get(joined[start : start + size], ()))
        if self._latin_pattern is not None:
            for match in self._latin_pattern.finditer(text):
                found.update(self._asked_latin[match.group(1)])
        return frozenset(found)

    def addressed(self, text: str) -> ArticleAspects:
        """What a normalised article text addresses."""
        named = frozenset(a.name for a in self.aspects.values() if a.addressed_by(text))
        figures = frozenset(kind for kind, pattern in FIGURES.items() if pattern.search(text))
        priced = [(a, q) for name in named if (q := (a := self.aspects[name]).quantity)]
        stated: set[tuple[str, str]] = set()
        for sentence in _statements(text) if priced else ():
            for aspect, quantity in priced:
                if FIGURES[quantity].search(sentence) and aspect.addressed_by(sentence):
                    stated.add((aspect.name, quantity))
        return ArticleAspects(named, figures, frozenset(stated))

    def unanswered(self, asked: Iterable[str], article: ArticleAspects) -> tuple[str, ...]:
        """The asked aspects the article does not address, sorted by name.

        A figure-answered aspect (how much, when) needs a figure of its kind. When the question
        also asks about an aspect with a quantity (a fee, an interest rate, a limit), "how much"
        needs that quantity, not just any number: 金价今天多少一克 is not answered by
        "最低1克起购", 助学贷款利率是多少 not by "每年最高2万元". And the quantity must be
        stated for that aspect, in a statement that names it (`_statements`): 留学贷款利率是多少
        is not answered by an article that mentions 利息 in one statement and a loan-to-cost 80%
        in another.
        """
        wanted = [self.aspects[name] for name in asked if name in self.aspects]
        priced = [a for a in wanted if a.quantity is not None]
        quantities = sorted({q for a in priced if (q := a.quantity) and q != "#number"})
        missing = []
        for aspect in wanted:
            if aspect.name in article.named:
                continue
            figures: tuple[str, ...] = aspect.answered_by_figures
            if "#number" in figures and quantities:
                figures = tuple(quantities)
            # Several quantities (a fee AND a rate) must each be quoted, each in a statement
            # about its own aspect.
            quoted = bool(figures) and all(f in article.figures for f in figures)
            if set(aspect.answered_by_figures) & _AMOUNTS:
                quoted = quoted and all((a.name, a.quantity) in article.stated for a in priced)
            if not quoted:
                missing.append(aspect.name)
        return tuple(sorted(missing))


def _evidence_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """Chinese words anywhere; Latin words from a word start, inflected, or as prefixes (word*)."""
    parts = [re.escape(w) for w in sorted((w for w in words if _CJK.search(w)), key=len)[::-1]]
    latin = sorted((w for w in words if not _CJK.search(w)), key=len, reverse=True)
    for word in latin:
        if word.endswith("*"):
            parts.append(rf"(?<![a-z]){re.escape(word[:-1])}")
        else:
            parts.append(rf"(?<![a-z]){re.escape(word)}{_INFLECTION}(?![a-z])")
    return re.compile("|".join(parts)) if parts else None


def _latin_alternation(words: Mapping[str, object]) -> re.Pattern[str] | None:
    ordered = sorted(words, key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(re.escape(w) for w in ordered)
    return re.compile(rf"(?<![a-z])({body}){_INFLECTION}(?![a-z])")


@cache
def aspect_lexicon() -> AspectLexicon:
    """Load the bundled aspect vocabulary (shared, read-only)."""
    text = resources.files("knowledge.data").joinpath("aspects.txt").read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise ValueError(f"aspects.txt:{number}: expected 4 tab-separated fields")
        rows.append(fields)
    return AspectLexicon(rows)
